//! Test harness shared by muster's multi-host tests and benchmarks: the programs run on the
//! hosts of a [`muster_lab::Lab`] (the real `muster agent`, simulated microk8s machines, avahi,
//! serf) and how tests talk to them.
//!
//! The lab itself is not here: hosts in network namespaces ([`muster_lab::Lab`],
//! [`muster_lab::Host`]), child processes that die with their guard
//! ([`muster_lab::ChildGuard`]), waiting ([`muster_lab::wait_until`]), the sweep of leftovers
//! ([`muster_lab::sweep`]), the one error type ([`muster_lab::LabError`]) and the one skip
//! policy ([`muster_lab::require`]) are `muster_lab`'s, and tests use them from there. This
//! crate adds what runs on a host as extension traits of [`muster_lab::Host`].
//!
//! # Layout
//! - [`agent`]: [`AgentHost::start_agent`] starts `muster agent` on a host; [`Agent`] reads
//!   `muster members --json`; [`muster_bin`] finds the binary; [`wait_all_alive`].
//! - [`cluster`]: simulated machines. [`SimHost`] places the simulator's own recipe
//!   ([`microk8s_sim::machine::Machine`]) on a host and starts an agent driving it
//!   ([`SimNode`]); [`sim_bin`] finds the simulator binary.
//! - [`avahi`]: [`AvahiHost::start_avahi`] runs avahi-daemon in an observer host; parsing of
//!   `avahi-browse -rpt`.
//! - [`serf`]: [`SerfHost::start_serf`] runs HashiCorp Serf on hosts, the benchmark baseline.
//!
//! Every multi-host test starts with [`muster_lab::require`], builds a [`muster_lab::Lab`],
//! and lets drops clean up:
//!
//! ```no_run
//! use std::time::Duration;
//! use muster_lab::{Lab, require};
//! use muster_tests::{AgentHost, AgentOptions, wait_all_alive};
//!
//! let Some(_caps) = require("three_agents_meet", &[]) else { return };
//! let lab = Lab::new(3).expect("lab builds");
//! let options = AgentOptions::new("lab");
//! let mut agents: Vec<_> = lab.hosts().iter().map(|h| h.start_agent(&options).expect("starts")).collect();
//! for agent in &mut agents {
//!     agent.wait_ready(Duration::from_secs(30)).expect("agent answers");
//! }
//! let refs: Vec<_> = agents.iter().collect();
//! wait_all_alive(&refs, &["h1", "h2", "h3"], Duration::from_secs(60)).expect("converges");
//! ```

pub mod agent;
pub mod avahi;
pub mod cluster;
pub mod serf;

pub use agent::{Agent, AgentHost, AgentOptions, Member, MemberStatus, muster_bin, wait_all_alive};
pub use avahi::{AvahiDaemon, AvahiHost, AvahiService, SystemBus};
pub use cluster::{SimDaemon, SimHost, SimNode, SimNodeOptions, sim_bin};
pub use serf::{SerfAgent, SerfHost, SerfMember};
