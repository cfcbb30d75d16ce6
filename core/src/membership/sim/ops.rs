//! Fault injection and observation of the simulated cluster (a child of `sim.rs`, so it sees
//! the simulator's private state).

use std::time::Duration;

use super::super::message::Status;
use super::super::swim::{LocalPhase, Membership};
use super::{Sim, SimError, SimStats, Tamper};

impl Sim {
    // ---- faults ----

    /// Kills node `i` (its state is lost).
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].machine = None;
        self.nodes[i].wake_at = None;
    }

    /// Restarts crashed node `i` with an empty view; it rediscovers `seeds` within 500 ms.
    pub fn restart(&mut self, i: usize, seeds: &[usize]) {
        if self.nodes[i].machine.is_some() {
            return;
        }
        self.boot(i);
        for &j in seeds {
            let at = self.now
                + self
                    .rng
                    .duration_between(Duration::ZERO, Duration::from_millis(500));
            self.discover_at(i, j, at);
        }
    }

    /// Node `i` leaves gracefully.
    pub fn leave(&mut self, i: usize) -> Result<(), SimError> {
        let local_now = self.now + self.nodes[i].offset;
        if let Some(m) = self.nodes[i].machine.as_mut() {
            m.leave(local_now);
            self.after(i, false)?;
        }
        Ok(())
    }

    /// Node `i` publishes metadata with `key = value`; returns the new version.
    pub fn set_field(&mut self, i: usize, key: &str, value: &str) -> Result<u64, SimError> {
        let local_now = self.now + self.nodes[i].offset;
        let Some(m) = self.nodes[i].machine.as_mut() else {
            return Ok(0);
        };
        let mut meta = (*m.local().meta).clone();
        meta.fields.insert(key.to_owned(), value.to_owned());
        let version = m
            .update_local_meta(meta, local_now)
            .expect("simulated metadata is valid");
        self.after(i, false)?;
        Ok(version)
    }

    /// Splits the network: nodes talk only within their group (`group_of[i]`).
    pub fn partition(&mut self, group_of: Vec<u32>) {
        self.groups = Some(group_of);
        self.benign_since = None;
    }

    /// Cuts every link of node `i` (its process keeps running).
    pub fn isolate(&mut self, i: usize) {
        self.nodes[i].isolated = true;
        self.benign_since = None;
    }

    /// Removes partitions and cut links.
    pub fn heal(&mut self) {
        self.groups = None;
        for n in &mut self.nodes {
            n.isolated = false;
        }
        self.benign_since = Some(self.now);
    }

    /// Changes the loss probability.
    pub fn set_loss(&mut self, loss: f64) {
        self.cfg.loss = loss;
    }

    /// Installs (or removes) a hook that may rewrite every message that survives loss and
    /// cuts, before it is delivered: e.g. strip some news from the messages one node
    /// receives, to force the unlucky dissemination that random choices make rare.
    pub fn tamper(&mut self, hook: Option<Tamper>) {
        self.tamper = hook;
    }

    // ---- observation ----

    /// Current sim time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Node `i`'s id.
    pub fn id(&self, i: usize) -> &str {
        &self.nodes[i].meta.id
    }

    /// Node `i`'s state machine, if running.
    pub fn node(&self, i: usize) -> Option<&Membership> {
        self.nodes[i].machine.as_ref()
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True for a simulation without nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn active(&self, i: usize) -> Option<&Membership> {
        self.node(i).filter(|m| m.phase() == LocalPhase::Active)
    }

    /// Every active node sees `pred` hold for member `j` (true if none is active).
    pub fn all_see(&self, j: usize, pred: impl Fn(Option<Status>) -> bool) -> bool {
        let id = self.id(j);
        (0..self.nodes.len())
            .filter(|&i| i != j)
            .filter_map(|i| self.active(i))
            .all(|m| pred(m.member(id).map(|x| x.status)))
    }

    /// Every active node knows every other active node alive at its current incarnation and
    /// metadata version, and no stopped node as alive or suspect.
    pub fn converged(&self) -> bool {
        let n = self.nodes.len();
        (0..n).filter_map(|i| self.active(i)).all(|observer| {
            (0..n)
                .filter(|&j| self.id(j) != observer.local().meta.id)
                .all(|j| {
                    let seen = observer.member(self.id(j));
                    match self.active(j) {
                        Some(truth) => seen.is_some_and(|s| {
                            s.status == Status::Alive
                                && s.incarnation == truth.local().incarnation
                                && s.meta.meta_version == truth.local().meta.meta_version
                        }),
                        None => seen.is_none_or(|s| !s.status.is_live()),
                    }
                })
        })
    }

    /// Every active node of `side` sees the other members of `side` alive and every node
    /// outside it not live (dead, left or unknown): one half of a partition has settled.
    pub fn side_settled(&self, side: &[usize]) -> bool {
        side.iter().filter_map(|&i| self.active(i)).all(|observer| {
            (0..self.nodes.len())
                .filter(|&j| self.id(j) != observer.local().meta.id)
                .all(|j| {
                    let status = observer.member(self.id(j)).map(|m| m.status);
                    if side.contains(&j) && self.active(j).is_some() {
                        status == Some(Status::Alive)
                    } else {
                        status.is_none_or(|s| !s.is_live())
                    }
                })
        })
    }

    /// The active nodes of `side` agree on which nodes are live (alive or suspect), each
    /// counting itself live: the views may be wrong, but they are the same.
    pub fn side_agrees(&self, side: &[usize]) -> bool {
        let n = self.nodes.len();
        let mut views = side.iter().filter_map(|&i| self.active(i)).map(|m| {
            (0..n).map(move |j| {
                let id = self.id(j);
                id == m.local().meta.id || m.member(id).is_some_and(|x| x.status.is_live())
            })
        });
        let Some(first) = views.next() else {
            return true;
        };
        let first: Vec<bool> = first.collect();
        views.all(|v| v.eq(first.iter().copied()))
    }

    /// Traffic counters since the last [`Self::reset_stats`].
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// Restarts the traffic counters.
    pub fn reset_stats(&mut self) {
        self.stats = SimStats {
            bytes_by_node: vec![0; self.nodes.len()],
            since: self.now,
            ..SimStats::default()
        };
    }

    fn running_rates(&self) -> impl Iterator<Item = f64> + '_ {
        let secs = (self.now - self.stats.since).as_secs_f64().max(1e-9);
        self.stats
            .bytes_by_node
            .iter()
            .enumerate()
            .filter(|(i, _)| self.nodes[*i].machine.is_some())
            .map(move |(_, b)| *b as f64 / secs)
    }

    /// Highest bytes per second sent by any running node since the last reset.
    pub fn max_bytes_per_node_per_sec(&self) -> f64 {
        self.running_rates().fold(0.0, f64::max)
    }

    /// Mean bytes per second sent by running nodes since the last reset.
    pub fn mean_bytes_per_node_per_sec(&self) -> f64 {
        let (sum, count) = self
            .running_rates()
            .fold((0.0, 0u32), |(s, c), r| (s + r, c + 1));
        if count == 0 {
            0.0
        } else {
            sum / f64::from(count)
        }
    }
}
