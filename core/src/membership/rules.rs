//! The rules that change a member's state, one function per kind of update.
//!
//! Owns: merging an [`Update`] into the table (precedence by [`StateKey`]), refutation of
//! news about this node, starting and expiring suspicions, forgetting old dead members, and
//! turning discoveries and unknown senders into seeds. Every accepted change is queued for
//! re-dissemination and reported as one [`EventKind`].
//! Does not own: when updates arrive (messages, timers) or where they go next.
//!
//! # Rules (see ALGORITHM.md for the reasoning)
//! - `alive(i, meta)` replaces a state with a smaller key: a higher incarnation, or the same
//!   incarnation with newer metadata over an alive state. Dead and left need a higher one.
//! - `suspect(i)` applies to an alive member at incarnation ≤ i, or to a suspect at < i; at
//!   equal incarnation it is a confirmation. Dead and left members are not suspected.
//! - `dead(i)` and `left(i)` apply at incarnation ≥ the known one; a dead member can still
//!   become left (the node's own word is better), never the reverse.
//! - Updates about unknown members other than `alive` are ignored: we cannot reach them.
//! - Push-pull `dead` is merged as `suspect`: a remote verdict is a reason to suspect, and
//!   gives the member time to refute (this is what lets partitions heal gently).
//! - News about this node that is not older than its own state is refuted with a higher
//!   incarnation (unless it is leaving).

use std::sync::Arc;
use std::time::Duration;

use super::member::{Member, StateKey};
use super::message::{NodeId, NodeMeta, Status, Update};
use super::probe::ProbeKind;
use super::suspicion::Suspicion;
use super::swim::{EventKind, LocalPhase, MAX_SEEDS, Membership, Seed};

impl Membership {
    pub(crate) fn apply_all(&mut self, now: Duration, updates: Vec<Update>, via_sync: bool) {
        for update in updates {
            self.apply(now, update, via_sync);
        }
    }

    /// Merges one update. `via_sync` marks full-state transfers, whose `dead` entries are
    /// downgraded to `suspect`.
    pub(crate) fn apply(&mut self, now: Duration, update: Update, via_sync: bool) {
        let update = match update {
            Update::Dead {
                id,
                incarnation,
                from,
            } if via_sync => Update::Suspect {
                id,
                incarnation,
                from,
            },
            other => other,
        };
        if update.id() == self.local.meta.id {
            self.apply_about_self(now, &update);
            return;
        }
        match update {
            Update::Alive { incarnation, meta } => self.apply_alive(now, incarnation, meta),
            Update::Suspect {
                id,
                incarnation,
                from,
            } => self.apply_suspect(now, id, incarnation, from),
            Update::Dead {
                id,
                incarnation,
                from,
            } => self.apply_down(
                now,
                id,
                incarnation,
                Update::Dead {
                    id: String::new(),
                    incarnation,
                    from,
                },
            ),
            Update::Left { id, incarnation } => self.apply_down(
                now,
                id,
                incarnation,
                Update::Left {
                    id: String::new(),
                    incarnation,
                },
            ),
        }
    }

    fn apply_alive(&mut self, now: Duration, incarnation: u64, meta: Arc<NodeMeta>) {
        let id = meta.id.clone();
        let key = StateKey::new(incarnation, Status::Alive, meta.meta_version);
        let prev = self.table.get(&id).map(|e| e.member.clone());
        if prev.as_ref().is_some_and(|p| key <= p.key()) {
            return;
        }
        let (kind, since) = match &prev {
            None => (EventKind::Joined, now),
            Some(p) if p.status == Status::Alive => (EventKind::Updated, p.since),
            Some(_) => (EventKind::AliveAgain, now),
        };
        let member = Member {
            meta,
            incarnation,
            status: Status::Alive,
            since,
        };
        self.table.set(member.clone(), None, &mut self.rng);
        self.seeds.remove(&id);
        self.queue.push(member.to_update(&id));
        self.emit(kind, member);
    }

    fn apply_suspect(&mut self, now: Duration, id: NodeId, incarnation: u64, from: NodeId) {
        let Some(entry) = self.table.get(&id) else {
            return;
        };
        let prev = &entry.member;
        if !prev.status.is_live() || incarnation < prev.incarnation {
            return;
        }
        if prev.status == Status::Suspect && incarnation == prev.incarnation {
            let confirmed = self
                .table
                .suspicion_mut(&id)
                .is_some_and(|s| s.confirm(&from));
            if confirmed {
                self.queue.push(Update::Suspect {
                    id,
                    incarnation,
                    from,
                });
            }
            return;
        }
        let n = self.cluster_size();
        let suspicion = Suspicion::new(
            &from,
            now,
            self.config.suspicion_min(n),
            self.config.suspicion_max(n),
            self.config.expected_confirmations(n),
        );
        let member = Member {
            meta: Arc::clone(&prev.meta),
            incarnation,
            status: Status::Suspect,
            since: now,
        };
        self.table
            .set(member.clone(), Some(suspicion), &mut self.rng);
        self.raise_alert(now);
        let independent = from != self.local.meta.id;
        self.queue.push(Update::Suspect {
            id: id.clone(),
            incarnation,
            from,
        });
        self.emit(EventKind::Suspect, member);
        if independent {
            // Lifeguard needs independent confirmations to shorten the timeout; asking a few
            // members to probe at once brings them within one probe instead of one round.
            let others = self.table.live().len().saturating_sub(1).max(1);
            let p = f64::from(self.config.confirm_probes) / others as f64;
            if self.rng.chance(p) {
                self.start_extra_probe(now, &id, ProbeKind::Confirm);
            }
        }
    }

