//! How the rest of the agent talks to the workflow task: the [`WorkflowHandle`] (requests from
//! the `Peer` service and the API, in domain types) and the task's one inbox of machine inputs,
//! which also carries the results of its own effects.
//!
//! Errors are typed ([`WorkflowError`]); `api::peer` maps them to gRPC statuses.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::machine::Input;
use super::rpc::JoinAnswer;
use super::status::FormationStatus;
use muster_core::election::{Claim, ClaimReply, NodeId};
use muster_core::formation::{JoinRequest, Outcome};

/// How long a caller waits for the workflow's answer. Above the coordinator's long poll
/// ([`JOIN_HOLD`](muster_core::formation::pacing::JOIN_HOLD)), below the peers' RPC timeout.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(8);

/// A caller waiting for the workflow's answer: the reply channel it waits on.
#[derive(Debug)]
pub(crate) enum Caller {
    /// A claimant, for this node's vote.
    Vote(oneshot::Sender<ClaimReply>),
    /// A follower, for the join answer.
    Join(oneshot::Sender<JoinAnswer>),
    /// `muster leave`, for the account of what was done.
    Leave(oneshot::Sender<String>),
}

/// Everything the workflow task receives, in one inbox: requests from the `Peer` service and
/// the API, and the results of its own effects, as the machine's inputs.
pub(crate) type Inbox = Input<Caller>;

/// Why the workflow could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    /// The workflow task is not running (starting or stopped).
    #[error("the cluster workflow is not running")]
    NotRunning,
    /// It did not answer in time.
    #[error("the cluster workflow did not answer in time")]
    NoAnswer,
    /// It stopped before answering.
    #[error("the cluster workflow stopped")]
    Stopped,
}

/// A cheap handle for the API and the `Peer` service.
#[derive(Clone)]
pub struct WorkflowHandle {
    tx: mpsc::Sender<Inbox>,
    status: watch::Receiver<FormationStatus>,
}

impl std::fmt::Debug for WorkflowHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowHandle").finish_non_exhaustive()
    }
}

impl WorkflowHandle {
    /// A handle over the workflow's inbox and its published status.
    pub(crate) fn new(tx: mpsc::Sender<Inbox>, status: watch::Receiver<FormationStatus>) -> Self {
        WorkflowHandle { tx, status }
    }

    async fn send(&self, input: Inbox) -> Result<(), WorkflowError> {
        self.tx
            .send(input)
            .await
            .map_err(|_| WorkflowError::NotRunning)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Inbox,
    ) -> Result<T, WorkflowError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        tokio::time::timeout(ANSWER_TIMEOUT, rx)
            .await
            .map_err(|_| WorkflowError::NoAnswer)?
            .map_err(|_| WorkflowError::Stopped)
    }

    /// An entry-point claim from peer `from`; returns this node's vote.
    pub async fn claim(&self, from: NodeId, claim: Claim) -> Result<ClaimReply, WorkflowError> {
        self.ask(|reply| Input::Claim {
            from,
            claim,
            caller: Caller::Vote(reply),
        })
        .await
    }

    /// A join request from a follower; answered at once or when its grant exists (a long
    /// poll of at most [`JOIN_HOLD`](muster_core::formation::pacing::JOIN_HOLD)).
    pub async fn request_join(&self, req: JoinRequest) -> Result<JoinAnswer, WorkflowError> {
        self.ask(|reply| Input::Join {
            req,
            caller: Caller::Join(reply),
        })
        .await
    }

    /// A follower's report of its join.
    pub async fn report(&self, from: NodeId, outcome: Outcome) -> Result<(), WorkflowError> {
        self.send(Input::Report { from, outcome }).await
    }

    /// A node asks to be removed after its `microk8s leave`; queued on the entry point.
    pub async fn removal(&self, name: String) -> Result<(), WorkflowError> {
        self.send(Input::Removal { name }).await
    }

    /// `muster leave`: leaves the microk8s cluster (`microk8s leave`, then `remove-node` on the
    /// entry point); returns what was done.
    pub async fn leave(&self) -> String {
        let (tx, rx) = oneshot::channel();
        let leave = Input::Leave {
            caller: Caller::Leave(tx),
        };
        if self.send(leave).await.is_err() {
            return WorkflowError::NotRunning.to_string();
        }
        rx.await
            .unwrap_or_else(|_| WorkflowError::Stopped.to_string())
    }

    /// The workflow's published status (this node's role, its cluster, warnings).
    pub fn status(&self) -> watch::Receiver<FormationStatus> {
        self.status.clone()
    }
}
