//! The mesh driver: one task that owns the [`Membership`] state machine and carries out its
//! outputs. It feeds the core with messages from the `Peer` service, answers arriving on its
//! own streams, mDNS discoveries and timer ticks, sends the core's messages through the
//! [`Transport`], logs member changes to the journal and publishes the membership view.
//!
//! The view goes out as a [`MeshView`] of domain values (the core's [`Member`]s with their
//! status and the time of their last change) on a `watch` channel this driver alone writes;
//! the workflow and the API subscribe ([`MeshHandle::view`]).
//!
//! The driver sees only core [`Message`]s: envelopes are decoded before they reach it (by
//! [`MeshHandle::deliver`] and by the [`Transport`]'s streams) and encoded after it (by the
//! handle for a delivery's immediate answers, by the transport for everything it sends).
//! What those could not decode still comes here, as a rejection, so that the journal's rate
//! limit for rejected messages lives in one place.
//!
//! The core's time is `tokio::time::Instant::now() - start` (tokio's clock, so tests can
//! pause it); its randomness is seeded here, once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use log::Level;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::codec::DecodeError;
use super::handle::MeshHandle;
use super::routes::Routes;
use super::transport::{SendError, SendOutcome, Transport, TransportEvent};
use crate::discovery::DiscoveryEvent;
use crate::events::EventBus;
use crate::journal::{Event, Field};
use muster_core::membership::{
    EventKind, Input, LocalPhase, Member, MemberEvent, Membership, MembershipConfig, Message,
    NodeMeta, Output, Status, View,
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

/// What the rest of the agent can ask of the mesh: the driver's inbox, written through
/// [`MeshHandle`].
#[derive(Debug)]
pub(crate) enum Command {
    /// A message from the `Peer` service; the reply gets the immediate answers for its sender.
    Deliver {
        message: Message,
        reply: oneshot::Sender<Vec<Message>>,
    },
    /// An envelope from the `Peer` service that did not decode (logged, rate-limited).
    Rejected { from: String, reason: DecodeError },
    /// A discovery hint.
    Discovery(DiscoveryEvent),
    /// New free-form metadata fields for this node (role, microk8s state, …).
    SetFields(BTreeMap<String, String>),
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
    let handle = MeshHandle::new(
        tx,
        setup.cluster.clone(),
        stopped.clone(),
        routes.clone(),
        view.subscribe(),
    );
    let local_id = core.local().id().to_owned();
    let send_timeout = probe_timeout.max(Duration::from_millis(100)) * 3;
    let driver = Driver {
        core,
        start,
        rx,
        transport_rx,
        transport: Transport::new(
            local_id,
            setup.cluster,
            routes,
            events_tx,
            send_timeout,
            tracker.clone(),
        ),
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

/// A delivery whose sender waits for the core's immediate answers to it.
struct Waiting {
    /// The sender: what the core sends to it during this step goes back in the reply.
    from: String,
    reply: oneshot::Sender<Vec<Message>>,
}

struct Driver {
    core: Membership,
    start: Instant,
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
            let mut waiting = None;
            tokio::select! {
                _ = stop.cancelled(), if !leaving => {
                    leaving = true;
                    let now = self.now();
                    self.core.leave(now);
                }
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => waiting = self.on_command(cmd),
                    None => return,
                },
                Some(ev) = self.transport_rx.recv() => self.on_transport(ev),
                _ = sleep => {
                    let now = self.now();
                    self.core.tick(now);
                }
            }
            self.flush(waiting);
            if self.core.phase() == LocalPhase::Left {
                return;
            }
        }
    }

    /// Feeds one command to the core; for a delivery, returns who is waiting for answers.
    fn on_command(&mut self, cmd: Command) -> Option<Waiting> {
        let now = self.now();
        match cmd {
            Command::Deliver { message, reply } => {
                let from = message.from.clone();
                self.core.handle(now, Input::Message(message));
                return Some(Waiting { from, reply });
            }
            Command::Rejected { from, reason } => self.log_rejected(&from, &reason.to_string()),
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
                // Each subsystem owns its own keys (the GPU models stay); an empty value
                // withdraws a key.
                let mut meta = (*self.core.local().meta).clone();
                let before = meta.fields.clone();
                muster_core::membership::fields::merge(&mut meta.fields, fields);
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
            TransportEvent::Received(msg) => self.core.handle(now, Input::Message(msg)),
            TransportEvent::Rejected { from, reason } => {
                self.log_rejected(&from, &reason.to_string());
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
    fn flush(&mut self, mut waiting: Option<Waiting>) {
        let mut immediate = Vec::new();
        let mut changed = false;
        for out in self.core.drain_outputs() {
            match out {
                Output::Send { to, addr, msg } => {
                    if waiting.as_ref().is_some_and(|w| w.from == to) {
                        immediate.push(msg);
                    } else {
                        self.send(to, &addr, &msg);
                    }
                }
                Output::Event(ev) => {
                    changed = true;
                    self.log_event(&ev);
                }
                Output::Rejected { from, reason } => self.log_rejected(&from, &reason.to_string()),
            }
        }
        if let Some(w) = waiting.take() {
            let _ = w.reply.send(immediate);
        }
        if changed {
            self.publish();
        }
    }

    fn send(&mut self, to: String, addr: &str, msg: &Message) {
        match self.transport.send(to.clone(), addr, msg) {
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
