//! The joining side of `microk8s join`, run by the joiner's daemon.
//!
//! Mirrors join.py: print `Contacting cluster at IP`, connect (a failed connect is Python's
//! uncaught traceback, exit 1), compare the certificate fingerprint (exit 4) on that
//! connection before any request, send the join request (agent refusal: `Connection failed.
//! <msg> (<code>).`, exit 6), then discard the local datastore, wait out the join latency with
//! dots and complete the membership on the entry. A completion that fails, or the configured
//! silent failure, still prints success and exits 0 while the node never becomes Ready. The
//! entry's side is `agent`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::agent::{CERT_HEADER, CompleteRequest, CompleteResponse, JoinRequest, JoinResponse};
use super::config::SilentFailure;
use super::control::Output;
use super::daemon::Daemon;
use super::format;
use super::http::{self, HttpError};
use super::replica::NodeKind;
use super::state_dir::{AGENT_PORT, LocalMembership, Lock};

/// The real agent's request deadline.
const AGENT_DEADLINE: Duration = Duration::from_secs(240);
/// join.py polls dqlite at most this many times.
const POLLS: u32 = 10;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct JoinPlan {
    /// Entry IP.
    pub ip: IpAddr,
    /// Entry port.
    pub port: u16,
    /// Token.
    pub token: String,
    /// Fingerprint part.
    pub fingerprint: Option<String>,
    /// `--worker`.
    pub worker: bool,
    /// Not `--skip-verify`.
    pub verify: bool,
}

fn unreachable_text() -> String {
    "Please ensure the master node is reachable. Remote end closed connection without response\n"
        .to_owned()
}

/// Runs the join; returns the exit code.
pub async fn run(d: Arc<Daemon>, p: JoinPlan, o: &Output) -> i32 {
    o.out(format::contacting(&p.ip.to_string()));
    let _ = d.dir.set(Lock::JoinInProgress);
    let dest = SocketAddr::new(p.ip, p.port);
    let src = Some(d.host.default_ip());
    // The TLS handshake: a connect that fails here is the uncaught OSError of join.py.
    let cert = match http::request(
        src,
        dest,
        "GET",
        "/health",
        None,
        d.cfg.connect_timeout,
        AGENT_DEADLINE,
    )
    .await
    {
        Err(HttpError::Connect(e)) => {
            o.err(format::connect_traceback(&format::python_os_error(&e)));
            return 1;
        }
        Err(_) => {
            o.out("Connecting to cluster failed with RemoteDisconnected('Remote end closed connection without response').\n");
            return 5;
        }
        Ok(r) => r.header(CERT_HEADER).unwrap_or_default().to_owned(),
    };
    if let (true, Some(fp)) = (p.verify, p.fingerprint.as_deref())
        && !cert.starts_with(fp)
    {
        o.out(format::fingerprint_mismatch(&p.ip.to_string()));
        return 4;
    }
    let req = JoinRequest {
        token: p.token.clone(),
        hostname: d.host.hostname.to_lowercase(),
        port: AGENT_PORT.to_string(),
        worker: if p.worker {
            serde_json::json!("as-worker")
        } else {
            serde_json::json!(false)
        },
        can_handle_x509_auth: true,
        can_handle_custom_etcd: true,
    };
    let body = serde_json::to_vec(&req).unwrap_or_default();
    let resp = match http::request(
        src,
        dest,
        "POST",
        "/cluster/api/v2.0/join",
        Some(&body),
        d.cfg.connect_timeout,
        AGENT_DEADLINE,
    )
    .await
    {
        Err(HttpError::Connect(e)) => {
            o.err(format::connect_traceback(&format::python_os_error(&e)));
            return 1;
        }
        Err(_) => {
            o.out(unreachable_text());
            return 1;
        }
        Ok(r) => r,
    };
    if resp.status != 200 {
        let error = resp
            .json::<serde_json::Value>()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
        o.out(format::connection_failed(error.as_deref(), resp.status));
        return 6;
    }
    let Some(info) = resp.json::<JoinResponse>() else {
        o.out(unreachable_text());
        return 1;
    };
    let silent = {
        let mut g = d.lock();
        match d.cfg.silent_failure {
            SilentFailure::Never => false,
            SilentFailure::Probability(prob) => g.rng.random_bool(prob),
            SilentFailure::Count(_) => {
                let hit = g.silent_left > 0;
                g.silent_left = g.silent_left.saturating_sub(1);
                hit
            }
        }
    };
    let code = if p.worker {
        join_worker(&d, &p, dest, info, silent, o).await
    } else {
        join_control_plane(&d, dest, info, silent, o).await
    };
    if code == 0 {
        let _ = d.dir.clear(Lock::JoinInProgress);
        o.out(format::JOINED);
    }
    code
}

