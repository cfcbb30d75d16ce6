//! A deterministic simulation of whole agents: membership, election and formation together,
//! against the in-memory twin of microk8s, on a virtual clock.
//!
//! Owns: N simulated machines, each with its mesh core ([`Membership`]), its workflow (the
//! election, the join coordinator and the follower, routed as `driver.rs` routes them: see
//! `agent.rs`) and one host of a shared [`MemoryCluster`]; an in-memory network with seeded
//! latency, loss and partitions that carries both the membership messages and the workflow's
//! peer calls (claims, join requests and answers, reports), the latter through the same
//! protobuf conversions as the gRPC clients; the microk8s commands, run against the twin at
//! the end of a simulated duration (`twin.rs`) so that commands can overlap; faults (crashes
//! and restarts, partitions, loss, silent join failures: `ops.rs`); and the invariant checks
//! after every step (`check.rs`, one function per invariant). Everything random comes from
//! one [`Rng`] seeded by [`SimConfig::seed`]. Test-only.
//!
//! Does not own any decision: the cores decide, the workflow's pure helpers (`facts`,
//! `outcome`, `rpc`) convert, and the simulator only delivers.
//!
//! # Reading a failure
//! A [`SimFailure`] prints the seed, the simulated time, the broken invariant and the last
//! events of the run (grants, joins, entry points, crashes). Rerun one seed with
//! `MUSTER_SIM_SEED=<seed> cargo test -p muster --lib workflow::sim`; the same seed replays
//! the same run exactly.

use std::collections::{BTreeMap, HashMap, VecDeque};

use muster_core::agenda::Agenda;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use muster_core::election::{ElectionConfig, HardState, NodeId, Term};
use muster_core::formation::FormationConfig;
use muster_core::membership::{Input, Membership, MembershipConfig, Message, NodeMeta, Output};
use muster_core::rng::Rng;
use muster_proto::v1 as pb;

use self::agent::{Act, Agent, AgentSetup};
use super::machine::{Effect, Notice};
use crate::microk8s::{FakeMicrok8s, MemoryCluster};

mod agent;
mod check;
mod ops;
mod twin;

/// Parameters of one simulation.
#[derive(Clone, Debug)]
pub(crate) struct SimConfig {
    /// Number of machines.
    pub nodes: usize,
    /// Seed of everything random in the run.
    pub seed: u64,
    /// Mesh tunables of every node.
    pub membership: MembershipConfig,
    /// Election tunables of every node.
    pub election: ElectionConfig,
    /// Formation tunables of every node.
    pub formation: FormationConfig,
    /// One-way latency range of the network.
    pub latency: (Duration, Duration),
    /// Probability that a message (or a peer call, or its answer) is lost.
    pub loss: f64,
    /// How long `microk8s join` runs.
    pub join_time: (Duration, Duration),
    /// How long the other microk8s commands run.
    pub command_time: (Duration, Duration),
    /// Every node discovers every other within this (mDNS).
    pub discovery_within: Duration,
}

impl SimConfig {
    /// A LAN of `nodes` machines: 0.2–2 ms latency, no loss, joins of 0.3–1.5 s, and the
    /// formation timeouts shortened so that a run stays short (verification 20 s, report
    /// 60 s, retries from 1 s up to 20 s).
    pub fn new(nodes: usize, seed: u64) -> Self {
        SimConfig {
            nodes,
            seed,
            membership: MembershipConfig::default(),
            election: ElectionConfig::default(),
            formation: FormationConfig {
                verify_timeout: Duration::from_secs(20),
                join_timeout: Duration::from_secs(60),
                join_retry: Duration::from_secs(1),
                join_retry_max: Duration::from_secs(20),
                ..FormationConfig::default()
            },
            latency: (Duration::from_micros(200), Duration::from_millis(2)),
            loss: 0.0,
            join_time: (Duration::from_millis(300), Duration::from_millis(1500)),
            command_time: (Duration::from_millis(20), Duration::from_millis(300)),
            discovery_within: Duration::from_secs(1),
        }
    }
}

