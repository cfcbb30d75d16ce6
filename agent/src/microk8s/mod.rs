//! The microk8s adapter: everything muster knows about driving the `microk8s` CLI.
//!
//! Owns the narrow [`Microk8s`] trait, its real implementation over the `microk8s` executable
//! ([`CliMicrok8s`]), the in-memory twin for tests ([`MemoryCluster`] / [`FakeMicrok8s`]),
//! the pure parsers and classifiers of microk8s output (tolerant of 1.19 and 1.28+ wording),
//! and the verification helpers that decide whether a join or removal really happened. Does
//! not own the join/leave workflow (when to call what, retries, serialisation): that planner
//! builds on this module.
//!
//! Layout:
//! - [`contract`]: the trait and the values it returns.
//! - [`secret`]: join tokens, join addresses, the kubeconfig, redaction.
//! - [`error`]: [`Microk8sError`] and the classified failure kinds.
//! - [`parse`] / [`classify`]: output → values / typed errors (pure, fixture-tested).
//! - [`process`] / [`cli`]: running the executable with timeouts and process-group kill.
//! - [`fake`]: the in-memory twin.
//! - [`verify`]: "joined" and "removed" as observed in `kubectl get nodes` and `status`.
//!
//! Parser fixtures live in `agent/tests/fixtures/microk8s/` (see its README); the simulator is
//! checked against the same files.

pub mod classify;
pub mod cli;
pub mod contract;
pub mod error;
pub mod fake;
pub mod parse;
pub mod process;
pub mod secret;
pub mod verify;

pub use cli::{CliConfig, CliMicrok8s, Timeouts};
pub use contract::{
    AddNodeOutput, ClusterStatus, DatastoreMember, DqliteRole, JoinOutcome, Microk8s,
    Microk8sFuture, Microk8sVersion, NodeInfo, Readiness, RemoveOutcome, Role, Status,
};
pub use error::{
    CommandLine, JoinFailure, JoinRejection, LeaveFailure, Microk8sError, RemoveFailure,
};
pub use fake::{FakeMicrok8s, JoinFault, MemoryCluster};
pub use secret::{JoinToken, JoinUrl, Kubeconfig, TokenTtl};
pub use verify::{Expected, NotYet, verify_joined, verify_removed};

/// The text of a parser fixture from `agent/tests/fixtures/microk8s/`.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/microk8s")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}
