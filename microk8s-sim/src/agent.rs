//! The simulated cluster agent on port 25000 (plain HTTP instead of TLS).
//!
//! Serves the entry side of `join` (`POST /cluster/api/v2.0/join`) with the Go agent's checks
//! in the Go agent's order and its `{"error": "..."}` bodies, `GET /health`, and the
//! simulator's own endpoints between daemons: join completion (the joiner's dqlite/kubelet
//! registering), heartbeats (readiness and replica sync), state pushes and member removal
//! (`dqlite .remove`). Every response carries the host's certificate digest in
//! `X-Muster-Sim-Cert-Sha256`, which stands in for the TLS certificate the joiner
//! fingerprints. Runtime state and writes are `daemon`'s.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::daemon::{Daemon, PendingJoin, now_ms};
use super::replica::{ClusterState, NodeKind, Role};
use super::state_dir::{AGENT_PORT, Lock, pem};

/// Header carrying the SHA-256 of the host's server certificate.
pub const CERT_HEADER: &str = "x-muster-sim-cert-sha256";

/// Both ends of an accepted connection (the join checks need the local one).
#[derive(Debug, Clone, Copy)]
pub struct ConnAddrs {
    /// The address the client connected to.
    pub local: SocketAddr,
    /// The client's address.
    pub remote: SocketAddr,
}

impl Connected<IncomingStream<'_, TcpListener>> for ConnAddrs {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let remote = *stream.remote_addr();
        Self {
            local: stream.io().local_addr().unwrap_or(remote),
            remote,
        }
    }
}

/// The join request a real joiner sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The token.
    pub token: String,
    /// The joiner's lowercased hostname.
    pub hostname: String,
    /// The joiner's cluster-agent port, as a string.
    pub port: String,
    /// `"as-worker"`, `"as-master"` or `false`.
    pub worker: serde_json::Value,
    /// Always true for 1.28+ joiners.
    #[serde(default)]
    pub can_handle_x509_auth: bool,
    /// Always true for 1.28+ joiners.
    #[serde(default)]
    pub can_handle_custom_etcd: bool,
}

impl JoinRequest {
    /// The Go agent's reading of the `worker` field.
    pub fn is_worker(&self) -> bool {
        self.worker == serde_json::json!(true) || self.worker == serde_json::json!("as-worker")
    }
}

/// Simulator extras in the join response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimJoinInfo {
    /// Id to present on completion.
    pub join_id: String,
    /// The cluster's id.
    pub cluster_id: String,
    /// How long the joiner takes before completing (decided by the entry's profile).
    pub latency_ms: u64,
    /// The cluster state a control-plane joiner starts its replica from.
    pub state: Option<ClusterState>,
}

/// The join response (the Go agent's fields plus `x_muster_sim`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    /// Cluster CA.
    pub ca: String,
    /// Entry's callback token.
    pub callback_token: String,
    /// API server port.
    pub apiport: String,
    /// Authorization mode.
    pub api_authz_mode: String,
    /// The entry's kubelet args file.
    pub kubelet_args: String,
    /// The joiner's IP as the entry saw it.
    pub hostname_override: String,
    /// Voter addresses (control-plane joins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voters: Option<Vec<String>>,
    /// Service-account key.
    pub service_account_key: String,
    /// CA key; null for workers.
    pub ca_key: Option<String>,
    /// dqlite cluster cert (control planes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_cert: Option<String>,
    /// dqlite cluster key (control planes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_key: Option<String>,
    /// Control-plane IPs (workers); null otherwise.
    pub control_plane_nodes: Option<Vec<String>>,
    /// kube-proxy cluster CIDR.
    pub cluster_cidr: String,
    /// Simulator extras.
    pub x_muster_sim: SimJoinInfo,
}

/// The joiner's completion call (its dqlite joined / kubelet registered).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteRequest {
    /// From [`SimJoinInfo::join_id`].
    pub join_id: String,
}

