//! The election's input vocabulary: one [`MemberView`] per member, and what the election
//! derives from a whole view (the electorate, its digest, the settle fingerprint).
//!
//! Owns: [`MemberView`], [`Liveness`], [`Electorate`] and the hashing that lets two nodes
//! compare electorates with one number.
//! Does not own: how the membership layer or microk8s produce these facts (the driver maps
//! them), nor the rules that read them (`rules.rs`).

use std::time::Duration;

/// A node id, as the membership layer spells it (32 lowercase hex digits in the daemon).
pub type NodeId = String;

/// An election term. Terms only grow; a higher term supersedes every lower one.
pub type Term = u64;

/// What membership says about a member's health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Liveness {
    /// Answering probes.
    #[default]
    Alive,
    /// Missed probes but not confirmed dead; still counts as up (SWIM may refute it).
    Suspect,
    /// Confirmed dead at `since` (same clock as `now`).
    Dead {
        /// When the death was confirmed.
        since: Duration,
    },
    /// Left gracefully; no longer a member at all.
    Left,
}

impl Liveness {
    /// Alive or suspect: membership has not confirmed a failure.
    pub fn is_up(self) -> bool {
        matches!(self, Liveness::Alive | Liveness::Suspect)
    }
}

/// One member as the local node sees it: membership state plus the microk8s facts the member
/// gossips about itself. The local node must be part of the view it is given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberView {
    /// Node id.
    pub id: NodeId,
    /// Node name (lowercased hostname; also its Kubernetes node name).
    pub name: String,
    /// Membership state.
    pub liveness: Liveness,
    /// Election priority; lower wins among nodes that belong to no multi-node cluster.
    pub priority: u32,
    /// The microk8s cluster this member belongs to (a hash of its CA, say); `None` when
    /// microk8s is absent or its state is unknown. A standalone microk8s is a cluster of one.
    pub cluster_id: Option<String>,
    /// Nodes in that cluster as the member sees it (1 for a standalone microk8s).
    pub cluster_size: u32,
    /// The member runs the control plane of its cluster (a dqlite member; true for a
    /// standalone node, false for a `--worker`).
    pub control_plane: bool,
    /// `microk8s status --wait-ready` succeeded recently.
    pub microk8s_ready: bool,
    /// The member has a default route (microk8s needs one).
    pub has_default_route: bool,
    /// microk8s `major.minor`, when known.
    pub version: Option<String>,
    /// The member announces that it is the confirmed entry point of this term.
    pub entry_term: Option<Term>,
    /// The member announces the highest (entry point, term) it has followed. An entry point
    /// that finds its own term followed under another node's name learns of a term collision
    /// between electorates that never knew each other, and claims a higher term.
    pub followed: Option<(NodeId, Term)>,
}

/// The members whose votes count: every member the node knows that has not left and has not
/// been dead for longer than `forget_dead_after`. Dead members stay in it on purpose, so that
/// the side of a partition that lost contact with them cannot reach a majority.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Electorate {
    ids: Vec<NodeId>,
    up: usize,
    digest: u64,
}

