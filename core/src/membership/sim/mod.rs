//! A deterministic simulator: hundreds of [`Membership`] nodes in one process, on a virtual
//! clock, over a seeded lossy network with partitions, cut links, crashes and restarts.
//!
//! Owns: the virtual network (per-message seeded latency and loss, fail-fast sends to crashed
//! processes), fault injection, invariant checks after every step (`check.rs`), a
//! periodic audit, convergence predicates, a hook to rewrite messages in flight (to force
//! unlucky dissemination), traffic statistics, and the convergence benchmark
//! ([`convergence_periods`]). Everything derives from [`SimConfig::seed`]; a failure reports
//! the seed, so `SimConfig::new(n, seed)` replays it exactly.
//! Does not own: protocol logic. Nodes are driven only through the public API, exactly as
//! the gRPC driver drives them; each node gets its own clock origin to catch any reliance on
//! a shared one.

use std::collections::HashMap;

use crate::agenda::Agenda;
use std::fmt;
use std::time::Duration;

use super::config::MembershipConfig;
use super::message::{Message, NodeMeta, Resources};
use super::swim::{Input, LocalPhase, Membership, Output};
use crate::rng::Rng;
use check::{Checker, MemberFacts, Violation};

/// Parameters of one simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Seed of everything random in the run.
    pub seed: u64,
    /// Protocol configuration of every node.
    pub membership: MembershipConfig,
    /// Smallest one-way latency.
    pub latency_min: Duration,
    /// Largest one-way latency.
    pub latency_max: Duration,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Transport bytes added to each message for traffic statistics (gRPC, HTTP/2, TCP/IP).
    pub overhead_bytes: usize,
    /// Sends to a crashed process fail fast (connection refused), as after a SIGKILL.
    pub crash_fails_fast: bool,
    /// Loss up to which a dead verdict about a running member is a violation.
    pub loss_tolerance: f64,
    /// A member up for less than this (or a network benign for less) may be declared dead.
    pub false_dead_grace: Duration,
    /// Check invariants after every step and audit views every second.
    pub check_invariants: bool,
}

impl SimConfig {
    /// LAN-like defaults: 0.2–2 ms latency, no loss, 200 B overhead per message.
    pub fn new(nodes: usize, seed: u64) -> Self {
        SimConfig {
            nodes,
            seed,
            membership: MembershipConfig::default(),
            latency_min: Duration::from_micros(200),
            latency_max: Duration::from_millis(2),
            loss: 0.0,
            overhead_bytes: 200,
            crash_fails_fast: true,
            loss_tolerance: 0.05,
            false_dead_grace: Duration::from_secs(30),
            check_invariants: true,
        }
    }
}

/// How nodes learn of each other at start (standing in for mDNS).
#[derive(Clone, Copy, Debug)]
pub enum Seeding {
    /// Every node discovers every other, each at a random time within `within`.
    All {
        /// Latest discovery time.
        within: Duration,
    },
    /// Every node discovers `per_node` random others within `within`.
    Random {
        /// Discoveries per node.
        per_node: usize,
        /// Latest discovery time.
        within: Duration,
    },
}

/// A broken invariant, with what is needed to replay it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimError {
    /// The run's seed.
    pub seed: u64,
    /// Simulated time of the violation.
    pub at: Duration,
    /// What broke.
    pub violation: Violation,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation seed {} at {:?}: {}",
            self.seed, self.at, self.violation
        )
    }
}

impl std::error::Error for SimError {}

/// Traffic counters since the last reset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimStats {
    /// Messages handed to the network.
    pub messages: u64,
    /// Bytes handed to the network, overhead included.
    pub bytes: u64,
    /// Messages lost or cut.
    pub dropped: u64,
    /// Bytes sent by each node.
    pub bytes_by_node: Vec<u64>,
    /// Messages by kind.
    pub by_kind: HashMap<&'static str, u64>,
    /// When counting started.
    pub since: Duration,
}

enum Event {
    Deliver {
        to: usize,
        msg: Message,
    },
    Wake {
        node: usize,
        epoch: u32,
    },
    Feed {
        node: usize,
        epoch: u32,
        input: Input,
    },
}