/// How long a peer call waits for its answer (`rpc::RPC_TIMEOUT`).
const RPC_TIMEOUT: Duration = super::rpc::RPC_TIMEOUT;

/// A broken invariant or a run that did not converge, with what is needed to replay it.
#[derive(Clone, Debug)]
pub(crate) struct SimFailure {
    /// The run's seed.
    pub seed: u64,
    /// Simulated time of the failure.
    pub at: Duration,
    /// What broke.
    pub what: String,
    /// The last notable events, oldest first.
    pub trace: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "workflow simulation seed {} at {:?}: {}",
            self.seed, self.at, self.what
        )?;
        writeln!(
            f,
            "rerun: MUSTER_SIM_SEED={} cargo test -p muster --lib workflow::sim",
            self.seed
        )?;
        writeln!(f, "last events:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SimFailure {}

/// Who waits for the answer of a peer call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CallRef {
    /// The calling node.
    node: usize,
    /// Its life (a restarted node does not get its old answers).
    epoch: u32,
    /// The call.
    id: u64,
}

/// What a caller waits for.
#[derive(Clone, Debug)]
enum Pending {
    /// The vote of `to`.
    Claim { to: NodeId },
    /// The join answer of `entry`.
    Join { entry: NodeId },
}

/// A peer call on the wire.
#[derive(Debug)]
enum Body {
    Claim(pb::ClaimRequest),
    Join(pb::JoinRequestMsg),
    Report(pb::JoinReportMsg),
}

/// An answer on the wire.
#[derive(Debug)]
enum Reply {
    Claim(pb::ClaimResponse),
    Join(pb::JoinResponseMsg),
    /// The call failed: refused or reset (`unreachable`), or timed out.
    Failed {
        detail: &'static str,
    },
}

enum Event {
    MeshDeliver {
        to: usize,
        msg: Message,
    },
    MeshFeed {
        node: usize,
        epoch: u32,
        input: Input,
    },
    MeshWake {
        node: usize,
        epoch: u32,
    },
    WfWake {
        node: usize,
        epoch: u32,
    },
    /// A microk8s command of node `node` ends now: it runs against the twin.
    Command {
        node: usize,
        epoch: u32,
        act: Act,
    },
    /// A peer call reaches `to`.
    Arrive {
        to: usize,
        from: CallRef,
        body: Body,
    },
    /// An answer (or the failure) of a call reaches its caller.
    Answer {
        call: CallRef,
        reply: Reply,
    },
}

/// One simulated machine.
struct Node {
    id: NodeId,
    name: String,
    ip: IpAddr,
    meta: NodeMeta,
    fake: FakeMicrok8s,
    /// The mesh clock is sim time plus this.
    mesh_offset: Duration,
    /// Bumped on every crash and boot: events of an earlier life are dropped.
    epoch: u32,
    boots: u64,
    mesh: Option<Membership>,
    mesh_wake: Option<Duration>,
    agent: Option<Agent>,
    wf_wake: Option<Duration>,
    /// Calls this node waits on.
    pending: HashMap<u64, Pending>,
    /// The vote on disk.
    hard: HardState,
    /// The cluster id file of a worker.
    remembered: Option<String>,
}

/// A `microk8s join` as the twin sees it: from its start to its end.
#[derive(Clone, Debug)]
pub(super) struct JoinWindow {
    /// The joining host.
    joiner: String,
    /// The hosts of the cluster it joins, at its start.
    cluster: Vec<String>,
    from: Duration,
    until: Duration,
}

/// The simulated world.
pub(crate) struct Sim {
    cfg: SimConfig,
    now: Duration,
    rng: Rng,
    nodes: Vec<Node>,
    by_id: HashMap<NodeId, usize>,
    twin: MemoryCluster,
    queue: Agenda<Event>,
    next_call: u64,
    /// Partition groups; `None` when the network is whole.
    groups: Option<Vec<u32>>,
    /// Every confirmed entry point: term → node.
    entries: BTreeMap<Term, usize>,
    /// Open grants: coordinator node → follower granted, until verified or failed.
    grants: BTreeMap<usize, NodeId>,
    /// Joins the twin ran or runs.
    joins: Vec<JoinWindow>,
    trace: VecDeque<String>,
}