impl Electorate {
    /// Builds the electorate of `view` at `now`. `view` need not be sorted.
    pub fn of(view: &[MemberView], now: Duration, forget_dead_after: Option<Duration>) -> Self {
        let mut ids = Vec::with_capacity(view.len());
        let mut up = 0;
        for m in view {
            if counts(m, now, forget_dead_after) {
                up += usize::from(m.liveness.is_up());
                ids.push(m.id.clone());
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let digest = digest_ids(&ids);
        Electorate { ids, up, digest }
    }

    /// Number of voters.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when nobody is in it (a view without even the local node).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Voters that membership reports up (alive or suspect).
    pub fn up(&self) -> usize {
        self.up
    }

    /// Votes needed to confirm a claim: a strict majority of the electorate.
    pub fn majority(&self) -> usize {
        self.ids.len() / 2 + 1
    }

    /// Enough voters are up for a claim to be able to succeed.
    pub fn has_quorum(&self) -> bool {
        !self.ids.is_empty() && self.up >= self.majority()
    }

    /// A voter of this electorate.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.binary_search_by(|x| x.as_str().cmp(id)).is_ok()
    }

    /// The voters, sorted.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// A 64-bit fingerprint of the sorted voter ids (FNV-1a). Claims carry it so that a voter
    /// only confirms a claimant that counts the same voters (see the module doc).
    pub fn digest(&self) -> u64 {
        self.digest
    }
}

/// Whether `m` is a voter at `now`: not left, and not dead for `forget_dead_after` or longer.
pub(crate) fn counts(m: &MemberView, now: Duration, forget_dead_after: Option<Duration>) -> bool {
    match m.liveness {
        Liveness::Alive | Liveness::Suspect => true,
        Liveness::Dead { since } => {
            forget_dead_after.is_none_or(|after| now < since.saturating_add(after))
        }
        Liveness::Left => false,
    }
}

/// FNV-1a offset basis and prime (64-bit).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Incremental FNV-1a, used for digests and the settle fingerprint. Not cryptographic: peers
/// are trusted (mutual TLS), the hash only detects disagreement.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(FNV_OFFSET)
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
        // A separator that cannot appear in UTF-8, so ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(FNV_PRIME);
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

fn digest_ids(ids: &[NodeId]) -> u64 {
    let mut h = Fnv::new();
    for id in ids {
        h.bytes(id.as_bytes());
    }
    h.finish()
}

/// A fingerprint of everything in `view` that the rules read, in id order. The election acts
/// only after it has stayed the same for the settle window. Alive and suspect hash alike, so
/// suspicion that is refuted does not restart the window; members outside the electorate
/// (left, or forgotten) are left out.
pub(crate) fn fingerprint(view: &[MemberView], counted: impl Fn(&MemberView) -> bool) -> u64 {
    let mut h = Fnv::new();
    for m in view.iter().filter(|m| counted(m)) {
        h.bytes(m.id.as_bytes());
        h.u64(u64::from(m.liveness.is_up()));
        h.u64(u64::from(m.priority));
        h.bytes(m.cluster_id.as_deref().unwrap_or("").as_bytes());
        h.u64(u64::from(m.cluster_size));
        h.u64(u64::from(m.control_plane) | u64::from(m.microk8s_ready) << 1);
        h.u64(u64::from(m.has_default_route) | u64::from(m.cluster_id.is_some()) << 1);
        h.u64(m.entry_term.map_or(0, |t| t.saturating_add(1)));
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, liveness: Liveness) -> MemberView {
        MemberView {
            id: id.into(),
            liveness,
            ..MemberView::default()
        }
    }

    #[test]
    fn electorate_counts_dead_members_but_not_left_or_forgotten_ones() {
        let view = vec![
            member("a", Liveness::Alive),
            member("b", Liveness::Suspect),
            member(
                "c",
                Liveness::Dead {
                    since: Duration::from_secs(10),
                },
            ),
            member(
                "d",
                Liveness::Dead {
                    since: Duration::from_secs(1),
                },
            ),
            member("e", Liveness::Left),
        ];
        let now = Duration::from_secs(12);
        let kept = Electorate::of(&view, now, None);
        assert_eq!(kept.ids(), ["a", "b", "c", "d"]);
        assert_eq!((kept.up(), kept.majority()), (2, 3));
        assert!(!kept.has_quorum());
        let forgetful = Electorate::of(&view, now, Some(Duration::from_secs(5)));
        assert_eq!(forgetful.ids(), ["a", "b", "c"]);
        assert!(forgetful.has_quorum());
    }

    #[test]
    fn electorate_digest_depends_on_members_not_on_their_order_or_health() {
        let a = vec![member("x", Liveness::Alive), member("y", Liveness::Alive)];
        let b = vec![
            member(
                "y",
                Liveness::Dead {
                    since: Duration::ZERO,
                },
            ),
            member("x", Liveness::Suspect),
        ];
        let c = vec![member("x", Liveness::Alive), member("yz", Liveness::Alive)];
        let d = |v: &[MemberView]| Electorate::of(v, Duration::ZERO, None).digest();
        assert_eq!(d(&a), d(&b));
        assert_ne!(d(&a), d(&c));
    }

    #[test]
    fn fingerprint_ignores_suspicion_but_sees_entry_terms_and_deaths() {
        let base = vec![member("a", Liveness::Alive), member("b", Liveness::Alive)];
        let counted = |m: &MemberView| counts(m, Duration::ZERO, None);
        let fp = fingerprint(&base, counted);
        let mut suspect = base.clone();
        suspect[1].liveness = Liveness::Suspect;
        assert_eq!(fingerprint(&suspect, counted), fp);
        let mut dead = base.clone();
        dead[1].liveness = Liveness::Dead {
            since: Duration::ZERO,
        };
        assert_ne!(fingerprint(&dead, counted), fp);
        let mut entry = base;
        entry[0].entry_term = Some(0);
        assert_ne!(fingerprint(&entry, counted), fp);
    }
}
