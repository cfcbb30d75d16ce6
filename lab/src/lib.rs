//! muster-lab: several "machines" on this one machine, for `muster demo`, the multi-host tests,
//! the simulator's network tests and the benchmarks.
//!
//! A [`Lab`] is one Linux bridge with N hosts, each a network namespace with `eth0` on the
//! bridge and an address in 198.18.0.0/15 (never the machine's real interfaces). Creating one
//! needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`). Dropping it, also while
//! unwinding from a panic, kills what runs inside and removes every kernel object it made.
//!
//! # Layout
//! - [`netns`] holds [`Lab`] (bridge + N hosts, partitions, teardown) and [`Host`] (commands,
//!   link cut, packet loss, byte counters).
//! - [`names`] makes collision-free names of bridges, veths and namespaces and [`sweep`]s
//!   leftovers of crashed runs (of the demo and of tests alike: they share the names).
//! - [`process`] runs commands; its [`ChildGuard`] kills its child on drop; signals, RSS.
//! - [`wait`] has [`wait_until`], polling with a deadline and a descriptive timeout.
//! - [`error`] has [`LabError`].
//! - [`caps`] is the one capability policy: [`require`] runs, skips loudly, or fails in CI.
//!
//! What runs on the hosts is not this crate's business: `muster demo` (the `muster` crate's
//! `demo`) starts simulated microk8s hosts and agents; the `muster-tests` crate adds agents,
//! simulated machines, avahi and serf as extension traits of [`Host`]; the simulator's network
//! test (`microk8s-sim/tests/netns.rs`) runs its daemons here. All of them use these types and
//! [`require`] directly, so there is one lab and one skip policy.

pub mod caps;
pub mod error;
pub mod names;
pub mod netns;
pub mod process;
pub mod wait;

pub use caps::{Capable, Decision, Need, decide, require, require_needs};
pub use error::{LabError, Result};
pub use names::{SweepReport, sweep};
pub use netns::{Host, KEEP_DIR_ENV, Lab, LabBuilder};
pub use process::{ChildGuard, Signal};
pub use wait::wait_until;
