//! The workflow's effects: each carries out one output of a core (a microk8s command through
//! the [`Microk8s`] adapter, a call to another agent through [`Peers`]) in a task of its own
//! and reports its typed result back to the workflow's inbox as a [`Done`].
//!
//! Owns nothing but the means (the adapter, the peer clients, the inbox, the task tracker).
//! Decides nothing: when to run what, how often and how long is the cores' business; the
//! failure of every command is turned into the cores' [`Failure`] by [`outcome::failure`].

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::facts::{self, LocalFacts};
use super::handle::Inbox;
use super::outcome::{self, failure};
use super::rpc::{JoinAnswer, JoinAsk, Peers};
use crate::mesh::{MeshHandle, MeshView};
use crate::microk8s::{Expected, JoinToken, JoinUrl, Microk8s, Role, Status, TokenTtl};
use muster_core::election::{Claim, ClaimReply, NodeId};
use muster_core::formation::{Failure, FailureKind, JoinRole, Outcome};

/// Longest wait for `microk8s status --wait-ready` in one attempt.
const WAIT_READY: Duration = Duration::from_secs(120);

/// What an effect reports when it is done.
#[derive(Debug)]
pub(crate) enum Done {
    /// This node's microk8s facts were probed.
    Facts(Box<LocalFacts>),
    /// A peer answered our claim (`None`: it did not).
    ClaimAnswer {
        /// The peer.
        from: NodeId,
        /// Its answer.
        reply: Option<ClaimReply>,
    },
    /// `add-node` for `follower` finished with its join URLs.
    AddNode {
        /// The follower.
        follower: NodeId,
        /// The URLs, or why not.
        result: Result<Vec<String>, Failure>,
    },
    /// `remove-node` finished.
    Removed {
        /// The node.
        name: String,
        /// Removed, or why not.
        outcome: Outcome,
    },
    /// `microk8s status --wait-ready` finished.
    Ready(Outcome),
    /// The entry point answered our join request.
    JoinAnswer {
        /// The entry point asked.
        from: NodeId,
        /// Its answer, or why there is none.
        result: Result<JoinAnswer, Failure>,
    },
    /// `microk8s join` finished after `took`.
    Joined {
        /// Exit 0, or the classified failure.
        outcome: Outcome,
        /// How long it ran.
        took: Duration,
    },
    /// One check of our join finished.
    Checked(Outcome),
    /// The reset of an unverified join (`microk8s leave`) finished.
    Reset(Outcome),
    /// `microk8s leave` of another cluster finished.
    LeftOther(Outcome),
}

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

/// The means to carry out effects.
pub(crate) struct Effects {
    microk8s: Arc<dyn Microk8s>,
    peers: Box<dyn Peers>,
    inbox: mpsc::Sender<Inbox>,
    tracker: TaskTracker,
    view: watch::Receiver<MeshView>,
}

impl Effects {
    /// Effects through `microk8s` and `peers`, reporting to `inbox`; `view` is the mesh's view
    /// (a join check reads the entry point's gossiped fields in it).
    pub fn new(
        microk8s: Arc<dyn Microk8s>,
        peers: Box<dyn Peers>,
        inbox: mpsc::Sender<Inbox>,
        tracker: TaskTracker,
        view: watch::Receiver<MeshView>,
    ) -> Self {
        Effects {
            microk8s,
            peers,
            inbox,
            tracker,
            view,
        }
    }

    /// Runs `work` in a task and posts its result to the inbox.
    fn spawn(&self, work: impl Future<Output = Done> + Send + 'static) {
        let inbox = self.inbox.clone();
        self.tracker.spawn(async move {
            let done = work.await;
            // A stopped workflow has no use for the result.
            let _ = inbox.send(Inbox::Done(done)).await;
        });
    }

    /// Probes this node's microk8s facts (the version only while unknown).
    pub fn probe(&self, remembered: Option<String>, version: Option<String>, was_running: bool) {
        let m8s = self.microk8s.clone();
        self.spawn(async move {
            let version = match version {
                Some(v) => Some(v),
                None => m8s
                    .version()
                    .await
                    .ok()
                    .flatten()
                    .map(|v| format!("{}.{}", v.major, v.minor)),
            };
            let facts =
                facts::probe(m8s.as_ref(), remembered.as_deref(), version, was_running).await;
            Done::Facts(Box::new(facts))
        });
    }

    /// `microk8s status --wait-ready`.
    pub fn wait_ready(&self) {
        let m8s = self.microk8s.clone();
        self.spawn(async move {
            let outcome = match m8s.status(Some(WAIT_READY)).await {
                Ok(Status::Running(_) | Status::Worker) => Ok(()),
                Ok(other) => Err(Failure::new(
                    FailureKind::NotRunning,
                    format!("microk8s is not ready: {other:?}"),
                )),
                Err(e) => Err(failure(&e)),
            };
            Done::Ready(outcome)
        });
    }

    /// `microk8s add-node` with this token.
    pub fn add_node(&self, follower: NodeId, token: String, ttl: Duration) {
        let m8s = self.microk8s.clone();
        self.spawn(async move {
            let result = match JoinToken::new(token) {
                Ok(t) => m8s
                    .add_node(&t, TokenTtl::Expires(ttl))
                    .await
                    .map(|o| o.urls.iter().map(|u| u.expose()).collect())
                    .map_err(|e| failure(&e)),
                Err(e) => Err(Failure::new(FailureKind::Other, e.to_string())),
            };
            Done::AddNode { follower, result }
        });
    }

