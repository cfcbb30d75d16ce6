//! Faults and observations of the simulated agents (a child of the simulator, so it sees its
//! private state).

use muster_core::election::{Role, Term};
use muster_core::formation::Phase;

use super::{Reply, Sim, SimFailure};
use crate::microk8s::JoinFault;

impl Sim {
    // ----- faults -----

    /// Crashes machine `i`: its mesh, its workflow and its microk8s stop; what it kept in
    /// memory is lost (the vote and a worker's cluster id are on disk). Callers waiting on
    /// it see their connection reset.
    pub fn crash(&mut self, i: usize) {
        let Some(agent) = self.nodes[i].agent.take() else {
            return;
        };
        let name = self.nodes[i].name.clone();
        self.note(format!("{name} crashes"));
        let mut waiting = agent.callers();
        // In a fixed order: the replay must not depend on a hash map's.
        waiting.sort_by_key(|c| (c.node, c.id));
        for call in waiting {
            self.answer(
                i,
                call,
                Reply::Failed {
                    detail: "connection reset",
                },
            );
        }
        let n = &mut self.nodes[i];
        n.mesh = None;
        n.epoch += 1;
        n.pending.clear();
        n.mesh_wake = None;
        n.wf_wake = None;
        self.grants.remove(&i);
        self.twin.stop(&name);
    }

    /// Restarts crashed machine `i`: microk8s starts, then the agent; it rediscovers every
    /// other machine within `discovery_within`.
    pub fn restart(&mut self, i: usize) -> Result<(), SimFailure> {
        if self.is_up(i) {
            return Ok(());
        }
        let name = self.nodes[i].name.clone();
        self.twin.start(&name);
        self.boot(i)?;
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.discover_all(i, &all);
        Ok(())
    }

    /// Splits the network: machines talk only within their group (`group_of[i]`).
    pub fn partition(&mut self, group_of: Vec<u32>) {
        self.note(format!("partition {group_of:?}"));
        self.groups = Some(group_of);
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        self.note("heal".to_owned());
        self.groups = None;
    }

    /// The next `microk8s join` run on machine `i` exits 0 and never completes.
    pub fn silent_join_failure(&mut self, i: usize) {
        let name = self.nodes[i].name.clone();
        self.note(format!("{name}'s next join will fail silently"));
        self.twin.set_join_fault(&name, JoinFault::Silent);
    }

    // ----- observations -----

    /// Whether machine `i` runs.
    pub fn up(&self, i: usize) -> bool {
        self.is_up(i)
    }

    /// Machine `i`'s host name.
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// The running machines.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.is_up(i)).collect()
    }

    /// The running machines whose election made them entry point, with their terms.
    pub fn entry_points(&self) -> Vec<(usize, Term)> {
        self.live()
            .into_iter()
            .filter_map(|i| match self.nodes[i].agent.as_ref()?.election().role() {
                Role::Entry { term } => Some((i, term)),
                _ => None,
            })
            .collect()
    }

    /// Every term an entry point was confirmed in, with that entry point.
    pub fn confirmed_entries(&self) -> Vec<(Term, usize)> {
        self.entries.iter().map(|(t, i)| (*t, *i)).collect()
    }

    /// The hosts in machine `i`'s microk8s cluster (itself included), as the twin has it.
    pub fn cluster_of(&self, i: usize) -> Vec<String> {
        self.twin.cluster_members(&self.nodes[i].name)
    }

    /// The follower phase of running machine `i`.
    pub fn phase(&self, i: usize) -> Option<&Phase> {
        self.nodes[i].agent.as_ref().map(|a| a.phase())
    }

    /// Whether running machine `i` reports two microk8s clusters among the members.
    pub fn reports_conflict(&self, i: usize) -> bool {
        self.nodes[i].agent.as_ref().is_some_and(|a| a.conflict())
    }

    /// How many `microk8s join`s the twin ran or runs.
    pub fn joins_started(&self) -> usize {
        self.joins.len()
    }
}

impl Sim {
    /// How many times machine `i` ran `microk8s leave` on the twin.
    pub fn leaves_run(&self, i: usize) -> usize {
        let name = &self.nodes[i].name;
        self.twin
            .calls()
            .iter()
            .filter(|(host, cmd)| host == name && cmd.to_string() == "microk8s leave")
            .count()
    }

    /// A digest of the run so far, to compare two runs of one seed.
    pub fn digest(&self) -> String {
        format!(
            "{:?} {:?} {:?} {:?}",
            self.now,
            self.entries,
            self.joins
                .iter()
                .map(|j| (j.joiner.clone(), j.from))
                .collect::<Vec<_>>(),
            self.trace
        )
    }
}
