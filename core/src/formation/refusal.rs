//! The reasons a node refuses to join, as pure checks over the membership view.
//!
//! Owns: [`Refusal`] and [`join_refusals`]. Every refusal is reported (status and journal),
//! never silent, and re-checked whenever the view changes, so a fixed problem unblocks the
//! join by itself.
//! Does not own: the entry point's own checks at grant time (`entry.rs`).

use crate::election::{MemberView, NodeId};

/// Why this node will not join the entry point's cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Another up member has the same hostname: microk8s names nodes by hostname and breaks
    /// when two share one (the join "succeeds" but the node never shows, or microk8s stops).
    DuplicateHostname {
        /// The shared name.
        name: String,
        /// The other members that carry it.
        others: Vec<NodeId>,
    },
    /// This node already belongs to another multi-node cluster; it is never moved unless
    /// the operator allows it (`formation.move_from_other_cluster`).
    InAnotherCluster {
        /// Our cluster.
        cluster_id: String,
        /// Its size.
        size: u32,
    },
    /// microk8s versions differ between this node and the entry point.
    MixedVersions {
        /// Ours.
        local: String,
        /// The entry point's.
        entry: String,
    },
    /// No default route: microk8s' containerd and kubelite wait for one forever.
    NoDefaultRoute,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::DuplicateHostname { name, others } => write!(
                f,
                "hostname {name} is also used by {}; give every machine a unique hostname",
                others.join(", ")
            ),
            Refusal::InAnotherCluster { cluster_id, size } => write!(
                f,
                "this node belongs to another microk8s cluster ({cluster_id}, {size} nodes); \
                 run `muster leave` here, or set formation.move_from_other_cluster, to move it"
            ),
            Refusal::MixedVersions { local, entry } => write!(
                f,
                "microk8s {local} here but {entry} on the entry point; install the same channel"
            ),
            Refusal::NoDefaultRoute => {
                write!(
                    f,
                    "no default route; microk8s needs one (add one, even on an isolated LAN)"
                )
            }
        }
    }
}

/// Checks whether `local` may join the cluster of `entry`, given the whole `view`. Returns
/// every reason that applies (empty: go ahead), in a fixed order.
///
/// - duplicate hostnames: only among up members, so a reinstalled machine (new node id,
///   same name) is not blocked by its own dead former self;
/// - another cluster: `local` is in a multi-node cluster whose id differs from the entry's;
/// - mixed versions: both versions known and different (unknown is not a reason);
/// - no default route.
pub fn join_refusals(local: &MemberView, entry: &MemberView, view: &[MemberView]) -> Vec<Refusal> {
    let mut out = Vec::new();
    let name = local.name.to_lowercase();
    let others: Vec<NodeId> = view
        .iter()
        .filter(|m| m.id != local.id && m.liveness.is_up() && m.name.to_lowercase() == name)
        .map(|m| m.id.clone())
        .collect();
    if !others.is_empty() {
        out.push(Refusal::DuplicateHostname { name, others });
    }
    if let Some(cid) = &local.cluster_id
        && local.cluster_size >= 2
        && entry.cluster_id.as_ref() != Some(cid)
    {
        out.push(Refusal::InAnotherCluster {
            cluster_id: cid.clone(),
            size: local.cluster_size,
        });
    }
    if let (Some(l), Some(e)) = (&local.version, &entry.version)
        && l != e
    {
        out.push(Refusal::MixedVersions {
            local: l.clone(),
            entry: e.clone(),
        });
    }
    if !local.has_default_route {
        out.push(Refusal::NoDefaultRoute);
    }
    out
}

/// True when `local` is already a member of the entry point's multi-node cluster.
pub fn already_joined(local: &MemberView, entry: &MemberView) -> bool {
    local.cluster_size >= 2 && local.cluster_id.is_some() && local.cluster_id == entry.cluster_id
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::election::Liveness;

    fn member(id: &str, name: &str, cluster: &str, size: u32) -> MemberView {
        MemberView {
            id: id.into(),
            name: name.into(),
            cluster_id: Some(cluster.into()),
            cluster_size: size,
            control_plane: true,
            microk8s_ready: true,
            has_default_route: true,
            version: Some("1.32".into()),
            ..MemberView::default()
        }
    }

    #[test]
    fn join_refusal_table() {
        let entry = member("e", "entry", "X", 2);
        let fine = member("l", "local", "ca-l", 1);
        let dead_twin = MemberView {
            liveness: Liveness::Dead {
                since: Duration::ZERO,
            },
            ..member("old", "local", "X", 2)
        };
        let cases: Vec<(&str, MemberView, Vec<MemberView>, Vec<Refusal>)> = vec![
            ("a standalone node may join", fine.clone(), vec![], vec![]),
            (
                "duplicate hostname among up members is refused",
                fine.clone(),
                vec![member("twin", "LOCAL", "ca-t", 1)],
                vec![Refusal::DuplicateHostname {
                    name: "local".into(),
                    others: vec!["twin".into()],
                }],
            ),
            (
                "a dead namesake does not block",
                fine.clone(),
                vec![dead_twin],
                vec![],
            ),
            (
                "member of another multi-node cluster is refused",
                member("l", "local", "Y", 3),
                vec![],
                vec![Refusal::InAnotherCluster {
                    cluster_id: "Y".into(),
                    size: 3,
                }],
            ),
            (
                "mixed versions are refused",
                MemberView {
                    version: Some("1.31".into()),
                    ..fine.clone()
                },
                vec![],
                vec![Refusal::MixedVersions {
                    local: "1.31".into(),
                    entry: "1.32".into(),
                }],
            ),
            (
                "unknown version is not a reason",
                MemberView {
                    version: None,
                    ..fine.clone()
                },
                vec![],
                vec![],
            ),
            (
                "no default route is refused, with every other reason",
                MemberView {
                    has_default_route: false,
                    version: Some("1.30".into()),
                    ..fine.clone()
                },
                vec![],
                vec![
                    Refusal::MixedVersions {
                        local: "1.30".into(),
                        entry: "1.32".into(),
                    },
                    Refusal::NoDefaultRoute,
                ],
            ),
        ];
        for (name, local, extra, want) in cases {
            let mut view = vec![entry.clone(), local.clone()];
            view.extend(extra);
            assert_eq!(join_refusals(&local, &entry, &view), want, "case: {name}");
        }
    }

    #[test]
    fn already_joined_means_same_multi_node_cluster() {
        let entry = member("e", "entry", "X", 3);
        assert!(already_joined(&member("l", "l", "X", 3), &entry));
        assert!(!already_joined(&member("l", "l", "ca-l", 1), &entry));
        let lone_entry = member("e", "entry", "X", 1);
        assert!(!already_joined(&member("l", "l", "X", 1), &lone_entry));
    }

    #[test]
    fn refusals_tell_the_operator_what_to_do() {
        let r = Refusal::InAnotherCluster {
            cluster_id: "Y".into(),
            size: 3,
        };
        assert!(r.to_string().contains("muster leave"));
        assert!(
            Refusal::NoDefaultRoute
                .to_string()
                .contains("default route")
        );
    }
}
