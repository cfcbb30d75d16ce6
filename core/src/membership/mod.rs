//! The gossip mesh's pure core: SWIM failure detection with Lifeguard's refinements, piggyback
//! dissemination and digest push-pull, as a deterministic state machine.
//!
//! Owns: who is a member, who is alive, suspect, dead or left, and each member's metadata
//! (id, name, addresses, version, resources, free-form fields), as this node believes it.
//! Does not own: sockets, timers, mDNS, or the gRPC mapping. A driver (written elsewhere)
//! feeds [`Input`]s and ticks with the current time and performs the [`Output`]s; no clock,
//! task or socket exists in here, and randomness comes from a seed.
//!
//! The protocol and its invariants are explained in `ALGORITHM.md` next to this file.
//!
//! # Layout
//! - `config.rs`: [`MembershipConfig`], defaults justified against muster's floors.
//! - `message.rs`: [`Message`], [`Update`], [`NodeMeta`], validation of hostile input.
//! - [`fields`]: the gossip field vocabulary, the keys of [`NodeMeta::fields`].
//! - `member.rs`: [`Member`] and the member table.
//! - `swim.rs`: [`Membership`], its entry points, [`Input`], [`Output`], events.
//! - `rules.rs`: how updates change members; refutation.
//! - `probe.rs`: direct and indirect probes, relaying, nacks.
//! - `sync.rs`: gossip rounds, push-pull (periodic, on join, on a view-checksum mismatch),
//!   seeding, reconnects.
//! - `suspicion.rs`, `awareness.rs`, `broadcast.rs`: Lifeguard timer, local health, queue.
//! - `sim/` (behind the `sim` feature): the deterministic cluster simulator in `mod.rs`, its
//!   operations and faults in `ops.rs`, its invariant checks in `check.rs` (one function per
//!   invariant), the convergence benchmark in `bench.rs`, and in `sim_tests.rs` the
//!   whole-cluster scenarios and the muster floors at N = 20.
//!
//! Unit tests of `x.rs` live in `x_tests.rs` beside it, a child module of `x`:
//! `probe_tests.rs` (probing) and `sync_tests.rs` (push-pull, discovery).
//! Tests that drive the whole state machine are children of this module:
//! `membership_tests.rs`, one unit test per rule (with the helpers the other test files
//! share), and its child `membership_view_tests.rs`, view checksums and partitions where a
//! node misses news. Short test modules stay inline in their subject.
//!
//! # Driving it
//! ```
//! use std::time::Duration;
//! use muster_core::membership::{Input, Membership, MembershipConfig, NodeMeta, Output};
//!
//! let meta = NodeMeta { id: "a".into(), addr: "10.0.0.1:7946".into(), ..Default::default() };
//! let mut m = Membership::new(MembershipConfig::default(), meta, 42, Duration::ZERO)
//!     .expect("valid config and metadata");
//! m.handle(Duration::from_millis(5), Input::Discovered { id: "b".into(), addr: "10.0.0.2:7946".into() });
//! for out in m.drain_outputs() {
//!     if let Output::Send { to, addr, msg } = out {
//!         // The driver would call Peer.Send on `addr` here.
//!         assert_eq!((to.as_str(), addr.as_str(), msg.kind()), ("b", "10.0.0.2:7946", "sync"));
//!     }
//! }
//! assert!(m.next_deadline().is_some());
//! ```

mod awareness;
mod broadcast;
mod config;
pub mod fields;
mod member;
mod message;
mod probe;
mod rules;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod suspicion;
mod swim;
mod sync;

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;

pub use awareness::Awareness;
pub use broadcast::BroadcastQueue;
pub use config::{ConfigError, MembershipConfig, ProbeSchedule};
pub use member::{Member, StateKey, view_term};
pub use message::{
    Digest, Limits, Message, NodeId, NodeMeta, Payload, RejectReason, Resources, Status, Update,
};
pub use probe::{ProbeKind, ProbePhase};
pub use suspicion::{Suspicion, timeout as suspicion_timeout};
pub use swim::{
    EventKind, Input, LocalPhase, MemberEvent, Membership, MembershipError, Output, View,
};
