//! Simulation tests: whole clusters under faults, invariants checked after every step by the
//! simulator, convergence demanded after healing. Every failure message carries the seed.

use std::time::Duration;

use super::{Seeding, Sim, SimConfig, convergence_periods};
use crate::membership::{MembershipConfig, ProbeSchedule, Status};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Unwraps a simulation result, panicking with the seed on a violation.
fn ok<T>(r: Result<T, super::SimError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn converge(sim: &mut Sim, limit: Duration, seed: u64) -> Duration {
    ok(sim.run_until_true(limit, ms(50), Sim::converged))
        .unwrap_or_else(|| panic!("seed {seed}: no convergence within {limit:?}"))
}

/// A 20-node LAN started together, all seeded by "mDNS" within 0.5 s.
fn lan20(seed: u64) -> Sim {
    let mut sim = Sim::new(SimConfig::new(20, seed));
    sim.seed(Seeding::All { within: ms(500) });
    sim
}

#[test]
fn twenty_nodes_started_together_converge_within_two_seconds() {
    for seed in 1..=5 {
        let mut sim = lan20(seed);
        let t = converge(&mut sim, secs(10), seed);
        assert!(t <= secs(2), "seed {seed}: converged after {t:?}");
    }
}

#[test]
fn two_hundred_nodes_converge_from_sparse_seeding() {
    let seed = 11;
    let mut sim = Sim::new(SimConfig::new(200, seed));
    sim.seed(Seeding::Random {
        per_node: 3,
        within: ms(500),
    });
    let t = converge(&mut sim, secs(120), seed);
    eprintln!("200 nodes converged from sparse seeding in {t:?}");
}

/// Time until every survivor holds node `victim` dead.
fn detection(sim: &mut Sim, victim: usize, seed: u64) -> Duration {
    ok(sim.run_until_true(secs(30), ms(10), |s| {
        s.all_see(victim, |st| st == Some(Status::Dead))
    }))
    .unwrap_or_else(|| panic!("seed {seed}: node {victim} never declared dead by all"))
}

#[test]
fn killed_or_cut_off_node_is_dead_at_every_survivor_within_three_and_a_half_seconds() {
    let mut worst = Duration::ZERO;
    let mut total = Duration::ZERO;
    let mut runs = 0u32;
    for seed in 1..=10 {
        for cut in [false, true] {
            let mut sim = lan20(seed);
            converge(&mut sim, secs(10), seed);
            ok(sim.run_for(secs(5)));
            let victim = (seed as usize) % 20;
            if cut {
                sim.isolate(victim);
            } else {
                sim.crash(victim);
            }
            let t = detection(&mut sim, victim, seed);
            worst = worst.max(t);
            total += t;
            runs += 1;
        }
    }
    eprintln!(
        "detection at N=20: mean {:?}, worst {worst:?}",
        total / runs
    );
    assert!(worst <= ms(3500), "worst detection {worst:?}");
}

#[test]
fn crash_of_several_nodes_in_two_hundred_is_detected_by_all() {
    let seed = 21;
    let mut sim = Sim::new(SimConfig::new(200, seed));
    sim.warm_start(&[]);
    ok(sim.run_for(secs(5)));
    for victim in [3, 77, 150] {
        sim.crash(victim);
    }
    for victim in [3, 77, 150] {
        detection(&mut sim, victim, seed);
    }
    converge(&mut sim, secs(30), seed);
}

#[test]
fn five_percent_loss_declares_no_live_member_dead() {
    for seed in [31, 32] {
        let mut cfg = SimConfig::new(60, seed);
        cfg.loss = 0.05;
        cfg.false_dead_grace = secs(5);
        let mut sim = Sim::new(cfg);
        sim.warm_start(&[]);
        // The simulator fails the run on any dead verdict about a running node.
        ok(sim.run_for(secs(180)));
        assert!(
            sim.converged() || {
                ok(sim.run_for(secs(20)));
                sim.converged()
            }
        );
    }
}

#[test]
fn partition_heals_into_one_membership() {
    let seed = 41;
    let n = 60;
    let mut sim = Sim::new(SimConfig::new(n, seed));
    sim.warm_start(&[]);
    ok(sim.run_for(secs(3)));
    sim.partition((0..n).map(|i| u32::from(i >= n / 2)).collect());
    // Long enough for each side to declare the other dead.
    ok(sim.run_for(secs(30)));
    assert!(
        sim.all_see(0, |st| st != Some(Status::Alive)) || {
            // Node 0's own half still sees it alive; check from the other half instead.
            sim.node(n - 1)
                .and_then(|m| m.member(sim.id(0)))
                .is_some_and(|m| m.status == Status::Dead)
        }
    );
    sim.heal();
    let t = converge(&mut sim, secs(120), seed);
    eprintln!("partition of {n} healed in {t:?}");
}

#[test]
fn restarted_node_rejoins_with_a_higher_incarnation() {
    let seed = 51;
    let mut sim = lan20(seed);
    converge(&mut sim, secs(10), seed);
    sim.crash(5);
    detection(&mut sim, 5, seed);
    ok(sim.run_for(secs(2)));
    sim.restart(5, &[0, 1, 2]);
    converge(&mut sim, secs(20), seed);
    let inc = sim.node(5).map(|m| m.local().incarnation);
    assert!(
        inc >= Some(1),
        "seed {seed}: restarted at incarnation {inc:?}"
    );
}

#[test]
fn restart_before_detection_also_converges() {
    let seed = 52;
    let mut sim = lan20(seed);
    converge(&mut sim, secs(10), seed);
    sim.crash(7);
    ok(sim.run_for(ms(300)));
    sim.restart(7, &[0]);
    converge(&mut sim, secs(20), seed);
}

#[test]
fn graceful_leave_is_seen_as_left_not_dead() {
    let seed = 61;
    let mut sim = lan20(seed);
    converge(&mut sim, secs(10), seed);
    ok(sim.leave(4));
    let t = ok(sim.run_until_true(secs(10), ms(10), |s| {
        s.all_see(4, |st| st == Some(Status::Left))
    }));
    assert!(
        t.is_some_and(|t| t < secs(2)),
        "seed {seed}: leave seen after {t:?}"
    );
    ok(sim.run_for(secs(30)));
    assert!(sim.all_see(4, |st| st == Some(Status::Left)));
    assert!(sim.converged());
}

#[test]
fn metadata_update_reaches_everyone_and_newest_wins() {
    let seed = 71;
    let mut sim = lan20(seed);
    converge(&mut sim, secs(10), seed);
    ok(sim.set_field(9, "microk8s", "joining"));
    let v = ok(sim.set_field(9, "microk8s", "ready"));
    converge(&mut sim, secs(5), seed);
    let id = sim.id(9).to_owned();
    for i in (0..20).filter(|&i| i != 9) {
        let m = sim.node(i).and_then(|m| m.member(&id)).expect("known");
        assert_eq!(m.meta.meta_version, v);
        assert_eq!(m.meta.fields["microk8s"], "ready");
    }
}

#[test]
fn steady_state_traffic_stays_near_the_budget() {
    let seed = 81;
    let mut sim = lan20(seed);
    converge(&mut sim, secs(10), seed);
    ok(sim.run_for(secs(60)));
    sim.reset_stats();
    ok(sim.run_for(secs(120)));
    let bps = sim.max_bytes_per_node_per_sec();
    eprintln!(
        "steady state: {bps:.0} B/s at the busiest node; {:?}",
        sim.stats().by_kind
    );
    assert!(bps <= 560.0, "seed {seed}: {bps:.0} B/s");
    assert!(
        !sim.stats().by_kind.contains_key("gossip"),
        "gossip with nothing to say"
    );
}

#[test]
fn churn_with_loss_keeps_every_invariant() {
    let seed = 91;
    let mut cfg = SimConfig::new(40, seed);
    cfg.loss = 0.1;
    // Also covers SWIM's classic target choice and a faster protocol period.
    cfg.membership = MembershipConfig {
        probe_interval: ms(500),
        probe_timeout: ms(200),
        probe_schedule: ProbeSchedule::ShuffledRoundRobin,
        ..MembershipConfig::default()
    };
    let mut sim = Sim::new(cfg);
    sim.seed(Seeding::Random {
        per_node: 3,
        within: ms(500),
    });
    for round in 0..6 {
        ok(sim.run_for(secs(5)));
        let victim = 1 + round * 5;
        sim.crash(victim);
        sim.isolate(victim + 1);
        ok(sim.run_for(secs(5)));
        sim.heal();
        sim.restart(victim, &[0]);
    }
    sim.set_loss(0.0);
    converge(&mut sim, secs(120), seed);
}

#[test]
fn convergence_benchmark_runs_at_small_n() {
    let report = ok(convergence_periods(30, 5));
    eprintln!("{report}");
    assert!(report.join_periods.is_finite());
    assert!(report.crash_periods.is_finite() && report.cut_periods.is_finite());
    assert!(report.update_periods < 5.0, "{report}");
}

/// `cargo test --release -p muster-core --lib membership::sim::tests::benchmark -- --ignored
/// --nocapture` prints the table the benchmark command shows.
#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn benchmark_convergence_grows_like_log_n() {
    for n in [100, 500, 1000] {
        let report = ok(convergence_periods(n, 1));
        println!("{report}");
    }
}
