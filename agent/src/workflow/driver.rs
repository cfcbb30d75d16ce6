//! The workflow task: one `select!` over the mesh's view, the inbox, a timer and cancellation;
//! every input goes to the core it concerns, every output of a core becomes one effect, one
//! reply or one journal event. What the cores decide is theirs; this file only routes.
//!
//! State kept here is what the cores cannot keep: the reply channels of callers waiting for a
//! vote or a join answer, the latest view and facts, the probe schedule of the facts (an
//! explicit `Probe` state), and what was last published (fields, status).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use log::Level;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::commands::Joiner;
use super::effects::{Done, Effects};
use super::facts::{self, LocalFacts, Mk8sState};
use super::handle::{Inbox, Request, WorkflowHandle};
use super::rpc::{JoinAnswer, JoinAsk, PeerClients, Peers, role_word};
use super::status::{ClusterView, FormationStatus};
use super::vote;
use crate::events::EventBus;
use crate::journal::{Event, Field};
use crate::mesh::{MeshHandle, MeshView};
use crate::microk8s::Microk8s;
use muster_core::election::{self, Election, ElectionConfig, MemberView, NodeId, Term};
use muster_core::formation::{
    self, EntryInput, EntryOutput, FollowerInput, FollowerJoin, FollowerOutput, FollowerView,
    FormationConfig, JoinCoordinator, Phase, Ticket,
};
use muster_core::membership::{Member, fields};

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
    let election = Election::new(
        setup.node_id.clone(),
        setup.election.clone(),
        seed,
        Duration::ZERO,
    )?
    .with_hard_state(vote::load(&setup.data_dir));
    let coordinator = JoinCoordinator::new(
        setup.node_name.clone(),
        setup.formation.clone(),
        seed ^ 1,
        Duration::ZERO,
    )?;
    let follower = FollowerJoin::new(setup.formation.clone(), seed ^ 2, Duration::ZERO)?;
    let (tx, rx) = mpsc::channel(256);
    let status = watch::Sender::new(FormationStatus::default());
    let handle = WorkflowHandle::new(tx.clone(), status.subscribe());
    let remembered = std::fs::read_to_string(setup.data_dir.join(CLUSTER_ID_FILE))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let view_rx = mesh.view();
    let view = view_rx.borrow().clone();
    let effects = Effects::new(
        setup.microk8s.clone(),
        peers,
        tx,
        tracker.clone(),
        view_rx.clone(),
    );
    let wf = Workflow {
        setup,
        election,
        coordinator,
        follower,
        start: Instant::now(),
        rx,
        view_rx,
        view,
        views: Vec::new(),
        mesh,
        status,
        events,
        effects,
        facts: LocalFacts::unknown(),
        probe: Probe::Idle {
            next: Duration::ZERO,
        },
        remembered,
        granted_cluster: None,
        votes: HashMap::new(),
        answers: HashMap::new(),
        next_ticket: 0,
        announce: Announce::default(),
        notices: Notices::default(),
        phase: Phase::Idle,
        published: BTreeMap::new(),
        has_route: !crate::netinfo::default_route().is_empty(),
    };
    tracker.spawn(wf.run(stop));
    Ok(handle)
}

/// Where a worker keeps the id of the cluster it joined (it cannot read the credentials).
const CLUSTER_ID_FILE: &str = "cluster-id";

/// The probe of this node's microk8s facts: every `poll_interval`, and at once when a core
/// asks for fresh facts; never two at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// The next periodic probe is due at `next`.
    Idle { next: Duration },
    /// A probe runs; `again`: a core asked for fresh facts meanwhile (the running probe's
    /// answer may predate the reason), so probe again as soon as it returns.
    Running { again: bool },
}

/// What this node announces about the election in its gossiped fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Announce {
    /// The confirmed entry term, while this node is the entry point.
    entry_term: Option<Term>,
    /// The highest entry point this node followed.
    followed: Option<(NodeId, Term)>,
}

/// Problems to show in status, as the cores last reported them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Notices {
    /// Two clusters among the members.
    conflict: Option<String>,
    /// Why this node refuses to join.
    refusals: Vec<String>,
    /// What blocks joins on the entry point.
    blocked: Option<String>,
}

