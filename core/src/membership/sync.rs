//! Dissemination beyond piggybacking: gossip rounds, digest push-pull, joins and reconnects.
//!
//! Owns: gossip rounds (only while updates are queued), the three-step digest push-pull
//! (`Sync` → `SyncReply` → `SyncDelta`), seeding from discovery (rate-limited join syncs with
//! backoff), reconnect pings to dead members, the periodic full sync, and the push-pull that
//! a view-checksum mismatch in an ack starts (with its per-member cooldown and per-period cap).
//! Does not own: merging what arrives (`rules.rs`).
//!
//! # Push-pull
//! ```text
//! A --Sync{digest A}--> B          B merges nothing yet, refutes if A's digest holds stale
//!                                  news about B, answers with what A lacks
//! A <--SyncReply{digest B, updates}-- B
//! A merges, refutes if needed, sends what B lacks (if anything)
//! A --SyncDelta{updates}--> B
//! ```
//! Digests are ~30 bytes a member, so a steady-state sync is small; full metadata travels
//! only for members whose state differs.

use std::collections::HashMap;
use std::time::Duration;

use super::member::StateKey;
use super::message::{Digest, NodeId, Payload, Status, Update};
use super::swim::{LocalPhase, Membership};

/// Seed attempts before a discovered node is given up (until discovered again).
const MAX_SEED_ATTEMPTS: u32 = 8;

impl Membership {
    /// Sends queued updates to `gossip_fanout` random members (live ones, and dead ones
    /// recently enough that they may be alive and need to hear it to refute).
    pub(crate) fn gossip_round(&mut self, now: Duration) {
        let mut targets: Vec<NodeId> = self.table.live().to_vec();
        for id in self.table.dead() {
            if let Some(e) = self.table.get(id)
                && e.member.since + self.config.gossip_to_dead > now
            {
                targets.push(id.clone());
            }
        }
        let picks = self
            .rng
            .sample_indices(targets.len(), self.config.gossip_fanout);
        for pick in picks {
            let updates = self.piggyback();
            if updates.is_empty() {
                break;
            }
            let target = &targets[pick];
            let Some(addr) = self.table.get(target).map(|e| e.member.meta.addr.clone()) else {
                continue;
            };
            self.send(target, &addr, Payload::Gossip { updates });
        }
    }

    /// Starts due seed syncs, at most `join_syncs` per `seed_retry` window.
    pub(crate) fn seed_round(&mut self, now: Duration) {
        if now >= self.next_seed_window {
            self.seed_tokens = self.config.join_syncs;
            self.next_seed_window = now + self.config.seed_retry;
        }
        if self.seeds.is_empty() || self.seed_tokens == 0 {
            return;
        }
        let mut due: Vec<(Duration, NodeId)> = self
            .seeds
            .iter()
            .filter(|(_, s)| s.next_attempt <= now)
            .map(|(id, s)| (s.next_attempt, id.clone()))
            .collect();
        // Oldest first, random among equals so that nodes started together spread out.
        self.rng.shuffle(&mut due);
        due.sort_by_key(|(t, _)| *t);
        for (_, id) in due {
            if self.seed_tokens == 0 {
                break;
            }
            let Some(seed) = self.seeds.get_mut(&id) else {
                continue;
            };
            seed.attempts += 1;
            let backoff = 1u32 << (seed.attempts - 1).min(4);
            seed.next_attempt = now + self.config.seed_retry * backoff;
            let addr = seed.addr.clone();
            if seed.attempts >= MAX_SEED_ATTEMPTS {
                self.seeds.remove(&id);
            }
            self.seed_tokens -= 1;
            self.start_sync(now, &id, &addr);
        }
    }

    /// The periodic push-pull with one random live member.
    pub(crate) fn periodic_sync(&mut self, now: Duration) {
        let base = self.config.push_pull_interval_for(self.cluster_size());
        // Jitter keeps nodes started together from syncing in lockstep.
        let factor = 0.75 + self.rng.unit_f64() * 0.5;
        self.next_sync_at = now + base.mul_f64(factor);
        let Some(id) = self.rng.choose(self.table.live()).cloned() else {
            return;
        };
        if let Some(addr) = self.table.get(&id).map(|e| e.member.meta.addr.clone()) {
            self.start_sync(now, &id, &addr);
        }
    }