struct Node {
    meta: NodeMeta,
    machine: Option<Membership>,
    epoch: u32,
    /// Added to sim time to get this node's clock.
    offset: Duration,
    wake_at: Option<Duration>,
    up_since: Duration,
    isolated: bool,
}

/// The simulated cluster.
pub struct Sim {
    cfg: SimConfig,
    now: Duration,
    rng: Rng,
    nodes: Vec<Node>,
    by_addr: HashMap<String, usize>,
    queue: Agenda<Event>,
    groups: Option<Vec<u32>>,
    /// Since when the network has been benign (no partition, no cut link), if it is.
    benign_since: Option<Duration>,
    checker: Checker,
    stats: SimStats,
    next_audit: Duration,
    /// Rewrites messages in flight (see [`Sim::tamper`]).
    tamper: Option<Tamper>,
}

/// A hook that may rewrite a message from node `from` to node `to` before delivery.
pub type Tamper = Box<dyn FnMut(usize, usize, &mut Message)>;

impl Sim {
    /// Creates `cfg.nodes` running nodes that know nobody yet.
    pub fn new(cfg: SimConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let mut nodes = Vec::with_capacity(cfg.nodes);
        let mut by_addr = HashMap::new();
        for i in 0..cfg.nodes {
            let meta = sim_meta(i);
            by_addr.insert(meta.addr.clone(), i);
            let offset = Duration::from_secs(rng.below(1_000_000));
            nodes.push(Node {
                meta,
                machine: None,
                epoch: 0,
                offset,
                wake_at: None,
                up_since: Duration::ZERO,
                isolated: false,
            });
        }
        let n = cfg.nodes;
        let mut sim = Sim {
            now: Duration::ZERO,
            rng,
            nodes,
            by_addr,
            queue: Agenda::new(),
            groups: None,
            benign_since: Some(Duration::ZERO),
            checker: Checker::new(n),
            stats: SimStats {
                bytes_by_node: vec![0; n],
                ..SimStats::default()
            },
            next_audit: Duration::from_secs(1),
            tamper: None,
            cfg,
        };
        for i in 0..n {
            sim.boot(i);
        }
        sim
    }

    fn boot(&mut self, i: usize) {
        let seed = self.rng.next_u64();
        let local_now = self.now + self.nodes[i].offset;
        let machine = Membership::new(
            self.cfg.membership.clone(),
            self.nodes[i].meta.clone(),
            seed,
            local_now,
        )
        .expect("simulated configuration and metadata are valid");
        let node = &mut self.nodes[i];
        node.epoch += 1;
        node.up_since = self.now;
        node.wake_at = None;
        self.checker.reset(i, machine.local().incarnation);
        node.machine = Some(machine);
        self.schedule_wake(i, false)
            .expect("a fresh node cannot violate an invariant");
    }

    /// Gives every node a full, converged view of all the others except `skip`, without any
    /// traffic (a warm start for benchmarks).
    pub fn warm_start(&mut self, skip: &[usize]) {
        let metas: Vec<(u64, NodeMeta)> = (0..self.nodes.len())
            .filter(|i| !skip.contains(i))
            .map(|i| (0, self.nodes[i].meta.clone()))
            .collect();
        for i in (0..self.nodes.len()).filter(|i| !skip.contains(i)) {
            let local_now = self.now + self.nodes[i].offset;
            if let Some(m) = self.nodes[i].machine.as_mut() {
                m.restore(local_now, metas.iter().cloned());
            }
            self.after(i, false)
                .expect("restoring cannot violate an invariant");
        }
    }

    /// Schedules discoveries as mDNS would deliver them.
    pub fn seed(&mut self, seeding: Seeding) {
        let n = self.nodes.len();
        for i in 0..n {
            let (peers, within): (Vec<usize>, Duration) = match seeding {
                Seeding::All { within } => ((0..n).filter(|&j| j != i).collect(), within),
                Seeding::Random { per_node, within } => {
                    let picks = self.rng.sample_indices(n, per_node + 1);
                    (
                        picks
                            .into_iter()
                            .filter(|&j| j != i)
                            .take(per_node)
                            .collect(),
                        within,
                    )
                }
            };
            for j in peers {
                let at = self.now + self.rng.duration_between(Duration::ZERO, within);
                self.discover_at(i, j, at);
            }
        }
    }

