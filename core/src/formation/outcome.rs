//! How the steps a driver carries out for the formation cores ended, in the cores' terms.
//!
//! Owns [`Failure`] and its [`FailureKind`]: the driver's microk8s adapter and RPC clients
//! classify every failure precisely (exit codes, the entry's refusal, a refused connection);
//! one mapping function in the driver turns that classification into a [`Failure`], so that a
//! core can tell "the entry refused the token" from "the entry is unreachable" without parsing
//! text. The `detail` is what an operator reads in the journal and in status.
//!
//! Does not own the classification itself (the adapter's typed errors) nor the decisions taken
//! on a kind (the follower and the coordinator).

use std::fmt;

/// What kind of failure ended a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// microk8s is not installed or cannot be started.
    NotInstalled,
    /// microk8s is stopped or not ready.
    NotRunning,
    /// The command or call did not finish in time.
    TimedOut,
    /// The entry point rejected the join token (invalid, used or expired).
    TokenRejected,
    /// The entry point refused the join for another reason (same IP, already known, …).
    JoinRejected,
    /// The entry point could not be reached (by `microk8s join` or by the agent's RPC).
    EntryUnreachable,
    /// The entry point's identity did not match the join URL's fingerprint.
    EntryNotVerified,
    /// The datastore has no quorum for the change.
    NoQuorum,
    /// This node holds the only copy of the Kubernetes database (a `leave` would lose it).
    OnlyVoter,
    /// The node is not where the command expects it (in no cluster, not part of it).
    NotMember,
    /// The join has not shown up yet (a verification check).
    NotYetJoined,
    /// This control plane is a datastore member of its cluster but not Ready (its cluster may
    /// be unreachable or without quorum): it has joined; readiness is the cluster's health.
    NotReadyMember,
    /// A peer's answer or a command's output could not be understood.
    BadAnswer,
    /// Anything else; the detail says what.
    Other,
}

/// A step that failed: its kind and what an operator should read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The kind, for decisions.
    pub kind: FailureKind,
    /// The explanation, for the journal and status (never a token).
    pub detail: String,
}

impl Failure {
    /// A failure of `kind` explained by `detail`.
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        Failure {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// How a step without a value of its own ended.
pub type Outcome = Result<(), Failure>;
