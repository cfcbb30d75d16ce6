//! The membership state machine: inputs and timer ticks in, messages and events out.
//!
//! Owns: [`Membership`] and its entry points (`new`, `handle`, `tick`, `leave`,
//! `update_local_meta`, `drain_outputs`, `next_deadline`, snapshots), the [`Input`] and
//! [`Output`] vocabularies and the local lifecycle ([`LocalPhase`]). The rules that change
//! member states live in `rules.rs`, probing in `probe.rs`, dissemination and push-pull in
//! `sync.rs`; all are `impl Membership` blocks over the fields declared here.
//! Does not own: sockets, clocks, tasks. A driver feeds inputs with the current time, calls
//! `tick` at `next_deadline()`, and carries out every [`Output::Send`] as a one-way unary RPC.
//!
//! # Local lifecycle
//! ```text
//! Active --leave()--> Leaving --queue drained or leave_timeout--> Left
//! ```
//! Active probes, gossips, syncs and refutes. Leaving only gossips its `left` update and
//! answers pings. Left ignores every input and has no deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::awareness::Awareness;
use super::broadcast::BroadcastQueue;
use super::config::{ConfigError, MembershipConfig};
use super::member::{Member, MemberTable};
use super::message::{self, Message, NodeId, NodeMeta, Payload, RejectReason, Status, Update};
use super::probe::{Probe, Relay};
use crate::rng::Rng;

/// Something that happened outside the state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A protocol message arrived from another agent.
    Message(Message),
    /// mDNS (or static configuration) says a node may be at `addr`. Only a hint: the node
    /// becomes a member when it answers a push-pull (or when gossip vouches for it).
    Discovered {
        /// The advertised node id.
        id: NodeId,
        /// Its Peer endpoint.
        addr: String,
    },
    /// mDNS withdrew the node. Only a hint: the node is probed soon, never declared dead.
    Gone {
        /// The withdrawn node id.
        id: NodeId,
    },
    /// A send to `to` failed at once (connection refused, unreachable). A strong hint: a
    /// probe of `to` goes to indirect probes at once, but death still needs suspicion.
    SendFailed {
        /// The intended recipient.
        to: NodeId,
    },
}

/// Something the driver must do or report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `msg` to node `to` at `addr` (one-way; answers come back as inputs).
    Send {
        /// Recipient id (for [`Input::SendFailed`] and logs).
        to: NodeId,
        /// Recipient Peer endpoint.
        addr: String,
        /// The message.
        msg: Message,
    },
    /// The membership view changed.
    Event(MemberEvent),
    /// An input was dropped as malformed or hostile.
    Rejected {
        /// The claimed sender (possibly forged), for logs.
        from: String,
        /// Why it was dropped.
        reason: RejectReason,
    },
}

/// What changed about a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// First seen, alive.
    Joined,
    /// Incarnation or metadata changed while alive.
    Updated,
    /// Suspected of failure.
    Suspect,
    /// Declared dead.
    Dead,
    /// Left on purpose.
    Left,
    /// Alive again after being suspect, dead or left (with a higher incarnation if it was
    /// dead or left).
    AliveAgain,
    /// This node refuted a suspicion (or a stale state) about itself; `member` is the local
    /// node with its new incarnation.
    Refuted,
    /// A dead or left member was forgotten after `dead_retention`.
    Forgotten,
}

/// A change of the membership view, for the journal, the API and later subsystems.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberEvent {
    /// What happened.
    pub kind: EventKind,
    /// The member after the change.
    pub member: Member,
}

/// Where this node is in its own lifecycle (see the module doc for transitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalPhase {
    /// Taking part in the protocol.
    Active,
    /// Spreading its `left` update until the given time.
    Leaving {
        /// When to stop regardless of the queue.
        until: Duration,
    },
    /// Gone quiet; the driver may stop.
    Left,
}

