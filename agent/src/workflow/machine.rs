//! The workflow's routing, without a runtime: [`WorkflowMachine`] feeds the election, the join
//! coordinator and the follower (the same inputs in the same order every time) and turns each
//! of their outputs into one [`Effect`] (a microk8s command, a call to a peer, a reply to a
//! caller, gossiped fields, the vote to persist, a journal [`Notice`]).
//!
//! Owns what the workflow keeps besides the cores: the latest membership view and each
//! member as the election sees it, this node's microk8s facts and their probe schedule (an
//! explicit [`Probe`] state), the callers waiting for a vote or a join answer, the announced
//! election fields, the notices shown in status, and the fields last published. Time is an
//! argument; nothing here waits, spawns or touches a socket.
//!
//! Does not own any decision of the protocol (the cores decide, with their deadlines in
//! `next_deadline()`) nor any effect: the tokio driver (`driver.rs`) carries effects out on the
//! real machine, the workflow simulation (`sim/`) on the in-memory twin and network, so the
//! simulation runs exactly this routing.
//!
//! A caller waiting for an answer is named by a value of the driver's choosing (`C`: a reply
//! channel in the driver, a simulated call in the simulation) and handed back with its answer.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::commands::Joiner;
use super::effects::Done;
use super::facts::{self, LocalFacts, Mk8sState};
use super::rpc::{JoinAnswer, JoinAsk};
use super::status::{ClusterView, FormationStatus};
use muster_core::election::{
    self, Claim, ClaimReply, Election, ElectionConfig, HardState, MemberView, NodeId, Term,
};
use muster_core::formation::{
    self, EntryInput, EntryOutput, Failure, FollowerInput, FollowerJoin, FollowerOutput,
    FollowerView, FormationConfig, JoinCoordinator, JoinRequest, JoinRole, Outcome, Phase, Ticket,
};
use muster_core::membership::{Member, View, fields};

/// What the machine needs to start.
#[derive(Clone, Debug)]
pub(crate) struct MachineSetup {
    /// This node's id.
    pub node_id: NodeId,
    /// This node's name.
    pub node_name: String,
    /// The address peers reach this node at.
    pub advertise: SocketAddr,
    /// Election priority.
    pub priority: u32,
    /// This machine has a default route (microk8s needs one).
    pub has_route: bool,
    /// Election tunables.
    pub election: ElectionConfig,
    /// Formation tunables.
    pub formation: FormationConfig,
    /// The vote persisted by an earlier life.
    pub hard: HardState,
    /// The cluster id a worker remembers from an earlier life.
    pub remembered: Option<String>,
    /// Seed of the cores' randomness (join tokens are secrets: seed from the OS).
    pub seed: u64,
}

/// Something that happened outside the machine.
#[derive(Debug)]
pub(crate) enum Input<C> {
    /// This node's own networks (address, prefix length), for choosing join URLs.
    Networks(Vec<(IpAddr, u8)>),
    /// The mesh published a view; its times (`Member::since`) are on the mesh's clock, which
    /// reads `mesh_ahead` more than the workflow's (negative: less).
    View {
        /// The view.
        view: View,
        /// Mesh time minus workflow time, in nanoseconds.
        mesh_ahead: i128,
    },
    /// A peer's entry-point claim; its vote goes back to `caller`.
    Claim {
        /// The claimant.
        from: NodeId,
        /// Its claim.
        claim: Claim,
        /// Who waits for the vote.
        caller: C,
    },
    /// A follower's join request; the answer goes back to `caller`.
    Join {
        /// The request.
        req: JoinRequest,
        /// Who waits for the answer.
        caller: C,
    },
    /// A follower's report of its join.
    Report {
        /// The follower.
        from: NodeId,
        /// What it reported.
        outcome: Outcome,
    },
    /// A node that left asks for its `remove-node`.
    Removal {
        /// Its node name.
        name: String,
    },
    /// `muster leave`; the account of what was done goes back to `caller`.
    Leave {
        /// Who waits for it.
        caller: C,
    },
    /// An effect finished.
    Done(Done),
    /// Time passed (a deadline of [`WorkflowMachine::next_deadline`]).
    Tick,
}

/// Where the entry point can be reached, for `muster leave`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntryContact {
    /// Its peer address.
    pub addr: String,
    /// Its name.
    pub name: String,
}

