//! A deterministic simulation of many election cores on a virtual clock, with message loss,
//! latency, crashes, partitions and a crude microk8s formation model; invariants are checked
//! after every step and a failure names its seed.
//!
//! Owns: the simulated world ([`Sim`]), its configuration, the fault script and the invariant
//! checks. Test-only. Files: this one (world, faults, network, membership model), `check.rs`
//! (carrying out outputs, one function per invariant, the formation model), `sim_tests.rs`
//! (the scenarios).
//! Does not own: the election logic under test.
//!
//! # Model
//! - **Membership**: node `i` hears from `j` every step while both are up and on the same side
//!   of the partition. A member not heard from for `detect / 2` is suspect, for `detect` dead
//!   (since the last contact plus `detect`). A member's gossiped metadata (microk8s facts,
//!   entry term) reaches `i` with probability `gossip_p` per step while reachable. In the
//!   "separate networks" mode a node knows only its own group until it first hears from
//!   another node.
//! - **Network**: claims and replies arrive after 1..=`max_latency_steps` steps, are lost with
//!   probability `loss`, and are dropped when sender and receiver are cut apart at sending or
//!   delivery time, or the receiver is down.
//! - **Crash/restart**: a crashed node does nothing; on restart it gets a fresh core restored
//!   from its persisted [`HardState`] and announces nothing until that core says so.
//! - **Formation**: every `join_every`, each confirmed entry point with a majority up adds the
//!   lowest reachable standalone node to its microk8s cluster, as a control plane while the
//!   cluster has fewer than `control_planes` of them, else as a worker. Nodes of other
//!   multi-node clusters are never moved.
//!
//! # Invariants checked after every step
//! - at most one entry point per term (per (term, electorate) in the separate-networks and
//!   forgetting modes, see the `election` module doc);
//! - a node follows at most one entry point at a time, and one per term;
//! - a worker of a multi-node cluster never becomes an entry point.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use super::claim::{Claim, ClaimReply, HardState};
use super::config::ElectionConfig;
use super::machine::Election;
use super::msg::{Input, Role};
use super::view::{Liveness, MemberView, Term};
use crate::rng::Rng;

mod check;

/// The simulated world's parameters.
#[derive(Clone, Debug)]
pub(super) struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    pub step: Duration,
    pub loss: f64,
    pub max_latency_steps: u64,
    pub detect: Duration,
    pub gossip_p: f64,
    pub election: ElectionConfig,
    /// Formation model period; `None` leaves every node standalone.
    pub join_every: Option<Duration>,
    pub control_planes: usize,
    /// Separate networks: node `i` initially knows only nodes of group `groups[i]`.
    pub groups: Option<Vec<u8>>,
}

impl SimConfig {
    /// A small LAN with the usual timings, no loss and no formation.
    pub fn new(seed: u64, nodes: usize) -> Self {
        SimConfig {
            seed,
            nodes,
            step: Duration::from_millis(100),
            loss: 0.0,
            max_latency_steps: 2,
            detect: Duration::from_millis(1500),
            gossip_p: 0.5,
            election: ElectionConfig {
                settle: Duration::from_secs(2),
                discovery: Duration::from_millis(1500),
                claim_timeout: Duration::from_millis(1500),
                claim_retry: Duration::from_millis(500),
                claim_retry_max: Duration::from_secs(5),
                forget_dead_after: None,
            },
            join_every: None,
            control_planes: 3,
            groups: None,
        }
    }
}

/// A scripted change to the world.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Fault {
    Crash(usize),
    Restart(usize),
    /// Side of every node; nodes on different sides cannot talk.
    Partition(Vec<u8>),
    Heal,
    Loss(f64),
}

/// A violated invariant or a missed convergence, with everything needed to replay it.
#[derive(Debug)]
pub(super) struct SimFailure {
    pub seed: u64,
    pub at: Duration,
    pub message: String,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation seed {} at {:?}: {}",
            self.seed, self.at, self.message
        )
    }
}

/// What one node gossips about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Meta {
    cluster_id: String,
    cluster_size: u32,
    control_plane: bool,
    entry_term: Option<Term>,
    followed: Option<(String, Term)>,
}

struct Node {
    id: String,
    up: bool,
    core: Election,
    hard: HardState,
    meta: Meta,
    /// Bumped on every change of `meta`, so that copies compare by number.
    version: u64,
    following: Option<(usize, Term)>,
    /// Electorate digest of each claim started, by term.
    claim_digest: BTreeMap<Term, u64>,
}

