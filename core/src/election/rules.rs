//! The entry-point rules: from one membership view, which node should be the entry point.
//!
//! Owns: [`choose_entry`], [`clusters`] and their result types. Pure functions of the view;
//! every node evaluates them on its own view, and a claim is only confirmed by voters whose
//! own evaluation names the claimant.
//! Does not own: timing (settle window), terms or votes (`machine.rs`, `claim.rs`).
//!
//! # The rules, in order
//! Only members that are up (alive or suspect) are considered; a dead member is never chosen,
//! so a takeover waits until membership has *confirmed* the failure.
//! 1. **Existing cluster.** If some microk8s cluster has two or more nodes, the largest one
//!    (ties: the smallest cluster id) keeps the entry role: its current entry point (the up
//!    control-plane member of that cluster announcing the highest entry term) if there is
//!    one, else its ready control-plane member with the lowest (priority, node id). Workers
//!    and members of other clusters are never chosen; with no up control plane there is no
//!    entry point ([`NoCandidate::NoLiveControlPlane`]).
//! 2. **Fresh start.** Otherwise the up member announcing the highest entry term keeps the
//!    role (so a late arrival with a lower id does not interrupt a formation in progress),
//!    else the eligible member with the lowest (priority, node id), where eligible means:
//!    microk8s present and ready, and a default route.

use super::view::{MemberView, NodeId, Term};

/// Why a node was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Rule 1: the announced entry point of the largest cluster keeps its role.
    KeepsClusterEntry,
    /// Rule 1: the lowest (priority, id) ready control plane of the largest cluster.
    ClusterControlPlane,
    /// Rule 2: the announced entry point keeps its role.
    KeepsEntry,
    /// Rule 2: the lowest (priority, id) eligible member.
    LowestPriority,
}

/// Why no node can be chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoCandidate {
    /// No multi-node cluster exists and no up member is eligible.
    NoEligibleMember,
    /// The largest cluster has no up, ready control-plane member.
    NoLiveControlPlane {
        /// That cluster.
        cluster_id: String,
    },
}

/// The outcome of the rules on one view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// This node should be the entry point.
    Chosen {
        /// The node.
        node: NodeId,
        /// The cluster whose entry point it is (rule 1), `None` under rule 2.
        cluster_id: Option<String>,
        /// Which rule chose it.
        reason: Reason,
    },
    /// Nobody can be.
    None(NoCandidate),
}

impl Decision {
    /// The chosen node, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Decision::Chosen { node, .. } => Some(node),
            Decision::None(_) => None,
        }
    }

    /// True when the rules choose `id`.
    pub fn chooses(&self, id: &str) -> bool {
        self.node() == Some(id)
    }
}

/// A multi-node microk8s cluster seen in the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Its id.
    pub cluster_id: String,
    /// Its size: the largest size any up member reports, and at least the number of up
    /// members that belong to it.
    pub size: u32,
    /// The up members that belong to it, sorted.
    pub members: Vec<NodeId>,
}

/// Multi-node clusters among the up members, largest first (ties: smaller id first).
///
/// More than one means a conflict: two clusters formed apart (a partition, or networks that
/// were joined later). Neither is torn down; the rules pick the first.
pub fn clusters(view: &[MemberView]) -> Vec<ClusterInfo> {
    // Most members of a forming LAN are standalone clusters of one: group by borrowed id
    // first and only build the (owned) result for groups that can be multi-node.
    let mut tagged: Vec<(&str, u32, &str)> = view
        .iter()
        .filter(|m| m.liveness.is_up())
        .filter_map(|m| Some((m.cluster_id.as_deref()?, m.cluster_size, m.id.as_str())))
        .collect();
    tagged.sort_unstable();
    let mut out = Vec::new();
    for group in tagged.chunk_by(|a, b| a.0 == b.0) {
        let reported = group.iter().map(|g| g.1).max().unwrap_or(0);
        let size = reported.max(u32::try_from(group.len()).unwrap_or(u32::MAX));
        if size >= 2 {
            out.push(ClusterInfo {
                cluster_id: group[0].0.to_owned(),
                size,
                members: group.iter().map(|g| g.2.to_owned()).collect(),
            });
        }
    }
    out.sort_by(|a, b| {
        b.size
            .cmp(&a.size)
            .then_with(|| a.cluster_id.cmp(&b.cluster_id))
    });
    out
}

/// Applies the rules to `view` (see the module doc).
pub fn choose_entry(view: &[MemberView]) -> Decision {
    choose_entry_in(view, &clusters(view))
}

/// [`choose_entry`] with the view's [`clusters`] already computed.
pub(crate) fn choose_entry_in(view: &[MemberView], clusters: &[ClusterInfo]) -> Decision {
    let up = || view.iter().filter(|m| m.liveness.is_up());
    if let Some(largest) = clusters.first() {
        let cid = largest.cluster_id.clone();
        let control_planes =
            || up().filter(|m| m.control_plane && m.cluster_id.as_deref() == Some(cid.as_str()));
        if let Some(m) = highest_entry(control_planes()) {
            return chosen(m, Some(cid), Reason::KeepsClusterEntry);
        }
        return match lowest(control_planes().filter(|m| m.microk8s_ready)) {
            Some(m) => chosen(m, Some(cid), Reason::ClusterControlPlane),
            None => Decision::None(NoCandidate::NoLiveControlPlane { cluster_id: cid }),
        };
    }
    if let Some(m) = highest_entry(up()) {
        return chosen(m, None, Reason::KeepsEntry);
    }
    let eligible =
        up().filter(|m| m.cluster_id.is_some() && m.microk8s_ready && m.has_default_route);
    match lowest(eligible) {
        Some(m) => chosen(m, None, Reason::LowestPriority),
        None => Decision::None(NoCandidate::NoEligibleMember),
    }
}

fn chosen(m: &MemberView, cluster_id: Option<String>, reason: Reason) -> Decision {
    Decision::Chosen {
        node: m.id.clone(),
        cluster_id,
        reason,
    }
}

/// The member announcing the highest entry term; on a tie (possible only between electorates
/// that never knew each other) the lowest (priority, id).
fn highest_entry<'a>(members: impl Iterator<Item = &'a MemberView>) -> Option<&'a MemberView> {
    members
        .filter_map(|m| m.entry_term.map(|t| (t, m)))
        .max_by(|(ta, a), (tb, b)| ta.cmp(tb).then_with(|| rank(b).cmp(&rank(a))))
        .map(|(_, m)| m)
}

fn lowest<'a>(members: impl Iterator<Item = &'a MemberView>) -> Option<&'a MemberView> {
    members.min_by(|a, b| rank(a).cmp(&rank(b)))
}

fn rank(m: &MemberView) -> (u32, &str) {
    (m.priority, m.id.as_str())
}

/// The highest term any member of `view` announces as entry point or as followed (for
/// choosing the next term).
pub(crate) fn max_announced_term(view: &[MemberView]) -> Term {
    view.iter()
        .flat_map(|m| [m.entry_term, m.followed.as_ref().map(|(_, t)| *t)])
        .flatten()
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