/// How many notable events a failure shows.
const TRACE_LEN: usize = 40;

/// The nodes' address of node `i`.
fn node_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250 + 1) as u8))
}

impl Sim {
    /// Creates `cfg.nodes` running machines with fresh standalone microk8s, and schedules their
    /// discovery of each other within `cfg.discovery_within`.
    pub fn new(cfg: SimConfig) -> Result<Self, SimFailure> {
        let mut rng = Rng::new(cfg.seed);
        let twin = MemoryCluster::new();
        let mut nodes = Vec::with_capacity(cfg.nodes);
        let mut by_id = HashMap::new();
        for i in 0..cfg.nodes {
            let id = format!("n{i:04}");
            let name = format!("host-{i}");
            let ip = node_ip(i);
            let meta = NodeMeta {
                id: id.clone(),
                name: name.clone(),
                addr: format!("{ip}:7946"),
                addresses: vec![ip.to_string()],
                version: "0.1.0".to_owned(),
                ..NodeMeta::default()
            };
            by_id.insert(id.clone(), i);
            nodes.push(Node {
                fake: twin.add_host(&name, ip),
                id,
                name,
                ip,
                meta,
                mesh_offset: Duration::from_secs(rng.below(1_000_000)),
                epoch: 0,
                boots: 0,
                mesh: None,
                mesh_wake: None,
                agent: None,
                wf_wake: None,
                pending: HashMap::new(),
                hard: HardState::default(),
                remembered: None,
            });
        }
        let mut sim = Sim {
            cfg,
            now: Duration::ZERO,
            rng,
            nodes,
            by_id,
            twin,
            queue: Agenda::new(),
            next_call: 0,
            groups: None,
            entries: BTreeMap::new(),
            grants: BTreeMap::new(),
            joins: Vec::new(),
            trace: VecDeque::new(),
        };
        let all: Vec<usize> = (0..sim.nodes.len()).collect();
        for i in 0..sim.nodes.len() {
            sim.boot(i)?;
        }
        for i in 0..sim.nodes.len() {
            sim.discover_all(i, &all);
        }
        Ok(sim)
    }

    /// Boots node `i`: a fresh mesh and workflow, the vote and cluster id from "disk".
    fn boot(&mut self, i: usize) -> Result<(), SimFailure> {
        let seed = self.rng.next_u64();
        let now = self.now;
        let n = &mut self.nodes[i];
        n.epoch += 1;
        n.boots += 1;
        let mesh = Membership::new(
            self.cfg.membership.clone(),
            n.meta.clone(),
            seed,
            now + n.mesh_offset,
        )
        .expect("simulated mesh settings are valid")
        // The mesh driver uses the wall clock's seconds; a restart must count higher.
        .with_incarnation(now.as_secs() + n.boots);
        let setup = AgentSetup {
            id: n.id.clone(),
            name: n.name.clone(),
            ip: n.ip,
            nets: vec![(n.ip, 16)],
            priority: 100,
            election: self.cfg.election.clone(),
            formation: self.cfg.formation.clone(),
            hard: n.hard.clone(),
            remembered: n.remembered.clone(),
            seed: seed ^ 0x5eed,
        };
        n.mesh = Some(mesh);
        n.agent = Some(Agent::new(setup, now, n.mesh_offset));
        n.mesh_wake = None;
        n.wf_wake = None;
        n.pending.clear();
        let name = n.name.clone();
        self.note(format!("{name} boots"));
        self.pump(i)
    }