/// One thing to carry out.
#[derive(Debug)]
pub(crate) enum Effect<C> {
    /// Probe this node's microk8s facts; feed back [`Done::Facts`].
    Probe {
        /// The cluster id a worker remembers.
        remembered: Option<String>,
        /// The version, once known.
        version: Option<String>,
        /// The last probe found a running control plane.
        was_running: bool,
    },
    /// `microk8s status --wait-ready`; feed back [`Done::Ready`].
    WaitReady,
    /// `microk8s add-node`; feed back [`Done::AddNode`].
    AddNode {
        /// The follower it is for.
        follower: NodeId,
        /// The token (a secret).
        token: String,
        /// Its lifetime.
        ttl: Duration,
    },
    /// `microk8s remove-node`; feed back [`Done::Removed`].
    RemoveNode {
        /// The node.
        name: String,
        /// `--force`.
        force: bool,
    },
    /// `microk8s join`; feed back [`Done::Joined`].
    Join {
        /// The URL granted (holds the token).
        url: String,
        /// The role granted.
        role: JoinRole,
    },
    /// One check of this node's join; feed back [`Done::Checked`].
    CheckJoined {
        /// The entry point to check with.
        entry: NodeId,
        /// This node.
        joiner: Joiner,
    },
    /// `microk8s leave` to reset a half-joined node; feed back [`Done::Reset`].
    Reset,
    /// `microk8s leave` to quit another cluster; feed back [`Done::LeftOther`].
    LeaveOther,
    /// `muster leave`: `microk8s leave`, then ask `entry` to remove this node; tell `caller`
    /// what was done.
    LeaveCluster {
        /// The entry point, when another node is.
        entry: Option<EntryContact>,
        /// Who waits for the account.
        caller: C,
    },
    /// Send `claim` to the member `to` at `addr`; feed back [`Done::ClaimAnswer`].
    SendClaim {
        /// The voter.
        to: NodeId,
        /// Its address.
        addr: String,
        /// The claim.
        claim: Claim,
    },
    /// Ask the entry point for a join; feed back [`Done::JoinAnswer`].
    RequestJoin {
        /// The entry point.
        entry: NodeId,
        /// Its address, when known.
        addr: Option<String>,
        /// What is asked.
        ask: JoinAsk,
    },
    /// Report the join's outcome to the entry point at `addr` (fire and forget).
    Report {
        /// The entry point.
        entry: NodeId,
        /// Its address.
        addr: String,
        /// The outcome.
        outcome: Outcome,
    },
    /// Give `caller` this node's vote.
    Vote {
        /// The claimant waiting.
        caller: C,
        /// The vote.
        reply: ClaimReply,
    },
    /// Give `caller` the coordinator's answer.
    Answer {
        /// The follower waiting.
        caller: C,
        /// The answer (a grant holds the token).
        answer: JoinAnswer,
    },
    /// Nobody will answer `caller` (a newer claim of the same peer superseded its call).
    Abandon {
        /// The caller.
        caller: C,
    },
    /// Tell `caller` (of `muster leave`) what was done.
    LeaveReply {
        /// Who waits.
        caller: C,
        /// The account.
        text: String,
    },
    /// Hand these gossiped fields to the mesh (merged over this node's others).
    SetFields(BTreeMap<String, String>),
    /// Persist this vote before any later effect (a reply may depend on it).
    PersistVote(HardState),
    /// Remember the cluster this (worker) node joined.
    RememberCluster(String),
    /// Something for the journal and `muster events`.
    Notice(Notice),
}