/// Answer to [`CompleteRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteResponse {
    /// The new state (control-plane joiners adopt it).
    pub state: Option<ClusterState>,
    /// Control-plane IPs (workers report to them).
    pub control_planes: Vec<IpAddr>,
}

/// A node's periodic report to the control planes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Sender's cluster.
    pub cluster_id: String,
    /// Sender's node name.
    pub node: String,
    /// Sender's IP.
    pub ip: IpAddr,
    /// Sender's kind.
    pub kind: NodeKind,
    /// Sender's replica version (0 for workers).
    pub version: u64,
}

/// Answer to a [`Heartbeat`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// A newer replica for a control-plane sender.
    pub state: Option<ClusterState>,
    /// Current control-plane IPs.
    pub control_planes: Vec<IpAddr>,
    /// The receiver belongs to the sender's cluster.
    pub known: bool,
}

/// `dqlite .remove` of one member address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveMember {
    /// The member's `IP:19001`.
    pub address: String,
}

/// The Go agent's error response: status and `{"error": "<Capitalised message>"}`.
pub fn error(status: u16, msg: &str) -> Response {
    let mut c = msg.chars();
    let text = match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(serde_json::json!({ "error": text }))).into_response()
}

fn ok_json(v: &impl Serialize) -> Response {
    axum::Json(serde_json::to_value(v).unwrap_or_default()).into_response()
}

async fn cert_header(State(d): State<Arc<Daemon>>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&d.host.cert_sha256) {
        resp.headers_mut().insert(CERT_HEADER, v);
    }
    resp
}

/// The agent's routes.
pub fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "OK"})) }),
        )
        .route("/cluster/api/v2.0/join", post(join))
        .route("/sim/v1/join-complete", post(join_complete))
        .route("/sim/v1/heartbeat", post(heartbeat))
        .route("/sim/v1/state", post(push_state))
        .route("/sim/v1/remove-member", post(remove_member))
        .layer(middleware::from_fn_with_state(Arc::clone(&d), cert_header))
        .with_state(d)
}

const DQLITE_ERR: &str = "failed to retrieve dqlite cluster nodes";