    /// Node `i` discovers each of `peers` within `cfg.discovery_within` (mDNS).
    fn discover_all(&mut self, i: usize, peers: &[usize]) {
        for &j in peers.iter().filter(|&&j| j != i) {
            let at = self.now
                + self
                    .rng
                    .duration_between(Duration::ZERO, self.cfg.discovery_within);
            let input = Input::Discovered {
                id: self.nodes[j].id.clone(),
                addr: self.nodes[j].meta.addr.clone(),
            };
            let epoch = self.nodes[i].epoch;
            self.push(
                at,
                Event::MeshFeed {
                    node: i,
                    epoch,
                    input,
                },
            );
        }
    }

    fn push(&mut self, at: Duration, event: Event) {
        self.queue.push(at, event);
    }

    /// Records a notable event for failure reports.
    fn note(&mut self, what: String) {
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:?} {what}", self.now));
    }

    /// A failure at the current time.
    pub(super) fn fail(&self, what: String) -> SimFailure {
        SimFailure {
            seed: self.cfg.seed,
            at: self.now,
            what,
            trace: self.trace.iter().cloned().collect(),
        }
    }

    /// Runs until sim time `until`, checking the invariants after every step.
    pub fn run_until(&mut self, until: Duration) -> Result<(), SimFailure> {
        while let Some(at) = self.queue.next_at() {
            if at > until {
                break;
            }
            self.step()?;
        }
        self.advance_to(until);
        Ok(())
    }

    /// Runs for `d` more sim time.
    pub fn run_for(&mut self, d: Duration) -> Result<(), SimFailure> {
        self.run_until(self.now + d)
    }

    /// Runs until `done` holds (checked every 100 ms); fails with `done`'s last complaint after
    /// `limit`. Returns the time taken.
    pub fn run_until_ok(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> Result<(), String>,
    ) -> Result<Duration, SimFailure> {
        let start = self.now;
        loop {
            let why = match done(self) {
                Ok(()) => return Ok(self.now - start),
                Err(why) => why,
            };
            if self.now >= start + limit {
                return Err(self.fail(format!("not reached within {limit:?}: {why}")));
            }
            self.run_for(Duration::from_millis(100))?;
        }
    }

    fn advance_to(&mut self, t: Duration) {
        if t > self.now {
            self.twin.advance(t - self.now);
            self.now = t;
        }
    }

    fn step(&mut self) -> Result<(), SimFailure> {
        let Some((at, event)) = self.queue.pop() else {
            return Ok(());
        };
        self.advance_to(at);
        let node = match event {
            Event::MeshDeliver { to, msg } => {
                let n = &mut self.nodes[to];
                let Some(m) = n.mesh.as_mut() else {
                    return Ok(());
                };
                m.handle(self.now + n.mesh_offset, Input::Message(msg));
                to
            }
            Event::MeshFeed { node, epoch, input } => {
                let n = &mut self.nodes[node];
                let Some(m) = n.mesh.as_mut().filter(|_| n.epoch == epoch) else {
                    return Ok(());
                };
                m.handle(self.now + n.mesh_offset, input);
                node
            }
            Event::MeshWake { node, epoch } => {
                let n = &mut self.nodes[node];
                if n.epoch != epoch || n.mesh_wake != Some(at) {
                    return Ok(());
                }
                n.mesh_wake = None;
                let Some(m) = n.mesh.as_mut() else {
                    return Ok(());
                };
                m.tick(self.now + n.mesh_offset);
                node
            }
            Event::WfWake { node, epoch } => {
                let n = &mut self.nodes[node];
                if n.epoch != epoch || n.wf_wake != Some(at) {
                    return Ok(());
                }
                n.wf_wake = None;
                let Some(a) = n.agent.as_mut() else {
                    return Ok(());
                };
                a.at(self.now);
                a.on_tick();
                node
            }
            Event::Command { node, epoch, act } => {
                if self.nodes[node].epoch != epoch || self.nodes[node].agent.is_none() {
                    return Ok(());
                }
                self.run_command(node, act)?;
                node
            }
            Event::Arrive { to, from, body } => {
                if !self.arrive(to, from, body) {
                    return Ok(());
                }
                to
            }
            Event::Answer { call, reply } => {
                if !self.answer_arrives(call, reply) {
                    return Ok(());
                }
                call.node
            }
        };
        self.pump(node)?;
        self.check_every_step()
    }

    /// Carries out everything node `i`'s mesh and workflow produced, until it is quiet, and
    /// reschedules both timers. A change of the gossiped fields goes to the mesh at once,
    /// whose new view goes back to the workflow (the driver's two `watch` channels).
    fn pump(&mut self, i: usize) -> Result<(), SimFailure> {
        for _ in 0..16 {
            let now = self.now;
            let Some(mesh) = self.nodes[i].mesh.as_mut() else {
                return Ok(());
            };
            let outputs = mesh.drain_outputs();
            let view = mesh.view();
            for out in outputs {
                match out {
                    Output::Send { to, msg, .. } => self.transmit(i, &to, msg),
                    Output::Event(_) => {}
                    Output::Rejected { from, reason, .. } => {
                        return Err(self.fail(format!(
                            "{} rejected a message from {from}: {reason}",
                            self.nodes[i].id
                        )));
                    }
                }
            }
            let Some(agent) = self.nodes[i].agent.as_mut() else {
                return Ok(());
            };
            agent.at(now);
            if agent.view_differs(&view) {
                agent.on_view(view);
            }
            let acts = agent.drain_acts();
            let hard = agent.hard.clone();
            let remembered = agent.remembered.clone();
            self.nodes[i].hard = hard;
            self.nodes[i].remembered = remembered;
            let mut republished = false;
            for act in acts {
                republished |= self.carry_out(i, act)?;
            }
            if !republished {
                break;
            }
        }
        self.schedule(i);
        Ok(())
    }

    /// Schedules node `i`'s mesh and workflow timers.
    fn schedule(&mut self, i: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let epoch = n.epoch;
        let mut wakes = Vec::new();
        if let Some(m) = n.mesh.as_ref()
            && let Some(deadline) = m.next_deadline()
        {
            let at = deadline.saturating_sub(n.mesh_offset).max(now);
            if n.mesh_wake != Some(at) {
                n.mesh_wake = Some(at);
                wakes.push((at, Event::MeshWake { node: i, epoch }));
            }
        }
        if let Some(a) = n.agent.as_ref() {
            let at = a.next_wake().max(now);
            if n.wf_wake != Some(at) {
                n.wf_wake = Some(at);
                wakes.push((at, Event::WfWake { node: i, epoch }));
            }
        }
        for (at, event) in wakes {
            self.push(at, event);
        }
    }

    /// Carries out one act of node `i`; true when it changed the node's gossiped fields.
    fn carry_out(&mut self, i: usize, act: Act) -> Result<bool, SimFailure> {
        match act {
            Effect::SetFields(fields) => return Ok(self.set_fields(i, fields)),
            Effect::SendClaim { to, claim, .. } => {
                let from = self.nodes[i].id.clone();
                let msg = super::rpc::claim_to_pb("sim", &from, &claim);
                self.call(i, &to, Body::Claim(msg), Pending::Claim { to: to.clone() });
            }
            Effect::Vote {
                caller: call,
                reply,
            } => {
                let reply = Reply::Claim(super::rpc::reply_to_pb(&reply));
                self.answer(i, call, reply);
            }
            Effect::RequestJoin { entry, ask, .. } => {
                let msg = pb::JoinRequestMsg {
                    cluster: "sim".to_owned(),
                    from: self.nodes[i].id.clone(),
                    name: ask.name.clone(),
                    addr: ask.addr.to_string(),
                    preference: super::rpc::preference_word(ask.preference).to_owned(),
                    version: ask.version.clone().unwrap_or_default(),
                };
                let pending = Pending::Join {
                    entry: entry.clone(),
                };
                self.call(i, &entry, Body::Join(msg), pending);
            }
            Effect::Abandon { caller: call } => {
                // The machine dropped the caller (a newer claim superseded it): its call fails.
                self.answer(
                    i,
                    call,
                    Reply::Failed {
                        detail: "superseded",
                    },
                );
            }
            Effect::Answer {
                caller: call,
                answer,
            } => {
                let msg = super::rpc::response_to_pb(&answer.response, &answer.cluster_id);
                self.answer(i, call, Reply::Join(msg));
            }
            Effect::Report { entry, outcome, .. } => {
                let msg = pb::JoinReportMsg {
                    cluster: "sim".to_owned(),
                    from: self.nodes[i].id.clone(),
                    ok: outcome.is_ok(),
                    detail: match &outcome {
                        Ok(()) => "microk8s join exited 0".to_owned(),
                        Err(f) => f.detail.clone(),
                    },
                };
                self.one_way(i, &entry, Body::Report(msg));
            }
            Effect::Notice(Notice::BecameEntry(term)) => {
                let name = self.nodes[i].name.clone();
                self.note(format!("{name} became entry point of term {term}"));
                self.check_one_entry_per_term(i, term)?;
                self.entries.entry(term).or_insert(i);
            }
            Effect::Notice(Notice::Granted { follower, .. }) => {
                let name = self.nodes[i].name.clone();
                self.note(format!("{name} granted {follower} a join"));
                self.grants.insert(i, follower);
            }
            Effect::Notice(
                Notice::Joined { follower, .. } | Notice::JoinFailed { follower, .. },
            ) => {
                let name = self.nodes[i].name.clone();
                self.note(format!("{name} closed the join of {follower}"));
                self.grants.remove(&i);
            }
            // The journal is not kept; `muster leave` is not simulated.
            Effect::Notice(_) | Effect::LeaveCluster { .. } | Effect::LeaveReply { .. } => {}
            command => self.start_command(i, command)?,
        }
        Ok(false)
    }

    /// Merges `fields` into node `i`'s metadata, as the mesh driver does; true if changed.
    fn set_fields(&mut self, i: usize, fields: BTreeMap<String, String>) -> bool {
        let now = self.now;
        let n = &mut self.nodes[i];
        let Some(m) = n.mesh.as_mut() else {
            return false;
        };
        let mut meta = (*m.local().meta).clone();
        let before = meta.fields.clone();
        muster_core::membership::fields::merge(&mut meta.fields, fields);
        if meta.fields == before {
            return false;
        }
        m.update_local_meta(meta, now + n.mesh_offset)
            .expect("simulated metadata is valid");
        true
    }

    // ----- the network -----

    /// Whether `a` can reach `b` now: `Some(latency)`, or `None` when cut or lost.
    fn link(&mut self, a: usize, b: usize) -> Option<Duration> {
        let (lo, hi) = self.cfg.latency;
        let latency = self.rng.duration_between(lo, hi);
        let cut = self.groups.as_ref().is_some_and(|g| g[a] != g[b]);
        (!cut && !self.rng.chance(self.cfg.loss)).then_some(latency)
    }

    fn is_up(&self, i: usize) -> bool {
        self.nodes[i].agent.is_some()
    }

    fn transmit(&mut self, from: usize, to_id: &str, msg: Message) {
        let Some(&to) = self.by_id.get(to_id) else {
            return;
        };
        let Some(latency) = self.link(from, to) else {
            return;
        };
        if !self.is_up(to) {
            // Connection refused, as after a crash.
            let epoch = self.nodes[from].epoch;
            let input = Input::SendFailed {
                to: to_id.to_owned(),
            };
            self.push(
                self.now + latency * 2,
                Event::MeshFeed {
                    node: from,
                    epoch,
                    input,
                },
            );
            return;
        }
        self.push(self.now + latency, Event::MeshDeliver { to, msg });
    }

    /// Starts a call from `from` to the member `to_id`; its answer or failure comes back as an
    /// [`Event::Answer`], at the latest after [`RPC_TIMEOUT`].
    fn call(&mut self, from: usize, to_id: &str, body: Body, pending: Pending) {
        self.next_call += 1;
        let call = CallRef {
            node: from,
            epoch: self.nodes[from].epoch,
            id: self.next_call,
        };
        self.nodes[from].pending.insert(call.id, pending);
        let timeout = Reply::Failed {
            detail: "deadline exceeded",
        };
        self.push(
            self.now + RPC_TIMEOUT,
            Event::Answer {
                call,
                reply: timeout,
            },
        );
        let Some(&to) = self.by_id.get(to_id) else {
            return;
        };
        if let Some(latency) = self.link(from, to) {
            self.push(
                self.now + latency,
                Event::Arrive {
                    to,
                    from: call,
                    body,
                },
            );
        }
    }

    /// A call that expects no answer (a report).
    fn one_way(&mut self, from: usize, to_id: &str, body: Body) {
        let from = CallRef {
            node: from,
            epoch: self.nodes[from].epoch,
            id: 0,
        };
        if let Some(&to) = self.by_id.get(to_id)
            && let Some(latency) = self.link(from.node, to)
        {
            self.push(self.now + latency, Event::Arrive { to, from, body });
        }
    }

    /// Node `from` answers `call`.
    fn answer(&mut self, from: usize, call: CallRef, reply: Reply) {
        if let Some(latency) = self.link(from, call.node) {
            self.push(self.now + latency, Event::Answer { call, reply });
        }
    }

    /// A call reaches node `to`; false when nobody is there to take it.
    fn arrive(&mut self, to: usize, from: CallRef, body: Body) -> bool {
        let now = self.now;
        let caller = self.nodes[from.node].id.clone();
        let caller_ip = self.nodes[from.node].ip;
        let own_ip = self.nodes[to].ip;
        let Some(agent) = self.nodes[to].agent.as_mut() else {
            // Connection refused.
            if from.id != 0 {
                self.answer(
                    to,
                    from,
                    Reply::Failed {
                        detail: "connection refused",
                    },
                );
            }
            return false;
        };
        agent.at(now);
        match body {
            Body::Claim(req) => {
                let claim = super::rpc::claim_from_pb(&req);
                agent.on_claim(req.from, claim, from);
            }
            Body::Join(req) => {
                // `api::peer` takes the follower's address from the connection and the
                // entry's own from the address the request reached.
                let join = muster_core::formation::JoinRequest {
                    follower: req.from,
                    name: req.name,
                    addr: caller_ip,
                    met_on: Some(own_ip),
                    preference: super::rpc::preference_from(&req.preference),
                    version: Some(req.version).filter(|v| !v.is_empty()),
                };
                agent.on_join_request(join, from);
            }
            Body::Report(r) => {
                let outcome = super::rpc::report_from_pb(r.ok, r.detail);
                agent.on_report(caller, outcome);
            }
        }
        true
    }

    /// An answer reaches its caller; false when the caller no longer waits for it.
    fn answer_arrives(&mut self, call: CallRef, reply: Reply) -> bool {
        let now = self.now;
        let n = &mut self.nodes[call.node];
        if n.epoch != call.epoch {
            return false;
        }
        let Some(pending) = n.pending.remove(&call.id) else {
            return false;
        };
        let Some(agent) = n.agent.as_mut() else {
            return false;
        };
        agent.at(now);
        match (pending, reply) {
            (Pending::Claim { to }, Reply::Claim(r)) => {
                agent.on_claim_answer(to, Some(super::rpc::reply_from_pb(r)));
            }
            (Pending::Claim { to }, _) => agent.on_claim_answer(to, None),
            (Pending::Join { entry }, Reply::Join(msg)) => {
                let result = super::rpc::response_from_pb(msg)
                    .map_err(|e| super::outcome::rpc_failure(false, e.to_string()));
                agent.on_join_answer(entry, result);
            }
            (Pending::Join { entry }, Reply::Failed { detail }) => {
                agent.on_join_answer(entry, Err(super::outcome::rpc_failure(true, detail)));
            }
            (Pending::Join { entry }, Reply::Claim(_)) => {
                agent.on_join_answer(entry, Err(super::outcome::rpc_failure(false, "claim")));
            }
        }
        true
    }
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod tests;
