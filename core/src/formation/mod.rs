//! Hands-free cluster formation: the pure planners that turn "I follow an entry point and am
//! not in its cluster" into a join, and "member gone or leaving" into a removal.
//!
//! Owns:
//! - [`entry::JoinCoordinator`]: on the entry point, serves join requests strictly one at a
//!   time (fresh TTL token per grant, URL on the follower's subnet, wait for verification),
//!   holds a waiting follower's request until its grant (the long poll), paces its looks at
//!   the cluster while a join is in flight, and removes leaving or long-dead members, never
//!   while a dead voter blocks or quorum is lost;
//! - [`follower::FollowerJoin`]: on every other node, waits for microk8s, requests a join,
//!   joins, schedules the checks of the join until it is verified or `verify_timeout` passes
//!   (then resets microk8s with `microk8s leave`), reports, and retries with backoff and
//!   jitter;
//! - [`outcome`]: the typed results ([`Failure`], [`FailureKind`]) the driver feeds back;
//!   [`pacing`]: how fast the planners look and how long they hold;
//! - [`policy`] (control plane or worker; the steps of `muster leave`), [`refusal`] (why a
//!   node will not join), [`facts`] (the entry point's view of its cluster), [`status`]
//!   (role, size, HA, warnings), [`grant`] (tokens and URL choice), [`config`]; the retry
//!   schedule is [`crate::backoff`].
//!
//! Does not own: microk8s itself (the agent's `microk8s` adapter runs the commands), the
//! gRPC calls between followers and the entry point, or who the entry point is (`election`).
//! Everything here is a plain state machine: time is passed in, randomness comes from a
//! seed, outputs are values the driver carries out in order.
//!
//! # Invariant: one operation in flight per cluster
//! The coordinator holds a single slot: an `add-node` being prepared, a grant waiting for its
//! follower, a join being verified, or a `remove-node`. Nothing else starts until the slot is
//! free, so microk8s never sees two joins (or a join and a removal) at once; concurrent joins
//! are what upstream reports as flaky.
//!
//! # Invariant: nothing is added while a dead voter is registered or quorum is lost
//! A voter whose machine membership confirms dead (or that nobody knows and is NotReady)
//! blocks every join. With `remove_after` set it is removed with `--force` once dead that
//! long and only while a majority of voters is live; otherwise the block is reported.
//!
//! # Invariant: a node is never moved silently
//! A follower that belongs to another multi-node cluster refuses, with a reason in status and
//! journal, unless the operator set `move_from_other_cluster`. The same goes for duplicate
//! hostnames, mixed versions and a missing default route: refusals are typed, reported once
//! per change, and re-checked on every view change.
//!
//! # Tests
//! Unit tests of `x.rs` live in `x_tests.rs` beside it, a child module of `x`:
//! `follower_tests.rs`, and `entry_tests.rs` with its children `entry_gate_tests.rs` (what
//! holds the coordinator back: dead voters, lost quorum, removals, refusals) and
//! `entry_hold_tests.rs` (the long poll and the pace of its looks). Short test modules stay
//! inline in their subject.

pub mod config;
pub mod entry;
pub mod entry_msg;
pub mod facts;
pub mod follower;
pub mod grant;
pub mod outcome;
pub mod pacing;
pub mod policy;
pub mod refusal;
pub mod status;

pub use config::{FormationConfig, FormationConfigError};
pub use entry::JoinCoordinator;
pub use entry_msg::{
    Blocked, CoordinatorStatus, EntryRefusal, Input as EntryInput, JoinFailure, JoinRequest,
    JoinResponse, Output as EntryOutput, Ticket, WaitReason,
};
pub use facts::{ClusterFacts, ClusterNode, DatastoreRole, MemberState};
pub use follower::FollowerJoin;
pub use follower::{
    FailReason, FollowerView, Input as FollowerInput, Output as FollowerOutput, Phase,
};
pub use outcome::{Failure, FailureKind, Outcome};
pub use policy::{JoinRole, RolePreference};
pub use refusal::{Refusal, already_joined, join_refusals};
pub use status::{ClusterHealth, HealthWarning, NodeRole, cluster_health, node_role};
