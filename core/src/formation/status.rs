//! What `muster status` says about this node's part in the cluster and the cluster's health.
//!
//! Owns: [`NodeRole`], [`ClusterHealth`], [`HealthWarning`] and the functions that derive
//! them. Pure; the API module renders them.

use super::facts::ClusterFacts;
use crate::election::MemberView;

/// This node's role, as shown by `muster status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRole {
    /// The confirmed entry point (runs `add-node`).
    EntryPoint,
    /// A control plane of a multi-node cluster.
    ControlPlane,
    /// A worker of a multi-node cluster.
    Worker,
    /// Between a join request and a verified join.
    Joining,
    /// Not in any multi-node cluster.
    Unclustered,
}

impl NodeRole {
    /// The word `muster status` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::EntryPoint => "entry-point",
            NodeRole::ControlPlane => "control-plane",
            NodeRole::Worker => "worker",
            NodeRole::Joining => "joining",
            NodeRole::Unclustered => "unclustered",
        }
    }
}

/// The role of the local node: entry point first, then joining, then what its microk8s says.
pub fn node_role(is_entry: bool, joining: bool, local: &MemberView) -> NodeRole {
    if is_entry {
        NodeRole::EntryPoint
    } else if joining {
        NodeRole::Joining
    } else if local.cluster_id.is_some() && local.cluster_size >= 2 {
        if local.control_plane {
            NodeRole::ControlPlane
        } else {
            NodeRole::Worker
        }
    } else {
        NodeRole::Unclustered
    }
}

/// Something about the cluster an operator should know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthWarning {
    /// Exactly two control planes: either loss freezes the datastore; add a third.
    NoFaultTolerance,
    /// A majority of the voters is not live: the API server cannot write.
    QuorumLost {
        /// Live voters.
        live: u32,
        /// All voters.
        voters: u32,
    },
    /// Voters whose machines are dead are still registered; no node is added until they are
    /// removed.
    DeadVoters {
        /// Their names.
        names: Vec<String>,
    },
}

impl std::fmt::Display for HealthWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HealthWarning::NoFaultTolerance => write!(
                f,
                "two control planes: losing either one stops the cluster; add a third node"
            ),
            HealthWarning::QuorumLost { live, voters } => {
                write!(f, "datastore quorum lost: {live} of {voters} voters live")
            }
            HealthWarning::DeadVoters { names } => write!(
                f,
                "dead voters still registered: {}; remove them (`microk8s remove-node <name> --force`) \
                 or set formation.remove_after",
                names.join(", ")
            ),
        }
    }
}

/// Size, voters, HA and warnings of the entry point's cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterHealth {
    /// Nodes in the cluster.
    pub size: u32,
    /// Control planes (datastore members).
    pub control_planes: u32,
    /// Datastore voters.
    pub voters: u32,
    /// Highly available: at least three voters.
    pub ha: bool,
    /// What to look at, most urgent first.
    pub warnings: Vec<HealthWarning>,
}

/// Derives the cluster's health from the entry point's facts.
pub fn cluster_health(facts: &ClusterFacts) -> ClusterHealth {
    let voters = facts.voters();
    let control_planes = facts.control_planes();
    let mut warnings = Vec::new();
    if !facts.has_quorum() {
        warnings.push(HealthWarning::QuorumLost {
            live: facts.live_voters(),
            voters,
        });
    }
    let dead: Vec<String> = facts.dead_voters().iter().map(|n| n.name.clone()).collect();
    if !dead.is_empty() {
        warnings.push(HealthWarning::DeadVoters { names: dead });
    }
    if control_planes == 2 {
        warnings.push(HealthWarning::NoFaultTolerance);
    }
    ClusterHealth {
        size: u32::try_from(facts.nodes.len()).unwrap_or(u32::MAX),
        control_planes,
        voters,
        ha: voters >= 3,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::formation::facts::{ClusterNode, DatastoreRole, MemberState};

    fn cp(name: &str, member: MemberState) -> ClusterNode {
        ClusterNode {
            name: name.into(),
            ready: member == MemberState::Up,
            datastore: Some(DatastoreRole::Voter),
            member,
            ..ClusterNode::default()
        }
    }

    fn worker(name: &str) -> ClusterNode {
        ClusterNode {
            name: name.into(),
            ready: true,
            member: MemberState::Up,
            ..ClusterNode::default()
        }
    }

    #[test]
    fn node_role_table() {
        let lone = MemberView {
            cluster_id: Some("ca".into()),
            cluster_size: 1,
            control_plane: true,
            ..MemberView::default()
        };
        let cp_member = MemberView {
            cluster_size: 3,
            ..lone.clone()
        };
        let worker_member = MemberView {
            control_plane: false,
            ..cp_member.clone()
        };
        let cases = [
            (
                "entry point wins",
                true,
                true,
                &cp_member,
                NodeRole::EntryPoint,
            ),
            (
                "joining before anything else",
                false,
                true,
                &lone,
                NodeRole::Joining,
            ),
            (
                "control plane of a cluster",
                false,
                false,
                &cp_member,
                NodeRole::ControlPlane,
            ),
            (
                "worker of a cluster",
                false,
                false,
                &worker_member,
                NodeRole::Worker,
            ),
            (
                "standalone is unclustered",
                false,
                false,
                &lone,
                NodeRole::Unclustered,
            ),
        ];
        for (name, entry, joining, local, want) in cases {
            assert_eq!(node_role(entry, joining, local), want, "case: {name}");
        }
        assert_eq!(NodeRole::EntryPoint.as_str(), "entry-point");
    }

    #[test]
    fn health_table() {
        let dead = MemberState::Dead {
            since: Duration::ZERO,
        };
        let up = MemberState::Up;
        let h = |nodes| {
            cluster_health(&ClusterFacts {
                nodes,
                version: None,
            })
        };
        let one = h(vec![cp("a", up)]);
        assert_eq!((one.size, one.voters, one.ha), (1, 1, false));
        assert!(one.warnings.is_empty());
        let two = h(vec![cp("a", up), cp("b", up), worker("w")]);
        assert_eq!(two.warnings, [HealthWarning::NoFaultTolerance]);
        assert!(two.warnings[0].to_string().contains("add a third"));
        let three = h(vec![cp("a", up), cp("b", up), cp("c", dead)]);
        assert!(three.ha);
        assert_eq!(
            three.warnings,
            [HealthWarning::DeadVoters {
                names: vec!["c".into()]
            }]
        );
        let frozen = h(vec![cp("a", up), cp("b", dead)]);
        assert_eq!(
            frozen.warnings,
            [
                HealthWarning::QuorumLost { live: 1, voters: 2 },
                HealthWarning::DeadVoters {
                    names: vec!["b".into()]
                },
                HealthWarning::NoFaultTolerance
            ]
        );
    }
}
