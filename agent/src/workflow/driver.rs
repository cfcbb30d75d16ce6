//! The workflow task: see the module doc of [`crate::workflow`].

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::Level;
use muster_proto::v1 as pb;
use pb::peer_client::PeerClient;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::{Channel, Endpoint};

use super::facts::{self, LocalFacts, Mk8sState, keys};
use super::rpc;
use crate::api::Snapshot;
use crate::events::EventBus;
use crate::journal::{Event, Field};
use crate::mesh::MeshHandle;
use crate::microk8s::{Expected, JoinToken, JoinUrl, Microk8s, Role as M8sRole, Status, TokenTtl};
use muster_core::election::{self, Election, ElectionConfig, HardState, MemberView};
use muster_core::formation::{
    self, FollowerJoin, FollowerView, FormationConfig, JoinCoordinator, JoinRequest, JoinRole,
};

/// Longest wait for `microk8s status --wait-ready` in one attempt.
const WAIT_READY: Duration = Duration::from_secs(120);
/// Timeout of one RPC to a peer.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the entry point probes its facts while a join is in flight (before the follower
/// reports; see [`VERIFY_POLL`] after).
const FAST_POLL: Duration = Duration::from_millis(200);
/// First interval of the entry point's facts probes once a follower reported its join; it
/// doubles up to [`FAST_POLL`], so a node that needs seconds to turn Ready costs few probes.
const VERIFY_POLL: Duration = Duration::from_millis(20);

/// The verification poll interval after `pause`: doubled, up to [`FAST_POLL`].
fn next_verify_poll(pause: Duration) -> Duration {
    (pause * 2).min(FAST_POLL)
}

/// A "queued, ask again after `retry_after`" answer to a join request.
fn wait_reply(retry_after: Duration, cluster: &str) -> pb::JoinResponseMsg {
    rpc::response_to_pb(
        &formation::JoinResponse::Wait {
            position: 0,
            retry_after,
            reason: formation::WaitReason::Queued,
        },
        cluster,
    )
}
/// How long the entry point holds a join request it cannot grant yet (a long poll): the
/// follower hears of its grant the moment it exists instead of at its next question. Well
/// below [`RPC_TIMEOUT`], so the follower's call never times out.
const JOIN_HOLD: Duration = Duration::from_secs(2);

/// A join request the entry point holds until it can grant it or [`JOIN_HOLD`] passes.
struct HeldJoin {
    req: JoinRequest,
    reply: oneshot::Sender<pb::JoinResponseMsg>,
    until: Duration,
}

/// What the workflow needs to start.
pub struct WorkflowSetup {
    /// Cluster (mesh) name.
    pub cluster: String,
    /// This node's id.
    pub node_id: String,
    /// This node's name.
    pub node_name: String,
    /// The address peers reach this node at.
    pub advertise: SocketAddr,
    /// Election priority.
    pub priority: u32,
    /// Where the vote and the joined cluster id are kept.
    pub data_dir: PathBuf,
    /// Election tunables.
    pub election: ElectionConfig,
    /// Formation tunables.
    pub formation: FormationConfig,
    /// The microk8s adapter.
    pub microk8s: Arc<dyn Microk8s>,
}

enum Command {
    Claim {
        from: String,
        claim: election::Claim,
        reply: oneshot::Sender<pb::ClaimResponse>,
    },
    JoinRequest {
        req: JoinRequest,
        reply: oneshot::Sender<pb::JoinResponseMsg>,
    },
    Report {
        from: String,
        ok: bool,
        detail: String,
    },
    Removal {
        name: String,
    },
    Leave {
        reply: oneshot::Sender<String>,
    },
    Facts(Box<LocalFacts>),
    ClaimAnswer {
        from: String,
        reply: Option<election::ClaimReply>,
    },
    AddNode {
        follower: String,
        result: Result<Vec<String>, String>,
    },
    Removed {
        name: String,
        ok: bool,
        detail: String,
    },
    Ready {
        ok: bool,
        detail: String,
    },
    JoinAnswer {
        from: String,
        result: Result<(formation::JoinResponse, Option<String>), String>,
    },
    JoinDone {
        ok: bool,
        detail: String,
        took: Duration,
    },
    Verified {
        ok: bool,
        detail: String,
    },
    LeftOther {
        ok: bool,
        detail: String,
    },
}

