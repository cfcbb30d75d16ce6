//! The convergence benchmark: how many protocol periods news takes to reach everyone.
//!
//! Owns: [`convergence_periods`] and its [`ConvergenceReport`], run on the simulator from a
//! warm, converged cluster of N nodes. SWIM's epidemic dissemination should make every figure
//! grow like log N; the suspicion minimum itself grows with log10 N by design.
//! Does not own: printing (the benchmark command formats the reports).

use std::fmt;
use std::time::Duration;

use super::{Sim, SimConfig, SimError};
use crate::membership::message::Status;

/// Results of one benchmark run, in protocol periods (`probe_interval`s).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvergenceReport {
    /// Cluster size.
    pub nodes: usize,
    /// Seed of the run.
    pub seed: u64,
    /// A new node, seeded with one member, until everyone knows it and it knows everyone.
    pub join_periods: f64,
    /// A SIGKILLed node (sends to it fail fast) until every survivor marks it dead.
    pub crash_periods: f64,
    /// A node whose links are cut until every other node marks it dead.
    pub cut_periods: f64,
    /// A metadata change until every node has the new version.
    pub update_periods: f64,
    /// Steady-state bytes per second sent per node, mean over a minute (200 B overhead a
    /// message).
    pub steady_bytes_per_node_per_sec: f64,
}

impl fmt::Display for ConvergenceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "N={:5}  join {:5.2}  crash {:5.2}  cut {:5.2}  update {:5.2} periods  steady {:4.0} B/s/node  (seed {})",
            self.nodes,
            self.join_periods,
            self.crash_periods,
            self.cut_periods,
            self.update_periods,
            self.steady_bytes_per_node_per_sec,
            self.seed
        )
    }
}

/// Runs the benchmark for `n` nodes (at least 5) with `seed`.
///
/// Returns an error if an invariant breaks; a phase that does not converge within 300 s
/// reports `f64::INFINITY`.
pub fn convergence_periods(n: usize, seed: u64) -> Result<ConvergenceReport, SimError> {
    let n = n.max(5);
    let mut cfg = SimConfig::new(n, seed);
    // The per-second audit is O(N²); the per-step checks stay on.
    cfg.false_dead_grace = Duration::from_secs(5);
    let period = cfg.membership.probe_interval.as_secs_f64();
    let cfg_push_pull = cfg.membership.push_pull_interval;
    let mut sim = Sim::new(cfg);
    let newcomer = n - 1;
    sim.warm_start(&[newcomer]);
    // Past the first push-pull phase (random within the base interval), then a long window.
    sim.run_for(cfg_push_pull)?;
    sim.reset_stats();
    sim.run_for(Duration::from_secs(60))?;
    let steady = sim.mean_bytes_per_node_per_sec();

    let limit = Duration::from_secs(300);
    let every = Duration::from_millis(20);
    let periods = |d: Option<Duration>| d.map_or(f64::INFINITY, |d| d.as_secs_f64() / period);

    let now = sim.now();
    sim.discover_at(newcomer, 0, now);
    let join = sim.run_until_true(limit, every, |s| {
        s.all_see(newcomer, |st| st == Some(Status::Alive))
            && s.node(newcomer).is_some_and(|m| m.cluster_size() == n)
    })?;

    let crashed = 1;
    sim.crash(crashed);
    let crash = sim.run_until_true(limit, every, |s| {
        s.all_see(crashed, |st| st == Some(Status::Dead))
    })?;

    let cut = 2;
    sim.isolate(cut);
    let cut_time = sim.run_until_true(limit, every, |s| {
        s.all_see(cut, |st| st == Some(Status::Dead))
    })?;

    let updated = 3;
    let version = sim.set_field(updated, "role", "entry")?;
    let id = sim.id(updated).to_owned();
    let update = sim.run_until_true(limit, every, |s| {
        (0..s.len()).filter(|&i| i != updated && i != cut).all(|i| {
            s.node(i).is_none_or(|m| {
                m.member(&id)
                    .is_some_and(|x| x.meta.meta_version >= version)
            })
        })
    })?;

    Ok(ConvergenceReport {
        nodes: n,
        seed,
        join_periods: periods(join),
        crash_periods: periods(crash),
        cut_periods: periods(cut_time),
        update_periods: periods(update),
        steady_bytes_per_node_per_sec: steady,
    })
}
