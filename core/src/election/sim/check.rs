//! The simulator's bookkeeping of outputs and its invariant checks (one function per
//! invariant), plus the crude formation model that grows clusters.
//!
//! Owns: `impl Sim` blocks for carrying out a core's outputs and checking after each one.

use super::{Body, Sim, SimFailure};
use crate::election::msg::{Input, Output, Role};
use crate::election::view::Term;

impl Sim {
    /// Feeds one input to node `i` and carries out its outputs, checking invariants.
    pub(super) fn drive(&mut self, i: usize, input: Input) -> Result<(), SimFailure> {
        let now = self.now;
        self.nodes[i].core.handle(now, input);
        let outputs = self.nodes[i].core.drain_outputs();
        for out in outputs {
            match out {
                Output::Persist(hard) => self.nodes[i].hard = hard,
                Output::SendClaim { to, claim } => self.send(i, &to, Body::Claim(claim)),
                Output::SendClaimReply { to, reply } => self.send(i, &to, Body::Reply(reply)),
                Output::ClaimStarted { term, .. } => {
                    self.stats.claims_started += 1;
                    let digest = self.nodes[i].core.electorate().digest();
                    self.nodes[i].claim_digest.insert(term, digest);
                }
                Output::BecameEntry { term } => self.on_entry(i, term)?,
                Output::Announce {
                    entry_term,
                    followed,
                } => {
                    self.nodes[i].meta.entry_term = entry_term;
                    self.nodes[i].meta.followed = followed;
                    self.nodes[i].version += 1;
                }
                Output::Following { entry, term } => self.on_follow(i, &entry, term)?,
                Output::Unfollowed { entry, term } => {
                    let e = self.index.get(&entry).copied();
                    if self.nodes[i].following != e.map(|e| (e, term)) {
                        return Err(self.failure(format!(
                            "{} unfollowed {entry}@{term} which it did not follow",
                            self.nodes[i].id
                        )));
                    }
                    self.nodes[i].following = None;
                }
                Output::ClaimFailed { .. }
                | Output::SteppedDown { .. }
                | Output::Conflict(_)
                | Output::ConflictCleared => {}
            }
        }
        Ok(())
    }

    fn on_entry(&mut self, i: usize, term: Term) -> Result<(), SimFailure> {
        self.stats.entries += 1;
        let digest = self.nodes[i]
            .claim_digest
            .get(&term)
            .copied()
            .unwrap_or_default();
        let others = self.entries.entry(term).or_default().clone();
        for (other, other_digest) in others {
            if other != i && (self.strict || other_digest == digest) {
                let (a, b) = (&self.nodes[other].id, &self.nodes[i].id);
                return Err(self.failure(format!("two entry points in term {term}: {a} and {b}")));
            }
        }
        self.entries.entry(term).or_default().push((i, digest));
        let meta = &self.nodes[i].meta;
        let size = self.cluster_size(&meta.cluster_id);
        if size >= 2 && !meta.control_plane {
            return Err(self.failure(format!(
                "worker {} of cluster {} became entry point in term {term}",
                self.nodes[i].id, meta.cluster_id
            )));
        }
        Ok(())
    }

    fn on_follow(&mut self, i: usize, entry: &str, term: Term) -> Result<(), SimFailure> {
        let Some(&e) = self.index.get(entry) else {
            return Err(self.failure(format!("{} follows unknown {entry}", self.nodes[i].id)));
        };
        if let Some((cur, t)) = self.nodes[i].following {
            return Err(self.failure(format!(
                "{} follows {entry}@{term} while still following {}@{t}",
                self.nodes[i].id, self.nodes[cur].id
            )));
        }
        if let Some(&prev) = self.followed[i].get(&term)
            && prev != e
        {
            return Err(self.failure(format!(
                "{} followed {} and {entry} in term {term}",
                self.nodes[i].id, self.nodes[prev].id
            )));
        }
        self.followed[i].insert(term, e);
        self.nodes[i].following = Some((e, term));
        Ok(())
    }

    pub(super) fn formation(&mut self) {
        let Some(every) = self.cfg.join_every else {
            return;
        };
        if self.now < self.last_join + every {
            return;
        }
        self.last_join = self.now;
        let n = self.nodes.len();
        for e in 0..n {
            let acting = self.nodes[e].up
                && matches!(self.nodes[e].core.role(), Role::Entry { .. })
                && self.nodes[e].core.electorate().has_quorum();
            if !acting {
                continue;
            }
            let cid = self.nodes[e].meta.cluster_id.clone();
            let joiner = (0..n).find(|&j| {
                j != e
                    && self.reachable(e, j)
                    && self.nodes[j].meta.cluster_id != cid
                    && self.cluster_size(&self.nodes[j].meta.cluster_id) == 1
            });
            let Some(j) = joiner else {
                continue;
            };
            let control_planes = self
                .nodes
                .iter()
                .filter(|x| x.meta.cluster_id == cid && x.meta.control_plane)
                .count();
            self.nodes[j].meta.cluster_id = cid.clone();
            self.nodes[j].meta.control_plane = control_planes < self.cfg.control_planes;
            self.stats.joins += 1;
            let size = self.cluster_size(&cid) as u32;
            self.nodes[j].version += 1;
            for x in self
                .nodes
                .iter_mut()
                .filter(|x| x.up && x.meta.cluster_id == cid)
            {
                x.meta.cluster_size = size;
                x.version += 1;
            }
        }
    }
}
