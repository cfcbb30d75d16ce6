//! The microk8s commands the cores ask for, each as one async step over the [`Microk8s`]
//! adapter that returns the cores' typed result. `effects` runs them in tasks; the workflow
//! simulation runs the same steps against the in-memory twin, so both carry out exactly the
//! same thing.

use std::time::Duration;

use super::facts::{self, LocalFacts};
use super::outcome::failure;
use crate::microk8s::{Expected, JoinToken, JoinUrl, Microk8s, Role, Status, TokenTtl};
use muster_core::formation::{Failure, FailureKind, JoinRole, Outcome};
use muster_core::membership::Member;
use std::net::IpAddr;

/// Longest wait for `microk8s status --wait-ready` in one attempt.
pub(crate) const WAIT_READY: Duration = Duration::from_secs(120);

/// What a join check compares against: this node and the role it joined as.
#[derive(Clone, Debug)]
pub(crate) struct Joiner {
    /// This node's name.
    pub name: String,
    /// The address it joined from.
    pub ip: IpAddr,
    /// The role it joined as.
    pub role: JoinRole,
}

/// The adapter's role for a planner's join role.
pub(crate) fn m8s_role(r: JoinRole) -> Role {
    match r {
        JoinRole::ControlPlane => Role::ControlPlane,
        JoinRole::Worker => Role::Worker,
    }
}

/// This node's microk8s facts (the version only while unknown).
pub(crate) async fn probe(
    m8s: &dyn Microk8s,
    remembered: Option<String>,
    version: Option<String>,
    was_running: bool,
) -> LocalFacts {
    let version = match version {
        Some(v) => Some(v),
        None => m8s
            .version()
            .await
            .ok()
            .flatten()
            .map(|v| format!("{}.{}", v.major, v.minor)),
    };
    facts::probe(m8s, remembered.as_deref(), version, was_running).await
}

/// `microk8s status --wait-ready`: ready (a running control plane or a worker), or why not.
pub(crate) async fn wait_ready(m8s: &dyn Microk8s) -> Outcome {
    match m8s.status(Some(WAIT_READY)).await {
        Ok(Status::Running(_) | Status::Worker) => Ok(()),
        Ok(other) => Err(Failure::new(
            FailureKind::NotRunning,
            format!("microk8s is not ready: {other:?}"),
        )),
        Err(e) => Err(failure(&e)),
    }
}

/// `microk8s add-node` with this token: the join URLs.
pub(crate) async fn add_node(
    m8s: &dyn Microk8s,
    token: String,
    ttl: Duration,
) -> Result<Vec<String>, Failure> {
    match JoinToken::new(token) {
        Ok(t) => m8s
            .add_node(&t, TokenTtl::Expires(ttl))
            .await
            .map(|o| o.urls.iter().map(|u| u.expose()).collect())
            .map_err(|e| failure(&e)),
        Err(e) => Err(Failure::new(FailureKind::Other, e.to_string())),
    }
}

/// `microk8s remove-node`.
pub(crate) async fn remove_node(m8s: &dyn Microk8s, name: &str, force: bool) -> Outcome {
    m8s.remove_node(name, force)
        .await
        .map(drop)
        .map_err(|e| failure(&e))
}

/// `microk8s join <url>` as `role`.
pub(crate) async fn join(m8s: &dyn Microk8s, url: &str, role: JoinRole) -> Outcome {
    match JoinUrl::parse(url) {
        Ok(u) => m8s
            .join(&u, m8s_role(role))
            .await
            .map(drop)
            .map_err(|e| failure(&e)),
        Err(e) => Err(Failure::new(FailureKind::BadAnswer, e.to_string())),
    }
}

/// `microk8s leave` (the reset of a half-joined node, or quitting another cluster).
pub(crate) async fn leave(m8s: &dyn Microk8s) -> Outcome {
    m8s.leave().await.map_err(|e| failure(&e))
}

/// One check of this node's join (see `FollowerOutput::CheckJoined`). A control plane checks
/// itself: its own microk8s lists it Ready and in the datastore lines. A worker's `status`
/// says "worker" even after a join that never completed, so it also needs `entry` (the
/// entry point's member in the mesh's view, when known) to list it Ready.
pub(crate) async fn check_joined(
    m8s: &dyn Microk8s,
    entry: Option<&Member>,
    joiner: &Joiner,
) -> Outcome {
    let not_yet = |detail: String| Failure::new(FailureKind::NotYetJoined, detail);
    match joiner.role {
        JoinRole::ControlPlane => {
            let (nodes, status) = (m8s.nodes().await, m8s.status(None).await);
            // A datastore member has joined (a silent failure never makes the node one); if it
            // is not Ready, its cluster's health is what holds it back, not its join.
            let member = match &status {
                Ok(Status::Running(cs)) => cs.datastore_member(joiner.ip).is_some(),
                Ok(Status::NotReady { datastore }) => {
                    datastore.iter().any(|d| d.ip() == Some(joiner.ip))
                }
                _ => false,
            };
            let checked = match (nodes, status) {
                (Ok(nodes), Ok(status)) => crate::microk8s::verify_joined(
                    &nodes,
                    Some(&status),
                    &Expected {
                        name: &joiner.name,
                        ip: joiner.ip,
                        role: Role::ControlPlane,
                    },
                )
                .map_err(|e| not_yet(e.to_string())),
                (Err(e), _) | (_, Err(e)) => Err(failure(&e)),
            };
            checked.map_err(|f| {
                if member {
                    Failure::new(FailureKind::NotReadyMember, f.detail)
                } else {
                    f
                }
            })
        }
        JoinRole::Worker => {
            let local = match m8s.status(None).await {
                Ok(Status::Worker) => Ok(()),
                Ok(other) => Err(not_yet(format!(
                    "microk8s does not act as a worker: {other:?}"
                ))),
                Err(e) => Err(failure(&e)),
            };
            // No confirmation comes while no live entry point of the worker's cluster is in view;
            // the follower core then waits rather than reset (see `FollowerJoin`).
            let by_entry = entry
                .map(|e| facts::verified_by_entry(e, &joiner.name, Some(joiner.ip), Role::Worker))
                .unwrap_or_else(|| Err("the entry point is not in the view".to_owned()))
                .map_err(not_yet);
            local.and(by_entry)
        }
    }
}