    /// Node `i` discovers node `j` at sim time `at`.
    pub fn discover_at(&mut self, i: usize, j: usize, at: Duration) {
        let input = Input::Discovered {
            id: self.nodes[j].meta.id.clone(),
            addr: self.nodes[j].meta.addr.clone(),
        };
        let epoch = self.nodes[i].epoch;
        self.push(
            at,
            Event::Feed {
                node: i,
                epoch,
                input,
            },
        );
    }

    fn push(&mut self, at: Duration, event: Event) {
        self.queue.push(at, event);
    }

    /// Runs until sim time `until`.
    pub fn run_until(&mut self, until: Duration) -> Result<(), SimError> {
        while let Some(at) = self.queue.next_at() {
            if at > until {
                break;
            }
            self.step()?;
        }
        self.now = self.now.max(until);
        Ok(())
    }

    /// Runs for `d` more sim time.
    pub fn run_for(&mut self, d: Duration) -> Result<(), SimError> {
        self.run_until(self.now + d)
    }

    /// Runs until `done` holds (checked every `every`) or `limit` passes; returns the time
    /// taken, or `None` on timeout.
    pub fn run_until_true(
        &mut self,
        limit: Duration,
        every: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Result<Option<Duration>, SimError> {
        let start = self.now;
        while self.now < start + limit {
            if done(self) {
                return Ok(Some(self.now - start));
            }
            self.run_for(every)?;
        }
        Ok(done(self).then(|| self.now - start))
    }

    fn step(&mut self) -> Result<(), SimError> {
        let Some((at, event)) = self.queue.pop() else {
            return Ok(());
        };
        self.now = at;
        match event {
            Event::Wake { node, epoch } => {
                let n = &mut self.nodes[node];
                if n.epoch != epoch || n.wake_at != Some(at) {
                    return Ok(());
                }
                n.wake_at = None;
                let local_now = self.now + n.offset;
                if let Some(m) = n.machine.as_mut() {
                    m.tick(local_now);
                    self.after(node, true)?;
                }
            }
            Event::Deliver { to, msg } => {
                let n = &mut self.nodes[to];
                let local_now = self.now + n.offset;
                if let Some(m) = n.machine.as_mut() {
                    m.handle(local_now, Input::Message(msg));
                    self.after(to, false)?;
                }
            }
            Event::Feed { node, epoch, input } => {
                let n = &mut self.nodes[node];
                let local_now = self.now + n.offset;
                if n.epoch == epoch
                    && let Some(m) = n.machine.as_mut()
                {
                    m.handle(local_now, input);
                    self.after(node, false)?;
                }
            }
        }
        if self.cfg.check_invariants && self.now >= self.next_audit {
            self.next_audit = self.now + Duration::from_secs(1);
            self.audit()?;
        }
        Ok(())
    }

    fn fail(&self, violation: Violation) -> SimError {
        SimError {
            seed: self.cfg.seed,
            at: self.now,
            violation,
        }
    }

    /// Routes node `i`'s outputs, checks its events, and reschedules its timer.
    fn after(&mut self, i: usize, ticked: bool) -> Result<(), SimError> {
        let Some(m) = self.nodes[i].machine.as_mut() else {
            return Ok(());
        };
        let outputs = m.drain_outputs();
        let local_inc = m.local().incarnation;
        let observer = self.nodes[i].meta.id.clone();
        let benign_for_dead = self.cfg.loss <= self.cfg.loss_tolerance
            && self
                .benign_since
                .is_some_and(|t| self.now >= t + self.cfg.false_dead_grace);
        for out in outputs {
            match out {
                Output::Send { to, addr, msg } => self.transmit(i, &to, &addr, msg),
                Output::Event(event) if self.cfg.check_invariants => {
                    let facts = self.facts(&event.member.meta.id);
                    let benign =
                        benign_for_dead && self.now >= facts.up_since + self.cfg.false_dead_grace;
                    self.checker
                        .event(i, &observer, &event, facts, benign)
                        .map_err(|v| self.fail(v))?;
                }
                Output::Event(_) => {}
                Output::Rejected { reason, .. } => {
                    return Err(self.fail(Violation::Rejected {
                        node: observer,
                        reason: reason.to_string(),
                    }));
                }
            }
        }
        if self.cfg.check_invariants {
            self.checker
                .local(i, &observer, local_inc)
                .map_err(|v| self.fail(v))?;
        }
        self.schedule_wake(i, ticked)
    }

    fn facts(&self, id: &str) -> MemberFacts {
        let idx = id
            .strip_prefix('n')
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&i| i < self.nodes.len());
        match idx {
            Some(j) => MemberFacts {
                up: self.nodes[j]
                    .machine
                    .as_ref()
                    .is_some_and(|m| m.phase() == LocalPhase::Active),
                up_since: self.nodes[j].up_since,
            },
            None => MemberFacts {
                up: false,
                up_since: Duration::ZERO,
            },
        }
    }

