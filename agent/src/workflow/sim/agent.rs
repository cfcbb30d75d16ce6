//! One simulated agent's workflow: the production [`WorkflowMachine`] (the very routing the
//! tokio driver runs) on the simulator's clock; its effects are what the simulator carries
//! out on the twin or the simulated network.
//!
//! Owns only the translation: sim time to workflow time, the mesh's clock offset, which view
//! was fed last, and the vote and a worker's cluster id, kept as "on disk" across restarts.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::super::effects::Done;
use super::super::machine::{Effect, Input, MachineSetup, WorkflowMachine};
use super::super::rpc::JoinAnswer;
use super::CallRef;
use muster_core::election::{Claim, ClaimReply, Election, ElectionConfig, HardState, NodeId};
use muster_core::formation::{self, FormationConfig, JoinCoordinator, JoinRequest, Outcome, Phase};
use muster_core::membership::View;

/// What the simulator carries out for an agent: the machine's effects, with the caller of a
/// peer call named by the simulated call.
pub(super) type Act = Effect<CallRef>;

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

/// One agent's workflow.
pub(super) struct Agent {
    machine: WorkflowMachine<CallRef>,
    /// Workflow time: sim time minus this.
    start: Duration,
    /// Mesh time: sim time plus this (the mesh's clock has its own origin).
    mesh_offset: Duration,
    now: Duration,
    /// The view fed last.
    view: Option<View>,
    /// The vote, as persisted.
    pub(super) hard: HardState,
    /// The cluster id a worker remembers, as persisted.
    pub(super) remembered: Option<String>,
    acts: Vec<Act>,
}

impl Agent {
    /// Starts an agent at sim time `at`, its mesh clock `mesh_offset` ahead of sim time.
    pub fn new(setup: AgentSetup, at: Duration, mesh_offset: Duration) -> Self {
        let machine = WorkflowMachine::new(MachineSetup {
            node_id: setup.id,
            node_name: setup.name,
            // The simulated agents' peer port; only its address matters.
            advertise: SocketAddr::new(setup.ip, 7946),
            priority: setup.priority,
            has_route: true,
            election: setup.election,
            formation: setup.formation,
            hard: setup.hard.clone(),
            remembered: setup.remembered.clone(),
            seed: setup.seed,
        })
        .expect("simulated settings are valid");
        let mut agent = Agent {
            machine,
            start: at,
            mesh_offset,
            now: Duration::ZERO,
            view: None,
            hard: setup.hard,
            remembered: setup.remembered,
            acts: Vec::new(),
        };
        agent.feed(Input::Networks(setup.nets));
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

    /// The sim time of the workflow's next timer (the driver's select deadline).
    pub fn next_wake(&self) -> Duration {
        self.start + self.machine.next_deadline()
    }

    /// Whether the view fed last differs from `view`.
    pub fn view_differs(&self, view: &View) -> bool {
        self.view.as_ref() != Some(view)
    }

    /// The timer fired.
    pub fn on_tick(&mut self) {
        self.feed(Input::Tick);
    }

    /// The mesh published a new view.
    pub fn on_view(&mut self, view: View) {
        self.view = Some(view.clone());
        // Mesh time = sim time + mesh_offset; workflow time = sim time - start.
        let mesh_ahead =
            i128::try_from((self.mesh_offset + self.start).as_nanos()).unwrap_or(i128::MAX);
        self.feed(Input::View { view, mesh_ahead });
    }

    /// A peer's claim; the vote goes to `call`.
    pub fn on_claim(&mut self, from: NodeId, claim: Claim, call: CallRef) {
        self.feed(Input::Claim {
            from,
            claim,
            caller: call,
        });
    }

    /// A follower's join request; the answer goes to `call`.
    pub fn on_join_request(&mut self, req: JoinRequest, call: CallRef) {
        self.feed(Input::Join { req, caller: call });
    }

    /// A follower's report.
    pub fn on_report(&mut self, from: NodeId, outcome: Outcome) {
        self.feed(Input::Report { from, outcome });
    }

    /// An effect of this agent finished.
    pub fn on_done(&mut self, done: Done) {
        self.feed(Input::Done(done));
    }

    /// The answer to our claim sent to `from` (`None`: it did not answer).
    pub fn on_claim_answer(&mut self, from: NodeId, reply: Option<ClaimReply>) {
        self.on_done(Done::ClaimAnswer { from, reply });
    }

    /// The entry point's answer to our join request.
    pub fn on_join_answer(&mut self, from: NodeId, result: Result<JoinAnswer, formation::Failure>) {
        self.on_done(Done::JoinAnswer { from, result });
    }

    /// One input to the machine; its effects become acts.
    fn feed(&mut self, input: Input<CallRef>) {
        self.machine.handle(self.now, input);
        for effect in self.machine.drain_effects() {
            self.translate(effect);
        }
    }

    /// Keeps what the machine persists ("on disk", across restarts); everything else goes to
    /// the simulator.
    fn translate(&mut self, effect: Act) {
        match effect {
            Effect::PersistVote(hs) => self.hard = hs,
            Effect::RememberCluster(id) => self.remembered = Some(id),
            other => self.acts.push(other),
        }
    }

    /// The election core.
    pub fn election(&self) -> &Election {
        self.machine.election()
    }

    /// The join coordinator.
    pub fn coordinator(&self) -> &JoinCoordinator {
        self.machine.coordinator()
    }

    /// The follower's phase.
    pub fn phase(&self) -> &Phase {
        self.machine.phase()
    }

    /// Whether the election reports two clusters among the members.
    pub fn conflict(&self) -> bool {
        self.machine.reports_conflict()
    }

    /// The callers waiting on this agent for a vote or a join answer.
    pub fn callers(&self) -> Vec<CallRef> {
        self.machine.callers().copied().collect()
    }
}
