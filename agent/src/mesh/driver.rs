//! The mesh driver: one task that owns the [`Membership`] state machine and carries out its
//! outputs. It feeds the core with messages from the `Peer` service, answers arriving on its
//! own streams, mDNS discoveries and timer ticks, sends the core's messages through the
//! [`Transport`], logs member changes to the journal and publishes the membership view.
//!
//! The view goes out as a [`MeshView`] of domain values (the core's [`Member`]s with their
//! status and the time of their last change) on a `watch` channel this driver alone writes;
//! the workflow and the API subscribe ([`MeshHandle::view`]). Protobuf appears here only at
//! the wire, through the codec.
//!
//! The core's time is `tokio::time::Instant::now() - start` (tokio's clock, so tests can
//! pause it); its randomness is seeded here, once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use log::Level;
use muster_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::codec;
use super::routes::Routes;
use super::transport::{SendError, SendOutcome, Transport, TransportEvent};
use crate::discovery::DiscoveryEvent;
use crate::events::EventBus;
use crate::journal::{Event, Field};
use muster_core::membership::{
    EventKind, Input, LocalPhase, Member, MemberEvent, Membership, MembershipConfig, NodeMeta,
    Output, Status, View,
};

/// The membership view as the mesh last published it: every member with its status and the
/// core time of its last change, and the instant that core time counts from.
#[derive(Clone, Debug)]
pub struct MeshView {
    /// This node and every other known member (sorted by id).
    pub view: View,
    /// The instant the core's time counts from: a member's `since` happened at
    /// `epoch + since`.
    pub epoch: Instant,
}

impl MeshView {
    /// An empty view (before the mesh publishes its first one).
    pub fn empty(local: Member) -> Self {
        MeshView {
            view: View {
                local,
                members: Vec::new(),
            },
            epoch: Instant::now(),
        }
    }

    /// Every member, this node first.
    pub fn all(&self) -> impl Iterator<Item = &Member> {
        std::iter::once(&self.view.local).chain(self.view.members.iter())
    }

    /// The member with this id, this node included.
    pub fn get(&self, id: &str) -> Option<&Member> {
        self.all().find(|m| m.id() == id)
    }

    /// Whether `m` is this node.
    pub fn is_local(&self, m: &Member) -> bool {
        m.id() == self.view.local.id()
    }

    /// When `m`'s current status began.
    pub fn since(&self, m: &Member) -> Instant {
        self.epoch + m.since
    }
}

/// How often one sender's rejected messages may reach the journal.
const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Longest time the `Peer` service waits for the driver to answer one envelope.
const DELIVER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the rest of the agent can ask of the mesh.
#[derive(Debug)]
pub(crate) enum Command {
    /// An envelope from the `Peer` service; the reply gets the immediate answers.
    Deliver {
        envelope: pb::Envelope,
        reply: oneshot::Sender<Vec<pb::Envelope>>,
    },
    /// A discovery hint.
    Discovery(DiscoveryEvent),
    /// New free-form metadata fields for this node (role, microk8s state, …).
    SetFields(BTreeMap<String, String>),
}

/// Why the mesh could not take an envelope.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The envelope names another cluster.
    #[error("this agent belongs to cluster {ours:?}, not {theirs:?}")]
    WrongCluster {
        /// Our cluster.
        ours: String,
        /// The sender's.
        theirs: String,
    },
    /// The mesh is not running (starting or stopped).
    #[error("the membership mesh is not running")]
    NotRunning,
    /// The driver did not answer in time.
    #[error("the membership mesh did not answer in time")]
    Busy,
}

/// A cheap handle to the running mesh.
#[derive(Clone, Debug)]
pub struct MeshHandle {
    tx: mpsc::Sender<Command>,
    cluster: String,
    stopped: CancellationToken,
    routes: Routes,
    view: watch::Receiver<MeshView>,
}

impl MeshHandle {
    /// The membership view, updated by the mesh driver (its only writer) on every change.
    pub fn view(&self) -> watch::Receiver<MeshView> {
        self.view.clone()
    }

