//! `muster agent`: the daemon's lifecycle. Establish identity, bind every listener (TCP and the
//! unix socket) before anything else runs, serve the API, tell systemd, and on SIGTERM/SIGINT
//! or a Leave request drain every task within the configured deadline.
//!
//! The order matters: a bad config never gets here (it exits 64 in `main`), and a port or
//! socket that cannot be bound stops the agent before it announces itself to anyone.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::Level;
use muster_proto::v1 as pb;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Server;

use crate::api::Snapshot;
use crate::api::peer::PeerService;
use crate::api::server::AgentService;
use crate::config::{Config, Origin};
use crate::events::EventBus;
use crate::identity::{self, Identity, IdentityError};
use crate::journal::{Event, Field};
use crate::notify;
use crate::resources::NodeResources;

/// How often the local resources (available memory above all) are measured again.
const RESOURCE_REFRESH: Duration = Duration::from_secs(30);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Node id or data dir trouble.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The TCP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The unix socket could not be set up.
    #[error("cannot {action} {}: {source}", path.display())]
    Socket {
        /// What was being done.
        action: &'static str,
        /// The socket path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Another agent already serves this socket.
    #[error("another agent is already listening on {}", path.display())]
    SocketInUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The reflection service could not be built from the descriptors.
    #[error("cannot build the reflection service: {0}")]
    Reflection(String),
}

/// Runs the agent until it is told to stop.
pub async fn run(config: Config, origin: Origin) -> Result<(), DaemonError> {
    let started = Instant::now();
    let identity = identity::establish(&config.data_dir, config.node_name.as_deref())?;

    // Bind everything first: failing here must leave no trace on the network.
    let tcp = TcpListener::bind(config.listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: config.listen,
            source,
        })?;
    let tcp_addr = tcp.local_addr().map_err(|source| DaemonError::Bind {
        addr: config.listen,
        source,
    })?;
    let unix = bind_socket(&config.socket, &config.socket_group)?;

    let events = EventBus::new();
    let config_name = match &origin {
        Origin::File(p) => p.display().to_string(),
        other => other.to_string(),
    };
    events.emit(
        Level::Info,
        Event::AgentStarted,
        "",
        &[
            (Field::Cluster, &config.cluster),
            (Field::Config, &config_name),
        ],
        format!(
            "muster {} starting as {} ({}) in cluster {}",
            env!("CARGO_PKG_VERSION"),
            identity.node_name,
            identity.node_id,
            config.cluster
        ),
    );
    let listen = vec![tcp_addr.to_string(), config.socket.display().to_string()];
    for addr in &listen {
        events.emit(
            Level::Info,
            Event::Listening,
            "",
            &[(Field::Addr, addr)],
            format!("API listening on {addr}"),
        );
    }

    let resources = NodeResources::probe();
    let (snapshot_tx, snapshot_rx) =
        watch::channel(initial_snapshot(&identity, tcp_addr, &resources));

    let shutdown = CancellationToken::new();
    let leave = CancellationToken::new();
    let tracker = TaskTracker::new();

    let agent = AgentService {
        snapshot: snapshot_rx,
        events: events.clone(),
        leave: leave.clone(),
        shutdown: shutdown.clone(),
        started,
        cluster: config.cluster.clone(),
        listen: listen.clone(),
        microk8s: config.microk8s.clone(),
    };
    let peer = PeerService::new(identity.node_id.clone(), config.cluster.clone());
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::agent_server::AgentServer<AgentService>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(muster_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| DaemonError::Reflection(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(muster_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| DaemonError::Reflection(e.to_string()))?;
    let router = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(pb::agent_server::AgentServer::new(agent))
        .add_service(pb::peer_server::PeerServer::new(peer));

    let stop = shutdown.clone();
    let tcp_router = router.clone();
    tracker.spawn(async move {
        if let Err(e) = tcp_router
            .serve_with_incoming_shutdown(TcpListenerStream::new(tcp), stop.cancelled())
            .await
        {
            log::error!("TCP API server failed: {e}");
        }
    });
    let stop = shutdown.clone();
    tracker.spawn(async move {
        if let Err(e) = router
            .serve_with_incoming_shutdown(UnixListenerStream::new(unix), stop.cancelled())
            .await
        {
            log::error!("socket API server failed: {e}");
        }
    });
    tracker.spawn(refresh_resources(snapshot_tx, shutdown.clone()));
    if let Some(interval) = notify::watchdog_interval() {
        tracker.spawn(notify::run_watchdog(interval, shutdown.clone()));
    }

    notify::ready(&format!(
        "{}: unclustered, API on {tcp_addr}",
        identity.node_name
    ));

    let reason = wait_for_stop(&leave).await;
    notify::stopping();
    events.emit(
        Level::Info,
        Event::AgentStopping,
        "",
        &[],
        format!(
            "stopping ({reason}); draining tasks for at most {}",
            humantime::format_duration(config.shutdown_timeout)
        ),
    );
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    shutdown.cancel();
    tracker.close();
    let drained = tokio::time::timeout(config.shutdown_timeout, tracker.wait())
        .await
        .is_ok();
    if let Err(e) = std::fs::remove_file(&config.socket)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        log::warn!("cannot remove socket {}: {e}", config.socket.display());
    }
    if drained {
        events.emit(
            Level::Info,
            Event::AgentStopped,
            "",
            &[],
            "all tasks drained; stopped".to_owned(),
        );
    } else {
        events.emit(
            Level::Warn,
            Event::AgentStopped,
            "",
            &[],
            format!(
                "tasks still running after {}; stopping anyway",
                humantime::format_duration(config.shutdown_timeout)
            ),
        );
    }
    Ok(())
}