/// A cheap handle for the API and the `Peer` service.
#[derive(Clone)]
pub struct WorkflowHandle {
    tx: mpsc::Sender<Command>,
    cluster: String,
}

impl std::fmt::Debug for WorkflowHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowHandle")
            .field("cluster", &self.cluster)
            .finish()
    }
}

fn check_cluster(ours: &str, theirs: &str) -> Result<(), tonic::Status> {
    if ours == theirs {
        Ok(())
    } else {
        Err(tonic::Status::permission_denied(format!(
            "this agent belongs to cluster {ours:?}, not {theirs:?}"
        )))
    }
}

impl WorkflowHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, tonic::Status> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| tonic::Status::unavailable("the cluster workflow is not running"))?;
        tokio::time::timeout(RPC_TIMEOUT, rx)
            .await
            .map_err(|_| tonic::Status::unavailable("the cluster workflow did not answer in time"))?
            .map_err(|_| tonic::Status::unavailable("the cluster workflow stopped"))
    }

    /// An entry-point claim from a peer.
    pub async fn claim(&self, req: pb::ClaimRequest) -> Result<pb::ClaimResponse, tonic::Status> {
        check_cluster(&self.cluster, &req.cluster)?;
        let claim = rpc::claim_from_pb(&req);
        self.ask(|reply| Command::Claim {
            from: req.from,
            claim,
            reply,
        })
        .await
    }

    /// A join request from a follower; `seen_from` is the address the request came from.
    pub async fn request_join(
        &self,
        req: pb::JoinRequestMsg,
        seen_from: Option<IpAddr>,
        met_on: Option<IpAddr>,
    ) -> Result<pb::JoinResponseMsg, tonic::Status> {
        check_cluster(&self.cluster, &req.cluster)?;
        let addr = seen_from
            .or_else(|| req.addr.parse::<SocketAddr>().ok().map(|a| a.ip()))
            .or_else(|| req.addr.parse::<IpAddr>().ok())
            .ok_or_else(|| {
                tonic::Status::invalid_argument(format!("bad follower address {:?}", req.addr))
            })?;
        let request = JoinRequest {
            follower: req.from,
            name: req.name,
            addr,
            met_on,
            preference: rpc::preference_from(&req.preference),
            version: Some(req.version).filter(|v| !v.is_empty()),
        };
        self.ask(|reply| Command::JoinRequest {
            req: request,
            reply,
        })
        .await
    }

    /// A follower's report.
    pub async fn report(&self, req: pb::JoinReportMsg) -> Result<(), tonic::Status> {
        check_cluster(&self.cluster, &req.cluster)?;
        self.tx
            .send(Command::Report {
                from: req.from,
                ok: req.ok,
                detail: req.detail,
            })
            .await
            .map_err(|_| tonic::Status::unavailable("the cluster workflow is not running"))
    }

    /// A node asks to be removed after its `microk8s leave`.
    pub async fn removal(&self, req: pb::RemovalRequest) -> Result<String, tonic::Status> {
        check_cluster(&self.cluster, &req.cluster)?;
        let name = req.name.clone();
        self.tx
            .send(Command::Removal { name: req.name })
            .await
            .map_err(|_| tonic::Status::unavailable("the cluster workflow is not running"))?;
        Ok(format!("removal of {name} queued"))
    }

    /// `muster leave`: leaves the microk8s cluster (`microk8s leave`, then `remove-node` on the
    /// entry point); returns what was done.
    pub async fn leave(&self) -> String {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Leave { reply: tx }).await.is_err() {
            return "the cluster workflow is not running".to_owned();
        }
        rx.await
            .unwrap_or_else(|_| "the cluster workflow stopped".to_owned())
    }
}