/// A snapshot of the whole view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// This node.
    pub local: Member,
    /// Every other known member, sorted by id.
    pub members: Vec<Member>,
}

impl View {
    /// Members (this node included) with the given status.
    pub fn count(&self, status: Status) -> usize {
        usize::from(self.local.status == status)
            + self.members.iter().filter(|m| m.status == status).count()
    }
}

/// Errors of the local API (never caused by the network).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MembershipError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The local metadata breaks a limit.
    #[error("local metadata: {0}")]
    Meta(RejectReason),
    /// A metadata update tried to change the node id.
    #[error("metadata id {got:?} differs from the local node id {expected:?}")]
    IdChanged {
        /// The local id.
        expected: NodeId,
        /// The id in the update.
        got: NodeId,
    },
    /// The node has left; it no longer publishes anything.
    #[error("the local node has left the mesh")]
    NotActive,
}

/// Most seeds kept at once: a flood of messages from made-up senders cannot grow memory.
pub(crate) const MAX_SEEDS: usize = 1024;

/// A discovered node that has not joined our view yet.
#[derive(Clone, Debug)]
pub(crate) struct Seed {
    pub(crate) addr: String,
    pub(crate) next_attempt: Duration,
    pub(crate) attempts: u32,
}

/// The SWIM + Lifeguard membership state machine of one node.
#[derive(Debug)]
pub struct Membership {
    pub(crate) config: MembershipConfig,
    pub(crate) rng: Rng,
    pub(crate) local: Member,
    pub(crate) phase: LocalPhase,
    pub(crate) table: MemberTable,
    pub(crate) queue: BroadcastQueue,
    pub(crate) awareness: Awareness,
    pub(crate) seq: u64,
    pub(crate) probes: Vec<Probe>,
    pub(crate) relays: Vec<Relay>,
    pub(crate) seeds: BTreeMap<NodeId, Seed>,
    pub(crate) seed_tokens: usize,
    pub(crate) next_seed_window: Duration,
    pub(crate) hinted: BTreeMap<NodeId, Duration>,
    pub(crate) next_probe_at: Duration,
    pub(crate) next_gossip_at: Duration,
    pub(crate) next_sync_at: Duration,
    pub(crate) next_reconnect_at: Duration,
    pub(crate) next_reap_at: Duration,
    /// When this node last ran a push-pull with each member (either side starting it), for
    /// the per-member cooldown of checksum-triggered syncs. Only members of the table, and
    /// pruned with the reaper, so it stays bounded.
    pub(crate) last_sync: BTreeMap<NodeId, Duration>,
    /// No checksum-triggered push-pull before this time (one per protocol period).
    pub(crate) next_view_sync_at: Duration,
    /// Until this time, a member failed recently (suspected or declared dead), so others may
    /// have failed with it: the ring probe alternates with a shuffled round-robin one.
    pub(crate) alert_until: Duration,
    /// Whether the next scheduled probe in alert mode takes the round-robin target.
    pub(crate) alert_flip: bool,
    pub(crate) outputs: Vec<Output>,
}

impl Membership {
    /// A node that knows only itself, alive at incarnation 0. `seed` drives every random
    /// choice; `now` is the driver's monotonic time since any origin.
    pub fn new(
        config: MembershipConfig,
        local: NodeMeta,
        seed: u64,
        now: Duration,
    ) -> Result<Self, MembershipError> {
        config.validate()?;
        message::check_meta(&local).map_err(MembershipError::Meta)?;
        let mut rng = Rng::new(seed);
        // Spread the phases of nodes started together so their probes do not align.
        let probe_phase = rng.duration_between(Duration::ZERO, config.probe_interval);
        let sync_phase = rng.duration_between(Duration::ZERO, config.push_pull_interval);
        let seq = rng.next_u64() >> 16;
        Ok(Membership {
            awareness: Awareness::new(config.awareness_max),
            local: Member {
                meta: Arc::new(local),
                incarnation: 0,
                status: Status::Alive,
                since: now,
            },
            phase: LocalPhase::Active,
            table: MemberTable::new(),
            queue: BroadcastQueue::new(),
            seq,
            probes: Vec::new(),
            relays: Vec::new(),
            seeds: BTreeMap::new(),
            seed_tokens: config.join_syncs,
            next_seed_window: now + config.seed_retry,
            hinted: BTreeMap::new(),
            next_probe_at: now + probe_phase,
            next_gossip_at: now,
            next_sync_at: now + sync_phase,
            next_reconnect_at: now + config.reconnect_interval,
            next_reap_at: now + config.push_pull_interval,
            last_sync: BTreeMap::new(),
            next_view_sync_at: now,
            alert_until: now,
            alert_flip: false,
            outputs: Vec::new(),
            rng,
            config,
        })
    }

