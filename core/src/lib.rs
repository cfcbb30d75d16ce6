//! muster-core: the decisions of muster, with no runtime.
//!
//! Owns the pure state machines and functions: [`membership`] (SWIM with Lifeguard's
//! refinements), [`election`] (who the entry point is), [`formation`] (the entry point's join
//! coordinator and the follower's join), the seeded [`rng`] and the shared retry [`backoff`].
//! Each core takes messages and the current time in (`handle(now, input)`) and hands back
//! values for a driver to carry out (`drain_outputs()`, `next_deadline()`).
//!
//! Does not own: sockets, processes, timers, TLS, the journal or protobuf. The crate depends
//! on no runtime (`cargo tree -p muster-core -e normal` shows no tokio, tonic, prost, log or
//! sysinfo) and its `clippy.toml` bans clocks and ambient randomness, so every run of a core
//! is reproducible from its inputs and its seed.
//!
//! # Layout
//! Each core is a folder whose `mod.rs` documents its files. Two rules hold in all of them:
//! - Unit tests of `x.rs` live in `x_tests.rs` beside it, declared in `x.rs` as its child
//!   `#[cfg(test)] #[path = "x_tests.rs"] mod tests;` (for a folder's `mod.rs`, the folder's
//!   name: `membership/membership_tests.rs`). More test files of one subject are children of
//!   its tests file, named `x_<aspect>_tests.rs`. Short test modules stay inline.
//! - A protocol simulator is a folder `sim/`: the simulator in `mod.rs`, operations and
//!   faults in `ops.rs` (where they are a file of their own), invariant checks in `check.rs`
//!   (one function per invariant, the seed in every failure), benchmark helpers in `bench.rs`
//!   (membership), and the scenarios in `sim_tests.rs`. Membership's simulator is public
//!   behind the `sim` feature (always on in this crate's tests), for the benchmark;
//!   election's is test-only. The simulators share one timeline, `agenda` (also behind
//!   `sim`; the agent's workflow simulation uses it too).

#[cfg(any(test, feature = "sim"))]
pub mod agenda;
pub mod backoff;
pub mod election;
pub mod formation;
pub mod membership;
pub mod rng;
