//! Test harness shared by muster's multi-host tests: hosts in Linux network namespaces on one
//! bridge, child processes that die with their guard, and the programs run on those hosts
//! (the real `muster agent`, avahi, serf).
//!
//! # Layout
//! - [`netns`] holds [`Lab`] (bridge + N hosts, partitions, teardown) and [`Host`] (commands,
//!   link cut, packet loss, byte counters).
//! - [`names`] makes collision-free names of bridges, veths and namespaces and [`sweep`]s
//!   leftovers of crashed runs.
//! - [`process`] runs commands; its [`ChildGuard`] kills its child on drop; signals, RSS.
//! - [`agent`] starts `muster agent` on a host and reads `muster members --json`.
//! - [`avahi`] runs avahi-daemon in an observer host and parses `avahi-browse -rpt`.
//! - [`serf`] runs HashiCorp Serf on hosts, the benchmark baseline.
//! - [`caps`] tells whether this machine can run labs: skip outside CI, fail inside.
//! - [`wait`] has [`wait_until`], polling with a deadline and a descriptive timeout.
//! - [`error`] has [`HarnessError`].
//!
//! Every multi-host test starts with [`require`], builds a [`Lab`], and lets drops clean up:
//!
//! ```no_run
//! use std::time::Duration;
//! use muster_tests::{AgentOptions, Lab, require, wait_all_alive};
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
pub mod error;
pub mod names;
pub mod netns;
pub mod process;
pub mod serf;
pub mod wait;

pub use agent::{Agent, AgentOptions, Member, MemberStatus, muster_bin, sim_bin, wait_all_alive};
pub use avahi::{AvahiDaemon, AvahiService, SystemBus};
pub use cluster::{SimNode, SimNodeOptions};
pub use error::{HarnessError, Result};
pub use muster_lab::{Capable, Decision, Need, decide, require, require_needs};
pub use names::{SweepReport, sweep};
pub use netns::{Host, Lab, LabBuilder};
pub use process::{ChildGuard, Signal};
pub use serf::{SerfAgent, SerfMember};
pub use wait::wait_until;
