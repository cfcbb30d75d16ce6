//! `muster agent`: the daemon's lifecycle. Establish identity, bind every listener (TCP and the
//! unix socket) before anything else runs, serve the API, tell systemd, and on SIGTERM/SIGINT
//! or a Leave request drain every task within the configured deadline.
//!
//! The order matters: a bad config never gets here (it exits 64 in `main`), and a port or
//! socket that cannot be bound stops the agent before it announces itself to anyone.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::Level;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::TcpIncoming;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::Sources;
use crate::api::peer::PeerService;
use crate::api::server::AgentService;
use crate::config::{Config, Origin};
use crate::discovery::{Discovery, DiscoveryConfig, DiscoveryEvent};
use crate::events::EventBus;
use crate::identity::{self, Identity, IdentityError};
use crate::journal::{Event, Field};
use crate::mesh::{self, MeshHandle, MeshSetup};
use crate::netinfo;
use crate::notify;
use crate::resources::NodeResources;
use muster_core::membership::{NodeMeta, Resources};

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
    /// mDNS discovery could not start.
    #[error(transparent)]
    Discovery(#[from] crate::discovery::DiscoveryError),
    /// The membership core refused its configuration or metadata.
    #[error("membership: {0}")]
    Membership(#[from] muster_core::membership::MembershipError),
    /// The workflow refused its configuration.
    #[error("cluster workflow: {0}")]
    Workflow(#[from] crate::workflow::StartError),
    /// The reflection service could not be built from the descriptors.
    #[error(transparent)]
    Reflection(#[from] crate::api::router::ReflectionError),
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

    let resources = watch::Sender::new(NodeResources::probe());
    let advertise = advertise_addr(&config, tcp_addr);

    let shutdown = CancellationToken::new();
    let leave = CancellationToken::new();
    let tracker = TaskTracker::new();

    let mesh = mesh::spawn(
        MeshSetup {
            cluster: config.cluster.clone(),
            config: config.membership.clone(),
            local: local_meta(&identity, advertise, &resources.borrow()),
        },
        events.clone(),
        shutdown.clone(),
        &tracker,
    )?;
    let (discovery, found) = Discovery::start(
        &DiscoveryConfig {
            cluster: config.cluster.clone(),
            node_id: identity.node_id.clone(),
            node_name: identity.node_name.clone(),
            port: tcp_addr.port(),
            interfaces: config.interfaces.clone(),
            listen_ip: config.listen.ip(),
        },
        events.clone(),
        shutdown.clone(),
    )?;
    tracker.spawn(forward_discoveries(found, mesh.clone(), events.clone()));
    let microk8s: Arc<dyn crate::microk8s::Microk8s> = Arc::new(crate::microk8s::CliMicrok8s::new(
        crate::microk8s::CliConfig {
            program: config.microk8s.clone(),
            ..Default::default()
        },
    ));
    let workflow = crate::workflow::spawn(
        crate::workflow::WorkflowSetup {
            cluster: config.cluster.clone(),
            node_id: identity.node_id.clone(),
            node_name: identity.node_name.clone(),
            advertise,
            priority: config.priority,
            data_dir: config.data_dir.clone(),
            election: config.election.clone(),
            formation: config.formation.clone(),
            microk8s: microk8s.clone(),
        },
        mesh.clone(),
        events.clone(),
        shutdown.clone(),
        &tracker,
    )?;

    let agent = AgentService {
        sources: Sources {
            mesh: mesh.view(),
            formation: workflow.status(),
            resources: resources.subscribe(),
        },
        events: events.clone(),
        leave: leave.clone(),
        workflow: workflow.clone(),
        shutdown: shutdown.clone(),
        started,
        cluster: config.cluster.clone(),
        listen: listen.clone(),
        microk8s,
    };
    let peer = PeerService::new(
        identity.node_id.clone(),
        config.cluster.clone(),
        mesh.clone(),
        workflow.clone(),
    );
    let (router, health) = crate::api::router::router(agent, peer).await?;

    let stop = shutdown.clone();
    let tcp_router = router.clone();
    tracker.spawn(async move {
        if let Err(e) = tcp_router
            .serve_with_incoming_shutdown(
                // No Nagle: a probe's reply is a few small frames that must not wait for an ACK.
                TcpIncoming::from(tcp).with_nodelay(Some(true)),
                stop.cancelled(),
            )
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
    tracker.spawn(refresh_resources(resources, shutdown.clone()));
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
    crate::api::router::not_serving(&health).await;
    shutdown.cancel();
    // Withdraw the mDNS record first; the mesh meanwhile gossips `left` and stops by itself.
    tokio::task::spawn_blocking(move || discovery.shutdown());
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

/// The address peers should use for this node: the listen address, or, when listening on
/// all interfaces, the allowed or default-route interface's IPv4 (see [`netinfo`]).
fn advertise_addr(config: &Config, bound: SocketAddr) -> SocketAddr {
    if !bound.ip().is_unspecified() {
        return bound;
    }
    let ip = netinfo::choose_advertise_ip(
        &netinfo::interface_addrs(),
        &config.interfaces,
        &netinfo::default_route(),
    );
    SocketAddr::new(ip, bound.port())
}

/// What the mesh says about this node.
fn local_meta(identity: &Identity, addr: SocketAddr, resources: &NodeResources) -> NodeMeta {
    let mut fields = BTreeMap::new();
    if !resources.gpus.is_empty() {
        let models: Vec<&str> = resources.gpus.iter().map(|g| g.model.as_str()).collect();
        fields.insert(
            muster_core::membership::fields::GPU_MODELS.to_owned(),
            models.join(","),
        );
    }
    NodeMeta {
        id: identity.node_id.clone(),
        name: identity.node_name.clone(),
        addr: addr.to_string(),
        addresses: vec![addr.ip().to_string()],
        version: env!("CARGO_PKG_VERSION").to_owned(),
        resources: Resources {
            cpu_millis: u64::from(resources.cpus) * 1000,
            memory_bytes: resources.memory_total_bytes,
            gpus: resources.gpus.len() as u32,
        },
        fields,
        meta_version: 0,
    }
}

/// Hands mDNS findings to the mesh, logging each new peer once.
async fn forward_discoveries(
    mut found: tokio::sync::mpsc::Receiver<DiscoveryEvent>,
    mesh: MeshHandle,
    events: EventBus,
) {
    let mut known = std::collections::HashSet::new();
    while let Some(ev) = found.recv().await {
        if let DiscoveryEvent::Seen(peer) = &ev
            && known.insert(peer.node_id.clone())
        {
            let addr = peer
                .addrs
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            events.emit(
                Level::Debug,
                Event::PeerDiscovered,
                &peer.name,
                &[(Field::Addr, &addr)],
                format!("mDNS found {} at {addr}", peer.name),
            );
        }
        mesh.discovered(ev).await;
    }
}

/// Measures resources again now and then, so members see current available memory. This
/// task is the only writer of the resources channel.
async fn refresh_resources(tx: watch::Sender<NodeResources>, stop: CancellationToken) {
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
        tx.send_replace(resources);
    }
}