    /// Hands an envelope from a peer to the core and returns its immediate answers.
    pub async fn deliver(&self, envelope: pb::Envelope) -> Result<Vec<pb::Envelope>, DeliverError> {
        if envelope.cluster != self.cluster {
            return Err(DeliverError::WrongCluster {
                ours: self.cluster.clone(),
                theirs: envelope.cluster,
            });
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Deliver { envelope, reply })
            .await
            .map_err(|_| DeliverError::NotRunning)?;
        match tokio::time::timeout(DELIVER_TIMEOUT, rx).await {
            Ok(Ok(replies)) => Ok(replies),
            Ok(Err(_)) => Err(DeliverError::NotRunning),
            Err(_) => Err(DeliverError::Busy),
        }
    }

    /// The registry where served streams offer themselves as the way to their opener.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Resolves once the driver has stopped.
    pub async fn stopped(&self) {
        self.stopped.cancelled().await;
    }

    /// Passes a discovery event to the core.
    pub async fn discovered(&self, event: DiscoveryEvent) {
        // A stopped mesh has no use for hints.
        let _ = self.tx.send(Command::Discovery(event)).await;
    }

    /// Publishes free-form metadata fields of this node, merged over the current ones.
    pub async fn set_fields(&self, fields: BTreeMap<String, String>) {
        let _ = self.tx.send(Command::SetFields(fields)).await;
    }
}

/// A handle whose driver is the test: it receives the commands, and cancelling the token
/// stands for the driver stopping.
#[cfg(test)]
pub(crate) fn test_handle(
    cluster: &str,
) -> (MeshHandle, mpsc::Receiver<Command>, CancellationToken) {
    let (handle, rx, stopped, _) = test_handle_with_view(cluster, test_member("local"));
    (handle, rx, stopped)
}

/// Like [`test_handle`], with the view's writer, so that the test plays the mesh's view too.
#[cfg(test)]
pub(crate) fn test_handle_with_view(
    cluster: &str,
    local: Member,
) -> (
    MeshHandle,
    mpsc::Receiver<Command>,
    CancellationToken,
    watch::Sender<MeshView>,
) {
    let (tx, rx) = mpsc::channel(16);
    let stopped = CancellationToken::new();
    let (view_tx, view) = watch::channel(MeshView::empty(local));
    let handle = MeshHandle {
        tx,
        cluster: cluster.to_owned(),
        stopped: stopped.clone(),
        routes: Routes::default(),
        view,
    };
    (handle, rx, stopped, view_tx)
}

/// An alive member named and identified `id`, for tests.
#[cfg(test)]
pub(crate) fn test_member(id: &str) -> Member {
    Member {
        meta: std::sync::Arc::new(NodeMeta {
            id: id.to_owned(),
            name: id.to_owned(),
            addr: "127.0.0.1:7440".to_owned(),
            addresses: vec!["127.0.0.1".to_owned()],
            version: "test".to_owned(),
            resources: Default::default(),
            fields: BTreeMap::new(),
            meta_version: 0,
        }),
        incarnation: 1,
        status: Status::Alive,
        since: Duration::ZERO,
    }
}

/// Everything the driver needs to start.
#[derive(Debug)]
pub struct MeshSetup {
    /// Cluster name (envelopes of other clusters are refused).
    pub cluster: String,
    /// Protocol tunables.
    pub config: MembershipConfig,
    /// This node's metadata.
    pub local: NodeMeta,
}

