//! The election's vocabulary: what goes into [`Election`](super::Election), what comes out,
//! and the status snapshot.
//!
//! Owns: plain data types only; behaviour lives in `machine.rs`.

use super::claim::{Claim, ClaimReply, HardState, Refusal};
use super::rules::{ClusterInfo, Decision};
use super::view::{MemberView, NodeId, Term};

/// Something that happened outside the election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The membership view (with every member's microk8s facts) changed. Must include the
    /// local node.
    ViewChanged(Vec<MemberView>),
    /// A claim arrived from another node.
    Claim {
        /// The claimant.
        from: NodeId,
        /// Its claim.
        claim: Claim,
    },
    /// A voter answered our claim.
    ClaimReply {
        /// The voter.
        from: NodeId,
        /// Its answer.
        reply: ClaimReply,
    },
    /// A claim could not be delivered to `to` (the driver's RPC failed); counts as a refusal.
    SendFailed {
        /// The unreachable voter.
        to: NodeId,
    },
    /// Time passed; call at [`Election::next_deadline`](super::Election::next_deadline) or on a fixed beat.
    Tick,
}

/// Something the driver must do or report, in this order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Store the vote durably before carrying out any later output.
    Persist(HardState),
    /// Send a claim to a voter.
    SendClaim {
        /// The voter.
        to: NodeId,
        /// The claim.
        claim: Claim,
    },
    /// Answer a claimant.
    SendClaimReply {
        /// The claimant.
        to: NodeId,
        /// The answer.
        reply: ClaimReply,
    },
    /// We started claiming `term` (journal).
    ClaimStarted {
        /// The term.
        term: Term,
        /// Voters counted.
        electorate: u32,
    },
    /// Our claim of `term` did not succeed; we retry after a backoff if the rules still
    /// choose us.
    ClaimFailed {
        /// The term.
        term: Term,
        /// Why.
        reason: ClaimFailure,
    },
    /// A majority confirmed us: we are the entry point of `term`.
    BecameEntry {
        /// The confirmed term.
        term: Term,
    },
    /// We are no longer the entry point.
    SteppedDown {
        /// The term we held.
        term: Term,
        /// Why.
        reason: StepDown,
    },
    /// We now follow `entry`, the confirmed entry point of `term`.
    Following {
        /// The entry point.
        entry: NodeId,
        /// Its term.
        term: Term,
    },
    /// We no longer follow `entry` (it died, withdrew, was superseded, or we became entry).
    Unfollowed {
        /// The former entry point.
        entry: NodeId,
        /// Its term.
        term: Term,
    },
    /// What the local member must announce in its gossiped metadata from now on (the
    /// [`MemberView::entry_term`] and [`MemberView::followed`] others will see). Emitted
    /// whenever either changes.
    Announce {
        /// Our confirmed entry term, while we are the entry point.
        entry_term: Option<Term>,
        /// The highest (entry point, term) we have followed.
        followed: Option<(NodeId, Term)>,
    },
    /// Two or more multi-node clusters are visible; none is torn down (status, journal).
    Conflict(Conflict),
    /// The conflict reported last is gone.
    ConflictCleared,
}

/// Why a claim failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimFailure {
    /// Not enough acknowledgements within the claim timeout.
    Timeout {
        /// Acknowledgements received (ours included).
        acks: u32,
        /// Needed.
        needed: u32,
    },
    /// So many voters refused (or could not be reached) that a majority is out of reach.
    Refused {
        /// The last refusal received, if any voter said why.
        last: Option<Refusal>,
    },
    /// A voter has seen, or we granted, a higher term.
    Superseded {
        /// That term.
        term: Term,
    },
    /// The rules stopped choosing us while the claim ran.
    ChoiceChanged,
}

/// Why an entry point stepped down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepDown {
    /// Another up member announces an entry term at least as high as ours, or has followed
    /// another node in a term at least as high.
    HigherTerm {
        /// That member.
        entry: NodeId,
        /// Its term.
        term: Term,
    },
    /// Fewer than a majority of the electorate are up: we may be on the minority side of a
    /// partition, where another entry point may be confirmed soon.
    QuorumLost {
        /// Voters up.
        up: u32,
        /// Voters counted.
        electorate: u32,
    },
    /// The settled view makes the rules choose another node (or none).
    RulesChoose {
        /// The node chosen instead.
        choice: Option<NodeId>,
    },
    /// We acknowledged a claim of a higher term.
    Superseded {
        /// The claimant.
        claimant: NodeId,
        /// Its term.
        term: Term,
    },
}

/// Several multi-node clusters in one mesh. The first keeps the entry point; members of the
/// others refuse to join it, and nobody tears a cluster down until an operator decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The clusters, largest first.
    pub clusters: Vec<ClusterInfo>,
}

/// The local node's part in the election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not claiming and not the entry point.
    Follower,
    /// Claiming `term`.
    Candidate {
        /// The term claimed.
        term: Term,
    },
    /// Confirmed entry point of `term`.
    Entry {
        /// The term.
        term: Term,
    },
}

/// A snapshot for `muster status` and the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionStatus {
    /// Our role.
    pub role: Role,
    /// Highest term seen.
    pub seen_term: Term,
    /// The entry point we follow, with its term.
    pub following: Option<(NodeId, Term)>,
    /// What the rules say on the current view.
    pub decision: Decision,
    /// The view has been stable for the settle window.
    pub settled: bool,
    /// Voters counted.
    pub electorate: u32,
    /// Voters up.
    pub up: u32,
    /// The cluster conflict, if any.
    pub conflict: Option<Conflict>,
}