async fn join(
    State(d): State<Arc<Daemon>>,
    ConnectInfo(c): ConnectInfo<ConnAddrs>,
    body: Bytes,
) -> Response {
    let req: JoinRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(400, &format!("failed to unmarshal request: {e}")),
    };
    let now_unix = ((now_ms() + 500) / 1000) as i64;
    // Check 1: the token, consumed before anything else is looked at.
    if !d
        .dir
        .tokens()
        .consume(&req.token, now_unix)
        .unwrap_or(false)
    {
        return error(500, "invalid token");
    }
    if !d.dir.has(Lock::HaCluster) {
        return error(
            501,
            "not possible to join. This is not an HA MicroK8s cluster",
        );
    }
    if req.port != AGENT_PORT.to_string() {
        return error(
            502,
            &format!("the port of the cluster agent port has to be set to {AGENT_PORT}"),
        );
    }
    let (remote_ip, host_ip) = (c.remote.ip(), c.local.ip());
    if remote_ip == host_ip {
        return error(
            503,
            &format!("the joining node has the same IP ({host_ip}) as the node we contact"),
        );
    }
    // Check 5 (hostname resolution) is skipped: 1.28+ prefers InternalIP for kubelets.
    let worker = req.is_worker();
    let (first_join, extra, latency, join_id) = {
        let mut g = d.lock();
        let quorum = d.has_quorum(&g);
        let Some(cluster) = g
            .cluster
            .as_ref()
            .filter(|_| g.local.kind == NodeKind::ControlPlane)
        else {
            return error(
                500,
                &format!(
                    "{DQLITE_ERR}: {DQLITE_ERR}: failed to read list of dqlite nodes: open /var/snap/microk8s/current/var/kubernetes/backend/cluster.yaml: no such file or directory"
                ),
            );
        };
        if !quorum {
            return error(500, &format!("{DQLITE_ERR}: context deadline exceeded"));
        }
        if g.pending_join
            .as_ref()
            .is_some_and(|p| p.until > Instant::now())
        {
            // The overlap hazard: the entry is still busy with the previous join.
            return error(500, &format!("{DQLITE_ERR}: database is locked"));
        }
        if cluster.member_on_ip(&remote_ip.to_string()).is_some() {
            return error(
                500,
                &format!("{DQLITE_ERR}: the joining node ({remote_ip}) is already known to dqlite"),
            );
        }
        let first_join =
            cluster.members.len() == 1 && cluster.members[0].address.starts_with("127.0.0.1:");
        let profile = d.cfg.latency;
        let extra = if first_join {
            profile.first_join_extra(&mut g.rng)
        } else {
            Duration::ZERO
        };
        let latency = if worker {
            profile.worker_join(&mut g.rng)
        } else {
            profile.control_plane_join(&mut g.rng)
        };
        let ready_delay = profile.ready_delay(&mut g.rng);
        let join_id = hex::encode(g.rng.random::<[u8; 8]>());
        g.pending_join = Some(PendingJoin {
            id: join_id.clone(),
            until: Instant::now() + extra + latency + latency.max(Duration::from_secs(10)),
            node: req.hostname.to_lowercase(),
            ip: remote_ip,
            worker,
            ready_delay,
        });
        (first_join, extra, latency, join_id)
    };
    if first_join {
        // dqlite re-binds to the address the joiner used, then restarts.
        tokio::time::sleep(extra).await;
        if d.write(|c, _, _| c.rebind_first_member(host_ip)).is_err() {
            d.lock().pending_join = None;
            return error(500, &format!("{DQLITE_ERR}: context deadline exceeded"));
        }
    }
    if let Err(e) = d.dir.set(Lock::NoCertReissue) {
        return error(
            500,
            &format!("failed to create lock file to disable certificate reissuing: {e}"),
        );
    }
    let g = d.lock();
    let Some(cluster) = g.cluster.clone() else {
        return error(500, DQLITE_ERR);
    };
    let callback =
        std::fs::read_to_string(d.dir.path("credentials/callback-token.txt")).unwrap_or_default();
    let secret = |what: &str| pem(what, format!("{}:{what}", cluster.cluster_id).as_bytes());
    ok_json(&JoinResponse {
        ca: secret("CERTIFICATE"),
        callback_token: callback.trim().to_owned(),
        apiport: "16443".into(),
        api_authz_mode: "RBAC,Node".into(),
        kubelet_args: "--kubeconfig=${SNAP_DATA}/credentials/kubelet.config\n--cert-dir=${SNAP_DATA}/certs\n--client-ca-file=${SNAP_DATA}/certs/ca.crt\n--anonymous-auth=false\n--root-dir=${SNAP_COMMON}/var/lib/kubelet\n--fail-swap-on=false\n--eviction-hard=\"memory.available<100Mi,nodefs.available<1Gi,imagefs.available<1Gi\"\n--container-runtime-endpoint=${SNAP_COMMON}/run/containerd.sock\n--containerd=${SNAP_COMMON}/run/containerd.sock\n--node-labels=\"microk8s.io/cluster=true,node.kubernetes.io/microk8s-controlplane=microk8s-controlplane\"\n--authentication-token-webhook=true\n--read-only-port=0\n".into(),
        hostname_override: remote_ip.to_string(),
        voters: (!worker).then(|| cluster.members.iter().filter(|m| m.role == Role::Voter).map(|m| m.address.clone()).collect()),
        service_account_key: if worker { String::new() } else { secret("RSA PRIVATE KEY") },
        ca_key: (!worker).then(|| secret("PRIVATE KEY")),
        cluster_cert: (!worker).then(|| secret("CERTIFICATE")),
        cluster_key: (!worker).then(|| secret("PRIVATE KEY")),
        control_plane_nodes: worker.then(|| cluster.control_plane_ips().iter().map(ToString::to_string).collect()),
        cluster_cidr: "10.1.0.0/16".into(),
        x_muster_sim: SimJoinInfo {
            join_id,
            cluster_id: cluster.cluster_id.clone(),
            latency_ms: latency.as_millis() as u64,
            state: (!worker).then_some(cluster),
        },
    })
}

