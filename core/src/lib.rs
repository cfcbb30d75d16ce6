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
//! is reproducible from its inputs and its seed. The protocol simulators sit behind the `sim`
//! feature (always on in this crate's tests).

pub mod backoff;
pub mod election;
pub mod formation;
pub mod membership;
pub mod rng;