struct Workflow {
    setup: WorkflowSetup,
    election: Election,
    coordinator: JoinCoordinator,
    follower: FollowerJoin,
    start: Instant,
    rx: mpsc::Receiver<Inbox>,
    view_rx: watch::Receiver<MeshView>,
    /// The mesh's latest view, and each member as the election sees it.
    view: MeshView,
    views: Vec<MemberView>,
    mesh: MeshHandle,
    /// The published status; this task is its only writer.
    status: watch::Sender<FormationStatus>,
    events: EventBus,
    effects: Effects,
    facts: LocalFacts,
    probe: Probe,
    /// The cluster id a worker remembers (from the file, then from its grants).
    remembered: Option<String>,
    /// The cluster id of the last grant, stored once the join is verified.
    granted_cluster: Option<String>,
    /// Claimants waiting for this node's vote.
    votes: HashMap<NodeId, oneshot::Sender<ClaimReplyMsg>>,
    /// Followers waiting for a join answer, by the coordinator's ticket.
    answers: HashMap<Ticket, oneshot::Sender<JoinAnswer>>,
    next_ticket: Ticket,
    announce: Announce,
    notices: Notices,
    /// The follower's phase, as last reported.
    phase: Phase,
    /// The fields last handed to the mesh.
    published: BTreeMap<String, String>,
    has_route: bool,
}

type ClaimReplyMsg = election::ClaimReply;

