//! The workflow task: one `select!` over the mesh's view, the inbox, the machine's deadline
//! and cancellation. Every input goes to the `WorkflowMachine`; every effect it returns is
//! carried out once: a command or a call through `Effects`, a reply on the caller's
//! channel, the vote or the remembered cluster written to disk, fields handed to the mesh, a
//! notice worded for the journal. Then the machine's status is published on the `watch` this
//! task alone writes.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use log::Level;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::effects::Effects;
use super::handle::{Caller, Inbox, WorkflowHandle};
use super::machine::{Effect, Input, MachineSetup, Notice, WorkflowMachine};
use super::rpc::{PeerClients, Peers, role_word};
use super::status::FormationStatus;
use super::vote;
use crate::events::EventBus;
use crate::journal::{Event, Field};
use crate::mesh::{MeshHandle, MeshView};
use crate::microk8s::Microk8s;
use muster_core::election::{self, ElectionConfig};
use muster_core::formation::{self, FormationConfig};

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

/// Why the workflow could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The election settings are invalid.
    #[error(transparent)]
    Election(#[from] election::ElectionConfigError),
    /// The formation settings are invalid.
    #[error(transparent)]
    Formation(#[from] formation::FormationConfigError),
}

/// Starts the workflow task with the real gRPC peers. Its randomness (claim jitter, join
/// tokens, retry jitter) is seeded from the operating system: tokens are secrets.
pub fn spawn(
    setup: WorkflowSetup,
    mesh: MeshHandle,
    events: EventBus,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<WorkflowHandle, StartError> {
    let peers = PeerClients::new(setup.cluster.clone(), setup.node_id.clone());
    spawn_with(
        setup,
        Box::new(peers),
        rand::random(),
        mesh,
        events,
        stop,
        tracker,
    )
}

/// Where a worker keeps the id of the cluster it joined (it cannot read the credentials).
const CLUSTER_ID_FILE: &str = "cluster-id";

/// Starts the workflow task with `peers` as its way to other agents and `seed` for its cores.
pub(crate) fn spawn_with(
    setup: WorkflowSetup,
    peers: Box<dyn Peers>,
    seed: u64,
    mesh: MeshHandle,
    events: EventBus,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<WorkflowHandle, StartError> {
    let remembered = std::fs::read_to_string(setup.data_dir.join(CLUSTER_ID_FILE))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let machine = WorkflowMachine::new(MachineSetup {
        node_id: setup.node_id.clone(),
        node_name: setup.node_name.clone(),
        advertise: setup.advertise,
        priority: setup.priority,
        has_route: !crate::netinfo::default_route().is_empty(),
        election: setup.election.clone(),
        formation: setup.formation.clone(),
        hard: vote::load(&setup.data_dir),
        remembered,
        seed,
    })?;
    let (tx, rx) = mpsc::channel(256);
    let status = watch::Sender::new(FormationStatus::default());
    let handle = WorkflowHandle::new(tx.clone(), status.subscribe());
    let view_rx = mesh.view();
    let effects = Effects::new(
        setup.microk8s.clone(),
        peers,
        tx,
        tracker.clone(),
        view_rx.clone(),
    );
    let wf = Workflow {
        node_name: setup.node_name,
        data_dir: setup.data_dir,
        machine,
        start: Instant::now(),
        rx,
        view_rx,
        mesh,
        status,
        events,
        effects,
    };
    tracker.spawn(wf.run(stop));
    Ok(handle)
}

struct Workflow {
    node_name: String,
    data_dir: PathBuf,
    machine: WorkflowMachine<Caller>,
    start: Instant,
    rx: mpsc::Receiver<Inbox>,
    view_rx: watch::Receiver<MeshView>,
    mesh: MeshHandle,
    /// The published status; this task is its only writer.
    status: watch::Sender<FormationStatus>,
    events: EventBus,
    effects: Effects,
}

impl Workflow {
    async fn run(mut self, stop: CancellationToken) {
        // Our own networks, for choosing the join URL a follower can reach.
        let nets: Vec<(IpAddr, u8)> = if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| match i.addr {
                if_addrs::IfAddr::V4(a) => Some((IpAddr::V4(a.ip), a.prefixlen)),
                _ => None,
            })
            .collect();
        self.feed(Input::Networks(nets));
        let view = self.view_input();
        self.feed(view);
        loop {
            let deadline = self.start + self.machine.next_deadline();
            let input = tokio::select! {
                _ = stop.cancelled() => return,
                changed = self.view_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.view_input()
                }
                input = self.rx.recv() => match input {
                    Some(input) => input,
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline) => Input::Tick,
            };
            self.feed(input);
        }
    }

    /// The mesh's latest view as the machine's input (with how its clock relates to ours).
    fn view_input(&mut self) -> Input<Caller> {
        let view: MeshView = self.view_rx.borrow_and_update().clone();
        let mesh_ahead = if self.start >= view.epoch {
            i128::try_from((self.start - view.epoch).as_nanos()).unwrap_or(i128::MAX)
        } else {
            -i128::try_from((view.epoch - self.start).as_nanos()).unwrap_or(i128::MAX)
        };
        Input::View {
            view: view.view,
            mesh_ahead,
        }
    }

    /// One input to the machine, then every effect it asks for, then the status.
    fn feed(&mut self, input: Input<Caller>) {
        let now = self.start.elapsed();
        self.machine.handle(now, input);
        for effect in self.machine.drain_effects() {
            self.carry_out(effect);
        }
        let status = self.machine.status();
        let role = status.role;
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            if changed {
                *s = status;
                crate::notify::status(&format!("{}: {role}", self.node_name));
            }
            changed
        });
    }

    fn carry_out(&mut self, effect: Effect<Caller>) {
        let fx = &mut self.effects;
        match effect {
            Effect::Probe {
                remembered,
                version,
                was_running,
            } => fx.probe(remembered, version, was_running),
            Effect::WaitReady => fx.wait_ready(),
            Effect::AddNode {
                follower,
                token,
                ttl,
            } => fx.add_node(follower, token, ttl),
            Effect::RemoveNode { name, force } => fx.remove_node(name, force),
            Effect::Join { url, role } => fx.join(url, role),
            Effect::CheckJoined { entry, joiner } => fx.check_joined(entry, joiner),
            Effect::Reset => fx.reset(),
            Effect::LeaveOther => fx.leave_other(),
            Effect::LeaveCluster { entry, caller } => {
                if let Caller::Leave(reply) = caller {
                    fx.leave_cluster(&self.node_name, entry, reply);
                }
            }
            Effect::SendClaim { to, addr, claim } => fx.send_claim(to, &addr, &claim),
            Effect::RequestJoin { entry, addr, ask } => {
                fx.request_join(entry, addr.as_deref(), &ask)
            }
            Effect::Report {
                entry,
                addr,
                outcome,
            } => {
                log::debug!("reporting the outcome of this node's join to {entry} at {addr}");
                fx.report(&addr, &outcome);
            }
            Effect::Vote { caller, reply } => {
                if let Caller::Vote(tx) = caller {
                    let _ = tx.send(reply);
                }
            }
            Effect::Answer { caller, answer } => {
                if let Caller::Join(tx) = caller {
                    let _ = tx.send(answer);
                }
            }
            // Dropping the reply channel fails the call.
            Effect::Abandon { caller } => drop(caller),
            Effect::LeaveReply { caller, text } => {
                if let Caller::Leave(tx) = caller {
                    let _ = tx.send(text);
                }
            }
            Effect::SetFields(fields) => fx.set_fields(self.mesh.clone(), fields),
            Effect::PersistVote(hs) => {
                // Before the reply that depends on it: effects are carried out in order.
                if let Err(e) = vote::save(&self.data_dir, &hs) {
                    log::error!(
                        "cannot persist the election vote in {}: {e}",
                        self.data_dir.display()
                    );
                }
            }
            Effect::RememberCluster(id) => {
                let path = self.data_dir.join(CLUSTER_ID_FILE);
                if let Err(e) = std::fs::write(&path, id) {
                    log::warn!(
                        "cannot remember the joined cluster in {}: {e}",
                        path.display()
                    );
                }
            }
            Effect::Notice(n) => self.journal(n),
        }
    }

    /// Words a notice for the journal (and `muster events`), with this node's role.
    fn journal(&self, notice: Notice) {
        let me = self.node_name.as_str();
        let (level, event, peer, message) = match notice {
            Notice::ClaimStarted(term) => (
                Level::Info,
                Event::ClaimStarted,
                String::new(),
                format!("claiming the entry point for term {term}"),
            ),
            Notice::BecameEntry(term) => (
                Level::Info,
                Event::EntryElected,
                me.to_owned(),
                format!("this node is the entry point (term {term})"),
            ),
            Notice::SteppedDown { term, reason } => (
                Level::Info,
                Event::EntrySteppedDown,
                String::new(),
                format!("stepped down as entry point of term {term}: {reason}"),
            ),
            Notice::Following { entry, term } => (
                Level::Info,
                Event::EntryFollowed,
                entry.clone(),
                format!("following entry point {entry} (term {term})"),
            ),
            Notice::Conflict(text) => (Level::Warn, Event::ClusterConflict, String::new(), text),
            Notice::Granted { name, role, .. } => (
                Level::Info,
                Event::JoinGranted,
                name.clone(),
                format!("granted {name} a join as {}", role_word(role)),
            ),
            Notice::Joined { name, role, .. } => (
                Level::Info,
                Event::NodeJoined,
                name.clone(),
                format!("{name} joined as {} (verified)", role_word(role)),
            ),
            Notice::JoinFailed { name, reason, .. } => (
                Level::Warn,
                Event::JoinFailed,
                name.clone(),
                format!("join of {name} failed: {reason}"),
            ),
            Notice::Removed(name) => (
                Level::Info,
                Event::NodeRemoved,
                name.clone(),
                format!("removed {name} from the cluster"),
            ),
            Notice::RemoveFailed { name, error } => (
                Level::Warn,
                Event::RemoveFailed,
                name.clone(),
                format!("removing {name} failed: {error}"),
            ),
            Notice::JoinsBlocked(text) => (Level::Warn, Event::JoinsBlocked, String::new(), text),
            Notice::JoinStarted { entry, role } => (
                Level::Info,
                Event::JoinStarted,
                entry.clone(),
                format!("joining {entry} as {}", role_word(role)),
            ),
            Notice::JoinFinished { ok, took } => {
                let ms = took.as_millis().to_string();
                let message = format!(
                    "microk8s join {} after {ms} ms",
                    if ok { "exited 0" } else { "failed" }
                );
                self.events.emit(
                    Level::Info,
                    Event::JoinFinished,
                    me,
                    &[(Field::DurationMs, &ms)],
                    message,
                );
                return;
            }
            Notice::SelfJoined => (
                Level::Info,
                Event::NodeJoined,
                me.to_owned(),
                "this node joined the cluster (verified)".to_owned(),
            ),
            Notice::AttemptFailed { attempt, reason } => {
                let attempt = attempt.to_string();
                self.events.emit(
                    Level::Warn,
                    Event::JoinFailed,
                    me,
                    &[(Field::Attempt, &attempt)],
                    format!("join attempt {attempt} failed: {reason}; retrying with backoff"),
                );
                return;
            }
            Notice::Refused(text) => (
                Level::Warn,
                Event::JoinRefused,
                String::new(),
                format!("not joining: {text}"),
            ),
            Notice::LeaveStarted => {
                self.events.emit(
                    Level::Info,
                    Event::LeaveStarted,
                    me,
                    &[],
                    "running microk8s leave".to_owned(),
                );
                return;
            }
            Notice::ProbeFailed(e) => {
                log::warn!("microk8s probe failed: {e}");
                return;
            }
            Notice::Debug(text) => {
                log::debug!("{text}");
                return;
            }
        };
        let role = self.machine.role_word();
        self.events
            .emit(level, event, &peer, &[(Field::Role, role)], message);
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
