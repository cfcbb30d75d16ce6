//! One simulated agent's workflow: the routing of `driver.rs` without tokio. It feeds the
//! election, the join coordinator and the follower exactly as the driver does (the same
//! inputs in the same order, the same pure helpers of `facts`), and turns every output into
//! an [`Act`] that the simulator carries out on the twin or the simulated network.
//!
//! Owns: what the driver keeps besides the cores (the latest view, the facts and their probe
//! schedule, pending votes and held join answers, the announced election fields, what was
//! last published). Does not own: time (the simulator passes it in), the network, microk8s.
//! Anything that differs from `driver.rs` here is a bug of this file: the point of the
//! simulation is to run the driver's rules, not new ones.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use super::super::commands::Joiner;
use super::super::facts::{self, LocalFacts, Mk8sState};
use super::super::rpc::{JoinAnswer, JoinAsk};
use super::CallRef;
use muster_core::election::{
    self, Claim, ClaimReply, Election, ElectionConfig, HardState, MemberView, NodeId, Term,
};
use muster_core::formation::{
    self, EntryInput, EntryOutput, FollowerInput, FollowerJoin, FollowerOutput, FollowerView,
    FormationConfig, JoinCoordinator, JoinRequest, JoinRole, Outcome, Phase, Ticket,
};
use muster_core::membership::{Member, View, fields};

/// Something the simulator must carry out for an agent: one effect of `effects.rs`, one
/// reply, or one observation for the invariant checks.
#[derive(Debug)]
pub(super) enum Act {
    /// Probe this node's microk8s facts.
    Probe {
        /// The cluster id a worker remembers.
        remembered: Option<String>,
        /// The version, once known.
        version: Option<String>,
        /// The last probe found a running control plane.
        was_running: bool,
    },
    /// `microk8s status --wait-ready`.
    WaitReady,
    /// `microk8s add-node`.
    AddNode {
        /// The follower it is for.
        follower: NodeId,
        /// The token.
        token: String,
        /// Its lifetime.
        ttl: Duration,
    },
    /// `microk8s remove-node`.
    RemoveNode {
        /// The node.
        name: String,
        /// `--force`.
        force: bool,
    },
    /// `microk8s join`.
    Join {
        /// The URL granted.
        url: String,
        /// The role granted.
        role: JoinRole,
    },
    /// One check of this node's join.
    CheckJoined {
        /// The entry point that granted it.
        entry: NodeId,
        /// This node.
        joiner: Joiner,
    },
    /// `microk8s leave` to reset a half-joined node.
    Reset,
    /// `microk8s leave` to quit another cluster.
    LeaveOther,
    /// Send a claim to the member `to`.
    SendClaim {
        /// The voter.
        to: NodeId,
        /// The claim.
        claim: Claim,
    },
    /// Answer the claimant waiting on `call`.
    ClaimReply {
        /// The caller.
        call: CallRef,
        /// The vote.
        reply: ClaimReply,
    },
    /// Ask the entry point for a join.
    RequestJoin {
        /// The entry point.
        entry: NodeId,
        /// What is asked.
        ask: JoinAsk,
    },
    /// Answer the follower waiting on `call`.
    JoinAnswer {
        /// The caller.
        call: CallRef,
        /// The answer.
        answer: JoinAnswer,
    },
    /// Report the join's outcome to the entry point (fire and forget).
    Report {
        /// The entry point.
        entry: NodeId,
        /// The outcome.
        outcome: Outcome,
    },
    /// Hand these gossiped fields to the mesh (merged into the local metadata).
    SetFields(BTreeMap<String, String>),
    /// This node's election confirmed it as entry point of `term`.
    BecameEntry(Term),
    /// The coordinator granted `follower` a join.
    Granted {
        /// The follower.
        follower: NodeId,
    },
    /// The coordinator ended the join of `follower` (verified or failed).
    GrantClosed {
        /// The follower.
        follower: NodeId,
    },
}

/// The probe schedule of the facts (`driver.rs`'s `Probe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    Idle { next: Duration },
    Running { again: bool },
}

/// What this node announces about the election (`driver.rs`'s `Announce`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Announce {
    entry_term: Option<Term>,
    followed: Option<(NodeId, Term)>,
}

/// What an agent needs to start.
pub(super) struct AgentSetup {
    /// Node id.
    pub id: NodeId,
    /// Node (host) name.
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
    /// The networks it sits on.
    pub nets: Vec<(IpAddr, u8)>,
    /// Election priority.
    pub priority: u32,
    /// Election tunables.
    pub election: ElectionConfig,
    /// Formation tunables.
    pub formation: FormationConfig,
    /// The persisted vote.
    pub hard: HardState,
    /// The persisted cluster id of a worker.
    pub remembered: Option<String>,
    /// Seed of the cores.
    pub seed: u64,
}