impl Workflow {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

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
        let now = self.now();
        self.coordinator.handle(now, EntryInput::Networks(nets));
        self.on_view();
        self.process();
        loop {
            let now = self.now();
            let deadline = [
                self.election.next_deadline(),
                self.coordinator.next_deadline(),
                self.follower.next_deadline(),
                match self.probe {
                    Probe::Idle { next } => Some(next),
                    Probe::Running { .. } => None,
                },
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(1));
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = self.view_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.on_view();
                }
                input = self.rx.recv() => match input {
                    Some(Inbox::Request(r)) => self.on_request(r),
                    Some(Inbox::Done(d)) => self.on_done(d),
                    None => return,
                },
                _ = tokio::time::sleep_until(self.start + deadline) => {
                    let now = self.now();
                    self.election.handle(now, election::Input::Tick);
                    self.coordinator.handle(now, EntryInput::Tick);
                    self.follower.handle(now, FollowerInput::Tick);
                }
            }
            self.process();
        }
    }

    // ----- inputs -----

    /// The mesh published a new view: every member as the election sees it.
    fn on_view(&mut self) {
        self.view = self.view_rx.borrow_and_update().clone();
        let start = self.start;
        self.views = self
            .view
            .all()
            .map(|m| {
                let since = self.view.since(m).saturating_duration_since(start);
                facts::member_view(m, facts::liveness(m.status, since))
            })
            .collect();
        let now = self.now();
        self.election
            .handle(now, election::Input::ViewChanged(self.views.clone()));
    }

    fn on_request(&mut self, request: Request) {
        let now = self.now();
        match request {
            Request::Claim { from, claim, reply } => {
                self.votes.insert(from.clone(), reply);
                self.election
                    .handle(now, election::Input::Claim { from, claim });
            }
            Request::Join { req, reply } => {
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                self.answers.insert(ticket, reply);
                self.coordinator
                    .handle(now, EntryInput::Request { ticket, req });
            }
            Request::Report { from, outcome } => self.coordinator.handle(
                now,
                EntryInput::Report {
                    follower: from,
                    outcome,
                },
            ),
            Request::Removal { name } => self
                .coordinator
                .handle(now, EntryInput::LeaveRequested { name }),
            Request::Leave { reply } => self.leave(reply),
        }
    }

    fn on_done(&mut self, done: Done) {
        let now = self.now();
        match done {
            Done::Facts(f) => self.on_facts(*f),
            Done::ClaimAnswer { from, reply } => match reply {
                Some(reply) => self
                    .election
                    .handle(now, election::Input::ClaimReply { from, reply }),
                None => self
                    .election
                    .handle(now, election::Input::SendFailed { to: from }),
            },
            Done::AddNode { follower, result } => {
                let input = match result {
                    Ok(urls) => EntryInput::AddNodeDone { follower, urls },
                    Err(error) => EntryInput::AddNodeFailed { follower, error },
                };
                self.coordinator.handle(now, input);
            }
            Done::Removed { name, outcome } => {
                self.coordinator
                    .handle(now, EntryInput::RemoveDone { name, outcome });
            }
            Done::Ready(outcome) => self.follower.handle(now, FollowerInput::Ready(outcome)),
            Done::JoinAnswer { from, result } => match result {
                Ok(answer) => {
                    if !answer.cluster_id.is_empty() {
                        self.granted_cluster = Some(answer.cluster_id);
                    }
                    self.follower.handle(
                        now,
                        FollowerInput::Response {
                            from,
                            response: answer.response,
                        },
                    );
                }
                Err(error) => self
                    .follower
                    .handle(now, FollowerInput::RequestFailed { from, error }),
            },
            Done::Joined { outcome, took } => {
                let ms = took.as_millis().to_string();
                self.events.emit(
                    Level::Info,
                    Event::JoinFinished,
                    &self.setup.node_name,
                    &[(Field::DurationMs, &ms)],
                    format!(
                        "microk8s join {} after {ms} ms",
                        if outcome.is_ok() {
                            "exited 0"
                        } else {
                            "failed"
                        }
                    ),
                );
                self.follower
                    .handle(now, FollowerInput::JoinFinished(outcome));
            }
            Done::Checked(outcome) => {
                if outcome.is_ok() {
                    self.refresh_facts();
                }
                self.follower.handle(now, FollowerInput::Checked(outcome));
            }
            Done::Reset(outcome) => {
                self.refresh_facts();
                self.follower.handle(now, FollowerInput::ResetDone(outcome));
            }
            Done::LeftOther(outcome) => {
                self.follower.handle(now, FollowerInput::LeftOther(outcome))
            }
        }
    }

    fn on_facts(&mut self, f: LocalFacts) {
        let now = self.now();
        self.probe = match self.probe {
            Probe::Running { again: true } => Probe::Idle { next: now },
            _ => Probe::Idle {
                next: now + self.setup.formation.poll_interval,
            },
        };
        if f.state == Mk8sState::Error
            && self.facts.error != f.error
            && let Some(e) = &f.error
        {
            log::warn!("microk8s probe failed: {e}");
        }
        self.facts = f;
        if self.facts.state == Mk8sState::Worker
            && let Some(size) = self
                .entry_member()
                .filter(|e| e.meta.fields.get(fields::CLUSTER) == self.facts.cluster_id.as_ref())
                .and_then(|e| e.meta.fields.get(fields::SIZE)?.parse::<u32>().ok())
        {
            self.facts.size = self.facts.size.max(size);
        }
        self.feed_cluster_facts();
    }

    /// The entry point's cluster facts to the coordinator.
    fn feed_cluster_facts(&mut self) {
        if self.is_entry()
            && let Some(cf) = facts::cluster_facts(&self.facts, &self.views)
        {
            let now = self.now();
            self.coordinator.handle(now, EntryInput::Facts(cf));
        }
    }

    /// Fresh facts, now or right after the probe in flight.
    fn refresh_facts(&mut self) {
        self.probe = match self.probe {
            Probe::Running { .. } => Probe::Running { again: true },
            Probe::Idle { .. } => Probe::Idle { next: self.now() },
        };
    }

    fn leave(&mut self, reply: oneshot::Sender<String>) {
        let now = self.now();
        self.follower.handle(now, FollowerInput::Leave);
        let clustered = self.facts.state == Mk8sState::Worker
            || (self.facts.state == Mk8sState::Ready && self.facts.size > 1);
        if !clustered {
            let _ = reply.send("this node is in no microk8s cluster; nothing to leave".to_owned());
            return;
        }
        let entry = self
            .entry_member()
            .filter(|m| !self.view.is_local(m))
            .map(|m| (m.addr().to_owned(), m.meta.name.clone()));
        let name = self.setup.node_name.clone();
        self.events.emit(
            Level::Info,
            Event::LeaveStarted,
            &name,
            &[],
            "running microk8s leave".to_owned(),
        );
        self.effects.leave_cluster(&name, entry, reply);
    }

    // ----- outputs -----

    /// Carries out everything the three cores asked for, then publishes fields and status.
    fn process(&mut self) {
        for out in self.election.drain_outputs() {
            self.on_election(out);
        }
        // The election may have changed who the entry point is.
        let now = self.now();
        if self.coordinator.is_active() != self.is_entry() {
            self.coordinator
                .handle(now, EntryInput::Active(self.is_entry()));
        }
        for out in self.coordinator.drain_outputs() {
            self.on_entry(out);
        }
        self.feed_follower();
        for out in self.follower.drain_outputs() {
            self.on_follower(out);
        }
        if let Probe::Idle { next } = self.probe
            && next <= self.now()
        {
            self.probe = Probe::Running { again: false };
            self.effects.probe(
                self.remembered.clone(),
                self.facts.version.clone(),
                self.facts.state == Mk8sState::Ready,
            );
        }
        self.publish_fields();
        self.publish_status();
    }

    fn on_election(&mut self, out: election::Output) {
        use election::Output as O;
        match out {
            O::Persist(hs) => {
                if let Err(e) = vote::save(&self.setup.data_dir, &hs) {
                    log::error!(
                        "cannot persist the election vote in {}: {e}",
                        self.setup.data_dir.display()
                    );
                }
            }
            O::SendClaim { to, claim } => {
                if let Some(addr) = self.view.get(&to).map(|m| m.addr().to_owned()) {
                    self.effects.send_claim(to, &addr, &claim);
                }
            }
            O::SendClaimReply { to, reply } => {
                if let Some(tx) = self.votes.remove(&to) {
                    let _ = tx.send(reply);
                }
            }
            O::ClaimStarted { term, .. } => self.emit(
                Level::Info,
                Event::ClaimStarted,
                "",
                format!("claiming the entry point for term {term}"),
            ),
            O::ClaimFailed { term, reason } => {
                log::debug!("claim of term {term} failed: {reason:?}")
            }
            O::BecameEntry { term } => {
                // Start from the facts of the last periodic probe (at most `poll_interval`
                // old) rather than idle until a new one returns: the first grant is on the
                // critical path of a formation, and the fresh probe follows at once.
                self.feed_cluster_facts();
                self.refresh_facts();
                let name = self.setup.node_name.clone();
                self.emit(
                    Level::Info,
                    Event::EntryElected,
                    &name,
                    format!("this node is the entry point (term {term})"),
                );
            }
            O::SteppedDown { term, reason } => self.emit(
                Level::Info,
                Event::EntrySteppedDown,
                "",
                format!("stepped down as entry point of term {term}: {reason:?}"),
            ),
            O::Following { entry, term } => {
                let name = self
                    .view
                    .get(&entry)
                    .map(|m| m.meta.name.clone())
                    .unwrap_or(entry);
                self.emit(
                    Level::Info,
                    Event::EntryFollowed,
                    &name,
                    format!("following entry point {name} (term {term})"),
                );
            }
            O::Unfollowed { entry, term } => {
                log::debug!("no longer following {entry} (term {term})")
            }
            O::Announce {
                entry_term,
                followed,
            } => {
                self.announce = Announce {
                    entry_term,
                    followed,
                }
            }
            O::Conflict(c) => {
                let text = format!(
                    "{} microk8s clusters among the members ({}); neither is torn down: make the nodes of the smaller one run `muster leave` (or `microk8s leave`) to join the larger",
                    c.clusters.len(),
                    c.clusters
                        .iter()
                        .map(|x| format!("{} with {} node(s)", x.cluster_id, x.size))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                self.emit(Level::Warn, Event::ClusterConflict, "", text.clone());
                self.notices.conflict = Some(text);
            }
            O::ConflictCleared => self.notices.conflict = None,
        }
    }

    fn on_entry(&mut self, out: EntryOutput) {
        use EntryOutput as O;
        match out {
            O::Answer { ticket, response } => {
                if let Some(reply) = self.answers.remove(&ticket) {
                    let _ = reply.send(JoinAnswer {
                        response,
                        cluster_id: self.facts.cluster_id.clone().unwrap_or_default(),
                    });
                }
            }
            O::AddNode {
                follower,
                token,
                ttl,
            } => self.effects.add_node(follower, token, ttl),
            O::RemoveNode { name, force } => self.effects.remove_node(name, force),
            O::RefreshFacts => self.refresh_facts(),
            O::Granted { name, role, .. } => self.emit(
                Level::Info,
                Event::JoinGranted,
                &name,
                format!("granted {name} a join as {}", role_word(role)),
            ),
            O::Joined { name, role, .. } => self.emit(
                Level::Info,
                Event::NodeJoined,
                &name,
                format!("{name} joined as {} (verified)", role_word(role)),
            ),
            O::JoinFailed { name, reason, .. } => self.emit(
                Level::Warn,
                Event::JoinFailed,
                &name,
                format!("join of {name} failed: {reason:?}"),
            ),
            O::Removed { name } => {
                self.refresh_facts();
                self.emit(
                    Level::Info,
                    Event::NodeRemoved,
                    &name,
                    format!("removed {name} from the cluster"),
                )
            }
            O::RemoveFailed { name, error } => {
                self.refresh_facts();
                self.emit(
                    Level::Warn,
                    Event::RemoveFailed,
                    &name,
                    format!("removing {name} failed: {error}"),
                )
            }
            O::Blocked(b) => {
                let text = format!("joins are blocked: {b:?}");
                self.emit(Level::Warn, Event::JoinsBlocked, "", text.clone());
                self.notices.blocked = Some(text);
            }
            O::Unblocked => self.notices.blocked = None,
        }
    }

    fn on_follower(&mut self, out: FollowerOutput) {
        use FollowerOutput as O;
        match out {
            O::WaitReady => self.effects.wait_ready(),
            O::RequestJoin { entry } => {
                let addr = self.view.get(&entry).map(|m| m.addr().to_owned());
                let ask = JoinAsk {
                    name: self.setup.node_name.clone(),
                    addr: self.setup.advertise,
                    preference: self.setup.formation.role,
                    version: self.facts.version.clone(),
                };
                self.effects.request_join(entry, addr.as_deref(), &ask);
            }
            O::Join { url, role } => {
                let entry = self
                    .entry_member()
                    .map(|m| m.meta.name.clone())
                    .unwrap_or_default();
                self.emit(
                    Level::Info,
                    Event::JoinStarted,
                    &entry,
                    format!("joining {entry} as {}", role_word(role)),
                );
                self.effects.join(url, role);
            }
            O::CheckJoined { entry, role } => self.effects.check_joined(
                entry,
                Joiner {
                    name: self.setup.node_name.clone(),
                    ip: self.setup.advertise.ip(),
                    role,
                },
            ),
            O::Reset => self.effects.reset(),
            O::Report { entry, outcome } => {
                if let Some(addr) = self.view.get(&entry).map(|m| m.addr().to_owned()) {
                    self.effects.report(&addr, &outcome);
                }
            }
            O::LeaveOtherCluster => self.effects.leave_other(),
            O::Phase(p) => {
                if p == Phase::Joined {
                    if let Some(c) = self.granted_cluster.take() {
                        // Workers cannot read the cluster's credentials; remember what they
                        // joined.
                        let _ = std::fs::write(self.setup.data_dir.join(CLUSTER_ID_FILE), &c);
                        self.remembered = Some(c);
                    }
                    let name = self.setup.node_name.clone();
                    self.emit(
                        Level::Info,
                        Event::NodeJoined,
                        &name,
                        "this node joined the cluster (verified)".to_owned(),
                    );
                }
                if let Phase::Failed {
                    attempt, reason, ..
                } = &p
                {
                    let attempt = attempt.to_string();
                    self.events.emit(
                        Level::Warn,
                        Event::JoinFailed,
                        &self.setup.node_name,
                        &[(Field::Attempt, &attempt)],
                        format!("join attempt {attempt} failed: {reason:?}; retrying with backoff"),
                    );
                }
                self.phase = p;
            }
            O::Refused(rs) => {
                self.notices.refusals = rs.iter().map(ToString::to_string).collect();
                let text = self.notices.refusals.join("; ");
                self.emit(
                    Level::Warn,
                    Event::JoinRefused,
                    "",
                    format!("not joining: {text}"),
                );
            }
            O::RefusalCleared => self.notices.refusals.clear(),
        }
    }

    // ----- views of the state -----

    fn is_entry(&self) -> bool {
        matches!(self.election.role(), election::Role::Entry { .. })
    }

    fn local_view(&self) -> Option<&MemberView> {
        self.views.iter().find(|v| v.id == self.setup.node_id)
    }

    /// The entry point this node follows (itself when it is the entry point).
    fn entry_member(&self) -> Option<&Member> {
        if self.is_entry() {
            return Some(&self.view.view.local);
        }
        let (entry, _) = self.election.following()?;
        self.view.get(entry)
    }

    /// The follower's view: this node, its entry point and every member.
    fn feed_follower(&mut self) {
        let Some(local) = self.local_view().cloned() else {
            return;
        };
        let entry = self
            .entry_member()
            .map(|m| m.id().to_owned())
            .and_then(|id| self.views.iter().find(|v| v.id == id).cloned());
        let now = self.now();
        self.follower.handle(
            now,
            FollowerInput::View(Box::new(FollowerView {
                local,
                entry,
                members: self.views.clone(),
            })),
        );
    }

    fn role_word(&self) -> &'static str {
        let joining = self.phase.is_joining();
        match self.local_view() {
            Some(v) => formation::node_role(self.is_entry(), joining, v).as_str(),
            None => "unclustered",
        }
    }

    fn emit(&self, level: Level, event: Event, peer: &str, message: String) {
        let role = self.role_word();
        self.events
            .emit(level, event, peer, &[(Field::Role, role)], message);
    }

    // ----- publishing -----

    fn publish_fields(&mut self) {
        let mut f = facts::local_fields(&self.facts, self.setup.priority, self.has_route);
        if let Some(t) = self.announce.entry_term {
            f.insert(fields::ENTRY_TERM.to_owned(), t.to_string());
        }
        if let Some((id, t)) = &self.announce.followed {
            f.insert(fields::FOLLOWED.to_owned(), format!("{id}:{t}"));
        }
        f.insert(fields::ROLE.to_owned(), self.role_word().to_owned());
        if self.is_entry() {
            f.extend(facts::entry_fields(&self.facts));
        }
        if f != self.published {
            self.published = f.clone();
            let mesh = self.mesh.clone();
            self.effects.set_fields(mesh, f);
        }
    }

    fn publish_status(&self) {
        let entry = self.entry_member();
        let field = |m: &Member, k: &str| m.meta.fields.get(k).cloned().unwrap_or_default();
        let mut cluster = ClusterView {
            microk8s: self.facts.state.as_str().to_owned(),
            term: self.election.status().seen_term,
            conflict: self.notices.conflict.clone(),
            ..ClusterView::default()
        };
        let mut warnings: Vec<String> = self.notices.refusals.clone();
        warnings.extend(self.notices.blocked.clone());
        warnings.extend(self.notices.conflict.clone());
        if let Some(e) = entry {
            cluster.entry_point = e.meta.name.clone();
            cluster.size = field(e, fields::READY_NODES)
                .split(',')
                .filter(|s| !s.is_empty())
                .count() as u32;
            cluster.voters = field(e, fields::VOTERS).parse().unwrap_or(0);
            cluster.ha = field(e, fields::HA) == "1";
        }
        if self.is_entry()
            && let Some(cf) = facts::cluster_facts(&self.facts, &self.views)
        {
            let health = formation::cluster_health(&cf);
            cluster.size = health.size;
            cluster.voters = health.voters;
            cluster.ha = health.ha;
            warnings.extend(health.warnings.iter().map(ToString::to_string));
        }
        let role = self.role_word();
        cluster.verified = self.is_entry()
            || (self.notices.refusals.is_empty()
                && self.local_view().is_some_and(|local| {
                    entry
                        .and_then(|e| self.views.iter().find(|v| v.id == e.id()))
                        .is_some_and(|e| formation::already_joined(local, e))
                })
                && entry.is_some_and(|e| {
                    facts::verified_by_entry(
                        e,
                        &self.setup.node_name,
                        Some(self.setup.advertise.ip()),
                        crate::microk8s::Role::Worker,
                    )
                    .is_ok()
                }));
        let status = FormationStatus {
            role,
            cluster,
            warnings,
        };
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            if changed {
                *s = status;
                crate::notify::status(&format!("{}: {role}", self.setup.node_name));
            }
            changed
        });
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
