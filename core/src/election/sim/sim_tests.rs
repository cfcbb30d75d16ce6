//! Simulated scenarios: safety under faults (checked after every step by the simulator) and
//! convergence to exactly one entry point after healing. Every failure names its seed.

use std::time::Duration;

use super::{Fault, Sim, SimConfig};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ok<T>(r: Result<T, super::SimFailure>) -> T {
    r.unwrap_or_else(|f| panic!("{f}"))
}

#[test]
fn fresh_lan_elects_exactly_one_entry_point() {
    for seed in 0..5 {
        let mut sim = Sim::new(SimConfig::new(seed, 7));
        let (entry, term) = ok(sim.run_until_converged(secs(15), secs(5)));
        // All priorities are equal, so the lowest id wins.
        assert_eq!((entry, term), (0, 1), "seed {seed}");
    }
}

#[test]
fn formation_grows_one_cluster_that_keeps_its_entry_point() {
    let mut cfg = SimConfig::new(1, 9);
    cfg.join_every = Some(secs(1));
    let mut sim = Sim::new(cfg);
    ok(sim.run_until(secs(30)));
    let (entry, _) = ok(sim.run_until_converged(secs(10), secs(3)));
    let (cluster, cp) = sim.cluster_of(entry);
    assert!(cp);
    assert_eq!(sim.cluster_size(cluster), 9);
    let control_planes = (0..9).filter(|&i| sim.cluster_of(i).1).count();
    assert_eq!(
        control_planes, 3,
        "HA at three control planes, the rest workers"
    );
    assert_eq!(
        sim.stats.entries, 1,
        "the entry point never changed while the cluster grew"
    );
}

#[test]
fn entry_point_crash_hands_over_to_a_control_plane_of_the_same_cluster() {
    for seed in 0..5 {
        let mut cfg = SimConfig::new(seed, 7);
        cfg.join_every = Some(secs(1));
        cfg.loss = 0.05;
        let mut sim = Sim::new(cfg);
        ok(sim.run_until(secs(20)));
        let (old, old_term) = ok(sim.run_until_converged(secs(10), secs(1)));
        let cluster = sim.cluster_of(old).0.to_owned();
        assert_eq!(sim.cluster_size(&cluster), 7, "seed {seed}");
        let t = sim.now();
        sim.at(t, Fault::Crash(old));
        let (new, term) = ok(sim.run_until_converged(secs(30), secs(3)));
        assert_ne!(new, old, "seed {seed}");
        assert!(term > old_term, "seed {seed}");
        assert_eq!(sim.cluster_of(new), (cluster.as_str(), true), "seed {seed}");
        // The old entry point comes back: it must follow, not compete.
        let t = sim.now();
        sim.at(t, Fault::Restart(old));
        let (after, _) = ok(sim.run_until_converged(secs(30), secs(3)));
        assert_eq!(after, new, "seed {seed}");
    }
}

#[test]
fn minority_side_of_a_partition_never_becomes_entry_and_majority_takes_over() {
    let mut cfg = SimConfig::new(3, 5);
    cfg.join_every = Some(secs(1));
    let mut sim = Sim::new(cfg);
    ok(sim.run_until(secs(15)));
    let (old, _) = ok(sim.run_until_converged(secs(10), secs(1)));
    // Put the entry point with one other node on the minority side.
    let other = (old + 1) % 5;
    let sides: Vec<u8> = (0..5).map(|i| u8::from(i == old || i == other)).collect();
    let t = sim.now();
    sim.at(t, Fault::Partition(sides));
    ok(sim.run_until(t + secs(30)));
    // Heal: the majority side's entry point stays, the old one follows it.
    let t = sim.now();
    sim.at(t, Fault::Heal);
    let (entry, _) = ok(sim.run_until_converged(secs(30), secs(3)));
    assert!(
        entry != old && entry != other,
        "the entry point must come from the majority side"
    );
}

