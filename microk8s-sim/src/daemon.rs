//! The per-host daemon of the simulator (`microk8s-sim serve`).
//!
//! One process (or task set, in tests) per simulated host. It owns the host's runtime state:
//! its membership record, its replica of the cluster state when it is a control plane, when it
//! last heard from each node, and the join it is serving as an entry. It runs the listeners
//! (cluster agent on :25000 always unless stopped; the Kubernetes API on :16443 on a running
//! control plane), the heartbeat loop that keeps nodes Ready and replicas in sync, the leader's
//! periodic dqlite role adjustment, and the CLI socket. Writes go through [`Daemon::write`],
//! which refuses without voter quorum and pushes the new state to the other control planes.
//! The HTTP handlers live in `agent` and `kubeapi`, the commands in `ops` and `join`.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::agent::{self, Heartbeat, HeartbeatReply};
use super::config::{SilentFailure, SimConfig};
use super::control::{Frame, Output, Request};
use super::http::{self, HttpError, Response};
use super::replica::{
    ClusterState, Member, NodeKind, NodeRecord, Readiness, WriteError, node_labels, random_uid,
};
use super::state_dir::{
    AGENT_PORT, API_PORT, HostInfo, LocalMembership, Lock, StateDir, StateError,
};

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state directory is unusable.
    #[error(transparent)]
    State(#[from] StateError),
    /// The CLI socket could not be bound.
    #[error("binding {path}: {source}")]
    Socket {
        /// Socket path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// A join this host accepted as the entry and that has not completed yet.
#[derive(Debug, Clone)]
pub struct PendingJoin {
    /// Id the joiner presents on completion.
    pub id: String,
    /// After this the join counts as abandoned.
    pub until: Instant,
    /// The joiner's node name.
    pub node: String,
    /// The joiner's IP as seen here.
    pub ip: IpAddr,
    /// Joining with `--worker`.
    pub worker: bool,
    /// How long after registration the node turns Ready.
    pub ready_delay: Duration,
}

/// Mutable runtime state (behind a std mutex never held across `.await`).
#[derive(Debug)]
pub struct Inner {
    /// Which cluster this host belongs to.
    pub local: LocalMembership,
    /// The replica, on control planes.
    pub cluster: Option<ClusterState>,
    /// When each node was last heard from.
    pub last_seen: HashMap<String, Instant>,
    /// The join being served as entry.
    pub pending_join: Option<PendingJoin>,
    /// The daemon's random source.
    pub rng: StdRng,
    /// Remaining silent failures for [`SilentFailure::Count`].
    pub silent_left: u32,
}

/// One simulated host's daemon.
#[derive(Debug)]
pub struct Daemon {
    /// The host's state directory.
    pub dir: StateDir,
    /// The host's identity.
    pub host: HostInfo,
    /// Realism knobs.
    pub cfg: SimConfig,
    /// Addresses the listeners bind.
    pub binds: Vec<IpAddr>,
    inner: Mutex<Inner>,
    /// Cancelled to stop everything.
    pub shutdown: CancellationToken,
}

/// Wall-clock Unix milliseconds (node timestamps, token expiry).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

const PEER_TIMEOUT: Duration = Duration::from_secs(3);

impl Daemon {
    /// Loads a host's state. `binds` empty = the host's own IPs.
    pub fn new(
        dir: StateDir,
        cfg: SimConfig,
        binds: Vec<IpAddr>,
    ) -> Result<Arc<Self>, DaemonError> {
        let host = dir.host()?;
        let local = dir.load_local()?;
        let cluster = dir.load_cluster()?;
        let rng = match cfg.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let silent_left = match cfg.silent_failure {
            SilentFailure::Count(n) => n,
            _ => 0,
        };
        let binds = if binds.is_empty() {
            host.ips.clone()
        } else {
            binds
        };
        Ok(Arc::new(Self {
            dir,
            host,
            cfg,
            binds,
            inner: Mutex::new(Inner {
                local,
                cluster,
                last_seen: HashMap::new(),
                pending_join: None,
                rng,
                silent_left,
            }),
            shutdown: CancellationToken::new(),
        }))
    }

    /// Locks the runtime state.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This host's node name.
    pub fn name(&self) -> String {
        self.host.node_name()
    }

    /// True if `ip` is one of this host's (or loopback, as netifaces would list it).
    pub fn is_local_ip(&self, ip: &str) -> bool {
        ip == "127.0.0.1" || self.host.ips.iter().any(|i| i.to_string() == ip)
    }

    /// kubelet and API are up: not stopped and not left broken by a failed join or leave.
    pub fn running(&self, inner: &Inner) -> bool {
        !self.dir.has(Lock::Stopped) && !inner.local.broken
    }

    /// Milliseconds since `node` was heard from (this host counts as heard while running).
    pub fn heard_ms_ago(&self, inner: &Inner, node: &str) -> Option<u64> {
        if node == self.name() {
            return self.running(inner).then_some(0);
        }
        inner
            .last_seen
            .get(node)
            .map(|t| t.elapsed().as_millis() as u64)
    }

    /// Names of the nodes heard from recently enough to count as alive.
    pub fn alive_set(&self, inner: &Inner) -> HashSet<String> {
        let limit = self.cfg.not_ready_after.as_millis() as u64;
        let mut names: HashSet<String> = inner
            .last_seen
            .iter()
            .filter(|(_, t)| (t.elapsed().as_millis() as u64) <= limit)
            .map(|(n, _)| n.clone())
            .collect();
        if self.running(inner) {
            names.insert(self.name());
        } else {
            names.remove(&self.name());
        }
        names
    }

    /// The Ready condition of a node as this control plane sees it.
    pub fn readiness(&self, inner: &Inner, node: &NodeRecord) -> Readiness {
        Readiness::of(
            node,
            self.heard_ms_ago(inner, &node.name),
            now_ms(),
            self.cfg.not_ready_after.as_millis() as u64,
        )
    }

    /// True when this control plane's replica has voter quorum.
    pub fn has_quorum(&self, inner: &Inner) -> bool {
        let alive = self.alive_set(inner);
        inner
            .cluster
            .as_ref()
            .is_some_and(|c| c.has_quorum(|m: &Member| alive.contains(&m.node)))
    }

    /// Applies a write to the replica if voters have quorum, persists it and pushes it to the
    /// other control planes.
    pub fn write<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut ClusterState, &mut StdRng, u64) -> R,
    ) -> Result<R, WriteError> {
        let (r, snapshot) = {
            let mut g = self.lock();
            let alive = self.alive_set(&g);
            if !self.running(&g) {
                return Err(WriteError::NoQuorum);
            }
            let Inner { cluster, rng, .. } = &mut *g;
            let cluster = cluster.as_mut().ok_or(WriteError::NoQuorum)?;
            cluster.check_quorum(|m| alive.contains(&m.node))?;
            let r = f(cluster, rng, now_ms());
            cluster.version += 1;
            (r, cluster.clone())
        };
        if let Err(e) = self.dir.save_cluster(&snapshot) {
            log::warn!(error:% = e; "sim: cannot persist the cluster replica");
        }
        self.push_state(snapshot);
        Ok(r)
    }

    /// Replaces the replica with a newer version of the same cluster. True if taken.
    pub fn adopt(&self, state: ClusterState) -> bool {
        let mut g = self.lock();
        if g.local.kind != NodeKind::ControlPlane || g.local.cluster_id != state.cluster_id {
            return false;
        }
        if g.cluster
            .as_ref()
            .is_some_and(|c| c.version >= state.version)
        {
            return false;
        }
        if let Err(e) = self.dir.save_cluster(&state) {
            log::warn!(error:% = e; "sim: cannot persist the cluster replica");
        }
        g.cluster = Some(state);
        true
    }

    /// IPs of the other control planes this host reports to.
    pub fn peer_control_planes(&self, inner: &Inner) -> Vec<IpAddr> {
        let mine = |ip: &IpAddr| self.is_local_ip(&ip.to_string());
        match inner.local.kind {
            NodeKind::Worker => inner.local.control_planes.clone(),
            NodeKind::ControlPlane => inner
                .cluster
                .iter()
                .flat_map(|c| c.members.iter().filter_map(Member::ip))
                .filter(|ip| !mine(ip))
                .collect(),
        }
    }

    /// One HTTP call to a peer's cluster agent, from this host's address.
    pub async fn call(
        &self,
        ip: IpAddr,
        method: &str,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        let connect = Some(self.cfg.connect_timeout.map_or(timeout, |c| c.min(timeout)));
        http::request(
            Some(self.host.default_ip()),
            SocketAddr::new(ip, AGENT_PORT),
            method,
            path,
            Some(&body),
            connect,
            timeout,
        )
        .await
    }

    fn push_state(self: &Arc<Self>, state: ClusterState) {
        let peers = self.peer_control_planes(&self.lock());
        for ip in peers {
            let me = Arc::clone(self);
            let state = state.clone();
            tokio::spawn(async move {
                let _ = me
                    .call(ip, "POST", "/sim/v1/state", &state, PEER_TIMEOUT)
                    .await;
            });
        }
    }

    async fn heartbeat_round(self: &Arc<Self>) {
        let (hb, peers) = {
            let g = self.lock();
            if !self.running(&g) {
                return;
            }
            let hb = Heartbeat {
                cluster_id: g.local.cluster_id.clone(),
                node: self.name(),
                ip: self.host.default_ip(),
                kind: g.local.kind,
                version: g.cluster.as_ref().map_or(0, |c| c.version),
            };
            (hb, self.peer_control_planes(&g))
        };
        // Generous: a slow answer is still a sign of life; rounds overlap harmlessly.
        let timeout = self
            .cfg
            .not_ready_after
            .clamp(self.cfg.heartbeat_interval * 2, PEER_TIMEOUT);
        // Concurrently: a dead peer must not delay the heartbeats to the live ones.
        let mut calls = tokio::task::JoinSet::new();
        for ip in peers {
            let me = Arc::clone(self);
            let hb = hb.clone();
            calls
                .spawn(async move { me.call(ip, "POST", "/sim/v1/heartbeat", &hb, timeout).await });
        }
        while let Some(reply) = calls.join_next().await {
            let Some(reply) = reply
                .ok()
                .and_then(Result::ok)
                .and_then(|r| r.json::<HeartbeatReply>())
            else {
                continue;
            };
            if let Some(state) = reply.state {
                self.adopt(state);
            }
            let mut g = self.lock();
            if g.local.kind == NodeKind::Worker && !reply.control_planes.is_empty() && reply.known {
                g.local.control_planes = reply.control_planes;
            }
        }
    }

    async fn adjust_roles_round(self: &Arc<Self>) {
        let due = {
            let g = self.lock();
            let alive = self.alive_set(&g);
            let is_alive = |m: &Member| alive.contains(&m.node);
            match g.cluster.as_ref() {
                Some(c) if g.local.kind == NodeKind::ControlPlane && self.running(&g) => {
                    let leader = c.leader(is_alive).map(|m| m.node.clone());
                    let mut probe = c.clone();
                    leader.as_deref() == Some(self.name().as_str()) && probe.adjust_roles(is_alive)
                }
                _ => false,
            }
        };
        if due {
            let alive = self.alive_set(&self.lock());
            let _ = self.write(|c, _, _| c.adjust_roles(|m| alive.contains(&m.node)));
        }
    }

    /// Registers (or re-registers) a node object; used by join completion and by a worker's
    /// kubelet that finds its Node gone.
    pub fn node_record(
        &self,
        rng: &mut StdRng,
        rv: u64,
        (name, ip, kind): (&str, IpAddr, NodeKind),
        now: u64,
        ready_delay: Duration,
    ) -> NodeRecord {
        NodeRecord {
            name: name.to_owned(),
            ip,
            kind,
            labels: node_labels(name, kind),
            annotations: Default::default(),
            created_ms: now,
            ready_at_ms: now + ready_delay.as_millis() as u64,
            uid: random_uid(rng),
            resource_version: rv,
            unschedulable: false,
            version: self.host.version.clone(),
        }
    }

    async fn serve_control(self: Arc<Self>, listener: UnixListener) {
        loop {
            let conn = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                c = listener.accept() => c,
            };
            let Ok((stream, _)) = conn else { continue };
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                let (rd, mut wr) = stream.into_split();
                let mut line = String::new();
                if BufReader::new(rd).read_line(&mut line).await.is_err() {
                    return;
                }
                let (tx, mut rx) = mpsc::unbounded_channel();
                let out = Output::new(tx.clone());
                match serde_json::from_str::<Request>(&line) {
                    Ok(req) => {
                        tokio::spawn(async move {
                            let code = super::ops::run(me, req, &out).await;
                            let _ = tx.send(Frame::Exit(code));
                        });
                    }
                    Err(e) => {
                        out.err(format!("microk8s-sim: bad request: {e}\n"));
                        let _ = tx.send(Frame::Exit(1));
                    }
                }
                while let Some(frame) = rx.recv().await {
                    let last = matches!(frame, Frame::Exit(_));
                    let mut bytes = serde_json::to_vec(&frame).unwrap_or_default();
                    bytes.push(b'\n');
                    if wr.write_all(&bytes).await.is_err() || last {
                        break;
                    }
                }
            });
        }
    }

    /// Keeps a listener set bound exactly while `want` holds (a stopped host refuses
    /// connections, as one whose services are down does).
    async fn supervise(
        self: Arc<Self>,
        port: u16,
        router: fn(Arc<Daemon>) -> axum::Router,
        want: fn(&Daemon) -> bool,
    ) {
        let mut bound: Option<CancellationToken> = None;
        loop {
            let desired = want(&self);
            if desired && bound.is_none() {
                let child = self.shutdown.child_token();
                let mut ok = true;
                for ip in &self.binds {
                    match TcpListener::bind(SocketAddr::new(*ip, port)).await {
                        Ok(l) => {
                            let app = router(Arc::clone(&self))
                                .into_make_service_with_connect_info::<agent::ConnAddrs>();
                            let stop = child.clone();
                            tokio::spawn(async move {
                                let _ = axum::serve(l, app)
                                    .with_graceful_shutdown(async move { stop.cancelled().await })
                                    .await;
                            });
                        }
                        Err(e) => {
                            log::warn!(error:% = e, port = port; "sim: cannot bind {ip}");
                            ok = false;
                        }
                    }
                }
                if ok {
                    bound = Some(child);
                } else {
                    child.cancel();
                }
            } else if !desired && let Some(child) = bound.take() {
                child.cancel();
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Runs the daemon until [`Daemon::shutdown`] is cancelled.
    pub async fn run(self: Arc<Self>) -> Result<(), DaemonError> {
        let sock = self.dir.socket_path();
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock).map_err(|source| DaemonError::Socket {
            path: sock.display().to_string(),
            source,
        })?;
        let tasks = tokio_util::task::TaskTracker::new();
        tasks.spawn(Arc::clone(&self).serve_control(listener));
        tasks.spawn(
            Arc::clone(&self).supervise(AGENT_PORT, agent::router, |d| !d.dir.has(Lock::Stopped)),
        );
        tasks.spawn(
            Arc::clone(&self).supervise(API_PORT, super::kubeapi::router, |d| {
                let g = d.lock();
                d.running(&g) && g.local.kind == NodeKind::ControlPlane
            }),
        );
        let hb = Arc::clone(&self);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(hb.cfg.heartbeat_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = hb.shutdown.cancelled() => return,
                    // Not awaited: a dead peer's timeout must not delay the next round.
                    _ = tick.tick() => {
                        let me = Arc::clone(&hb);
                        tokio::spawn(async move { me.heartbeat_round().await });
                    }
                }
            }
        });
        let roles = Arc::clone(&self);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(roles.cfg.role_interval);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = roles.shutdown.cancelled() => return,
                    _ = tick.tick() => roles.adjust_roles_round().await,
                }
            }
        });
        tasks.close();
        self.shutdown.cancelled().await;
        tasks.wait().await;
        let _ = std::fs::remove_file(&sock);
        Ok(())
    }

    /// The address peers see for this host when none is known better.
    pub fn primary_ip(&self) -> IpAddr {
        self.host.default_ip()
    }
}