    fn schedule_wake(&mut self, i: usize, ticked: bool) -> Result<(), SimError> {
        let node = &self.nodes[i];
        let Some(m) = node.machine.as_ref() else {
            return Ok(());
        };
        let Some(deadline) = m.next_deadline() else {
            return Ok(());
        };
        let local_now = self.now + node.offset;
        if ticked && deadline <= local_now {
            return Err(self.fail(Violation::StuckDeadline {
                node: node.meta.id.clone(),
            }));
        }
        let at = deadline.max(local_now) - node.offset;
        if node.wake_at != Some(at) {
            let epoch = node.epoch;
            self.nodes[i].wake_at = Some(at);
            self.push(at, Event::Wake { node: i, epoch });
        }
        Ok(())
    }

    fn transmit(&mut self, from: usize, to_id: &str, addr: &str, msg: Message) {
        let size = (msg.size_hint() + self.cfg.overhead_bytes) as u64;
        self.stats.messages += 1;
        self.stats.bytes += size;
        self.stats.bytes_by_node[from] += size;
        *self.stats.by_kind.entry(msg.kind()).or_default() += 1;
        let Some(&to) = self.by_addr.get(addr) else {
            self.stats.dropped += 1;
            return;
        };
        let cut = self.nodes[from].isolated
            || self.nodes[to].isolated
            || self.groups.as_ref().is_some_and(|g| g[from] != g[to]);
        let latency = self
            .rng
            .duration_between(self.cfg.latency_min, self.cfg.latency_max);
        if cut {
            self.stats.dropped += 1;
            return;
        }
        if self.nodes[to].machine.is_none() {
            self.stats.dropped += 1;
            if self.cfg.crash_fails_fast {
                let epoch = self.nodes[from].epoch;
                let input = Input::SendFailed {
                    to: to_id.to_owned(),
                };
                self.push(
                    self.now + latency * 2,
                    Event::Feed {
                        node: from,
                        epoch,
                        input,
                    },
                );
            }
            return;
        }
        if self.rng.chance(self.cfg.loss) {
            self.stats.dropped += 1;
            return;
        }
        let mut msg = msg;
        if let Some(tamper) = self.tamper.as_mut() {
            tamper(from, to, &mut msg);
        }
        self.push(self.now + latency, Event::Deliver { to, msg });
    }

    fn audit(&self) -> Result<(), SimError> {
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(m) = node.machine.as_ref() {
                self.checker.audit(i, m).map_err(|v| self.fail(v))?;
            }
        }
        Ok(())
    }
}

fn sim_meta(i: usize) -> NodeMeta {
    let id = format!("n{i:04}");
    NodeMeta {
        name: format!("host-{i}"),
        addr: format!("198.18.{}.{}:7946", i / 250, i % 250 + 1),
        addresses: vec![format!("198.18.{}.{}", i / 250, i % 250 + 1)],
        version: "0.1.0".to_owned(),
        resources: Resources {
            cpu_millis: 8000,
            memory_bytes: 32 << 30,
            gpus: 0,
        },
        fields: [("role".to_owned(), "worker".to_owned())].into(),
        meta_version: 0,
        id,
    }
}

mod bench;
pub mod check;
mod ops;

pub use bench::{ConvergenceReport, convergence_periods};

#[cfg(test)]
#[path = "sim_tests.rs"]
mod tests;
