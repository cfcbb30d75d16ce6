//! Failure detection: direct probes, indirect probes through relays, and relaying for others.
//!
//! Owns: the probe state machine ([`Probe`], [`ProbePhase`]), the relay jobs this node runs
//! for others ([`Relay`]), and the awareness deltas probing produces.
//! Does not own: what a failed probe leads to beyond raising a suspicion (`rules.rs`).
//!
//! # Probe transitions
//! ```text
//! start ──ping──> Direct ──ack──────────────────────────────> done (health -1)
//!                   │ probe_timeout, or the send failed fast
//!                   v
//!                 Indirect (ping-req to k relays) ──ack via a relay──> done (health -1)
//!                   │ probe_interval ends, or every relay nacked / failed fast
//!                   v
//!                 failed: suspect(target, its incarnation); health += missed nacks
//! ```
//! A reconnect probe (ping to a dead member) has no indirect phase and raises nothing when it
//! fails: its answer alone matters, and the answer turns the sender into a seed.
//!
//! # Scheduled target
//! `ring`: the successor in id order, except that for `suspicion_max` after any member was
//! suspected or declared dead, every other scheduled probe takes the next shuffled
//! round-robin target instead (skipping members already suspect). Failures are often
//! correlated (a switch, a partition); the ring alone would find a run of k failed successors
//! one after the other, k periods or more, while random targets find them in parallel.

use std::time::Duration;

use super::config::ProbeSchedule;
use super::message::{NodeId, Payload, RejectReason, Update};
use super::swim::{LocalPhase, Membership, Output};

/// Why a probe was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// The round-robin probe of this protocol period.
    Scheduled,
    /// Another node suspects the target; probe to confirm (or to carry the news to it).
    Confirm,
    /// The transport or discovery hinted that the target is gone.
    Hint,
    /// Is a dead member back (healed partition)?
    Reconnect,
}

/// Where a probe stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbePhase {
    /// Waiting for the target's own ack until `timeout_at`.
    Direct {
        /// End of the direct phase.
        timeout_at: Duration,
    },
    /// Waiting for an ack relayed by one of `relays`.
    Indirect {
        /// The members asked to probe on our behalf.
        relays: Vec<NodeId>,
        /// Relays that answered "target unreachable".
        nacks: usize,
        /// Relays we could not even reach.
        failed: usize,
    },
}

/// One probe in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Sequence number of our ping and ping-reqs.
    pub seq: u64,
    /// The member probed.
    pub target: NodeId,
    /// Why.
    pub kind: ProbeKind,
    /// Where it stands.
    pub phase: ProbePhase,
    /// When it fails if no ack came.
    pub deadline: Duration,
}

impl Probe {
    /// The next time this probe needs attention.
    pub fn next_timer(&self) -> Duration {
        match self.phase {
            ProbePhase::Direct { timeout_at } => timeout_at.min(self.deadline),
            ProbePhase::Indirect { .. } => self.deadline,
        }
    }

    fn all_relays_answered(&self) -> bool {
        match &self.phase {
            ProbePhase::Indirect {
                relays,
                nacks,
                failed,
            } => !relays.is_empty() && nacks + failed >= relays.len(),
            ProbePhase::Direct { .. } => false,
        }
    }
}

/// A ping we send on behalf of another member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relay {
    /// Our sequence number for the ping to the target.
    pub seq: u64,
    /// Who asked.
    pub origin: NodeId,
    /// Where to answer.
    pub origin_addr: String,
    /// The asker's sequence number.
    pub origin_seq: u64,
    /// The member to ping.
    pub target: NodeId,
    /// When we give up and send a nack.
    pub deadline: Duration,
}

/// Relay jobs kept at once; more ping-reqs are dropped (a flood cannot grow memory).
const MAX_RELAYS: usize = 64;

impl Membership {
    pub(crate) fn start_scheduled_probe(&mut self, now: Duration) {
        let alert = now < self.alert_until;
        let target = match self.config.probe_schedule {
            ProbeSchedule::Ring if alert && self.alert_flip => {
                self.alert_flip = false;
                self.alert_target()
            }
            ProbeSchedule::Ring => {
                self.alert_flip = alert;
                self.table.successor(&self.local.meta.id)
            }
            ProbeSchedule::ShuffledRoundRobin => self.table.next_probe_target(&mut self.rng),
        };
        let Some(target) = target else {
            return;
        };
        if self.probes.iter().any(|p| p.target == target) {
            return;
        }
        self.start_probe(now, &target, ProbeKind::Scheduled);
    }

    /// The round-robin target for a probe in alert mode: skips members already suspect
    /// (their suspicion is running and confirm probes cover them) for at most one round.
    fn alert_target(&mut self) -> Option<NodeId> {
        let mut first = None;
        for _ in 0..self.table.live().len() {
            let id = self.table.next_probe_target(&mut self.rng)?;
            if !self.table.suspects().contains(&id) {
                return Some(id);
            }
            first.get_or_insert(id);
        }
        first
    }

