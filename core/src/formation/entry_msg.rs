//! The vocabulary of the join coordinator: requests and responses of followers, the
//! coordinator's inputs and outputs, and the reasons it gives.
//!
//! Owns: the plain data types; behaviour lives in `entry.rs`.

use std::net::IpAddr;
use std::time::Duration;

use super::facts::ClusterFacts;
use super::outcome::{Failure, Outcome};
use super::policy::{JoinRole, RolePreference};
use crate::election::NodeId;

/// A follower's request to join, as the entry point's gRPC server received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    /// The follower's node id.
    pub follower: NodeId,
    /// Its node name (becomes its Kubernetes node name).
    pub name: String,
    /// Its address as the entry point saw it (the request's source address).
    pub addr: IpAddr,
    /// The entry point's own address the request arrived at, if known.
    pub met_on: Option<IpAddr>,
    /// What the follower wants to be.
    pub preference: RolePreference,
    /// The follower's microk8s `major.minor`, when known.
    pub version: Option<String>,
}

/// The answer to a [`JoinRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinResponse {
    /// Run `microk8s join <url>` (with `--worker` for a worker) now, then report.
    Granted {
        /// The join URL (contains the token: never log it).
        url: String,
        /// The role to join as.
        role: JoinRole,
    },
    /// Ask again after `retry_after`.
    Wait {
        /// 1-based place in the queue (0: being served).
        position: u32,
        /// When to ask again.
        retry_after: Duration,
        /// Why not yet.
        reason: WaitReason,
    },
    /// Not with this entry point, not now; the follower reports it and backs off.
    Refused(EntryRefusal),
}

/// Why a follower must wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// Others are ahead.
    Queued,
    /// Its token is being made.
    Preparing,
    /// Its join is being verified.
    Verifying,
    /// Nobody is added until this clears.
    Blocked(Blocked),
    /// This node is not the entry point (any more); ask the entry point the view names.
    NotEntry,
}

/// What keeps the entry point from adding anyone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// No cluster facts yet.
    NoFacts,
    /// Voters whose machines are dead are still registered (adding a node now can break the
    /// cluster); they are removed after `remove_after`, if set, else an operator must.
    DeadVoters {
        /// Their names.
        names: Vec<String>,
    },
    /// The datastore has no quorum: nothing can be added or removed.
    QuorumLost {
        /// Live voters.
        live: u32,
        /// All voters.
        voters: u32,
    },
}

/// Why the entry point refuses a follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryRefusal {
    /// The follower is already a Ready node of this cluster.
    AlreadyMember,
    /// A node with this name exists and is not the follower (or is a stale object of it):
    /// remove it first (`microk8s remove-node <name> --force`).
    NameTaken {
        /// The name.
        name: String,
    },
    /// microk8s versions differ.
    MixedVersions {
        /// The follower's.
        follower: String,
        /// The entry point's.
        entry: String,
    },
}

/// Why a join attempt ended without a verified node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinFailure {
    /// `add-node` failed.
    AddNode(Failure),
    /// `add-node` printed no URL the follower can reach.
    NoUsableUrl,
    /// The follower reported that its join failed.
    Reported(Failure),
    /// No report within `join_timeout`, and the node never showed up.
    NoReport,
    /// Reported success, but not seen Ready (and in the datastore) within `verify_timeout`.
    NotVerified,
    /// This node stopped being the entry point while the join was in flight.
    NotEntry,
}

/// Names one held join request, so that its answer finds the caller waiting for it.
pub type Ticket = u64;