async fn join_complete(
    State(d): State<Arc<Daemon>>,
    axum::Json(req): axum::Json<CompleteRequest>,
) -> Response {
    let pending = {
        let g = d.lock();
        match g.pending_join.clone() {
            Some(p) if p.id == req.join_id => p,
            _ => return error(409, "no join in progress with this id"),
        }
    };
    let kind = if pending.worker {
        NodeKind::Worker
    } else {
        NodeKind::ControlPlane
    };
    let result = d.write(|c, rng, now| {
        if !pending.worker {
            c.add_member(&pending.node, pending.ip, rng.random());
        }
        let rv = c.next_rv();
        let mut rec = d.node_record(
            rng,
            rv,
            (&pending.node, pending.ip, kind),
            now,
            pending.ready_delay,
        );
        if let Some(old) = c.nodes.get(&pending.node) {
            // kubelet re-registers an existing Node object of the same name.
            rec.created_ms = old.created_ms;
            rec.uid = old.uid.clone();
            rec.labels.extend(
                old.labels
                    .clone()
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with("node.kubernetes.io/microk8s-")),
            );
        }
        c.nodes.insert(pending.node.clone(), rec);
    });
    let mut g = d.lock();
    g.pending_join = None;
    if result.is_err() {
        return error(500, "context deadline exceeded");
    }
    g.last_seen.insert(pending.node.clone(), Instant::now());
    let state = g.cluster.clone();
    ok_json(&CompleteResponse {
        control_planes: state
            .as_ref()
            .map(ClusterState::control_plane_ips)
            .unwrap_or_default(),
        state: if pending.worker { None } else { state },
    })
}

async fn heartbeat(
    State(d): State<Arc<Daemon>>,
    axum::Json(hb): axum::Json<Heartbeat>,
) -> Response {
    let (reply, reregister) = {
        let mut g = d.lock();
        let ours = g.local.kind == NodeKind::ControlPlane
            && d.running(&g)
            && g.cluster
                .as_ref()
                .is_some_and(|c| c.cluster_id == hb.cluster_id);
        if !ours {
            return ok_json(&HeartbeatReply {
                state: None,
                control_planes: Vec::new(),
                known: false,
            });
        }
        g.last_seen.insert(hb.node.clone(), Instant::now());
        let Some(c) = g.cluster.as_ref() else {
            return error(500, DQLITE_ERR);
        };
        let state =
            (hb.kind == NodeKind::ControlPlane && c.version > hb.version).then(|| c.clone());
        let reregister = hb.kind == NodeKind::Worker && !c.nodes.contains_key(&hb.node);
        (
            HeartbeatReply {
                state,
                control_planes: c.control_plane_ips(),
                known: true,
            },
            reregister,
        )
    };
    if reregister {
        // A live worker's kubelet recreates its Node object after `remove-node`.
        let _ = d.write(|c, rng, now| {
            if !c.nodes.contains_key(&hb.node) {
                let rv = c.next_rv();
                let rec = d.node_record(
                    rng,
                    rv,
                    (&hb.node, hb.ip, NodeKind::Worker),
                    now,
                    Duration::ZERO,
                );
                c.nodes.insert(hb.node.clone(), rec);
            }
        });
    }
    ok_json(&reply)
}

async fn push_state(
    State(d): State<Arc<Daemon>>,
    axum::Json(state): axum::Json<ClusterState>,
) -> Response {
    d.adopt(state);
    ok_json(&serde_json::json!({}))
}

async fn remove_member(
    State(d): State<Arc<Daemon>>,
    axum::Json(req): axum::Json<RemoveMember>,
) -> Response {
    match d.write(|c, _, _| c.remove_member(&req.address)) {
        Ok(_) => ok_json(&serde_json::json!({})),
        Err(e) => error(500, &e.to_string()),
    }
}