/// What the journal hears of the workflow, as values; the driver words them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// A claim for `term` started.
    ClaimStarted(Term),
    /// This node is the entry point of `term`.
    BecameEntry(Term),
    /// This node stepped down as entry point of `term`.
    SteppedDown {
        /// The term.
        term: Term,
        /// Why, in words.
        reason: String,
    },
    /// This node follows `entry` (a name, or an id when unknown) in `term`.
    Following {
        /// The entry point.
        entry: String,
        /// The term.
        term: Term,
    },
    /// Two clusters among the members (the text says which and what to do).
    Conflict(String),
    /// The coordinator granted `name` a join.
    Granted {
        /// The follower's id.
        follower: NodeId,
        /// Its name.
        name: String,
        /// The role.
        role: JoinRole,
    },
    /// The coordinator verified `name`'s join.
    Joined {
        /// The follower's id.
        follower: NodeId,
        /// Its name.
        name: String,
        /// The role.
        role: JoinRole,
    },
    /// A join the coordinator served failed.
    JoinFailed {
        /// The follower's id.
        follower: NodeId,
        /// Its name.
        name: String,
        /// Why, in words.
        reason: String,
    },
    /// `remove-node` of `name` succeeded.
    Removed(String),
    /// `remove-node` of `name` failed.
    RemoveFailed {
        /// The node.
        name: String,
        /// Why.
        error: Failure,
    },
    /// Joins are blocked (the text says why).
    JoinsBlocked(String),
    /// This node starts `microk8s join` into `entry`'s cluster.
    JoinStarted {
        /// The entry point's name.
        entry: String,
        /// The role.
        role: JoinRole,
    },
    /// This node's `microk8s join` ended.
    JoinFinished {
        /// It exited 0.
        ok: bool,
        /// How long it ran.
        took: Duration,
    },
    /// This node's join is verified.
    SelfJoined,
    /// This node's join attempt failed; it retries with backoff.
    AttemptFailed {
        /// Failed attempts in a row.
        attempt: u32,
        /// Why, in words.
        reason: String,
    },
    /// This node refuses to join (the text says why).
    Refused(String),
    /// `muster leave` starts `microk8s leave`.
    LeaveStarted,
    /// A probe of microk8s failed in a new way.
    ProbeFailed(String),
    /// A detail for debug logs only.
    Debug(String),
}

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

/// The workflow's routing state (see the module doc).
pub(crate) struct WorkflowMachine<C> {
    setup: MachineSetup,
    election: Election,
    coordinator: JoinCoordinator,
    follower: FollowerJoin,
    now: Duration,
    view: Option<View>,
    views: Vec<MemberView>,
    facts: LocalFacts,
    probe: Probe,
    remembered: Option<String>,
    /// The cluster id of the last grant, remembered once the join is verified.
    granted_cluster: Option<String>,
    /// Claimants waiting for this node's vote.
    votes: HashMap<NodeId, C>,
    /// Followers waiting for a join answer, by the coordinator's ticket.
    answers: HashMap<Ticket, C>,
    next_ticket: Ticket,
    announce: Announce,
    notices: Notices,
    /// The follower's phase, as last reported.
    phase: Phase,
    /// The fields last handed to the mesh.
    published: BTreeMap<String, String>,
    effects: Vec<Effect<C>>,
}

impl<C> WorkflowMachine<C> {
    /// A machine at workflow time zero.
    pub fn new(setup: MachineSetup) -> Result<Self, super::StartError> {
        let seed = setup.seed;
        let election = Election::new(
            setup.node_id.clone(),
            setup.election.clone(),
            seed,
            Duration::ZERO,
        )?
        .with_hard_state(setup.hard.clone());
        let coordinator = JoinCoordinator::new(
            setup.node_name.clone(),
            setup.formation.clone(),
            seed ^ 1,
            Duration::ZERO,
        )?;
        let follower = FollowerJoin::new(setup.formation.clone(), seed ^ 2, Duration::ZERO)?;
        Ok(WorkflowMachine {
            remembered: setup.remembered.clone(),
            setup,
            election,
            coordinator,
            follower,
            now: Duration::ZERO,
            view: None,
            views: Vec::new(),
            facts: LocalFacts::unknown(),
            probe: Probe::Idle {
                next: Duration::ZERO,
            },
            granted_cluster: None,
            votes: HashMap::new(),
            answers: HashMap::new(),
            next_ticket: 0,
            announce: Announce::default(),
            notices: Notices::default(),
            phase: Phase::Idle,
            published: BTreeMap::new(),
            effects: Vec::new(),
        })
    }

    /// Processes one input at workflow time `now`, then carries the cores' outputs into
    /// effects ([`drain_effects`](Self::drain_effects)).
    pub fn handle(&mut self, now: Duration, input: Input<C>) {
        self.now = self.now.max(now);
        let now = self.now;
        match input {
            Input::Networks(nets) => self.coordinator.handle(now, EntryInput::Networks(nets)),
            Input::View { view, mesh_ahead } => self.on_view(view, mesh_ahead),
            Input::Claim {
                from,
                claim,
                caller,
            } => {
                // A newer claim of the same peer replaces its older one, whose caller gets
                // no vote: its call fails.
                if let Some(old) = self.votes.insert(from.clone(), caller) {
                    self.effects.push(Effect::Abandon { caller: old });
                }
                self.election
                    .handle(now, election::Input::Claim { from, claim });
            }
            Input::Join { req, caller } => {
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                self.answers.insert(ticket, caller);
                self.coordinator
                    .handle(now, EntryInput::Request { ticket, req });
            }
            Input::Report { from, outcome } => self.coordinator.handle(
                now,
                EntryInput::Report {
                    follower: from,
                    outcome,
                },
            ),
            Input::Removal { name } => self
                .coordinator
                .handle(now, EntryInput::LeaveRequested { name }),
            Input::Leave { caller } => self.leave(caller),
            Input::Done(done) => self.on_done(done),
            Input::Tick => {
                self.election.handle(now, election::Input::Tick);
                self.coordinator.handle(now, EntryInput::Tick);
                self.follower.handle(now, FollowerInput::Tick);
            }
        }
        self.process();
    }

