//! The user-facing `Agent` service. Handlers read the latest [`Snapshot`] and send requests to
//! the tasks that own the state; they hold no lock across an await.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use log::Level;
use muster_proto::v1 as pb;
use tokio::sync::watch;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::Snapshot;
use crate::events::EventBus;
use crate::journal::{Event, Field};

/// How long `microk8s config` may take before the Kubeconfig call gives up.
const KUBECONFIG_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the handlers need: snapshots to read and tokens to signal.
#[derive(Clone, Debug)]
pub struct AgentService {
    /// Latest picture of the agent.
    pub snapshot: watch::Receiver<Snapshot>,
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
    /// The microk8s executable.
    pub microk8s: PathBuf,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_server::Agent for AgentService {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let snap = self.snapshot.borrow().clone();
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
        let members = self.snapshot.borrow().members_for_api();
        Ok(Response::new(pb::MembersResponse { members }))
    }

    async fn worker_spec(
        &self,
        _: Request<pb::WorkerSpecRequest>,
    ) -> Result<Response<pb::WorkerSpecResponse>, Status> {
        match self.snapshot.borrow().worker_spec.clone() {
            Some(yaml) => Ok(Response::new(pb::WorkerSpecResponse { yaml })),
            None => Err(Status::unavailable(
                "no worker spec yet: it is written once this node has sized the cluster's workers",
            )),
        }
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
        let kubeconfig = run_microk8s_config(&self.microk8s).await?;
        Ok(Response::new(pb::KubeconfigResponse { kubeconfig }))
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
        let node = self
            .snapshot
            .borrow()
            .local()
            .map(|m| m.name)
            .unwrap_or_default();
        let _ = tx
            .send(Ok(pb::Event {
                unix_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                event: Event::WatchStarted.name().to_owned(),
                message: format!("following the events of {node}"),
                node,
                fields: Default::default(),
            }))
            .await;
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
                        if tx.send(Ok(e)).await.is_err() {
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

/// `microk8s config`, bounded in time, with its failure turned into a clear status.
async fn run_microk8s_config(microk8s: &std::path::Path) -> Result<String, Status> {
    let mut cmd = tokio::process::Command::new(microk8s);
    cmd.arg("config")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(KUBECONFIG_TIMEOUT, cmd.output()).await {
        Err(_) => {
            return Err(Status::deadline_exceeded(format!(
                "`{} config` did not finish within {}s",
                microk8s.display(),
                KUBECONFIG_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(e)) => {
            return Err(Status::failed_precondition(format!(
                "cannot run {}: {e} (is microk8s installed? see `microk8s` in the config)",
                microk8s.display()
            )));
        }
        Ok(Ok(out)) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || !stdout.contains("apiVersion") {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let excerpt: String = format!("{} {}", stdout.trim(), stderr.trim())
            .chars()
            .take(300)
            .collect();
        return Err(Status::failed_precondition(format!(
            "`{} config` gave no kubeconfig (exit {}): {}",
            microk8s.display(),
            out.status
                .code()
                .map_or("signal".to_owned(), |c| c.to_string()),
            excerpt.trim()
        )));
    }
    Ok(stdout)
}