    /// Starts at incarnation `incarnation` instead of 0. Drivers pass a number that grows
    /// across restarts (e.g. seconds since the Unix epoch at start), so that a restarted node
    /// supersedes its previous life at once instead of after a round of refutation.
    pub fn with_incarnation(mut self, incarnation: u64) -> Self {
        self.local.incarnation = incarnation.min(message::Limits::MAX_INCARNATION / 2);
        self
    }

    /// Adds members known from elsewhere (a persisted view, a simulation's warm start) as
    /// alive, without gossiping them. Known members are left untouched.
    pub fn restore(&mut self, now: Duration, members: impl IntoIterator<Item = (u64, NodeMeta)>) {
        for (incarnation, meta) in members {
            if meta.id == self.local.meta.id
                || self.table.get(&meta.id).is_some()
                || message::check_meta(&meta).is_err()
            {
                continue;
            }
            let member = Member {
                meta: Arc::new(meta),
                incarnation,
                status: Status::Alive,
                since: now,
            };
            self.table.set(member.clone(), None, &mut self.rng);
            self.emit(EventKind::Joined, member);
        }
    }

    /// Handles one input at time `now`.
    pub fn handle(&mut self, now: Duration, input: Input) {
        if self.phase == LocalPhase::Left {
            return;
        }
        match input {
            Input::Message(msg) => self.on_message(now, msg),
            Input::Discovered { id, addr } => {
                if let Err(reason) = message::check_id(&id).and(message::check_addr(&addr)) {
                    self.outputs.push(Output::Rejected { from: id, reason });
                    return;
                }
                self.on_discovered(now, id, addr);
            }
            Input::Gone { id } => {
                self.seeds.remove(&id);
                self.hint_probe(now, &id);
            }
            Input::SendFailed { to } => self.on_send_failed(now, &to),
        }
    }

    fn on_message(&mut self, now: Duration, msg: Message) {
        if let Err(reason) = msg.validate(&self.local.meta.id) {
            let from: String = msg.from.chars().take(64).collect();
            self.outputs.push(Output::Rejected { from, reason });
            return;
        }
        let Message {
            from,
            from_addr,
            payload,
        } = msg;
        match payload {
            Payload::Ping { seq, updates, .. } => {
                self.apply_all(now, updates, false);
                let updates = self.piggyback();
                let view_checksum = self.published_checksum();
                self.send(
                    &from,
                    &from_addr,
                    Payload::Ack {
                        seq,
                        updates,
                        view_checksum,
                    },
                );
            }
            Payload::Ack {
                seq,
                updates,
                view_checksum,
            } => {
                self.apply_all(now, updates, false);
                if self.on_ack(now, seq, &from) {
                    self.compare_views(now, &from, view_checksum);
                }
            }
            Payload::PingReq {
                seq,
                target,
                target_addr,
                updates,
            } => {
                self.apply_all(now, updates, false);
                self.on_ping_req(now, seq, &from, &from_addr, target, target_addr);
            }
            Payload::Nack { seq } => self.on_nack(now, seq, &from),
            Payload::Gossip { updates } => self.apply_all(now, updates, false),
            Payload::Sync { digest } => self.on_sync(now, &from, &from_addr, &digest),
            Payload::SyncReply { digest, updates } => {
                self.on_sync_reply(now, &from, &from_addr, &digest, updates);
            }
            Payload::SyncDelta { updates } => self.apply_all(now, updates, true),
        }
        self.note_sender(now, from, from_addr);
    }

