//! The workflow's effects: each carries out one output of a core (a microk8s command through
//! the [`Microk8s`] adapter, a call to another agent through [`Peers`]) in a task of its own
//! and reports its typed result back to the workflow's inbox as a [`Done`]. The microk8s steps
//! themselves are in `commands` (shared with the workflow simulation).
//!
//! Owns nothing but the means (the adapter, the peer clients, the inbox, the task tracker).
//! Decides nothing: when to run what, how often and how long is the cores' business; the
//! failure of every command is turned into the cores' [`Failure`] by [`outcome::failure`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::commands::{self, Joiner};
use super::facts::LocalFacts;
use super::handle::Inbox;
use super::machine::{EntryContact, Input};
use super::outcome;
use super::rpc::{JoinAnswer, JoinAsk, Peers};
use crate::mesh::{MeshHandle, MeshView};
use crate::microk8s::Microk8s;
use muster_core::election::{Claim, ClaimReply, NodeId};
use muster_core::formation::{Failure, FailureKind, JoinRole, Outcome};

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
            let _ = inbox.send(Input::Done(done)).await;
        });
    }

    /// Probes this node's microk8s facts (the version only while unknown).
    pub fn probe(&self, remembered: Option<String>, version: Option<String>, was_running: bool) {
        let m8s = self.microk8s.clone();
        self.spawn(async move {
            let facts = commands::probe(m8s.as_ref(), remembered, version, was_running).await;
            Done::Facts(Box::new(facts))
        });
    }

    /// `microk8s status --wait-ready`.
    pub fn wait_ready(&self) {
        let m8s = self.microk8s.clone();
        self.spawn(async move { Done::Ready(commands::wait_ready(m8s.as_ref()).await) });
    }

    /// `microk8s add-node` with this token.
    pub fn add_node(&self, follower: NodeId, token: String, ttl: Duration) {
        let m8s = self.microk8s.clone();
        self.spawn(async move {
            let result = commands::add_node(m8s.as_ref(), token, ttl).await;
            Done::AddNode { follower, result }
        });
    }

    /// `microk8s remove-node`.
    pub fn remove_node(&self, name: String, force: bool) {
        let m8s = self.microk8s.clone();
        self.spawn(async move {
            let outcome = commands::remove_node(m8s.as_ref(), &name, force).await;
            Done::Removed { name, outcome }
        });
    }

    /// `microk8s join <url>`.
    pub fn join(&self, url: String, role: JoinRole) {
        let m8s = self.microk8s.clone();
        self.spawn(async move {
            let started = Instant::now();
            let outcome = commands::join(m8s.as_ref(), &url, role).await;
            Done::Joined {
                outcome,
                took: started.elapsed(),
            }
        });
    }

    /// One check of this node's join against the entry point `entry` of the mesh's view.
    pub fn check_joined(&self, entry: NodeId, joiner: Joiner) {
        let m8s = self.microk8s.clone();
        let view = self.view.clone();
        self.spawn(async move {
            // The entry's gossiped fields as they are now, before the commands run.
            let entry = view.borrow().get(&entry).cloned();
            Done::Checked(commands::check_joined(m8s.as_ref(), entry.as_ref(), &joiner).await)
        });
    }

    /// `microk8s leave` to reset a half-joined node.
    pub fn reset(&self) {
        let m8s = self.microk8s.clone();
        self.spawn(async move { Done::Reset(commands::leave(m8s.as_ref()).await) });
    }

    /// `microk8s leave` to quit another cluster.
    pub fn leave_other(&self) {
        let m8s = self.microk8s.clone();
        self.spawn(async move { Done::LeftOther(commands::leave(m8s.as_ref()).await) });
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

    /// `muster leave`: `microk8s leave`, then asks the entry point `entry` to remove this
    /// node; the reply says what was done.
    pub fn leave_cluster(
        &mut self,
        name: &str,
        entry: Option<EntryContact>,
        reply: oneshot::Sender<String>,
    ) {
        let m8s = self.microk8s.clone();
        let removal = entry.map(|e| (self.peers.request_removal(&e.addr, name), e.name));
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