    /// Takes the effects to carry out, in order.
    pub fn drain_effects(&mut self) -> Vec<Effect<C>> {
        std::mem::take(&mut self.effects)
    }

    /// When the next [`Input::Tick`] is due (a second ahead when nothing is scheduled).
    pub fn next_deadline(&self) -> Duration {
        [
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
        .unwrap_or(self.now + Duration::from_secs(1))
    }

    // ----- inputs -----

    /// The mesh published a new view: every member as the election sees it.
    fn on_view(&mut self, view: View, mesh_ahead: i128) {
        self.views = std::iter::once(&view.local)
            .chain(view.members.iter())
            .map(|m| {
                let since = i128::try_from(m.since.as_nanos()).unwrap_or(i128::MAX) - mesh_ahead;
                let since = Duration::from_nanos(u64::try_from(since.max(0)).unwrap_or(u64::MAX));
                facts::member_view(m, facts::liveness(m.status, since))
            })
            .collect();
        self.view = Some(view);
        self.election
            .handle(self.now, election::Input::ViewChanged(self.views.clone()));
    }

    fn on_done(&mut self, done: Done) {
        let now = self.now;
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
            Done::Removed { name, outcome } => self
                .coordinator
                .handle(now, EntryInput::RemoveDone { name, outcome }),
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
                self.notice(Notice::JoinFinished {
                    ok: outcome.is_ok(),
                    took,
                });
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
        self.probe = match self.probe {
            Probe::Running { again: true } => Probe::Idle { next: self.now },
            _ => Probe::Idle {
                next: self.now + self.setup.formation.poll_interval,
            },
        };
        if f.state == Mk8sState::Error
            && self.facts.error != f.error
            && let Some(e) = &f.error
        {
            self.notice(Notice::ProbeFailed(e.clone()));
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
            self.coordinator.handle(self.now, EntryInput::Facts(cf));
        }
    }

    /// Fresh facts, now or right after the probe in flight.
    fn refresh_facts(&mut self) {
        self.probe = match self.probe {
            Probe::Running { .. } => Probe::Running { again: true },
            Probe::Idle { .. } => Probe::Idle { next: self.now },
        };
    }

    fn leave(&mut self, caller: C) {
        self.follower.handle(self.now, FollowerInput::Leave);
        let clustered = self.facts.state == Mk8sState::Worker
            || (self.facts.state == Mk8sState::Ready && self.facts.size > 1);
        if !clustered {
            self.effects.push(Effect::LeaveReply {
                caller,
                text: "this node is in no microk8s cluster; nothing to leave".to_owned(),
            });
            return;
        }
        let entry = self
            .entry_member()
            .filter(|m| m.id() != self.setup.node_id)
            .map(|m| EntryContact {
                addr: m.addr().to_owned(),
                name: m.meta.name.clone(),
            });
        self.notice(Notice::LeaveStarted);
        self.effects.push(Effect::LeaveCluster { entry, caller });
    }

    // ----- outputs -----

    /// Carries everything the three cores asked for into effects, then publishes the fields.
    fn process(&mut self) {
        for out in self.election.drain_outputs() {
            self.on_election(out);
        }
        // The election may have changed who the entry point is.
        if self.coordinator.is_active() != self.is_entry() {
            let active = self.is_entry();
            self.coordinator
                .handle(self.now, EntryInput::Active(active));
        }
        for out in self.coordinator.drain_outputs() {
            self.on_entry(out);
        }
        self.feed_follower();
        for out in self.follower.drain_outputs() {
            self.on_follower(out);
        }
        if let Probe::Idle { next } = self.probe
            && next <= self.now
        {
            self.probe = Probe::Running { again: false };
            self.effects.push(Effect::Probe {
                remembered: self.remembered.clone(),
                version: self.facts.version.clone(),
                was_running: self.facts.state == Mk8sState::Ready,
            });
        }
        self.publish_fields();
    }

    fn on_election(&mut self, out: election::Output) {
        use election::Output as O;
        match out {
            O::Persist(hs) => self.effects.push(Effect::PersistVote(hs)),
            O::SendClaim { to, claim } => {
                if let Some(addr) = self.member(&to).map(|m| m.addr().to_owned()) {
                    self.effects.push(Effect::SendClaim { to, addr, claim });
                }
            }
            O::SendClaimReply { to, reply } => {
                if let Some(caller) = self.votes.remove(&to) {
                    self.effects.push(Effect::Vote { caller, reply });
                }
            }
            O::ClaimStarted { term, .. } => self.notice(Notice::ClaimStarted(term)),
            O::ClaimFailed { term, reason } => self.notice(Notice::Debug(format!(
                "claim of term {term} failed: {reason:?}"
            ))),
            O::Unfollowed { entry, term } => self.notice(Notice::Debug(format!(
                "no longer following {entry} (term {term})"
            ))),
            O::BecameEntry { term } => {
                // Start from the facts of the last periodic probe (at most `poll_interval`
                // old) rather than idle until a new one returns: the first grant is on the
                // critical path of a formation, and the fresh probe follows at once.
                // (The coordinator is made active right after the election's outputs.)
                self.feed_cluster_facts();
                self.refresh_facts();
                self.notice(Notice::BecameEntry(term));
            }
            O::SteppedDown { term, reason } => self.notice(Notice::SteppedDown {
                term,
                reason: format!("{reason:?}"),
            }),
            O::Following { entry, term } => {
                let entry = self
                    .member(&entry)
                    .map(|m| m.meta.name.clone())
                    .unwrap_or(entry);
                self.notice(Notice::Following { entry, term });
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
                self.notices.conflict = Some(text.clone());
                self.notice(Notice::Conflict(text));
            }
            O::ConflictCleared => self.notices.conflict = None,
        }
    }

    fn on_entry(&mut self, out: EntryOutput) {
        use EntryOutput as O;
        match out {
            O::Answer { ticket, response } => {
                if let Some(caller) = self.answers.remove(&ticket) {
                    let answer = JoinAnswer {
                        response,
                        cluster_id: self.facts.cluster_id.clone().unwrap_or_default(),
                    };
                    self.effects.push(Effect::Answer { caller, answer });
                }
            }
            O::AddNode {
                follower,
                token,
                ttl,
            } => self.effects.push(Effect::AddNode {
                follower,
                token,
                ttl,
            }),
            O::RemoveNode { name, force } => self.effects.push(Effect::RemoveNode { name, force }),
            O::RefreshFacts => self.refresh_facts(),
            O::Granted {
                follower,
                name,
                role,
            } => self.notice(Notice::Granted {
                follower,
                name,
                role,
            }),
            O::Joined {
                follower,
                name,
                role,
            } => self.notice(Notice::Joined {
                follower,
                name,
                role,
            }),
            O::JoinFailed {
                follower,
                name,
                reason,
            } => self.notice(Notice::JoinFailed {
                follower,
                name,
                reason: format!("{reason:?}"),
            }),
            O::Removed { name } => {
                self.refresh_facts();
                self.notice(Notice::Removed(name));
            }
            O::RemoveFailed { name, error } => {
                self.refresh_facts();
                self.notice(Notice::RemoveFailed { name, error });
            }
            O::Blocked(b) => {
                let text = format!("joins are blocked: {b:?}");
                self.notices.blocked = Some(text.clone());
                self.notice(Notice::JoinsBlocked(text));
            }
            O::Unblocked => self.notices.blocked = None,
        }
    }

    fn on_follower(&mut self, out: FollowerOutput) {
        use FollowerOutput as O;
        match out {
            O::WaitReady => self.effects.push(Effect::WaitReady),
            O::RequestJoin { entry } => {
                let addr = self.member(&entry).map(|m| m.addr().to_owned());
                let ask = JoinAsk {
                    name: self.setup.node_name.clone(),
                    addr: self.setup.advertise,
                    preference: self.setup.formation.role,
                    version: self.facts.version.clone(),
                };
                self.effects.push(Effect::RequestJoin { entry, addr, ask });
            }
            O::Join { url, role } => {
                let entry = self
                    .entry_member()
                    .map(|m| m.meta.name.clone())
                    .unwrap_or_default();
                self.notice(Notice::JoinStarted { entry, role });
                self.effects.push(Effect::Join { url, role });
            }
            O::CheckJoined { entry, role } => self.effects.push(Effect::CheckJoined {
                entry,
                joiner: Joiner {
                    name: self.setup.node_name.clone(),
                    ip: self.setup.advertise.ip(),
                    role,
                },
            }),
            O::Reset => self.effects.push(Effect::Reset),
            O::Report { entry, outcome } => {
                if let Some(addr) = self.member(&entry).map(|m| m.addr().to_owned()) {
                    self.effects.push(Effect::Report {
                        entry,
                        addr,
                        outcome,
                    });
                }
            }
            O::LeaveOtherCluster => self.effects.push(Effect::LeaveOther),
            O::Phase(p) => {
                if p == Phase::Joined {
                    if let Some(c) = self.granted_cluster.take() {
                        // Workers cannot read the cluster's credentials; remember what they
                        // joined.
                        self.remembered = Some(c.clone());
                        self.effects.push(Effect::RememberCluster(c));
                    }
                    self.notice(Notice::SelfJoined);
                }
                if let Phase::Failed {
                    attempt, reason, ..
                } = &p
                {
                    self.notice(Notice::AttemptFailed {
                        attempt: *attempt,
                        reason: format!("{reason:?}"),
                    });
                }
                self.phase = p;
            }
            O::Refused(rs) => {
                self.notices.refusals = rs.iter().map(ToString::to_string).collect();
                let text = self.notices.refusals.join("; ");
                self.notice(Notice::Refused(text));
            }
            O::RefusalCleared => self.notices.refusals.clear(),
        }
    }

    fn notice(&mut self, notice: Notice) {
        self.effects.push(Effect::Notice(notice));
    }

    // ----- views of the state -----

    /// Whether the election made this node the entry point.
    pub fn is_entry(&self) -> bool {
        matches!(self.election.role(), election::Role::Entry { .. })
    }

    /// The election core (read-only), for the simulation's checks.
    #[cfg(test)]
    pub fn election(&self) -> &Election {
        &self.election
    }

    /// The join coordinator (read-only), for the simulation's checks.
    #[cfg(test)]
    pub fn coordinator(&self) -> &JoinCoordinator {
        &self.coordinator
    }

    /// The follower's phase, as last reported.
    #[cfg(test)]
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Whether the election reports two clusters among the members.
    #[cfg(test)]
    pub fn reports_conflict(&self) -> bool {
        self.notices.conflict.is_some()
    }

    /// The callers waiting for a vote or a join answer.
    #[cfg(test)]
    pub fn callers(&self) -> impl Iterator<Item = &C> {
        self.votes.values().chain(self.answers.values())
    }

    fn member(&self, id: &str) -> Option<&Member> {
        let view = self.view.as_ref()?;
        std::iter::once(&view.local)
            .chain(view.members.iter())
            .find(|m| m.id() == id)
    }

    fn local_view(&self) -> Option<&MemberView> {
        self.views.iter().find(|v| v.id == self.setup.node_id)
    }

    /// The entry point this node follows (itself when it is the entry point).
    fn entry_member(&self) -> Option<&Member> {
        if self.is_entry() {
            return self.view.as_ref().map(|v| &v.local);
        }
        let (entry, _) = self.election.following()?;
        self.member(entry)
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
        self.follower.handle(
            self.now,
            FollowerInput::View(Box::new(FollowerView {
                local,
                entry,
                members: self.views.clone(),
            })),
        );
    }

    /// This node's role in words.
    pub fn role_word(&self) -> &'static str {
        let joining = self.phase.is_joining();
        match self.local_view() {
            Some(v) => formation::node_role(self.is_entry(), joining, v).as_str(),
            None => "unclustered",
        }
    }

    fn publish_fields(&mut self) {
        let mut f = facts::local_fields(&self.facts, self.setup.priority, self.setup.has_route);
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
            // A key published before and not now is withdrawn (an empty value), so that a
            // node that stopped being the entry point stops announcing its term and cluster.
            let mut update = f.clone();
            for key in self.published.keys().filter(|k| !f.contains_key(*k)) {
                update.insert(key.clone(), String::new());
            }
            self.published = f;
            self.effects.push(Effect::SetFields(update));
        }
    }

    /// What the workflow publishes: this node's role, its cluster, warnings.
    pub fn status(&self) -> FormationStatus {
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
        FormationStatus {
            role: self.role_word(),
            cluster,
            warnings,
        }
    }
}
