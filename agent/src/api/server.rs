//! The user-facing `Agent` service. Handlers read the latest [`Snapshot`](super::Snapshot)
//! assembled from the [`Sources`] and send requests to the tasks that own the state; they hold
//! no lock across an await.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::Level;
use muster_proto::v1 as pb;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::Sources;
use crate::events::{AgentEvent, EventBus};
use crate::journal::{Event, Field};
use crate::microk8s::{Microk8s, Microk8sError};

/// How long `microk8s config` may take before the Kubeconfig call gives up.
const KUBECONFIG_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the handlers need: state to read, tasks to ask and tokens to signal.
#[derive(Clone)]
pub struct AgentService {
    /// Where the agent's state is read.
    pub sources: Sources,
    /// Event bus for WatchEvents and for logging requests.
    pub events: EventBus,
    /// Fired by Leave; the daemon then leaves and stops.
    pub leave: CancellationToken,
    /// The cluster workflow, which runs `microk8s leave` and asks for `remove-node`.
    pub workflow: crate::workflow::WorkflowHandle,
    /// Fired when the agent stops; ends open event streams so the drain can finish.
    pub shutdown: CancellationToken,
    /// When the agent started.
    pub started: Instant,
    /// Cluster name.
    pub cluster: String,
    /// Listening addresses, for Status.
    pub listen: Vec<String>,
    /// The microk8s adapter (for `microk8s config`).
    pub microk8s: Arc<dyn Microk8s>,
}

impl std::fmt::Debug for AgentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentService")
            .field("cluster", &self.cluster)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_server::Agent for AgentService {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let snap = self.sources.snapshot();
        let alive = snap
            .members
            .iter()
            .filter(|m| m.status == pb::MemberStatus::Alive as i32)
            .count() as u32;
        Ok(Response::new(pb::StatusResponse {
            node: snap.local(),
            cluster: self.cluster.clone(),
            role: snap.role.clone(),
            members_alive: alive,
            members_total: snap.members.len() as u32,
            cluster_state: Some(snap.cluster_state.clone()),
            warnings: snap.warnings.clone(),
            uptime_seconds: self.started.elapsed().as_secs(),
            listen: self.listen.clone(),
        }))
    }

    async fn members(
        &self,
        _: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        let members = self.sources.snapshot().members;
        Ok(Response::new(pb::MembersResponse { members }))
    }

    async fn worker_spec(
        &self,
        _: Request<pb::WorkerSpecRequest>,
    ) -> Result<Response<pb::WorkerSpecResponse>, Status> {
        Err(Status::unavailable(
            "no worker spec yet: it is written once this node has sized the cluster's workers",
        ))
    }

    async fn kubeconfig(
        &self,
        request: Request<pb::KubeconfigRequest>,
    ) -> Result<Response<pb::KubeconfigResponse>, Status> {
        // TCP requests carry a remote address; the unix socket's do not. The kubeconfig holds
        // admin credentials, so only local (socket-permission-checked) callers get it.
        if request.remote_addr().is_some() {
            return Err(Status::permission_denied(
                "the kubeconfig is served on the agent's local socket only",
            ));
        }
        match tokio::time::timeout(KUBECONFIG_TIMEOUT, self.microk8s.kubeconfig()).await {
            Ok(Ok(kubeconfig)) => Ok(Response::new(pb::KubeconfigResponse {
                kubeconfig: kubeconfig.expose().to_owned(),
            })),
            Ok(Err(e @ Microk8sError::Timeout { .. })) => {
                Err(Status::deadline_exceeded(e.to_string()))
            }
            Ok(Err(e)) => Err(Status::failed_precondition(e.to_string())),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "`microk8s config` did not finish within {}s",
                KUBECONFIG_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn leave(
        &self,
        _: Request<pb::LeaveRequest>,
    ) -> Result<Response<pb::LeaveResponse>, Status> {
        self.events.emit(
            Level::Info,
            Event::LeaveRequested,
            "",
            &[(Field::Cluster, &self.cluster)],
            "leave requested through the API".to_owned(),
        );
        let done = self.workflow.leave().await;
        self.leave.cancel();
        Ok(Response::new(pb::LeaveResponse {
            message: format!("leaving: {done}; the agent announces `left` to its peers and stops"),
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        _: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let mut events = self.events.subscribe();
        let shutdown = self.shutdown.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        // The first message confirms the subscription, so a client knows from when on it
        // sees every event.
        let node = self.sources.mesh.borrow().view.local.meta.name.clone();
        let message = format!("following the events of {node}");
        let started = AgentEvent::now(Event::WatchStarted, node, message);
        let _ = tx.send(Ok(event_to_pb(started))).await;
        // One forwarding task per subscriber; it ends when the client goes away or the agent
        // stops, so an open `muster events` never holds up the drain. A subscriber that lags
        // behind the backlog skips what it missed: `muster events` is a live view.
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tx.closed() => return,
                    e = events.recv() => e,
                };
                match event {
                    Ok(e) => {
                        if tx.send(Ok(event_to_pb(e))).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(stream)))
    }
}

/// An event of the bus in its `WatchEvents` form.
fn event_to_pb(e: AgentEvent) -> pb::Event {
    pb::Event {
        unix_ms: e.unix_ms,
        event: e.event.name().to_owned(),
        node: e.node,
        message: e.message,
        fields: e.fields.into_iter().collect(),
    }
}
