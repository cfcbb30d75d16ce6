//! The member table: what this node believes about every other node.
//!
//! Owns: [`Member`] (the public snapshot of one member), [`MemberTable`] with its indexes
//! (live members for random choices, suspects for timers, dead members for reconnects), the
//! shuffled round-robin probe order, the precedence order of states ([`StateKey`]), and the
//! view checksum's per-member term ([`view_term`]) with its running sum over live members.
//! Does not own: the rules that change a member's state (`swim.rs`); the table only stores.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::message::{Digest, NodeId, NodeMeta, Status, Update};
use super::suspicion::Suspicion;
use crate::rng::Rng;

/// One member as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Latest metadata known.
    pub meta: Arc<NodeMeta>,
    /// Latest incarnation known.
    pub incarnation: u64,
    /// Current status.
    pub status: Status,
    /// Local time of the last status change.
    pub since: Duration,
}

impl Member {
    /// The member's id.
    pub fn id(&self) -> &str {
        &self.meta.id
    }

    /// Where the member's Peer service listens.
    pub fn addr(&self) -> &str {
        &self.meta.addr
    }

    /// Precedence key of this state.
    pub fn key(&self) -> StateKey {
        StateKey::new(self.incarnation, self.status, self.meta.meta_version)
    }

    /// The compact summary used by push-pull.
    pub fn digest(&self) -> Digest {
        Digest {
            id: self.meta.id.clone(),
            incarnation: self.incarnation,
            status: self.status,
            meta_version: self.meta.meta_version,
        }
    }

    /// This state's term of the view checksum ([`view_term`]); 0 unless alive or suspect.
    pub fn view_term(&self) -> u64 {
        if self.status.is_live() {
            view_term(&self.meta.id, self.incarnation, self.meta.meta_version)
        } else {
            0
        }
    }

    /// The update that recreates this state at another node (`from` names the declarer of
    /// suspicion or death).
    pub fn to_update(&self, from: &str) -> Update {
        let id = self.meta.id.clone();
        let incarnation = self.incarnation;
        match self.status {
            Status::Alive => Update::Alive {
                incarnation,
                meta: Arc::clone(&self.meta),
            },
            Status::Suspect => Update::Suspect {
                id,
                incarnation,
                from: from.to_owned(),
            },
            Status::Dead => Update::Dead {
                id,
                incarnation,
                from: from.to_owned(),
            },
            Status::Left => Update::Left { id, incarnation },
        }
    }
}

/// One live member's term of the view checksum: a 64-bit mix of `(id, incarnation,
/// meta_version)`. The checksum of a view is the wrapping sum of the terms of its live
/// (alive or suspect) members, the local node included, so it can be kept up to date in
/// O(1) per change and does not depend on iteration order.
///
/// Part of the wire protocol: every agent must compute the same value, so it is written out
/// here (FNV-1a over the id, then SplitMix64's finaliser) rather than taken from a hasher
/// whose algorithm may change between Rust releases. Changing it makes agents of different
/// versions see each other as divergent (harmless, but it costs a push-pull per cooldown).
pub fn view_term(id: &str, incarnation: u64, meta_version: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h = mix(h ^ mix(incarnation.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    mix(h ^ mix(meta_version.wrapping_add(0xD1B5_4A32_D192_ED03)))
}

/// Total order of member states: a state with a greater key supersedes a smaller one.
///
/// Incarnation first; at equal incarnation `alive < suspect < dead < left`; among `alive`
/// states of equal incarnation the greater metadata version. Metadata versions of non-alive
/// states are ignored (those updates carry no metadata).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StateKey {
    incarnation: u64,
    rank: u8,
    meta_version: u64,
}

impl StateKey {
    /// The key of a state.
    pub fn new(incarnation: u64, status: Status, meta_version: u64) -> Self {
        let meta_version = if status == Status::Alive {
            meta_version
        } else {
            0
        };
        StateKey {
            incarnation,
            rank: status.rank(),
            meta_version,
        }
    }

    /// The key of a digest entry.
    pub fn of_digest(d: &Digest) -> Self {
        StateKey::new(d.incarnation, d.status, d.meta_version)
    }
}

/// A member with the local bookkeeping that goes with it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The public snapshot.
    pub member: Member,
    /// Running suspicion, while the member is suspect.
    pub suspicion: Option<Suspicion>,
}