    pub(crate) fn start_extra_probe(&mut self, now: Duration, target: &str, kind: ProbeKind) {
        if self.phase != LocalPhase::Active || self.probes.iter().any(|p| p.target == target) {
            return;
        }
        let extra = self
            .probes
            .iter()
            .filter(|p| p.kind != ProbeKind::Scheduled)
            .count();
        if extra >= self.config.max_extra_probes {
            return;
        }
        self.start_probe(now, target, kind);
    }

    /// A hint (failed send, mDNS withdrawal) about a live member: probe it now, at most once
    /// per probe interval per member.
    pub(crate) fn hint_probe(&mut self, now: Duration, id: &str) {
        let live = self
            .table
            .get(id)
            .is_some_and(|e| e.member.status.is_live());
        if !live {
            return;
        }
        if let Some(at) = self.hinted.get(id)
            && *at + self.config.probe_interval > now
        {
            return;
        }
        self.hinted.insert(id.to_owned(), now);
        self.start_extra_probe(now, id, ProbeKind::Hint);
    }

    pub(crate) fn start_reconnect_probe(&mut self, now: Duration, target: &str) {
        self.start_extra_probe(now, target, ProbeKind::Reconnect);
    }

    fn start_probe(&mut self, now: Duration, target: &str, kind: ProbeKind) {
        let Some(addr) = self.table.get(target).map(|e| e.member.meta.addr.clone()) else {
            return;
        };
        let seq = self.next_seq();
        let updates = self.piggyback();
        self.send(
            target,
            &addr,
            Payload::Ping {
                seq,
                target: target.to_owned(),
                updates,
            },
        );
        let timeout = self.awareness.scale(self.config.probe_timeout);
        let span = if kind == ProbeKind::Reconnect {
            timeout
        } else {
            self.awareness.scale(self.config.probe_interval)
        };
        self.probes.push(Probe {
            seq,
            target: target.to_owned(),
            kind,
            phase: ProbePhase::Direct {
                timeout_at: now + timeout,
            },
            deadline: now + span,
        });
    }

    pub(crate) fn expire_probes(&mut self, now: Duration) {
        let mut i = 0;
        while i < self.probes.len() {
            if self.probes[i].deadline <= now {
                let probe = self.probes.remove(i);
                self.probe_failed(now, probe);
                continue;
            }
            if let ProbePhase::Direct { timeout_at } = self.probes[i].phase
                && timeout_at <= now
            {
                self.go_indirect(i);
            }
            i += 1;
        }
    }

    /// Asks up to `indirect_checks` live members to ping the target of probe `i`.
    fn go_indirect(&mut self, i: usize) {
        let target = self.probes[i].target.clone();
        let seq = self.probes[i].seq;
        let target_addr = self.table.get(&target).map(|e| e.member.meta.addr.clone());
        let mut relays = Vec::new();
        if let Some(target_addr) = target_addr {
            let candidates: Vec<(NodeId, String)> = self
                .table
                .live()
                .iter()
                .filter(|id| **id != target)
                .filter_map(|id| {
                    let e = self.table.get(id)?;
                    Some((id.clone(), e.member.meta.addr.clone()))
                })
                .collect();
            let picks = self
                .rng
                .sample_indices(candidates.len(), self.config.indirect_checks);
            for pick in picks {
                let (relay, relay_addr) = &candidates[pick];
                let updates = self.piggyback();
                self.send(
                    relay,
                    relay_addr,
                    Payload::PingReq {
                        seq,
                        target: target.clone(),
                        target_addr: target_addr.clone(),
                        updates,
                    },
                );
                relays.push(relay.clone());
            }
        }
        self.probes[i].phase = ProbePhase::Indirect {
            relays,
            nacks: 0,
            failed: 0,
        };
    }

    fn probe_failed(&mut self, now: Duration, probe: Probe) {
        if probe.kind == ProbeKind::Reconnect {
            return;
        }
        // Lifeguard: relays that stayed silent (no nack) suggest that our own links are the
        // problem, so we slow down before accusing anyone else.
        let delta = match &probe.phase {
            ProbePhase::Indirect {
                relays,
                nacks,
                failed,
            } if !relays.is_empty() => relays.len().saturating_sub(nacks + failed),
            _ => 1,
        };
        self.awareness.apply(delta as i64);
        let Some(entry) = self.table.get(&probe.target) else {
            return;
        };
        if !entry.member.status.is_live() {
            return;
        }
        let suspect = Update::Suspect {
            id: probe.target.clone(),
            incarnation: entry.member.incarnation,
            from: self.local.meta.id.clone(),
        };
        self.apply(now, suspect, false);
    }

