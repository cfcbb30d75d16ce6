//! View-checksum anti-entropy: partitions whose halves must settle quickly.

use std::time::Duration;

use super::sim::{Sim, SimConfig};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn ok<T>(r: Result<T, super::sim::SimError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Partitions a warm cluster of `n` into halves; returns the time until each half settled.
fn settle_times(cfg: SimConfig) -> (Option<Duration>, Option<Duration>) {
    let n = cfg.nodes;
    let mut sim = Sim::new(cfg);
    sim.warm_start(&[]);
    ok(sim.run_for(secs(5)));
    let half = n / 2;
    sim.partition((0..n).map(|i| u32::from(i >= half)).collect());
    let a: Vec<usize> = (0..half).collect();
    let b: Vec<usize> = (half..n).collect();
    let (mut ta, mut tb) = (None, None);
    let start = sim.now();
    while sim.now() < start + secs(150) && (ta.is_none() || tb.is_none()) {
        ok(sim.run_for(ms(100)));
        if ta.is_none() && sim.side_settled(&a) {
            ta = Some(sim.now() - start);
        }
        if tb.is_none() && sim.side_settled(&b) {
            tb = Some(sim.now() - start);
        }
    }
    (ta, tb)
}

#[test]
#[ignore = "exploration"]
fn explore_partition_settle_times() {
    for n in [6usize, 40] {
        let mut all = Vec::new();
        let seeds = if n == 6 { 1..=300u64 } else { 1..=40u64 };
        for seed in seeds {
            let cfg = SimConfig::new(n, seed);
            let (a, b) = settle_times(cfg);
            let worst = a.zip(b).map(|(a, b)| a.max(b)).unwrap_or(secs(999));
            if worst > secs(10) {
                println!("n={n} seed={seed}: {a:?} {b:?}");
            }
            all.push(worst);
        }
        all.sort();
        let p = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
        println!(
            "n={n}: median {:?} p90 {:?} max {:?}",
            p(0.5),
            p(0.9),
            p(1.0)
        );
    }
}
