//! The one mapping from what the adapter and the RPC clients classified to the formation
//! cores' typed [`Failure`]s.
//!
//! The adapter names every microk8s failure precisely ([`Microk8sError`] with its join,
//! leave and remove kinds); the cores decide on a [`FailureKind`]. Everything that crosses
//! from a command or a call into a core goes through [`failure`] or [`rpc_failure`], so the
//! same error is always the same kind, and the detail is the adapter's message (redacted, no
//! token).

use muster_core::formation::{Failure, FailureKind};

use crate::microk8s::{JoinFailure, JoinRejection, LeaveFailure, Microk8sError, RemoveFailure};

/// A microk8s command's failure, as the cores see it.
pub fn failure(e: &Microk8sError) -> Failure {
    Failure::new(kind(e), e.to_string())
}

fn kind(e: &Microk8sError) -> FailureKind {
    use FailureKind as K;
    match e {
        Microk8sError::Spawn { .. } => K::NotInstalled,
        Microk8sError::Timeout { .. } => K::TimedOut,
        Microk8sError::Stopped { .. } | Microk8sError::ApiUnavailable { .. } => K::NotRunning,
        Microk8sError::Unparseable { .. } => K::BadAnswer,
        Microk8sError::Join { failure, .. } => match failure {
            JoinFailure::Unreachable { .. } => K::EntryUnreachable,
            JoinFailure::Fingerprint { .. } => K::EntryNotVerified,
            JoinFailure::Rejected {
                reason: JoinRejection::InvalidToken,
                ..
            } => K::TokenRejected,
            JoinFailure::Rejected { .. }
            | JoinFailure::InvalidConnection { .. }
            | JoinFailure::LowMemory
            | JoinFailure::WorkerNotSupported => K::JoinRejected,
            JoinFailure::CertificateSigning { .. } | JoinFailure::Other => K::Other,
        },
        Microk8sError::Leave { failure, .. } => match failure {
            LeaveFailure::OnlyVoter => K::OnlyVoter,
            LeaveFailure::NoQuorum => K::NoQuorum,
            LeaveFailure::NotClustered => K::NotMember,
            LeaveFailure::Other => K::Other,
        },
        Microk8sError::RemoveNode { failure, .. } => match failure {
            RemoveFailure::NotPartOfCluster => K::NotMember,
            RemoveFailure::ContactFailed => K::NoQuorum,
            RemoveFailure::RegisteredWithDqlite | RemoveFailure::Other => K::Other,
        },
        Microk8sError::Io { .. }
        | Microk8sError::WorkerNode { .. }
        | Microk8sError::PermissionDenied { .. }
        | Microk8sError::Unsupported { .. }
        | Microk8sError::Failed { .. } => K::Other,
    }
}

/// A call to another agent that failed: unreachable (or gone quiet), or an answer this agent
/// cannot use.
pub fn rpc_failure(unreachable: bool, detail: impl Into<String>) -> Failure {
    let kind = if unreachable {
        FailureKind::EntryUnreachable
    } else {
        FailureKind::BadAnswer
    };
    Failure::new(kind, detail)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::microk8s::CommandLine;

    fn join(failure: JoinFailure) -> Microk8sError {
        Microk8sError::Join {
            command: CommandLine::new("microk8s", ["join", "10.0.0.1:25000/<redacted>"]),
            code: Some(1),
            failure,
            excerpt: "no output".to_owned(),
        }
    }

    #[test]
    fn a_rejected_token_is_not_an_unreachable_entry() {
        let token = failure(&join(JoinFailure::Rejected {
            reason: JoinRejection::InvalidToken,
            status: Some(500),
            message: "Invalid token".to_owned(),
        }));
        let unreachable = failure(&join(JoinFailure::Unreachable {
            detail: "Connection refused".to_owned(),
        }));
        assert_eq!(token.kind, FailureKind::TokenRejected);
        assert_eq!(unreachable.kind, FailureKind::EntryUnreachable);
        assert!(token.detail.contains("Invalid token"), "{}", token.detail);
    }

    #[test]
    fn each_class_of_the_adapter_has_its_kind() {
        let cmd = || CommandLine::new("microk8s", ["leave"]);
        let cases = [
            (
                Microk8sError::Timeout {
                    command: cmd(),
                    timeout: Duration::from_secs(1),
                    excerpt: String::new(),
                },
                FailureKind::TimedOut,
            ),
            (
                Microk8sError::Stopped { command: cmd() },
                FailureKind::NotRunning,
            ),
            (
                Microk8sError::Leave {
                    command: cmd(),
                    code: Some(3),
                    failure: LeaveFailure::OnlyVoter,
                    excerpt: String::new(),
                },
                FailureKind::OnlyVoter,
            ),
            (
                Microk8sError::Leave {
                    command: cmd(),
                    code: Some(2),
                    failure: LeaveFailure::NoQuorum,
                    excerpt: String::new(),
                },
                FailureKind::NoQuorum,
            ),
            (
                Microk8sError::RemoveNode {
                    command: cmd(),
                    code: Some(1),
                    failure: RemoveFailure::NotPartOfCluster,
                    excerpt: String::new(),
                },
                FailureKind::NotMember,
            ),
            (
                Microk8sError::Spawn {
                    command: cmd(),
                    program: "/nonexistent/microk8s".into(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                },
                FailureKind::NotInstalled,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(failure(&error).kind, kind, "{error}");
            assert_eq!(failure(&error).detail, error.to_string());
        }
    }

    #[test]
    fn rpc_failures_tell_unreachable_from_nonsense() {
        assert_eq!(
            rpc_failure(true, "connection refused").kind,
            FailureKind::EntryUnreachable
        );
        assert_eq!(rpc_failure(false, "empty").kind, FailureKind::BadAnswer);
    }
}