async fn complete(d: &Daemon, dest: SocketAddr, join_id: &str) -> Option<CompleteResponse> {
    let body = serde_json::to_vec(&CompleteRequest {
        join_id: join_id.to_owned(),
    })
    .unwrap_or_default();
    let r = http::request(
        Some(d.host.default_ip()),
        dest,
        "POST",
        "/sim/v1/join-complete",
        Some(&body),
        d.cfg.connect_timeout,
        Duration::from_secs(10),
    )
    .await
    .ok()?;
    if r.status == 200 { r.json() } else { None }
}

fn persist(d: &Daemon, local: &LocalMembership) {
    if let Err(e) = d.dir.save_local(local) {
        log::warn!(error:% = e; "sim: cannot persist the membership record");
    }
}

async fn join_worker(
    d: &Arc<Daemon>,
    p: &JoinPlan,
    dest: SocketAddr,
    info: JoinResponse,
    silent: bool,
    o: &Output,
) -> i32 {
    if info.ca_key.is_some() {
        o.out("Joining process failed. Make sure the cluster you connect to supports joining worker nodes.\n");
        return 1;
    }
    let control_planes: Vec<IpAddr> = info
        .control_plane_nodes
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    {
        let mut g = d.lock();
        g.local = LocalMembership {
            cluster_id: info.x_muster_sim.cluster_id.clone(),
            kind: NodeKind::Worker,
            control_planes: if control_planes.is_empty() {
                vec![p.ip]
            } else {
                control_planes
            },
            broken: true,
        };
        g.cluster = None;
        g.last_seen.clear();
        persist(d, &g.local);
    }
    let _ = d.dir.drop_cluster();
    for lock in [Lock::Clustered, Lock::NoK8sDqlite, Lock::NoCertReissue] {
        let _ = d.dir.set(lock);
    }
    // Certificate signing and service restarts.
    tokio::time::sleep(Duration::from_millis(info.x_muster_sim.latency_ms)).await;
    if !silent && let Some(done) = complete(d, dest, &info.x_muster_sim.join_id).await {
        let mut g = d.lock();
        g.local.broken = false;
        if !done.control_planes.is_empty() {
            g.local.control_planes = done.control_planes;
        }
        persist(d, &g.local);
    }
    o.out(format::WORKER_USAGE);
    0
}

async fn join_control_plane(
    d: &Arc<Daemon>,
    dest: SocketAddr,
    info: JoinResponse,
    silent: bool,
    o: &Output,
) -> i32 {
    // The node's own datastore is discarded; its API and kubelet are down until the end.
    {
        let mut g = d.lock();
        g.local = LocalMembership {
            cluster_id: info.x_muster_sim.cluster_id.clone(),
            kind: NodeKind::ControlPlane,
            control_planes: Vec::new(),
            broken: true,
        };
        g.cluster = info.x_muster_sim.state.clone();
        g.last_seen.clear();
        persist(d, &g.local);
        if let Some(c) = &g.cluster {
            let _ = d.dir.save_cluster(c);
            let _ = d.dir.write_client_config(&c.admin_token);
        }
    }
    let _ = d.dir.clear(Lock::Clustered);
    let _ = d.dir.set(Lock::NoCertReissue);
    o.out(format::WAITING_JOIN);
    let interval = d.cfg.latency.dot_interval();
    let latency = Duration::from_millis(info.x_muster_sim.latency_ms);
    let mut dots = 0;
    if interval.is_zero() {
        tokio::time::sleep(latency).await;
    } else {
        let mut waited = Duration::ZERO;
        while waited + interval <= latency {
            tokio::time::sleep(interval).await;
            waited += interval;
            o.out(". ");
            dots += 1;
        }
        tokio::time::sleep(latency - waited).await;
    }
    let done = if silent {
        None
    } else {
        complete(d, dest, &info.x_muster_sim.join_id).await
    };
    match done {
        Some(resp) => {
            if let Some(state) = resp.state {
                d.adopt(state);
            }
            let mut g = d.lock();
            g.local.broken = false;
            persist(d, &g.local);
        }
        None => {
            // join.py's poll loop runs out without failing the command.
            for _ in dots..POLLS {
                if !interval.is_zero() {
                    tokio::time::sleep(interval.min(Duration::from_millis(500))).await;
                }
                o.out(". ");
            }
        }
    }
    o.out(" \n");
    0
}