/// All known members except the local node.
#[derive(Clone, Debug, Default)]
pub struct MemberTable {
    entries: BTreeMap<NodeId, Entry>,
    /// Alive and suspect members, sorted, for uniform random choice.
    live: Vec<NodeId>,
    /// Wrapping sum of the live members' [`view_term`]s.
    live_sum: u64,
    suspects: BTreeSet<NodeId>,
    /// Dead (not left) members.
    dead: BTreeSet<NodeId>,
    probe_order: Vec<NodeId>,
    probe_pos: usize,
}

impl MemberTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry of `id`.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// Mutable access to an entry's suspicion (status changes go through [`Self::set`]).
    pub fn suspicion_mut(&mut self, id: &str) -> Option<&mut Suspicion> {
        self.entries.get_mut(id).and_then(|e| e.suspicion.as_mut())
    }

    /// All entries in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Alive and suspect members, sorted by id.
    pub fn live(&self) -> &[NodeId] {
        &self.live
    }

    /// Wrapping sum of the [`view_term`]s of the live members (the table's part of the view
    /// checksum).
    pub fn live_sum(&self) -> u64 {
        self.live_sum
    }

    /// Suspect members.
    pub fn suspects(&self) -> &BTreeSet<NodeId> {
        &self.suspects
    }

    /// Dead (not left) members.
    pub fn dead(&self) -> &BTreeSet<NodeId> {
        &self.dead
    }

    /// Inserts or replaces the state of a member, keeping the indexes in step. A member that
    /// becomes live joins the current probe round at a random place, so that new members are
    /// not all probed last.
    pub fn set(&mut self, member: Member, suspicion: Option<Suspicion>, rng: &mut Rng) {
        let id = member.meta.id.clone();
        let was_live = self
            .entries
            .get(&id)
            .is_some_and(|e| e.member.status.is_live());
        let now_live = member.status.is_live();
        let old_term = self.entries.get(&id).map_or(0, |e| e.member.view_term());
        self.live_sum = self
            .live_sum
            .wrapping_sub(old_term)
            .wrapping_add(member.view_term());
        match (was_live, now_live) {
            (false, true) => {
                if let Err(at) = self.live.binary_search(&id) {
                    self.live.insert(at, id.clone());
                }
                let lo = self.probe_pos.min(self.probe_order.len());
                let at = lo + rng.below((self.probe_order.len() - lo + 1) as u64) as usize;
                self.probe_order.insert(at, id.clone());
            }
            (true, false) => {
                if let Ok(at) = self.live.binary_search(&id) {
                    self.live.remove(at);
                }
            }
            _ => {}
        }
        if member.status == Status::Suspect {
            self.suspects.insert(id.clone());
        } else {
            self.suspects.remove(&id);
        }
        if member.status == Status::Dead {
            self.dead.insert(id.clone());
        } else {
            self.dead.remove(&id);
        }
        self.entries.insert(id, Entry { member, suspicion });
    }

    /// Forgets a member entirely.
    pub fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        self.live_sum = self.live_sum.wrapping_sub(entry.member.view_term());
        if let Ok(at) = self.live.binary_search_by(|x| x.as_str().cmp(id)) {
            self.live.remove(at);
        }
        self.suspects.remove(id);
        self.dead.remove(id);
        Some(entry)
    }

    /// The first live member after `local` in id order, wrapping around: with every node
    /// probing its successor, each live member is probed exactly once per period (when views
    /// agree), which bounds the time until a failure is first noticed by one period.
    pub fn successor(&self, local: &str) -> Option<NodeId> {
        let at = self.live.partition_point(|id| id.as_str() <= local);
        self.live.get(at).or_else(|| self.live.first()).cloned()
    }

    /// The next member to probe: shuffled round-robin over live members, reshuffled at the
    /// end of each round, so every live member is probed once per round (SWIM's bound on
    /// detection time) in an order others cannot predict.
    pub fn next_probe_target(&mut self, rng: &mut Rng) -> Option<NodeId> {
        for _ in 0..2 {
            while self.probe_pos < self.probe_order.len() {
                let id = &self.probe_order[self.probe_pos];
                self.probe_pos += 1;
                if self.live.binary_search(id).is_ok() {
                    return Some(id.clone());
                }
            }
            self.probe_order = self.live.clone();
            rng.shuffle(&mut self.probe_order);
            self.probe_pos = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, status: Status) -> Member {
        Member {
            meta: Arc::new(NodeMeta {
                id: id.to_owned(),
                addr: format!("{id}:1"),
                ..NodeMeta::default()
            }),
            incarnation: 1,
            status,
            since: Duration::ZERO,
        }
    }

    #[test]
    fn state_key_orders_incarnation_then_status_then_meta_version() {
        let k = StateKey::new;
        assert!(k(2, Status::Alive, 0) > k(1, Status::Left, 0));
        assert!(k(1, Status::Suspect, 0) > k(1, Status::Alive, 9));
        assert!(k(1, Status::Dead, 0) > k(1, Status::Suspect, 0));
        assert!(k(1, Status::Left, 0) > k(1, Status::Dead, 0));
        assert!(k(1, Status::Alive, 2) > k(1, Status::Alive, 1));
        assert_eq!(k(1, Status::Dead, 5), k(1, Status::Dead, 0));
    }

    #[test]
    fn indexes_follow_status_changes() {
        let mut rng = Rng::new(1);
        let mut t = MemberTable::new();
        t.set(member("a", Status::Alive), None, &mut rng);
        t.set(member("b", Status::Suspect), None, &mut rng);
        t.set(member("c", Status::Dead), None, &mut rng);
        assert_eq!(t.live(), ["a", "b"]);
        assert!(t.suspects().contains("b"));
        assert!(t.dead().contains("c"));
        t.set(member("b", Status::Left), None, &mut rng);
        assert_eq!(t.live(), ["a"]);
        assert!(t.suspects().is_empty() && !t.dead().contains("b"));
        t.remove("a");
        assert!(t.live().is_empty());
        assert_eq!(t.iter().count(), 2);
    }

    #[test]
    fn round_robin_probes_every_live_member_once_per_round() {
        let mut rng = Rng::new(2);
        let mut t = MemberTable::new();
        for id in ["a", "b", "c", "d"] {
            t.set(member(id, Status::Alive), None, &mut rng);
        }
        t.set(member("x", Status::Dead), None, &mut rng);
        for _ in 0..3 {
            let mut round: Vec<NodeId> = (0..4)
                .map(|_| t.next_probe_target(&mut rng).expect("live members exist"))
                .collect();
            round.sort();
            assert_eq!(round, ["a", "b", "c", "d"]);
        }
        let mut empty = MemberTable::new();
        assert_eq!(empty.next_probe_target(&mut rng), None);
    }

    #[test]
    fn successor_wraps_around_the_sorted_live_members() {
        let mut rng = Rng::new(3);
        let mut t = MemberTable::new();
        assert_eq!(t.successor("m"), None);
        for id in ["b", "d", "f"] {
            t.set(member(id, Status::Alive), None, &mut rng);
        }
        t.set(member("e", Status::Dead), None, &mut rng);
        let succ = |t: &MemberTable, x: &str| t.successor(x).expect("live members exist");
        assert_eq!(succ(&t, "a"), "b");
        assert_eq!(succ(&t, "d"), "f", "dead e is skipped");
        assert_eq!(succ(&t, "c"), "d");
        assert_eq!(succ(&t, "g"), "b", "wraps");
    }
}