/// One agent's workflow state.
pub(super) struct Agent {
    id: NodeId,
    name: String,
    ip: IpAddr,
    priority: u32,
    formation: FormationConfig,
    pub(super) election: Election,
    pub(super) coordinator: JoinCoordinator,
    pub(super) follower: FollowerJoin,
    /// Workflow time: sim time minus this.
    start: Duration,
    /// Mesh time: sim time plus this (the mesh's clock has its own origin).
    mesh_offset: Duration,
    now: Duration,
    view: Option<View>,
    views: Vec<MemberView>,
    pub(super) facts: LocalFacts,
    probe: Probe,
    pub(super) remembered: Option<String>,
    granted_cluster: Option<String>,
    /// The election reports two microk8s clusters among the members.
    pub(super) conflict: bool,
    pub(super) votes: HashMap<NodeId, CallRef>,
    pub(super) answers: HashMap<Ticket, CallRef>,
    next_ticket: Ticket,
    announce: Announce,
    pub(super) phase: Phase,
    published: BTreeMap<String, String>,
    acts: Vec<Act>,
}

impl Agent {
    /// Starts an agent at sim time `at`, its mesh clock `mesh_offset` ahead of sim time.
    pub fn new(setup: AgentSetup, at: Duration, mesh_offset: Duration) -> Self {
        let seed = setup.seed;
        let election = Election::new(setup.id.clone(), setup.election, seed, Duration::ZERO)
            .expect("simulated election settings are valid")
            .with_hard_state(setup.hard);
        let coordinator = JoinCoordinator::new(
            setup.name.clone(),
            setup.formation.clone(),
            seed ^ 1,
            Duration::ZERO,
        )
        .expect("simulated formation settings are valid");
        let follower = FollowerJoin::new(setup.formation.clone(), seed ^ 2, Duration::ZERO)
            .expect("simulated formation settings are valid");
        let mut agent = Agent {
            id: setup.id,
            name: setup.name,
            ip: setup.ip,
            priority: setup.priority,
            formation: setup.formation,
            election,
            coordinator,
            follower,
            start: at,
            mesh_offset,
            now: Duration::ZERO,
            view: None,
            views: Vec::new(),
            facts: LocalFacts::unknown(),
            probe: Probe::Idle {
                next: Duration::ZERO,
            },
            remembered: setup.remembered,
            granted_cluster: None,
            conflict: false,
            votes: HashMap::new(),
            answers: HashMap::new(),
            next_ticket: 0,
            announce: Announce::default(),
            phase: Phase::Idle,
            published: BTreeMap::new(),
            acts: Vec::new(),
        };
        agent
            .coordinator
            .handle(Duration::ZERO, EntryInput::Networks(setup.nets));
        agent
    }

    /// Sets the clock to sim time `sim_now`.
    pub fn at(&mut self, sim_now: Duration) {
        self.now = sim_now.saturating_sub(self.start);
    }

    /// Takes what the simulator must carry out.
    pub fn drain_acts(&mut self) -> Vec<Act> {
        std::mem::take(&mut self.acts)
    }

    /// The sim time of the workflow's next timer (`driver.rs`'s select deadline).
    pub fn next_wake(&self) -> Duration {
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
        .unwrap_or(self.now + Duration::from_secs(1));
        self.start + deadline
    }

    /// Whether the published view differs from `view`.
    pub fn view_differs(&self, view: &View) -> bool {
        self.view.as_ref() != Some(view)
    }

    // ----- inputs (driver.rs: run, on_view, on_request, on_done) -----

    /// The timer fired.
    pub fn on_tick(&mut self) {
        let now = self.now;
        self.election.handle(now, election::Input::Tick);
        self.coordinator.handle(now, EntryInput::Tick);
        self.follower.handle(now, FollowerInput::Tick);
    }

    /// The mesh published a new view.
    pub fn on_view(&mut self, view: View) {
        let offset = self.mesh_offset;
        let start = self.start;
        self.views = std::iter::once(&view.local)
            .chain(view.members.iter())
            .map(|m| {
                // The mesh's `since` is on the mesh clock; the election wants workflow time.
                let since = m.since.saturating_sub(offset).saturating_sub(start);
                facts::member_view(m, facts::liveness(m.status, since))
            })
            .collect();
        self.view = Some(view);
        let now = self.now;
        self.election
            .handle(now, election::Input::ViewChanged(self.views.clone()));
    }