    /// Runs every timer due at `now`. Call it at (or after) [`Self::next_deadline`].
    pub fn tick(&mut self, now: Duration) {
        if self.phase == LocalPhase::Left {
            return;
        }
        self.expire_probes(now);
        self.expire_relays(now);
        self.expire_suspicions(now);
        // Idle rounds do not count: the first update after a quiet spell goes out at once
        // (an entry point's announcement is on the critical path of a formation), later
        // ones at most one round per `gossip_interval`.
        if now >= self.next_gossip_at && !self.queue.is_empty() {
            self.gossip_round(now);
            self.next_gossip_at = now + self.config.gossip_interval;
        }
        match self.phase {
            LocalPhase::Active => {
                if now >= self.next_probe_at {
                    self.next_probe_at = now + self.awareness.scale(self.config.probe_interval);
                    self.start_scheduled_probe(now);
                }
                self.seed_round(now);
                if now >= self.next_sync_at {
                    self.periodic_sync(now);
                }
                if now >= self.next_reconnect_at {
                    self.next_reconnect_at = now + self.config.reconnect_interval;
                    self.reconnect(now);
                }
                if now >= self.next_reap_at {
                    self.next_reap_at = now + self.config.push_pull_interval;
                    self.reap(now);
                }
            }
            LocalPhase::Leaving { until } => {
                if self.queue.is_empty() || now >= until {
                    self.phase = LocalPhase::Left;
                    self.probes.clear();
                    self.relays.clear();
                }
            }
            LocalPhase::Left => {}
        }
    }

    /// Leaves the mesh gracefully: bumps the incarnation, gossips `left` (others mark this
    /// node left, not dead), stops probing, and goes quiet once the news is out.
    pub fn leave(&mut self, now: Duration) {
        if self.phase != LocalPhase::Active {
            return;
        }
        self.local.incarnation += 1;
        self.local.status = Status::Left;
        self.local.since = now;
        self.queue.push(Update::Left {
            id: self.local.meta.id.clone(),
            incarnation: self.local.incarnation,
        });
        self.probes.clear();
        self.relays.clear();
        self.seeds.clear();
        self.phase = LocalPhase::Leaving {
            until: now + self.config.leave_timeout,
        };
        self.gossip_round(now);
        self.next_gossip_at = now + self.config.gossip_interval;
    }

    /// Publishes new local metadata; its `meta_version` is set to the previous one plus one
    /// (the value passed in is ignored), and a gossip round goes out at the next tick whatever
    /// the rate limit: a node's own news (an entry point announcing itself) is rare and often
    /// awaited. Returns the new version.
    pub fn update_local_meta(
        &mut self,
        mut meta: NodeMeta,
        now: Duration,
    ) -> Result<u64, MembershipError> {
        if self.phase != LocalPhase::Active {
            return Err(MembershipError::NotActive);
        }
        if meta.id != self.local.meta.id {
            return Err(MembershipError::IdChanged {
                expected: self.local.meta.id.clone(),
                got: meta.id,
            });
        }
        message::check_meta(&meta).map_err(MembershipError::Meta)?;
        meta.meta_version = self.local.meta.meta_version + 1;
        let version = meta.meta_version;
        self.local.meta = Arc::new(meta);
        self.queue.push(self.local.to_update(&self.local.meta.id));
        self.next_gossip_at = self.next_gossip_at.min(now);
        Ok(version)
    }