/// Starts the workflow task.
pub fn spawn(
    setup: WorkflowSetup,
    snapshot: Arc<watch::Sender<Snapshot>>,
    mesh: MeshHandle,
    events: EventBus,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<WorkflowHandle, String> {
    let seed = rand::random::<u64>();
    let hard = load_hard_state(&setup.data_dir);
    let election = Election::new(
        setup.node_id.clone(),
        setup.election.clone(),
        seed,
        Duration::ZERO,
    )
    .map_err(|e| e.to_string())?
    .with_hard_state(hard);
    let coordinator = JoinCoordinator::new(
        setup.node_name.clone(),
        setup.formation.clone(),
        seed ^ 1,
        Duration::ZERO,
    )
    .map_err(|e| e.to_string())?;
    let follower = FollowerJoin::new(setup.formation.clone(), seed ^ 2, Duration::ZERO)
        .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(256);
    let handle = WorkflowHandle {
        tx: tx.clone(),
        cluster: setup.cluster.clone(),
    };
    let remembered = std::fs::read_to_string(setup.data_dir.join("cluster-id"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let wf = Workflow {
        snapshot_rx: snapshot.subscribe(),
        setup,
        election,
        coordinator,
        follower,
        start: Instant::now(),
        rx,
        tx,
        snapshot,
        mesh,
        events,
        tracker: tracker.clone(),
        clients: HashMap::new(),
        members: Vec::new(),
        views: Vec::new(),
        deaths: facts::DeathClock::default(),
        facts: LocalFacts::unknown(),
        probing: false,
        next_probe: Duration::ZERO,
        remembered,
        granted_cluster: None,
        pending_claims: HashMap::new(),
        announce: (None, None),
        conflict: None,
        refusals: Vec::new(),
        blocked: None,
        phase: formation::Phase::Idle,
        published: BTreeMap::new(),
        has_route: !crate::netinfo::default_route().is_empty(),
        serving: false,
        verify_poll: None,
        held: HashMap::new(),
        probe_again: false,
    };
    tracker.spawn(wf.run(stop));
    Ok(handle)
}

fn load_hard_state(dir: &std::path::Path) -> HardState {
    let text = std::fs::read_to_string(dir.join("election-vote")).unwrap_or_default();
    let mut words = text.split_whitespace();
    let voted_term = words.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    HardState {
        voted_term,
        voted_for: words.next().map(str::to_owned),
    }
}

struct Workflow {
    setup: WorkflowSetup,
    election: Election,
    coordinator: JoinCoordinator,
    follower: FollowerJoin,
    start: Instant,
    rx: mpsc::Receiver<Command>,
    tx: mpsc::Sender<Command>,
    snapshot_rx: watch::Receiver<Snapshot>,
    snapshot: Arc<watch::Sender<Snapshot>>,
    mesh: MeshHandle,
    events: EventBus,
    tracker: TaskTracker,
    clients: HashMap<String, PeerClient<Channel>>,
    members: Vec<pb::Member>,
    views: Vec<MemberView>,
    deaths: facts::DeathClock,
    facts: LocalFacts,
    probing: bool,
    next_probe: Duration,
    remembered: Option<String>,
    granted_cluster: Option<String>,
    pending_claims: HashMap<String, oneshot::Sender<pb::ClaimResponse>>,
    announce: (Option<election::Term>, Option<(String, election::Term)>),
    conflict: Option<String>,
    refusals: Vec<String>,
    blocked: Option<String>,
    phase: formation::Phase,
    published: BTreeMap<String, String>,
    has_route: bool,
    /// A join is in flight on this entry point: probe fast so that verification is prompt.
    serving: bool,
    /// The follower being served reported its join: the current interval of the
    /// verification probes (used only while `serving`).
    verify_poll: Option<Duration>,
    /// Join requests held for their grant, by follower id.
    held: HashMap<String, HeldJoin>,
    /// Facts were asked for while a probe ran (its answer may predate the reason): probe
    /// again as soon as it returns.
    probe_again: bool,
}

/// The adapter's role for a planner's join role.
fn m8s_role(r: JoinRole) -> M8sRole {
    match r {
        JoinRole::ControlPlane => M8sRole::ControlPlane,
        JoinRole::Worker => M8sRole::Worker,
    }
}

#[path = "driver_actions.rs"]
mod actions;
#[path = "driver_loop.rs"]
mod event_loop;