enum Body {
    Claim(Claim),
    Reply(ClaimReply),
}

struct Msg {
    due: u64,
    from: usize,
    to: usize,
    body: Body,
}

/// Counters for the test report.
#[derive(Clone, Debug, Default)]
pub(super) struct Stats {
    pub claims_started: u64,
    pub entries: u64,
    pub messages: u64,
    pub dropped: u64,
    pub joins: u64,
}

/// The simulated world.
pub(super) struct Sim {
    cfg: SimConfig,
    rng: Rng,
    now: Duration,
    step_no: u64,
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
    side: Vec<u8>,
    known: Vec<Vec<bool>>,
    contact: Vec<Vec<Duration>>,
    copies: Vec<Vec<Option<(u64, Meta)>>>,
    seen_status: Vec<Vec<u8>>,
    dirty: Vec<bool>,
    queue: Vec<Msg>,
    script: Vec<(Duration, Fault)>,
    /// Every confirmed (term -> [(node, electorate digest)]).
    entries: BTreeMap<Term, Vec<(usize, u64)>>,
    /// Per node: term -> entry followed in that term.
    followed: Vec<BTreeMap<Term, usize>>,
    strict: bool,
    last_join: Duration,
    pub stats: Stats,
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Self {
        let n = cfg.nodes;
        let mut rng = Rng::new(cfg.seed);
        let mut nodes = Vec::with_capacity(n);
        let mut index = HashMap::new();
        for i in 0..n {
            let id = format!("n{i:04}");
            index.insert(id.clone(), i);
            let core = Election::new(
                id.clone(),
                cfg.election.clone(),
                rng.next_u64(),
                Duration::ZERO,
            )
            .expect("valid election config");
            nodes.push(Node {
                meta: Meta {
                    cluster_id: format!("ca-{id}"),
                    cluster_size: 1,
                    control_plane: true,
                    entry_term: None,
                    followed: None,
                },
                id,
                version: 0,
                up: true,
                core,
                hard: HardState::default(),
                following: None,
                claim_digest: BTreeMap::new(),
            });
        }
        let known: Vec<Vec<bool>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| cfg.groups.as_ref().is_none_or(|g| g[i] == g[j]))
                    .collect()
            })
            .collect();
        let copies = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| known[i][j].then(|| (0, nodes[j].meta.clone())))
                    .collect()
            })
            .collect();
        let strict = cfg.groups.is_none() && cfg.election.forget_dead_after.is_none();
        Sim {
            side: cfg.groups.clone().unwrap_or_else(|| vec![0; n]),
            rng,
            now: Duration::ZERO,
            step_no: 0,
            index,
            known,
            contact: vec![vec![Duration::ZERO; n]; n],
            copies,
            seen_status: vec![vec![0; n]; n],
            dirty: vec![true; n],
            queue: Vec::new(),
            script: Vec::new(),
            entries: BTreeMap::new(),
            followed: vec![BTreeMap::new(); n],
            strict,
            last_join: Duration::ZERO,
            stats: Stats::default(),
            nodes,
            cfg,
        }
    }

    /// Schedules `fault` at `at`.
    pub fn at(&mut self, at: Duration, fault: Fault) {
        self.script.push((at, fault));
        self.script.sort_by_key(|(t, _)| *t);
    }

    pub fn now(&self) -> Duration {
        self.now
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Draws a random fault schedule in `[from, until)`: crashes with later restarts,
    /// partitions into two or three sides with later heals, and loss changes.
    pub fn random_faults(&mut self, from: Duration, until: Duration, events: usize) {
        let n = self.nodes.len();
        let span = until.saturating_sub(from);
        for _ in 0..events {
            let at = from + self.rng.duration_between(Duration::ZERO, span);
            let back = at
                + self
                    .rng
                    .duration_between(Duration::from_secs(1), Duration::from_secs(8));
            match self.rng.below(4) {
                0 | 1 => {
                    let victim = self.rng.below(n as u64) as usize;
                    self.at(at, Fault::Crash(victim));
                    self.at(back.min(until), Fault::Restart(victim));
                }
                2 => {
                    let sides = 2 + self.rng.below(2);
                    let split: Vec<u8> = (0..n).map(|_| self.rng.below(sides) as u8).collect();
                    self.at(at, Fault::Partition(split));
                    self.at(back.min(until), Fault::Heal);
                }
                _ => {
                    let loss = self.rng.unit_f64() * 0.3;
                    self.at(at, Fault::Loss(loss));
                }
            }
        }
    }

    /// Runs until `until`, checking invariants after every step.
    pub fn run_until(&mut self, until: Duration) -> Result<(), SimFailure> {
        while self.now < until {
            self.step()?;
        }
        Ok(())
    }

    /// Runs until exactly one entry point is followed by every up node and that stays so for
    /// `hold`; fails if that does not happen within `limit` from now.
    pub fn run_until_converged(
        &mut self,
        limit: Duration,
        hold: Duration,
    ) -> Result<(usize, Term), SimFailure> {
        let deadline = self.now + limit;
        let mut since: Option<(Duration, usize, Term)> = None;
        while self.now < deadline {
            self.step()?;
            match (self.converged(), since) {
                (Some((e, t)), Some((at, e0, t0))) if e == e0 && t == t0 => {
                    if self.now >= at + hold {
                        return Ok((e, t));
                    }
                }
                (Some((e, t)), _) => since = Some((self.now, e, t)),
                (None, _) => since = None,
            }
        }
        Err(self.failure(format!(
            "no convergence to one entry point within {limit:?}: {}",
            self.describe()
        )))
    }

    /// The single entry point every up node follows, if there is one.
    pub fn converged(&self) -> Option<(usize, Term)> {
        let mut entries = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.up)
            .filter_map(|(i, n)| match n.core.role() {
                Role::Entry { term } => Some((i, term)),
                _ => None,
            });
        let (e, term) = entries.next()?;
        if entries.next().is_some() {
            return None;
        }
        let id = self.nodes[e].id.as_str();
        let all_follow = self
            .nodes
            .iter()
            .enumerate()
            .all(|(i, n)| !n.up || i == e || n.core.following() == Some((id, term)));
        all_follow.then_some((e, term))
    }

    /// Up nodes that currently report a cluster conflict.
    pub fn conflict_reporters(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.up && n.core.status().conflict.is_some())
            .count()
    }

    /// Ground-truth microk8s cluster of each node.
    pub fn cluster_of(&self, i: usize) -> (&str, bool) {
        (
            &self.nodes[i].meta.cluster_id,
            self.nodes[i].meta.control_plane,
        )
    }

    /// Number of nodes in `cluster_id`.
    pub fn cluster_size(&self, cluster_id: &str) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.meta.cluster_id == cluster_id)
            .count()
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        for n in self.nodes.iter().filter(|n| n.up) {
            let st = n.core.status();
            s.push_str(&format!(
                "\n  {} {:?} following={:?} decision={:?} settled={} up={}/{} cluster={}({})",
                n.id,
                st.role,
                st.following,
                st.decision.node(),
                st.settled,
                st.up,
                st.electorate,
                n.meta.cluster_id,
                n.meta.cluster_size
            ));
        }
        s
    }

    fn failure(&self, message: String) -> SimFailure {
        SimFailure {
            seed: self.cfg.seed,
            at: self.now,
            message,
        }
    }

    fn step(&mut self) -> Result<(), SimFailure> {
        self.now += self.cfg.step;
        self.step_no += 1;
        while self.script.first().is_some_and(|(t, _)| *t <= self.now) {
            let (_, fault) = self.script.remove(0);
            self.apply(fault);
        }
        self.membership();
        for i in 0..self.nodes.len() {
            if self.nodes[i].up && self.dirty[i] {
                self.dirty[i] = false;
                let view = self.view_of(i);
                self.drive(i, Input::ViewChanged(view))?;
            }
        }
        self.deliver()?;
        for i in 0..self.nodes.len() {
            if self.nodes[i].up {
                self.drive(i, Input::Tick)?;
            }
        }
        self.formation();
        Ok(())
    }

    fn apply(&mut self, fault: Fault) {
        match fault {
            Fault::Crash(i) => self.nodes[i].up = false,
            Fault::Restart(i) if !self.nodes[i].up => {
                let seed = self.rng.next_u64();
                let node = &mut self.nodes[i];
                node.up = true;
                node.core =
                    Election::new(node.id.clone(), self.cfg.election.clone(), seed, self.now)
                        .expect("valid election config")
                        .with_hard_state(node.hard.clone());
                node.meta.entry_term = None;
                node.meta.followed = None;
                node.version += 1;
                node.following = None;
                for j in 0..self.contact[i].len() {
                    self.contact[i][j] = self.now;
                    self.seen_status[i][j] = 0;
                }
                self.dirty[i] = true;
            }
            Fault::Restart(_) => {}
            Fault::Partition(sides) => self.side = sides,
            Fault::Heal => self.side = vec![0; self.nodes.len()],
            Fault::Loss(p) => self.cfg.loss = p,
        }
    }

    fn reachable(&self, i: usize, j: usize) -> bool {
        self.nodes[i].up && self.nodes[j].up && self.side[i] == self.side[j]
    }

    fn membership(&mut self) {
        let n = self.nodes.len();
        let detect = self.cfg.detect;
        for i in 0..n {
            if !self.nodes[i].up {
                continue;
            }
            for j in 0..n {
                if i == j {
                    let v = self.nodes[i].version;
                    if self.copies[i][i].as_ref().map(|c| c.0) != Some(v) {
                        self.copies[i][i] = Some((v, self.nodes[i].meta.clone()));
                        self.dirty[i] = true;
                    }
                    continue;
                }
                if self.reachable(i, j) {
                    if !self.known[i][j] {
                        self.known[i][j] = true;
                        let v = self.nodes[j].version;
                        self.copies[i][j] = Some((v, self.nodes[j].meta.clone()));
                        self.dirty[i] = true;
                    }
                    self.contact[i][j] = self.now;
                    let v = self.nodes[j].version;
                    if self.copies[i][j].as_ref().map(|c| c.0) != Some(v)
                        && self.rng.chance(self.cfg.gossip_p)
                    {
                        self.copies[i][j] = Some((v, self.nodes[j].meta.clone()));
                        self.dirty[i] = true;
                    }
                }
                if !self.known[i][j] {
                    continue;
                }
                let silent = self.now.saturating_sub(self.contact[i][j]);
                let status = if silent >= detect {
                    2
                } else {
                    u8::from(silent >= detect / 2)
                };
                if status != self.seen_status[i][j] {
                    self.seen_status[i][j] = status;
                    self.dirty[i] = true;
                }
            }
        }
    }

    fn view_of(&self, i: usize) -> Vec<MemberView> {
        let mut view = Vec::with_capacity(self.nodes.len());
        for (j, node) in self.nodes.iter().enumerate() {
            let Some((_, meta)) = self.copies[i][j].as_ref() else {
                continue;
            };
            let liveness = match self.seen_status[i][j] {
                _ if i == j => Liveness::Alive,
                0 => Liveness::Alive,
                1 => Liveness::Suspect,
                _ => Liveness::Dead {
                    since: self.contact[i][j] + self.cfg.detect,
                },
            };
            view.push(MemberView {
                id: node.id.clone(),
                name: node.id.clone(),
                liveness,
                priority: 100,
                cluster_id: Some(meta.cluster_id.clone()),
                cluster_size: meta.cluster_size,
                control_plane: meta.control_plane,
                microk8s_ready: true,
                has_default_route: true,
                version: None,
                entry_term: meta.entry_term,
                followed: meta.followed.clone(),
            });
        }
        view
    }

    fn deliver(&mut self) -> Result<(), SimFailure> {
        let step_no = self.step_no;
        let (due, later): (Vec<Msg>, Vec<Msg>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|m| m.due <= step_no);
        self.queue = later;
        for m in due {
            if !self.reachable(m.from, m.to) {
                self.stats.dropped += 1;
                continue;
            }
            let from = self.nodes[m.from].id.clone();
            let input = match m.body {
                Body::Claim(claim) => Input::Claim { from, claim },
                Body::Reply(reply) => Input::ClaimReply { from, reply },
            };
            self.drive(m.to, input)?;
        }
        Ok(())
    }

    fn send(&mut self, from: usize, to: &str, body: Body) {
        self.stats.messages += 1;
        let Some(&to) = self.index.get(to) else {
            return;
        };
        if !self.reachable(from, to) || self.rng.chance(self.cfg.loss) {
            self.stats.dropped += 1;
            return;
        }
        let due = self.step_no + 1 + self.rng.below(self.cfg.max_latency_steps.max(1));
        self.queue.push(Msg {
            due,
            from,
            to,
            body,
        });
    }
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod tests;