    /// `dead` or `left` (passed as a template whose id is filled in here).
    fn apply_down(&mut self, now: Duration, id: NodeId, incarnation: u64, template: Update) {
        let Some(entry) = self.table.get(&id) else {
            return;
        };
        let prev = &entry.member;
        let status = template.status();
        let stale = incarnation < prev.incarnation
            || prev.status == Status::Left
            || (prev.status == Status::Dead && status == Status::Dead);
        if stale {
            return;
        }
        let member = Member {
            meta: Arc::clone(&prev.meta),
            incarnation,
            status,
            since: now,
        };
        self.table.set(member.clone(), None, &mut self.rng);
        if status == Status::Dead {
            self.raise_alert(now);
        }
        let update = match template {
            Update::Dead { from, .. } => Update::Dead {
                id,
                incarnation,
                from,
            },
            _ => Update::Left { id, incarnation },
        };
        self.queue.push(update);
        let kind = if status == Status::Left {
            EventKind::Left
        } else {
            EventKind::Dead
        };
        self.emit(kind, member);
    }

    fn apply_about_self(&mut self, now: Duration, update: &Update) {
        if self.phase != LocalPhase::Active {
            return;
        }
        let ours = self.local.key();
        let must_refute = match update {
            Update::Alive { incarnation, meta } => {
                let theirs = StateKey::new(*incarnation, Status::Alive, meta.meta_version);
                // Someone holds a newer alive state of ours (we restarted), or the same
                // version with other content (two lives of this id): either way ours must win.
                theirs > ours || (theirs == ours && **meta != *self.local.meta)
            }
            other => other.incarnation() >= self.local.incarnation,
        };
        if must_refute {
            let meta_version = match update {
                Update::Alive { meta, .. } => meta.meta_version,
                _ => 0,
            };
            self.refute(now, update.incarnation(), meta_version);
        }
    }

    /// Publishes this node alive with an incarnation above `seen` (and a metadata version
    /// above `seen_meta_version`, so observers never see the version go back).
    pub(crate) fn refute(&mut self, _now: Duration, seen: u64, seen_meta_version: u64) {
        self.local.incarnation = self.local.incarnation.max(seen) + 1;
        if seen_meta_version >= self.local.meta.meta_version {
            let mut meta = (*self.local.meta).clone();
            meta.meta_version = seen_meta_version + 1;
            self.local.meta = Arc::new(meta);
        }
        // Having to refute is a sign that we may be the slow one (Lifeguard).
        self.awareness.apply(1);
        self.queue.push(self.local.to_update(&self.local.meta.id));
        self.emit(EventKind::Refuted, self.local.clone());
    }

    /// A member failed: failures are often correlated (a switch, a partition), so probe
    /// beyond the ring for a while (see `start_scheduled_probe`).
    fn raise_alert(&mut self, now: Duration) {
        let window = self.config.suspicion_max(self.cluster_size());
        self.alert_until = self.alert_until.max(now + window);
    }

    pub(crate) fn expire_suspicions(&mut self, now: Duration) {
        let due: Vec<(NodeId, u64)> = self
            .table
            .suspects()
            .iter()
            .filter_map(|id| {
                let e = self.table.get(id)?;
                let s = e.suspicion.as_ref()?;
                (s.deadline() <= now).then(|| (id.clone(), e.member.incarnation))
            })
            .collect();
        for (id, incarnation) in due {
            let from = self.local.meta.id.clone();
            self.apply(
                now,
                Update::Dead {
                    id,
                    incarnation,
                    from,
                },
                false,
            );
        }
    }

    /// Forgets dead and left members older than `dead_retention`.
    pub(crate) fn reap(&mut self, now: Duration) {
        let retention = self.config.dead_retention;
        let old: Vec<NodeId> = self
            .table
            .iter()
            .filter(|e| !e.member.status.is_live() && e.member.since + retention <= now)
            .map(|e| e.member.meta.id.clone())
            .collect();
        for id in old {
            if let Some(entry) = self.table.remove(&id) {
                self.queue.forget(&id);
                self.emit(EventKind::Forgotten, entry.member);
            }
        }
        self.hinted
            .retain(|_, at| *at + self.config.probe_interval * 4 > now);
        self.prune_sync_records(now);
    }

    /// A node seen by discovery (or talking to us) that we do not count as live becomes a
    /// seed: we push-pull with it until it joins our view.
    pub(crate) fn on_discovered(&mut self, now: Duration, id: NodeId, addr: String) {
        if id == self.local.meta.id || self.phase != LocalPhase::Active {
            return;
        }
        if self
            .table
            .get(&id)
            .is_some_and(|e| e.member.status.is_live())
        {
            return;
        }
        let full = self.seeds.len() >= MAX_SEEDS;
        match self.seeds.get_mut(&id) {
            Some(seed) => seed.addr = addr,
            None if full => return,
            None => {
                self.seeds.insert(
                    id,
                    Seed {
                        addr,
                        next_attempt: now,
                        attempts: 0,
                    },
                );
            }
        }
        self.seed_round(now);
    }

    /// After a valid message: a sender we do not count as live is alive after all, but may
    /// not know what we know; make it a seed so a push-pull settles the difference.
    pub(crate) fn note_sender(&mut self, now: Duration, from: NodeId, from_addr: String) {
        // A left member that restarts announces itself with its own push-pull; only unknown
        // and dead senders are worth one from us.
        let settled = self
            .table
            .get(&from)
            .is_some_and(|e| e.member.status != Status::Dead);
        if !settled && !self.seeds.contains_key(&from) {
            self.on_discovered(now, from, from_addr);
        }
    }
}
