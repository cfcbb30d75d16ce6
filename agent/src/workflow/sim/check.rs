//! The simulator's invariants, one function per invariant, and its convergence predicate.
//! Each failure carries the seed (through [`Sim::fail`]).
//!
//! - One join in flight per cluster, in the cores: among running entry points, at most one
//!   open grant (from `Granted` until `Joined`/`JoinFailed`) per microk8s cluster
//!   ([`Sim::check_every_step`]). A coordinator that stepped down keeps its slot until it
//!   times out; it is no longer counted, since its follower, if any, is covered by the next
//!   check.
//! - One join in flight per cluster, at the twin: two `microk8s join` runs into the same
//!   cluster never overlap in time ([`Sim::check_no_overlapping_joins`]).
//! - Never two entry points confirmed in one term, across nodes and time
//!   ([`Sim::check_one_entry_per_term`]). Strict, because the partitions here are shorter
//!   than `forget_dead_after` (see the election's module doc for when electorates may
//!   legitimately differ).
//! - No live member removed: `remove-node` never names a machine that runs and is a member of
//!   the entry point's cluster ([`Sim::check_no_live_member_removed`]); a running machine
//!   outside that cluster may only lose a stale Node object of its own), and never runs
//!   against a node the twin lists Ready whose machine runs
//!   ([`Sim::check_no_ready_live_node_removed`]).

use std::collections::BTreeMap;

use muster_core::election::Term;
use muster_core::formation::Phase;

use super::{JoinWindow, Sim, SimFailure};
use crate::microk8s::{Microk8s, Readiness};

impl Sim {
    /// The invariants checked after every step.
    pub(super) fn check_every_step(&self) -> Result<(), SimFailure> {
        self.check_one_grant_per_cluster()
    }

    /// Among running entry points, at most one open grant per microk8s cluster.
    fn check_one_grant_per_cluster(&self) -> Result<(), SimFailure> {
        if self.grants.len() < 2 {
            return Ok(());
        }
        let mut by_cluster: BTreeMap<Vec<String>, Vec<(usize, &str)>> = BTreeMap::new();
        for (&entry, follower) in &self.grants {
            let active = self.nodes[entry]
                .agent
                .as_ref()
                .is_some_and(|a| a.coordinator().is_active());
            if active {
                by_cluster
                    .entry(self.cluster_of(entry))
                    .or_default()
                    .push((entry, follower));
            }
        }
        for grants in by_cluster.values() {
            if grants.len() > 1 {
                let list: Vec<String> = grants
                    .iter()
                    .map(|(e, f)| format!("{} granted {f}", self.nodes[*e].name))
                    .collect();
                return Err(self.fail(format!(
                    "two joins in flight in one cluster: {}",
                    list.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// A `microk8s join` that starts now overlaps no other join into the same cluster.
    pub(super) fn check_no_overlapping_joins(&self, new: &JoinWindow) -> Result<(), SimFailure> {
        let clash = self
            .joins
            .iter()
            .find(|j| j.until > new.from && j.cluster.iter().any(|h| new.cluster.contains(h)));
        match clash {
            Some(j) => Err(self.fail(format!(
                "{} joins cluster {:?} while {}'s join into {:?} runs (since {:?}, until {:?})",
                new.joiner, new.cluster, j.joiner, j.cluster, j.from, j.until
            ))),
            None => Ok(()),
        }
    }

    /// No other node was confirmed entry point of `term`.
    pub(super) fn check_one_entry_per_term(&self, i: usize, term: Term) -> Result<(), SimFailure> {
        match self.entries.get(&term) {
            Some(&other) if other != i => Err(self.fail(format!(
                "two entry points in term {term}: {} and {}",
                self.nodes[other].name, self.nodes[i].name
            ))),
            _ => Ok(()),
        }
    }

    /// Entry point `entry` never asks for `remove-node name` while that machine runs as a
    /// member of the entry's microk8s cluster. (A running machine outside the cluster, reset
    /// to a standalone node, may have a stale Node object of its own removed.)
    pub(super) fn check_no_live_member_removed(
        &self,
        entry: usize,
        name: &str,
    ) -> Result<(), SimFailure> {
        let entry_name = &self.nodes[entry].name;
        match self.nodes.iter().position(|n| n.name == name) {
            Some(target) if self.is_up(target) && self.cluster_of(target).contains(entry_name) => {
                Err(self.fail(format!(
                    "{entry_name} removes {name}, a running member of its cluster"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The twin never runs `remove-node` against a Ready node whose machine runs.
    pub(super) fn check_no_ready_live_node_removed(
        &self,
        entry: usize,
        name: &str,
    ) -> Result<(), SimFailure> {
        let Some(target) = self.nodes.iter().position(|n| n.name == name) else {
            return Ok(());
        };
        if !self.is_up(target) {
            return Ok(());
        }
        let nodes = super::twin::now_or_never(self.nodes[entry].fake.nodes()).unwrap_or_default();
        if nodes
            .iter()
            .any(|n| n.name == name && n.readiness == Readiness::Ready)
        {
            return Err(self.fail(format!(
                "{} runs remove-node against {name}, Ready and running",
                self.nodes[entry].name
            )));
        }
        Ok(())
    }

    /// Liveness: every running machine is in one microk8s cluster, listed Ready there, led by
    /// one entry point, and every other running machine's follower verified its join.
    pub fn converged(&self) -> Result<(), String> {
        let live = self.live();
        let Some(&first) = live.first() else {
            return Err("no machine runs".to_owned());
        };
        let entries = self.entry_points();
        let [(entry, _)] = entries[..] else {
            return Err(format!("{} entry points: {entries:?}", entries.len()));
        };
        let cluster = self.cluster_of(first);
        if let Some(&out) = live
            .iter()
            .find(|&&i| !cluster.contains(&self.nodes[i].name))
        {
            return Err(format!(
                "{} is not in {}'s cluster {cluster:?}; its follower: {:?}",
                self.nodes[out].name,
                self.nodes[first].name,
                self.phase(out)
            ));
        }
        let nodes = super::twin::now_or_never(self.nodes[entry].fake.nodes())
            .map_err(|e| format!("the entry point cannot list its nodes: {e}"))?;
        for &i in &live {
            let name = &self.nodes[i].name;
            if !nodes
                .iter()
                .any(|n| &n.name == name && n.readiness == Readiness::Ready)
            {
                return Err(format!("{name} is not Ready in the cluster"));
            }
            if i != entry {
                let phase = self.phase(i);
                if phase != Some(&Phase::Joined) {
                    return Err(format!("{name} has not verified its join: {phase:?}"));
                }
            }
        }
        Ok(())
    }
}