    /// Completes the probe or relay job `seq`; false when the ack was rejected (a sender the
    /// probe did not involve).
    pub(crate) fn on_ack(&mut self, _now: Duration, seq: u64, from: &str) -> bool {
        if let Some(i) = self.probes.iter().position(|p| p.seq == seq) {
            let probe = &self.probes[i];
            let legit = probe.target == from
                || matches!(&probe.phase, ProbePhase::Indirect { relays, .. }
                    if relays.iter().any(|r| r == from));
            if !legit {
                self.reject(from, RejectReason::UnexpectedSender { kind: "ack", seq });
                return false;
            }
            // A reconnect probe needs nothing more here: the ack's sender is dead in our
            // table, so `note_sender` makes it a seed and a push-pull follows.
            self.probes.remove(i);
            self.awareness.apply(-1);
            return true;
        }
        if let Some(i) = self.relays.iter().position(|r| r.seq == seq) {
            if self.relays[i].target != from {
                self.reject(from, RejectReason::UnexpectedSender { kind: "ack", seq });
                return false;
            }
            let relay = self.relays.remove(i);
            let updates = self.piggyback();
            // The origin hears the relay's view, not the target's: the checksum always
            // describes the sender of the message that carries it.
            let view_checksum = self.published_checksum();
            self.send(
                &relay.origin,
                &relay.origin_addr,
                Payload::Ack {
                    seq: relay.origin_seq,
                    updates,
                    view_checksum,
                },
            );
        }
        // Any other sequence number is a late ack of a finished probe: harmless.
        true
    }

    pub(crate) fn on_nack(&mut self, now: Duration, seq: u64, from: &str) {
        let Some(i) = self.probes.iter().position(|p| p.seq == seq) else {
            return;
        };
        match &mut self.probes[i].phase {
            ProbePhase::Indirect { relays, nacks, .. } if relays.iter().any(|r| r == from) => {
                *nacks += 1;
            }
            _ => {
                self.reject(from, RejectReason::UnexpectedSender { kind: "nack", seq });
                return;
            }
        }
        if self.probes[i].all_relays_answered() {
            let probe = self.probes.remove(i);
            self.probe_failed(now, probe);
        }
    }

    pub(crate) fn on_ping_req(
        &mut self,
        now: Duration,
        origin_seq: u64,
        origin: &str,
        origin_addr: &str,
        target: NodeId,
        target_addr: String,
    ) {
        if self.phase != LocalPhase::Active || self.relays.len() >= MAX_RELAYS {
            return;
        }
        let seq = self.next_seq();
        let updates = self.piggyback();
        self.send(
            &target,
            &target_addr,
            Payload::Ping {
                seq,
                target: target.clone(),
                updates,
            },
        );
        self.relays.push(Relay {
            seq,
            origin: origin.to_owned(),
            origin_addr: origin_addr.to_owned(),
            origin_seq,
            target,
            deadline: now + self.awareness.scale(self.config.probe_timeout),
        });
    }

    pub(crate) fn expire_relays(&mut self, now: Duration) {
        let (due, keep): (Vec<Relay>, Vec<Relay>) = std::mem::take(&mut self.relays)
            .into_iter()
            .partition(|r| r.deadline <= now);
        self.relays = keep;
        for relay in due {
            self.send_nack(&relay);
        }
    }

    fn send_nack(&mut self, relay: &Relay) {
        self.send(
            &relay.origin,
            &relay.origin_addr,
            Payload::Nack {
                seq: relay.origin_seq,
            },
        );
    }

    /// The transport could not reach `to` at all.
    pub(crate) fn on_send_failed(&mut self, now: Duration, to: &str) {
        let mut involved = false;
        let mut to_indirect = Vec::new();
        let mut finished = Vec::new();
        for (i, probe) in self.probes.iter_mut().enumerate() {
            if probe.target == to {
                involved = true;
                if let ProbePhase::Direct { .. } = probe.phase {
                    if probe.kind == ProbeKind::Reconnect {
                        finished.push(probe.seq);
                    } else {
                        to_indirect.push(i);
                    }
                }
                continue;
            }
            if let ProbePhase::Indirect { relays, failed, .. } = &mut probe.phase
                && relays.iter().any(|r| r == to)
            {
                involved = true;
                *failed += 1;
            }
            if probe.all_relays_answered() {
                finished.push(probe.seq);
            }
        }
        for i in to_indirect {
            self.go_indirect(i);
        }
        for seq in finished {
            if let Some(i) = self.probes.iter().position(|p| p.seq == seq) {
                let probe = self.probes.remove(i);
                self.probe_failed(now, probe);
            }
        }
        let (failed_relays, keep): (Vec<Relay>, Vec<Relay>) = std::mem::take(&mut self.relays)
            .into_iter()
            .partition(|r| r.target == to);
        self.relays = keep;
        for relay in &failed_relays {
            self.send_nack(relay);
        }
        involved |= !failed_relays.is_empty() || self.seeds.contains_key(to);
        if !involved {
            self.hint_probe(now, to);
        }
    }

    pub(crate) fn reject(&mut self, from: &str, reason: RejectReason) {
        self.outputs.push(Output::Rejected {
            from: from.chars().take(64).collect(),
            reason,
        });
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
