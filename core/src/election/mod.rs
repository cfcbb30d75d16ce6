//! Entry-point election: which node runs `microk8s add-node`, confirmed by a majority.
//!
//! Owns: the pure election core. [`rules`] chooses a node from one membership view;
//! [`claim`] holds the claim messages and the voter's decision; [`Election`] (in `machine`)
//! is the per-node state machine that settles, claims, counts acknowledgements, steps down
//! and follows. Time is passed in, randomness comes from a seed, nothing here does I/O.
//! Does not own: the membership view itself (the driver maps membership members and their
//! gossiped microk8s facts to [`MemberView`]s), the gRPC transport of claims, persistence of
//! [`HardState`], or what an entry point does (`formation`).
//!
//! # Protocol
//! Every node evaluates the [rules] on its own view. When the view has been unchanged
//! for the settle window (and the node has run for the `discovery` grace, so that a booting
//! LAN has announced itself), the rules choose this node, and a majority of the electorate is up,
//! it becomes a candidate: it picks `term = 1 + highest term seen`, votes for itself
//! (persisted), and sends `Claim { term, electorate digest }` to every up voter. A voter
//! acknowledges iff ([`claim::vote`]) it has not acknowledged a higher term nor someone else in
//! this term, its own rules choose the claimant, and both count the same voters. With
//! acknowledgements from a strict majority of its electorate (itself included) the candidate
//! is the **entry point of that term**, and announces `entry_term` in its gossiped metadata.
//! Other nodes follow the up member announcing the highest entry term.
//!
//! The *electorate* is every member known that has not left, dead ones included, until they
//! have been dead for `forget_dead_after` ([`Electorate`]). Counting the dead is what keeps
//! the minority side of a partition from claiming: it cannot reach a majority of voters it
//! still counts.
//!
//! # Invariant: at most one entry point per term
//! A voter acknowledges at most one claimant per term (`voted_term`/`voted_for`, persisted
//! before the reply is sent), and never a term below one it acknowledged. Two claimants
//! confirmed in the same term with the same electorate E would each hold acknowledgements
//! from more than |E|/2 members of E; the two sets intersect, and the common voter would have
//! acknowledged two claimants in one term. So within one electorate a term has at most one
//! entry point.
//!
//! *Caveat: electorates can differ.* "The members it knows" is a per-node notion. A voter
//! only acknowledges a claim whose electorate digest equals its own, so every acknowledgement
//! for a confirmed claim comes from a voter that counted exactly the claimant's voters. Two
//! different electorates can still both confirm the same term number only if their voters
//! disagree about who exists: groups that never heard of each other (separate networks later
//! bridged), or the two sides of a partition that outlasted `forget_dead_after`. Nothing can
//! coordinate nodes that cannot talk; such groups meet as a [`Conflict`] or as two entry
//! points of equal term, and the resolution below applies. The simulator checks the strict
//! per-term invariant whenever all nodes know each other and nobody is forgotten, and the
//! per-(term, electorate) invariant otherwise.
//!
//! # Invariant: a node never follows two entry points in one term
//! A node holds at most one followed entry point. It switches only to a strictly higher
//! term, or back to the same node at the same term after a flap, and never to a term below
//! the highest it has followed.
//!
//! # Invariant: only a control plane of the cluster becomes its entry point
//! Rule 1 only ever chooses up control-plane members of the largest multi-node cluster, a
//! claimant only claims when its own rules choose itself, and a voter only acknowledges the
//! node its rules choose. A worker, or a member of another cluster, is never confirmed while
//! a majority sees that cluster.
//!
//! # Takeover
//! A dead member is never chosen. When the entry point dies, the rules on every node choose
//! another control plane of the same cluster once membership has *confirmed* the death
//! (suspicion alone keeps the old one); after the settle window it claims a higher term.
//!
//! # Stepping down
//! An entry point steps down when another up member announces an entry term at least as
//! high, when it acknowledges a higher term, when fewer than a majority of its electorate
//! are up (it may be on the minority side of a partition, where it must stop acting), or when
//! the settled view makes the rules choose another node. There is no timed lease: the last
//! two conditions depend on failure detection, so for one detection period an old entry point
//! of a lower term can overlap a new one; the formation layer serialises microk8s operations
//! on the cluster side anyway.
//!
//! # Partitions that healed with two clusters
//! Neither cluster is torn down. Every node reports a [`Conflict`] naming the clusters; the
//! rules keep the entry point in the largest one (if both sides had entry points, the chosen
//! one claims a term above both), and members of the other clusters refuse to join it (the
//! formation layer's `InAnotherCluster`), until an operator makes them leave.
//!
//! # Layout
//! - `view.rs`, `rules.rs`, `claim.rs`, `config.rs`, `msg.rs`: as above; `machine.rs`: the
//!   [`Election`] state machine.
//! - `sim/` (test-only): the deterministic simulator in `mod.rs`, carrying out outputs, the
//!   invariant checks (one function per invariant) and the formation model in `check.rs`, and
//!   the scenarios in `sim_tests.rs`.
//!
//! Unit tests of `x.rs` live in `x_tests.rs` beside it, a child module of `x`:
//! `rules_tests.rs` (the table of rules), `machine_tests.rs` (settling, claiming, voting) and
//! its child `machine_follow_tests.rs` (stepping down, following, takeover, conflicts). Short
//! test modules stay inline in their subject.

pub mod claim;
pub mod config;
mod machine;
mod msg;
pub mod rules;
pub mod view;

#[cfg(test)]
mod sim;

pub use claim::{Claim, ClaimReply, HardState, Refusal};
pub use config::{ElectionConfig, ElectionConfigError};
pub use machine::Election;
pub use msg::{ClaimFailure, Conflict, ElectionStatus, Input, Output, Role, StepDown};
pub use rules::{ClusterInfo, Decision, NoCandidate, Reason, choose_entry, clusters};
pub use view::{Electorate, Liveness, MemberView, NodeId, Term};