    /// `microk8s remove-node`.
    pub fn remove_node(&self, name: String, force: bool) {
        let m8s = self.microk8s.clone();
        self.spawn(async move {
            let outcome = m8s
                .remove_node(&name, force)
                .await
                .map(drop)
                .map_err(|e| failure(&e));
            Done::Removed { name, outcome }
        });
    }

    /// `microk8s join <url>`.
    pub fn join(&self, url: String, role: JoinRole) {
        let m8s = self.microk8s.clone();
        self.spawn(async move {
            let started = Instant::now();
            let outcome = match JoinUrl::parse(&url) {
                Ok(u) => m8s
                    .join(&u, m8s_role(role))
                    .await
                    .map(drop)
                    .map_err(|e| failure(&e)),
                Err(e) => Err(Failure::new(FailureKind::BadAnswer, e.to_string())),
            };
            Done::Joined {
                outcome,
                took: started.elapsed(),
            }
        });
    }

    /// One check of this node's join: microk8s here (a control plane Ready and in the
    /// datastore lines, a worker acting as one) and the entry point's gossiped view.
    pub fn check_joined(&self, entry: NodeId, joiner: Joiner) {
        let m8s = self.microk8s.clone();
        let view = self.view.clone();
        self.spawn(async move {
            let by_entry = view
                .borrow()
                .get(&entry)
                .map(|e| {
                    facts::verified_by_entry(
                        e,
                        &joiner.name,
                        Some(joiner.ip),
                        m8s_role(joiner.role),
                    )
                })
                .unwrap_or_else(|| Err("the entry point is not in the view".to_owned()))
                .map_err(|detail| Failure::new(FailureKind::NotYetJoined, detail));
            let local = match joiner.role {
                JoinRole::ControlPlane => match (m8s.nodes().await, m8s.status(None).await) {
                    (Ok(nodes), Ok(status)) => crate::microk8s::verify_joined(
                        &nodes,
                        Some(&status),
                        &Expected {
                            name: &joiner.name,
                            ip: joiner.ip,
                            role: Role::ControlPlane,
                        },
                    )
                    .map_err(|e| Failure::new(FailureKind::NotYetJoined, e.to_string())),
                    (Err(e), _) | (_, Err(e)) => Err(failure(&e)),
                },
                JoinRole::Worker => match m8s.status(None).await {
                    Ok(Status::Worker) => Ok(()),
                    Ok(other) => Err(Failure::new(
                        FailureKind::NotYetJoined,
                        format!("microk8s does not act as a worker: {other:?}"),
                    )),
                    Err(e) => Err(failure(&e)),
                },
            };
            Done::Checked(local.and(by_entry))
        });
    }

    /// `microk8s leave` to reset a half-joined node.
    pub fn reset(&self) {
        let m8s = self.microk8s.clone();
        self.spawn(async move { Done::Reset(m8s.leave().await.map_err(|e| failure(&e))) });
    }

    /// `microk8s leave` to quit another cluster.
    pub fn leave_other(&self) {
        let m8s = self.microk8s.clone();
        self.spawn(async move { Done::LeftOther(m8s.leave().await.map_err(|e| failure(&e))) });
    }

    /// Sends a claim to the peer `to` at `addr`.
    pub fn send_claim(&mut self, to: NodeId, addr: &str, claim: &Claim) {
        let call = self.peers.claim(addr, claim);
        self.spawn(async move {
            Done::ClaimAnswer {
                from: to,
                reply: call.await,
            }
        });
    }

    /// Asks the entry point `entry` at `addr` (if known) for a join.
    pub fn request_join(&mut self, entry: NodeId, addr: Option<&str>, ask: &JoinAsk) {
        let call = addr.map(|a| self.peers.request_join(a, ask));
        self.spawn(async move {
            let result = match call {
                Some(call) => call.await,
                None => Err(outcome::rpc_failure(
                    true,
                    "the entry point's address is unknown",
                )),
            };
            Done::JoinAnswer {
                from: entry,
                result,
            }
        });
    }

    /// Hands this node's gossiped fields to the mesh.
    pub fn set_fields(&self, mesh: MeshHandle, fields: BTreeMap<String, String>) {
        self.tracker
            .spawn(async move { mesh.set_fields(fields).await });
    }

    /// Tells the entry point at `addr` how our join went (fire and forget).
    pub fn report(&mut self, addr: &str, outcome: &Outcome) {
        let call = self.peers.report(addr, outcome);
        self.tracker.spawn(call);
    }

    /// `muster leave`: `microk8s leave`, then asks the entry point at `entry` (address, name)
    /// to remove this node; the reply says what was done.
    pub fn leave_cluster(
        &mut self,
        name: &str,
        entry: Option<(String, String)>,
        reply: oneshot::Sender<String>,
    ) {
        let m8s = self.microk8s.clone();
        let removal = entry
            .as_ref()
            .map(|(addr, entry_name)| (self.peers.request_removal(addr, name), entry_name.clone()));
        self.tracker.spawn(async move {
            if let Err(e) = m8s.leave().await {
                let _ = reply.send(format!("microk8s leave failed: {e}"));
                return;
            }
            let message = match removal {
                None => "left the microk8s cluster; no entry point to remove this node".to_owned(),
                Some((call, entry_name)) => match call.await {
                    Ok(()) => format!("left the microk8s cluster; {entry_name} removes this node"),
                    Err(f) if f.kind == FailureKind::EntryUnreachable => {
                        format!("left the microk8s cluster; the entry point did not answer ({f})")
                    }
                    Err(f) => format!(
                        "left the microk8s cluster; asking the entry point to remove it failed: {f}"
                    ),
                },
            };
            let _ = reply.send(message);
        });
    }
}