#[test]
fn random_crashes_loss_and_partitions_keep_the_invariants_and_converge_after_healing() {
    for seed in 0..24 {
        let nodes = 5 + (seed as usize % 4) * 3;
        let mut cfg = SimConfig::new(seed, nodes);
        cfg.join_every = Some(secs(2));
        cfg.loss = 0.05;
        let mut sim = Sim::new(cfg);
        sim.random_faults(secs(1), secs(60), 25);
        ok(sim.run_until(secs(60)));
        let t = sim.now();
        sim.at(t, Fault::Heal);
        sim.at(t, Fault::Loss(0.02));
        for i in 0..sim.node_count() {
            sim.at(t, Fault::Restart(i));
        }
        ok(sim.run_until_converged(secs(60), secs(5)));
    }
}

#[test]
fn separate_networks_form_two_clusters_and_after_joining_report_the_conflict_without_tearing_down()
{
    let mut cfg = SimConfig::new(5, 8);
    cfg.join_every = Some(secs(1));
    cfg.groups = Some(vec![0, 0, 0, 0, 0, 1, 1, 1]);
    let mut sim = Sim::new(cfg);
    ok(sim.run_until(secs(20)));
    assert_eq!(sim.cluster_size(sim.cluster_of(0).0), 5);
    assert_eq!(sim.cluster_size(sim.cluster_of(5).0), 3);
    let t = sim.now();
    sim.at(t, Fault::Heal);
    let (entry, _) = ok(sim.run_until_converged(secs(30), secs(5)));
    assert!(entry < 5, "the larger cluster keeps the entry point");
    assert!(sim.cluster_of(entry).1);
    assert_eq!(
        sim.conflict_reporters(),
        8,
        "every node reports the conflict"
    );
    let big = sim.cluster_of(0).0.to_owned();
    let small = sim.cluster_of(5).0.to_owned();
    assert_eq!(
        (sim.cluster_size(&big), sim.cluster_size(&small)),
        (5, 3),
        "nothing torn down"
    );
}

#[test]
fn a_partition_longer_than_forget_dead_after_forms_two_clusters_and_heals_to_one_entry_point() {
    let mut cfg = SimConfig::new(8, 8);
    cfg.join_every = Some(secs(1));
    cfg.election.forget_dead_after = Some(secs(20));
    let mut sim = Sim::new(cfg);
    sim.at(secs(1), Fault::Partition(vec![0, 0, 0, 0, 0, 1, 1, 1]));
    ok(sim.run_until(secs(60)));
    let big = sim.cluster_of(0).0.to_owned();
    let small = sim.cluster_of(5).0.to_owned();
    assert_ne!(big, small);
    assert_eq!((sim.cluster_size(&big), sim.cluster_size(&small)), (5, 3));
    let t = sim.now();
    sim.at(t, Fault::Heal);
    let (entry, _) = ok(sim.run_until_converged(secs(30), secs(5)));
    assert_eq!(sim.cluster_of(entry).0, big);
    assert_eq!(sim.conflict_reporters(), 8);
}

#[test]
fn hundreds_of_nodes_with_loss_crash_and_partition_converge_to_one_entry_point() {
    let n = 200;
    let mut cfg = SimConfig::new(42, n);
    cfg.loss = 0.05;
    let mut sim = Sim::new(cfg);
    let (first, _) = ok(sim.run_until_converged(secs(20), secs(2)));
    let t = sim.now();
    sim.at(t, Fault::Crash(first));
    let sides: Vec<u8> = (0..n).map(|i| u8::from(i % 3 == 0)).collect();
    sim.at(t + secs(5), Fault::Partition(sides));
    sim.at(t + secs(15), Fault::Heal);
    ok(sim.run_until(t + secs(15)));
    let (entry, _) = ok(sim.run_until_converged(secs(30), secs(3)));
    assert_ne!(entry, first);
}