/// Waits for SIGTERM, SIGINT or a Leave request and says which came.
async fn wait_for_stop(leave: &CancellationToken) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log::error!("cannot install signal handlers; the agent stops only through Leave");
        leave.cancelled().await;
        return "leave requested";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = leave.cancelled() => "leave requested",
    }
}

/// Binds the unix socket: removes a stale file left by a crashed agent, refuses to steal a
/// live agent's socket, and sets mode 0660 and the configured group.
fn bind_socket(path: &Path, group: &str) -> Result<UnixListener, DaemonError> {
    let sock_err = |action, source| DaemonError::Socket {
        action,
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| sock_err("create the directory of", e))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::SocketInUse {
                path: path.to_owned(),
            });
        }
        std::fs::remove_file(path).map_err(|e| sock_err("remove the stale socket", e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| sock_err("bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| sock_err("set the mode of", e))?;
    if !group.is_empty() {
        match lookup_gid(group) {
            Some(gid) => {
                if let Err(e) = std::os::unix::fs::chown(path, None, Some(gid)) {
                    log::warn!(
                        "cannot give socket {} to group {group}: {e}",
                        path.display()
                    );
                }
            }
            None => log::warn!(
                "group {group:?} does not exist; socket {} stays root-only (set socket_group = \"\" to silence)",
                path.display()
            ),
        }
    }
    Ok(listener)
}

/// The gid of a group from /etc/group (no NSS: the package creates a local group).
fn lookup_gid(group: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.split(':');
        (parts.next()? == group).then_some(())?;
        parts.nth(1)?.parse().ok()
    })
}

/// The address peers should use for this node: the listen address, or the first
/// non-loopback IPv4 when listening on all interfaces.
fn advertise_addr(listen: SocketAddr) -> SocketAddr {
    if !listen.ip().is_unspecified() {
        return listen;
    }
    let ip = if_addrs::get_if_addrs()
        .ok()
        .and_then(|ifs| {
            ifs.into_iter()
                .map(|i| i.ip())
                .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        })
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    SocketAddr::new(ip, listen.port())
}

fn initial_snapshot(
    identity: &Identity,
    listen: SocketAddr,
    resources: &NodeResources,
) -> Snapshot {
    let addr = advertise_addr(listen);
    Snapshot {
        members: vec![pb::Member {
            id: identity.node_id.clone(),
            name: identity.node_name.clone(),
            addr: addr.to_string(),
            status: pb::MemberStatus::Alive as i32,
            incarnation: 0,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            resources: Some(resources.to_proto()),
            role: "unclustered".to_owned(),
            fields: Default::default(),
            addresses: vec![addr.ip().to_string()],
            local: true,
            meta_version: 1,
        }],
        role: "unclustered".to_owned(),
        cluster_state: pb::ClusterState {
            microk8s: "unknown".to_owned(),
            ..Default::default()
        },
        warnings: Vec::new(),
        worker_spec: None,
    }
}

/// Measures resources again now and then, so members see current available memory.
async fn refresh_resources(tx: watch::Sender<Snapshot>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(RESOURCE_REFRESH);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(resources) = tokio::task::spawn_blocking(NodeResources::probe).await else {
            continue;
        };
        tx.send_modify(|snap| {
            if let Some(local) = snap.members.iter_mut().find(|m| m.local) {
                local.resources = Some(resources.to_proto());
            }
        });
    }
}