    /// A peer's claim; the vote goes to `call`.
    pub fn on_claim(&mut self, from: NodeId, claim: Claim, call: CallRef) -> Option<CallRef> {
        let replaced = self.votes.insert(from.clone(), call);
        self.election
            .handle(self.now, election::Input::Claim { from, claim });
        replaced
    }

    /// A follower's join request; the answer goes to `call`.
    pub fn on_join_request(&mut self, req: JoinRequest, call: CallRef) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.answers.insert(ticket, call);
        self.coordinator
            .handle(self.now, EntryInput::Request { ticket, req });
    }

    /// A follower's report.
    pub fn on_report(&mut self, from: NodeId, outcome: Outcome) {
        self.coordinator.handle(
            self.now,
            EntryInput::Report {
                follower: from,
                outcome,
            },
        );
    }

    /// The answer to our claim sent to `from` (`None`: it did not answer).
    pub fn on_claim_answer(&mut self, from: NodeId, reply: Option<ClaimReply>) {
        let now = self.now;
        match reply {
            Some(reply) => self
                .election
                .handle(now, election::Input::ClaimReply { from, reply }),
            None => self
                .election
                .handle(now, election::Input::SendFailed { to: from }),
        }
    }

    /// `add-node` finished.
    pub fn on_add_node(
        &mut self,
        follower: NodeId,
        result: Result<Vec<String>, formation::Failure>,
    ) {
        let input = match result {
            Ok(urls) => EntryInput::AddNodeDone { follower, urls },
            Err(error) => EntryInput::AddNodeFailed { follower, error },
        };
        self.coordinator.handle(self.now, input);
    }

    /// `remove-node` finished.
    pub fn on_removed(&mut self, name: String, outcome: Outcome) {
        self.coordinator
            .handle(self.now, EntryInput::RemoveDone { name, outcome });
    }

    /// `status --wait-ready` finished.
    pub fn on_ready(&mut self, outcome: Outcome) {
        self.follower
            .handle(self.now, FollowerInput::Ready(outcome));
    }

    /// The entry point's answer to our join request.
    pub fn on_join_answer(&mut self, from: NodeId, result: Result<JoinAnswer, formation::Failure>) {
        let now = self.now;
        match result {
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
        }
    }

    /// `microk8s join` finished.
    pub fn on_joined(&mut self, outcome: Outcome) {
        self.follower
            .handle(self.now, FollowerInput::JoinFinished(outcome));
    }

    /// A check of our join finished.
    pub fn on_checked(&mut self, outcome: Outcome) {
        if outcome.is_ok() {
            self.refresh_facts();
        }
        self.follower
            .handle(self.now, FollowerInput::Checked(outcome));
    }

    /// The reset finished.
    pub fn on_reset(&mut self, outcome: Outcome) {
        self.refresh_facts();
        self.follower
            .handle(self.now, FollowerInput::ResetDone(outcome));
    }

    /// Leaving the other cluster finished.
    pub fn on_left_other(&mut self, outcome: Outcome) {
        self.follower
            .handle(self.now, FollowerInput::LeftOther(outcome));
    }

    /// A probe returned.
    pub fn on_facts(&mut self, f: LocalFacts) {
        let now = self.now;
        self.probe = match self.probe {
            Probe::Running { again: true } => Probe::Idle { next: now },
            _ => Probe::Idle {
                next: now + self.formation.poll_interval,
            },
        };
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

    fn feed_cluster_facts(&mut self) {
        if self.is_entry()
            && let Some(cf) = facts::cluster_facts(&self.facts, &self.views)
        {
            self.coordinator.handle(self.now, EntryInput::Facts(cf));
        }
    }

    fn refresh_facts(&mut self) {
        self.probe = match self.probe {
            Probe::Running { .. } => Probe::Running { again: true },
            Probe::Idle { .. } => Probe::Idle { next: self.now },
        };
    }

    // ----- outputs (driver.rs: process, on_election, on_entry, on_follower) -----

    /// Carries out everything the cores asked for, then publishes the fields.
    pub fn process(&mut self) {
        for out in self.election.drain_outputs() {
            self.on_election(out);
        }
        let now = self.now;
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
            && next <= self.now
        {
            self.probe = Probe::Running { again: false };
            self.acts.push(Act::Probe {
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
            // Kept by the simulator across restarts (the vote file).
            O::Persist(_) => {}
            O::SendClaim { to, claim } => {
                if self.member(&to).is_some() {
                    self.acts.push(Act::SendClaim { to, claim });
                }
            }
            O::SendClaimReply { to, reply } => {
                if let Some(call) = self.votes.remove(&to) {
                    self.acts.push(Act::ClaimReply { call, reply });
                }
            }
            O::BecameEntry { term } => {
                self.acts.push(Act::BecameEntry(term));
                self.feed_cluster_facts();
                self.refresh_facts();
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
            O::ClaimStarted { .. }
            | O::ClaimFailed { .. }
            | O::SteppedDown { .. }
            | O::Following { .. }
            | O::Unfollowed { .. } => {}
            O::Conflict(_) => self.conflict = true,
            O::ConflictCleared => self.conflict = false,
        }
    }

    fn on_entry(&mut self, out: EntryOutput) {
        use EntryOutput as O;
        match out {
            O::Answer { ticket, response } => {
                if let Some(call) = self.answers.remove(&ticket) {
                    self.acts.push(Act::JoinAnswer {
                        call,
                        answer: JoinAnswer {
                            response,
                            cluster_id: self.facts.cluster_id.clone().unwrap_or_default(),
                        },
                    });
                }
            }
            O::AddNode {
                follower,
                token,
                ttl,
            } => self.acts.push(Act::AddNode {
                follower,
                token,
                ttl,
            }),
            O::RemoveNode { name, force } => self.acts.push(Act::RemoveNode { name, force }),
            O::RefreshFacts => self.refresh_facts(),
            O::Granted { follower, .. } => self.acts.push(Act::Granted { follower }),
            O::Joined { follower, .. } | O::JoinFailed { follower, .. } => {
                self.acts.push(Act::GrantClosed { follower })
            }
            O::Removed { .. } | O::RemoveFailed { .. } => self.refresh_facts(),
            O::Blocked(_) | O::Unblocked => {}
        }
    }

    fn on_follower(&mut self, out: FollowerOutput) {
        use FollowerOutput as O;
        match out {
            O::WaitReady => self.acts.push(Act::WaitReady),
            O::RequestJoin { entry } => {
                let ask = JoinAsk {
                    name: self.name.clone(),
                    addr: std::net::SocketAddr::new(self.ip, 7946),
                    preference: self.formation.role,
                    version: self.facts.version.clone(),
                };
                self.acts.push(Act::RequestJoin { entry, ask });
            }
            O::Join { url, role } => self.acts.push(Act::Join { url, role }),
            O::CheckJoined { entry, role } => self.acts.push(Act::CheckJoined {
                entry,
                joiner: Joiner {
                    name: self.name.clone(),
                    ip: self.ip,
                    role,
                },
            }),
            O::Reset => self.acts.push(Act::Reset),
            O::Report { entry, outcome } => {
                if self.member(&entry).is_some() {
                    self.acts.push(Act::Report { entry, outcome });
                }
            }
            O::LeaveOtherCluster => self.acts.push(Act::LeaveOther),
            O::Phase(p) => {
                if p == Phase::Joined
                    && let Some(c) = self.granted_cluster.take()
                {
                    self.remembered = Some(c);
                }
                self.phase = p;
            }
            O::Refused(_) | O::RefusalCleared => {}
        }
    }

    // ----- views of the state -----

    /// Whether the election made this node the entry point.
    pub fn is_entry(&self) -> bool {
        matches!(self.election.role(), election::Role::Entry { .. })
    }

    fn member(&self, id: &str) -> Option<&Member> {
        let view = self.view.as_ref()?;
        std::iter::once(&view.local)
            .chain(view.members.iter())
            .find(|m| m.id() == id)
    }

    fn local_view(&self) -> Option<&MemberView> {
        self.views.iter().find(|v| v.id == self.id)
    }

    /// The entry point this node follows (itself when it is the entry point).
    pub fn entry_member(&self) -> Option<&Member> {
        if self.is_entry() {
            return self.view.as_ref().map(|v| &v.local);
        }
        let (entry, _) = self.election.following()?;
        self.member(entry)
    }

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

    fn role_word(&self) -> &'static str {
        let joining = self.phase.is_joining();
        match self.local_view() {
            Some(v) => formation::node_role(self.is_entry(), joining, v).as_str(),
            None => "unclustered",
        }
    }

    fn publish_fields(&mut self) {
        let mut f = facts::local_fields(&self.facts, self.priority, true);
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
            self.acts.push(Act::SetFields(f));
        }
    }
}