/// Starts the mesh task on `tracker`. It stops after `stop` fires, once its `left` update
/// is out (bounded by the membership config's `leave_timeout`).
pub fn spawn(
    setup: MeshSetup,
    events: EventBus,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<MeshHandle, muster_core::membership::MembershipError> {
    let start = Instant::now();
    let seed = seed_from(&setup.local.id);
    // Incarnations that grow across restarts let a restarted node supersede its old life.
    let incarnation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let probe_timeout = setup.config.probe_timeout;
    let core = Membership::new(setup.config, setup.local, seed, Duration::ZERO)?
        .with_incarnation(incarnation);
    let (tx, rx) = mpsc::channel(1024);
    let (events_tx, transport_rx) = mpsc::channel(1024);
    let stopped = CancellationToken::new();
    let routes = Routes::default();
    let view = watch::Sender::new(MeshView {
        view: core.view(),
        epoch: start,
    });
    let handle = MeshHandle {
        tx,
        cluster: setup.cluster.clone(),
        stopped: stopped.clone(),
        routes: routes.clone(),
        view: view.subscribe(),
    };
    let local_id = core.local().id().to_owned();
    let send_timeout = probe_timeout.max(Duration::from_millis(100)) * 3;
    let driver = Driver {
        core,
        start,
        cluster: setup.cluster,
        rx,
        transport_rx,
        transport: Transport::new(local_id, routes, events_tx, send_timeout, tracker.clone()),
        stopped,
        view,
        events,
        rejected_logged: HashMap::new(),
    };
    driver.publish();
    tracker.spawn(driver.run(stop));
    Ok(handle)
}

fn seed_from(id: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState mixes in per-process randomness: two restarts never replay one sequence.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(id.as_bytes());
    h.finish()
}

struct Driver {
    core: Membership,
    start: Instant,
    cluster: String,
    rx: mpsc::Receiver<Command>,
    transport_rx: mpsc::Receiver<TransportEvent>,
    transport: Transport,
    /// Cancelled when the driver returns, so that served streams end with it.
    stopped: CancellationToken,
    /// The published view; this driver is its only writer.
    view: watch::Sender<MeshView>,
    events: EventBus,
    rejected_logged: HashMap<String, Instant>,
}

impl Driver {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    async fn run(mut self, stop: CancellationToken) {
        let _stopped = self.stopped.clone().drop_guard();
        let mut leaving = false;
        loop {
            let deadline = self.core.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(self.start + d).await,
                    None => std::future::pending().await,
                }
            };
            let mut reply = None;
            tokio::select! {
                _ = stop.cancelled(), if !leaving => {
                    leaving = true;
                    let now = self.now();
                    self.core.leave(now);
                }
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => reply = self.on_command(cmd),
                    None => return,
                },
                Some(ev) = self.transport_rx.recv() => self.on_transport(ev),
                _ = sleep => {
                    let now = self.now();
                    self.core.tick(now);
                }
            }
            self.flush(reply);
            if self.core.phase() == LocalPhase::Left {
                return;
            }
        }
    }

    /// Feeds one command to the core; for a delivery, returns who is waiting for answers.
    fn on_command(&mut self, cmd: Command) -> Option<(String, oneshot::Sender<Vec<pb::Envelope>>)> {
        let now = self.now();
        match cmd {
            Command::Deliver { envelope, reply } => {
                let from = envelope.from.clone();
                match codec::decode(envelope) {
                    Ok(msg) => {
                        self.core.handle(now, Input::Message(msg));
                        return Some((from, reply));
                    }
                    Err(e) => {
                        self.log_rejected(&from, &e.to_string());
                        let _ = reply.send(Vec::new());
                    }
                }
            }
            Command::Discovery(DiscoveryEvent::Seen(peer)) => {
                if let Some(addr) = peer.addrs.first() {
                    self.core.handle(
                        now,
                        Input::Discovered {
                            id: peer.node_id,
                            addr: addr.to_string(),
                        },
                    );
                }
            }
            Command::Discovery(DiscoveryEvent::Gone { node_id }) => {
                self.core.handle(now, Input::Gone { id: node_id });
            }
            Command::SetFields(fields) => {
                // Merge: each subsystem owns its own keys (the GPU models stay).
                let mut meta = (*self.core.local().meta).clone();
                let before = meta.fields.clone();
                meta.fields.extend(fields);
                if meta.fields != before {
                    match self.core.update_local_meta(meta, now) {
                        Ok(_) => self.publish(),
                        Err(e) => log::warn!("cannot publish local metadata: {e}"),
                    }
                }
            }
        }
        None
    }

    /// Feeds what our own streams brought back to the core.
    fn on_transport(&mut self, ev: TransportEvent) {
        let now = self.now();
        match ev {
            TransportEvent::Received(env) => {
                if env.cluster != self.cluster {
                    self.log_rejected(&env.from, "reply from another cluster");
                    return;
                }
                let from = env.from.clone();
                match codec::decode(env) {
                    Ok(msg) => self.core.handle(now, Input::Message(msg)),
                    Err(e) => self.log_rejected(&from, &e.to_string()),
                }
            }
            TransportEvent::Failed {
                to,
                outcome: SendOutcome::FailedFast(why),
            } => {
                log::debug!("send to {to} failed at once: {why}");
                self.core.handle(now, Input::SendFailed { to });
            }
            TransportEvent::Failed {
                to,
                outcome: SendOutcome::Failed(why),
            } => log::debug!("send to {to} failed: {why}"),
        }
    }

    /// Carries out the core's outputs. Messages for the peer that is waiting on a delivery go
    /// back in its reply; everything else is sent on its own.
    fn flush(&mut self, mut reply: Option<(String, oneshot::Sender<Vec<pb::Envelope>>)>) {
        let mut immediate = Vec::new();
        let mut changed = false;
        for out in self.core.drain_outputs() {
            match out {
                Output::Send { to, addr, msg } => {
                    let envelope = codec::encode(&self.cluster, &msg);
                    if reply.as_ref().is_some_and(|(from, _)| *from == to) {
                        immediate.push(envelope);
                    } else {
                        self.send(to, &addr, envelope);
                    }
                }
                Output::Event(ev) => {
                    changed = true;
                    self.log_event(&ev);
                }
                Output::Rejected { from, reason } => self.log_rejected(&from, &reason.to_string()),
            }
        }
        if let Some((_, tx)) = reply.take() {
            let _ = tx.send(immediate);
        }
        if changed {
            self.publish();
        }
    }

    fn send(&mut self, to: String, addr: &str, envelope: pb::Envelope) {
        match self.transport.send(to.clone(), addr, envelope) {
            Ok(()) => {}
            Err(e @ SendError::BadAddress { .. }) => self.log_rejected(&to, &e.to_string()),
            // A stuck stream loses messages like a lossy network; the core copes.
            Err(e @ SendError::QueueFull(_)) => log::debug!("{e}"),
        }
    }

    fn log_event(&mut self, ev: &MemberEvent) {
        let m = &ev.member;
        let (event, level, what) = match ev.kind {
            EventKind::Joined => (Event::MemberJoined, Level::Info, "joined the mesh"),
            EventKind::Updated => (Event::MemberUpdated, Level::Debug, "updated its metadata"),
            EventKind::Suspect => (
                Event::MemberSuspect,
                Level::Warn,
                "is suspected to have failed",
            ),
            EventKind::Dead => (Event::MemberDead, Level::Warn, "failed (confirmed dead)"),
            EventKind::Left => (Event::MemberLeft, Level::Info, "left the mesh"),
            EventKind::AliveAgain => (Event::MemberAlive, Level::Info, "is alive again"),
            EventKind::Refuted => (
                Event::MemberRefuted,
                Level::Info,
                "refuted a suspicion about itself",
            ),
            EventKind::Forgotten => (
                Event::MemberForgotten,
                Level::Info,
                "was forgotten after its retention",
            ),
        };
        if matches!(
            ev.kind,
            EventKind::Forgotten | EventKind::Dead | EventKind::Left
        ) {
            self.transport.forget(m.id(), m.addr());
        }
        let status = status_word(m.status);
        let incarnation = m.incarnation.to_string();
        self.events.emit(
            level,
            event,
            &m.meta.name,
            &[
                (Field::Addr, m.addr()),
                (Field::Status, status),
                (Field::Incarnation, &incarnation),
            ],
            format!("{} ({}) {what}", m.meta.name, m.addr()),
        );
    }

    fn log_rejected(&mut self, from: &str, why: &str) {
        let now = Instant::now();
        let key: String = from.chars().take(64).collect();
        if self
            .rejected_logged
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < REJECT_LOG_INTERVAL)
        {
            return;
        }
        if self.rejected_logged.len() > 1024 {
            self.rejected_logged.clear();
        }
        self.rejected_logged.insert(key.clone(), now);
        self.events.emit(
            Level::Warn,
            Event::MessageRejected,
            &key,
            &[(Field::Error, why)],
            format!("dropped a message from {key:?}: {why}"),
        );
    }

    /// Publishes the core's view.
    fn publish(&self) {
        let view = self.core.view();
        self.view.send_replace(MeshView {
            view,
            epoch: self.start,
        });
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Alive => "alive",
        Status::Suspect => "suspect",
        Status::Dead => "dead",
        Status::Left => "left",
    }
}