    /// Pings one random dead member: if it answers, the partition has healed.
    pub(crate) fn reconnect(&mut self, now: Duration) {
        let dead: Vec<NodeId> = self.table.dead().iter().cloned().collect();
        if let Some(id) = self.rng.choose(&dead).cloned() {
            self.start_reconnect_probe(now, &id);
        }
    }

    pub(crate) fn start_sync(&mut self, now: Duration, to: &str, addr: &str) {
        self.note_sync(now, to);
        let digest = self.digest();
        self.send(to, addr, Payload::Sync { digest });
    }

    /// Remembers a push-pull with `peer` (only for members of the table: a flood of syncs
    /// from made-up senders cannot grow the map).
    fn note_sync(&mut self, now: Duration, peer: &str) {
        if self.table.get(peer).is_some() {
            self.last_sync.insert(peer.to_owned(), now);
        }
    }

    /// An ack from `from` carried `theirs`, the checksum of its view: if it differs from
    /// ours, one of us missed news that gossip will not repeat, so push-pull with it now
    /// (rate-limited per member and per period, see `view_sync_cooldown`).
    pub(crate) fn compare_views(&mut self, now: Duration, from: &str, theirs: u64) {
        if !self.config.view_sync
            || theirs == 0
            || self.phase != LocalPhase::Active
            || now < self.next_view_sync_at
            || theirs == self.view_checksum()
        {
            return;
        }
        if self
            .last_sync
            .get(from)
            .is_some_and(|at| *at + self.config.view_sync_cooldown > now)
        {
            return;
        }
        // Sync at the address we hold, not the one the message claims.
        let Some(addr) = self
            .table
            .get(from)
            .filter(|e| e.member.status.is_live())
            .map(|e| e.member.meta.addr.clone())
        else {
            return;
        };
        self.next_view_sync_at = now + self.awareness.scale(self.config.probe_interval);
        self.start_sync(now, from, &addr);
    }

    /// Drops cooldown records that no longer hold anything back.
    pub(crate) fn prune_sync_records(&mut self, now: Duration) {
        let cooldown = self.config.view_sync_cooldown;
        self.last_sync.retain(|_, at| *at + cooldown > now);
    }

    /// One entry per known member, this node first.
    pub(crate) fn digest(&self) -> Vec<Digest> {
        std::iter::once(self.local.digest())
            .chain(self.table.iter().map(|e| e.member.digest()))
            .collect()
    }

    /// Our states that are newer than `digest` (or unknown to it). Dead and left members the
    /// peer never heard of are left out: it would ignore them.
    fn newer_than(&self, digest: &[Digest]) -> Vec<Update> {
        let theirs: HashMap<&str, StateKey> = digest
            .iter()
            .map(|d| (d.id.as_str(), StateKey::of_digest(d)))
            .collect();
        let local_id = self.local.meta.id.as_str();
        std::iter::once(&self.local)
            .chain(self.table.iter().map(|e| &e.member))
            .filter(|m| match theirs.get(m.id()) {
                Some(key) => m.key() > *key,
                None => m.status.is_live(),
            })
            .map(|m| m.to_update(local_id))
            .collect()
    }

    /// Refutes if a peer's digest holds a state of this node newer than our own.
    fn check_digest_about_self(&mut self, now: Duration, digest: &[Digest]) {
        let Some(d) = digest.iter().find(|d| d.id == self.local.meta.id) else {
            return;
        };
        if StateKey::of_digest(d) > self.local.key() && self.phase == LocalPhase::Active {
            let meta_version = if d.status == Status::Alive {
                d.meta_version
            } else {
                0
            };
            self.refute(now, d.incarnation, meta_version);
        }
    }

    pub(crate) fn on_sync(
        &mut self,
        now: Duration,
        from: &str,
        from_addr: &str,
        digest: &[Digest],
    ) {
        self.note_sync(now, from);
        self.check_digest_about_self(now, digest);
        let updates = self.newer_than(digest);
        let digest = self.digest();
        self.send(from, from_addr, Payload::SyncReply { digest, updates });
    }

    pub(crate) fn on_sync_reply(
        &mut self,
        now: Duration,
        from: &str,
        from_addr: &str,
        digest: &[Digest],
        updates: Vec<Update>,
    ) {
        self.apply_all(now, updates, true);
        self.check_digest_about_self(now, digest);
        let delta = self.newer_than(digest);
        if !delta.is_empty() {
            self.send(from, from_addr, Payload::SyncDelta { updates: delta });
        }
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