/// Something that happened outside the coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Whether this node is the entry point (the election decides; the driver tells; a new
    /// coordinator is active until told otherwise). One that is not active starts nothing,
    /// answers every request with [`WaitReason::NotEntry`] and releases the requests it
    /// held; on stepping down it drops its queue and ends the join in flight
    /// ([`JoinFailure::NotEntry`]).
    Active(bool),
    /// A follower's join request, answered by [`Output::Answer`] with the same ticket: at
    /// once, or, when it would have to wait, as soon as its grant exists or after
    /// [`JOIN_HOLD`](super::pacing::JOIN_HOLD) (a long poll).
    Request {
        /// Names the caller waiting for the answer.
        ticket: Ticket,
        /// The request.
        req: JoinRequest,
    },
    /// Fresh facts about the cluster.
    Facts(ClusterFacts),
    /// The entry point's own networks (address, prefix length), for choosing join URLs.
    Networks(Vec<(IpAddr, u8)>),
    /// `add-node` succeeded for `follower` with these URLs (`--format json`'s `urls`).
    AddNodeDone {
        /// The follower served.
        follower: NodeId,
        /// The join URLs.
        urls: Vec<String>,
    },
    /// `add-node` failed.
    AddNodeFailed {
        /// The follower served.
        follower: NodeId,
        /// What went wrong (no token in it).
        error: Failure,
    },
    /// The follower reports the outcome of its `microk8s join`: exit 0, or why it failed.
    Report {
        /// The follower.
        follower: NodeId,
        /// What it reported.
        outcome: Outcome,
    },
    /// A node ran `microk8s leave` and asks for `remove-node <name>`.
    LeaveRequested {
        /// Its node name.
        name: String,
    },
    /// A `remove-node` finished.
    RemoveDone {
        /// The node.
        name: String,
        /// Removed, or why not.
        outcome: Outcome,
    },
    /// Time passed.
    Tick,
}

/// Something the driver must do or report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `response` to the caller of the request with this ticket.
    Answer {
        /// The request's ticket.
        ticket: Ticket,
        /// The answer (a grant holds the token: never log it).
        response: JoinResponse,
    },
    /// Run `microk8s add-node --token <token> --token-ttl <ttl> --format json` and feed back
    /// [`Input::AddNodeDone`] or [`Input::AddNodeFailed`]. Never log the token.
    AddNode {
        /// Whom it is for.
        follower: NodeId,
        /// 32 lowercase hex digits.
        token: String,
        /// Its lifetime (whole seconds).
        ttl: Duration,
    },
    /// Run `microk8s remove-node <name>` (with `--force` after the name when `force`) and feed
    /// back [`Input::RemoveDone`].
    RemoveNode {
        /// The node.
        name: String,
        /// Also unregister it from the datastore (dead members).
        force: bool,
    },
    /// Gather and feed back fresh [`Input::Facts`].
    RefreshFacts,
    /// A follower was granted a join (journal; the URL is not repeated here).
    Granted {
        /// The follower.
        follower: NodeId,
        /// Its name.
        name: String,
        /// Its role.
        role: JoinRole,
    },
    /// A follower's join was verified.
    Joined {
        /// The follower.
        follower: NodeId,
        /// Its name.
        name: String,
        /// Its role.
        role: JoinRole,
    },
    /// A join attempt failed; the follower may ask again.
    JoinFailed {
        /// The follower.
        follower: NodeId,
        /// Its name.
        name: String,
        /// Why.
        reason: JoinFailure,
    },
    /// A node was removed.
    Removed {
        /// The node.
        name: String,
    },
    /// A removal failed.
    RemoveFailed {
        /// The node.
        name: String,
        /// Why.
        error: Failure,
    },
    /// Joins are blocked (reported once per change).
    Blocked(Blocked),
    /// Joins are no longer blocked.
    Unblocked,
}

/// A snapshot for status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorStatus {
    /// The follower being served, if any.
    pub serving: Option<NodeId>,
    /// The node being removed, if any.
    pub removing: Option<String>,
    /// Followers waiting, in order.
    pub queued: Vec<NodeId>,
    /// Join requests held for their answer (long polls).
    pub held: usize,
    /// What blocks joins.
    pub blocked: Option<Blocked>,
}