    /// Takes the outputs produced so far, oldest first.
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// The earliest time at which [`Self::tick`] has work, or `None` once the node has left.
    pub fn next_deadline(&self) -> Option<Duration> {
        let mut next: Option<Duration> = None;
        let mut at = |t: Duration| next = Some(next.map_or(t, |n| n.min(t)));
        match self.phase {
            LocalPhase::Left => return None,
            LocalPhase::Leaving { until } => at(until),
            LocalPhase::Active => {
                at(self.next_probe_at);
                at(self.next_reap_at);
                if !self.table.live().is_empty() {
                    at(self.next_sync_at);
                }
                if !self.table.dead().is_empty() {
                    at(self.next_reconnect_at);
                }
                if let Some(t) = self.seeds.values().map(|s| s.next_attempt).min() {
                    // Out of join tokens, a due seed waits for the next window.
                    at(if self.seed_tokens > 0 {
                        t
                    } else {
                        t.max(self.next_seed_window)
                    });
                }
            }
        }
        if !self.queue.is_empty() {
            at(self.next_gossip_at);
        }
        for p in &self.probes {
            at(p.next_timer());
        }
        for r in &self.relays {
            at(r.deadline);
        }
        for id in self.table.suspects() {
            if let Some(s) = self.table.get(id).and_then(|e| e.suspicion.as_ref()) {
                at(s.deadline());
            }
        }
        next
    }

    /// This node as others should see it.
    pub fn local(&self) -> &Member {
        &self.local
    }

    /// The local lifecycle phase.
    pub fn phase(&self) -> LocalPhase {
        self.phase
    }

    /// Every other known member, in id order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.table.iter().map(|e| &e.member)
    }

    /// One member by id (`None` for unknown ids and for the local node).
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.table.get(id).map(|e| &e.member)
    }

    /// A snapshot of the whole view.
    pub fn view(&self) -> View {
        View {
            local: self.local.clone(),
            members: self.members().cloned().collect(),
        }
    }

    /// Members believed alive or suspect, this node included (N in the formulas).
    pub fn cluster_size(&self) -> usize {
        self.table.live().len() + 1
    }

    /// The local health score (0 is healthy).
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// Updates waiting to be disseminated.
    pub fn pending_updates(&self) -> usize {
        self.queue.len()
    }

    /// The configuration in force.
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    /// A 64-bit checksum of this node's view: the wrapping sum of
    /// [`view_term`](super::view_term)`(id, incarnation, meta_version)` over every
    /// alive or suspect member, this node included (dead, left and forgotten members do not
    /// count, so nodes that reaped at different times still agree). Two nodes with the same
    /// live members at the same incarnations and metadata versions have the same checksum;
    /// never 0 (0 means "none" on the wire). Maintained incrementally, O(1) to read.
    pub fn view_checksum(&self) -> u64 {
        let sum = self.table.live_sum().wrapping_add(self.local.view_term());
        sum.max(1)
    }

    /// The checksum this node puts in its acks: none (0) when view sync is disabled or the
    /// node is leaving, so that peers do not sync with a node on its way out.
    pub(crate) fn published_checksum(&self) -> u64 {
        if self.config.view_sync && self.phase == LocalPhase::Active {
            self.view_checksum()
        } else {
            0
        }
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub(crate) fn emit(&mut self, kind: EventKind, member: Member) {
        self.outputs
            .push(Output::Event(MemberEvent { kind, member }));
    }

    pub(crate) fn send(&mut self, to: &str, addr: &str, payload: Payload) {
        self.outputs.push(Output::Send {
            to: to.to_owned(),
            addr: addr.to_owned(),
            msg: Message {
                from: self.local.meta.id.clone(),
                from_addr: self.local.meta.addr.clone(),
                payload,
            },
        });
    }

    /// Updates for one outgoing message, within the piggyback budget.
    pub(crate) fn piggyback(&mut self) -> Vec<Update> {
        let limit = self.config.retransmit_limit(self.cluster_size());
        self.queue.take(self.config.max_piggyback_bytes, limit)
    }
}
