//! What the entry point knows about its microk8s cluster, and the judgements drawn from it:
//! datastore quorum, dead voters, members due for removal.
//!
//! Owns: [`ClusterFacts`], [`ClusterNode`] and their queries.
//! Does not own: reading them. The driver combines `kubectl get nodes -o json` (names,
//! Ready, InternalIP), the datastore lines of `microk8s status` (matched to nodes by IP) and
//! the membership view (matched by name) into one [`ClusterFacts`].

use std::net::IpAddr;
use std::time::Duration;

/// A node's raft role in the datastore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatastoreRole {
    /// Votes; three of them make HA.
    Voter,
    /// Replicates; promoted when a voter goes.
    Standby,
    /// Neither votes nor replicates.
    Spare,
}

/// What membership says about the machine behind a cluster node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemberState {
    /// Alive or suspect.
    Up,
    /// Confirmed dead since then.
    Dead {
        /// When the death was confirmed.
        since: Duration,
    },
    /// Left the mesh gracefully.
    Left,
    /// No member carries this node's name (a machine without muster, or one long gone).
    #[default]
    Unknown,
}

/// One node of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterNode {
    /// Kubernetes node name (the lowercased hostname).
    pub name: String,
    /// Its `InternalIP`.
    pub ip: Option<IpAddr>,
    /// Its `Ready` condition is `True`.
    pub ready: bool,
    /// Its datastore role, when it is listed in the datastore lines (control planes only).
    pub datastore: Option<DatastoreRole>,
    /// Membership's verdict on the machine.
    pub member: MemberState,
}

impl ClusterNode {
    /// Counts toward datastore quorum: a voter that membership reports up, or that no
    /// member names but Kubernetes reports Ready.
    pub fn is_live_voter(&self) -> bool {
        self.datastore == Some(DatastoreRole::Voter)
            && match self.member {
                MemberState::Up => true,
                MemberState::Unknown => self.ready,
                MemberState::Dead { .. } | MemberState::Left => false,
            }
    }
}

/// The entry point's cluster, as last observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterFacts {
    /// Every node Kubernetes lists, plus datastore members that have no Node object.
    pub nodes: Vec<ClusterNode>,
    /// The entry point's microk8s `major.minor`, when known.
    pub version: Option<String>,
}

impl ClusterFacts {
    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Datastore voters.
    pub fn voters(&self) -> u32 {
        count(
            self.nodes
                .iter()
                .filter(|n| n.datastore == Some(DatastoreRole::Voter)),
        )
    }

    /// Voters that count toward quorum ([`ClusterNode::is_live_voter`]).
    pub fn live_voters(&self) -> u32 {
        count(self.nodes.iter().filter(|n| n.is_live_voter()))
    }

    /// Control planes: nodes listed in the datastore lines.
    pub fn control_planes(&self) -> u32 {
        count(self.nodes.iter().filter(|n| n.datastore.is_some()))
    }

    /// A strict majority of the voters is live. True when no voter is listed (the datastore
    /// lines could not be read: unknown is not evidence of loss).
    pub fn has_quorum(&self) -> bool {
        let voters = self.voters();
        voters == 0 || self.live_voters() * 2 > voters
    }

    /// Voters that do not count toward quorum, by name. microk8s can break when a node is
    /// added while one of these is still registered (#2348).
    pub fn dead_voters(&self) -> Vec<&ClusterNode> {
        self.nodes
            .iter()
            .filter(|n| n.datastore == Some(DatastoreRole::Voter) && !n.is_live_voter())
            .collect()
    }

    /// The first node (by name) whose machine has been confirmed dead for at least `after`
    /// at `now`, other than `except` (the entry point itself).
    pub fn due_for_removal(
        &self,
        now: Duration,
        after: Duration,
        except: &str,
    ) -> Option<&ClusterNode> {
        self.nodes
            .iter()
            .filter(|n| n.name != except)
            .filter(|n| match n.member {
                MemberState::Dead { since } => now >= since.saturating_add(after),
                _ => false,
            })
            .min_by(|a, b| a.name.cmp(&b.name))
    }
}

fn count<'a>(it: impl Iterator<Item = &'a ClusterNode>) -> u32 {
    u32::try_from(it.count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        name: &str,
        role: Option<DatastoreRole>,
        member: MemberState,
        ready: bool,
    ) -> ClusterNode {
        ClusterNode {
            name: name.into(),
            ip: None,
            ready,
            datastore: role,
            member,
        }
    }

    const V: Option<DatastoreRole> = Some(DatastoreRole::Voter);
    const S: Option<DatastoreRole> = Some(DatastoreRole::Standby);
    const DEAD: MemberState = MemberState::Dead {
        since: Duration::from_secs(100),
    };

    #[test]
    fn quorum_table() {
        use MemberState::{Unknown, Up};
        let cases = [
            ("single voter up", vec![node("a", V, Up, true)], true),
            (
                "two voters one dead: no quorum",
                vec![node("a", V, Up, true), node("b", V, DEAD, false)],
                false,
            ),
            (
                "three voters one dead: quorum",
                vec![
                    node("a", V, Up, true),
                    node("b", V, Up, true),
                    node("c", V, DEAD, false),
                ],
                true,
            ),
            (
                "unknown but Ready voter counts",
                vec![node("a", V, Up, true), node("b", V, Unknown, true)],
                true,
            ),
            (
                "unknown NotReady voter does not count",
                vec![node("a", V, Up, true), node("b", V, Unknown, false)],
                false,
            ),
            (
                "dead standby does not matter",
                vec![node("a", V, Up, true), node("b", S, DEAD, false)],
                true,
            ),
            (
                "no datastore lines: unknown, not lost",
                vec![node("a", None, Up, true)],
                true,
            ),
        ];
        for (name, nodes, want) in cases {
            let f = ClusterFacts {
                nodes,
                version: None,
            };
            assert_eq!(f.has_quorum(), want, "case: {name}");
        }
    }

    #[test]
    fn dead_voters_and_counts() {
        let f = ClusterFacts {
            nodes: vec![
                node("a", V, MemberState::Up, true),
                node("b", V, DEAD, false),
                node("c", V, MemberState::Left, false),
                node("d", S, DEAD, false),
                node("w", None, MemberState::Up, true),
            ],
            version: None,
        };
        let dead: Vec<&str> = f.dead_voters().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(dead, ["b", "c"]);
        assert_eq!((f.voters(), f.live_voters(), f.control_planes()), (3, 1, 4));
    }

    #[test]
    fn removal_waits_for_remove_after_and_skips_the_entry_point() {
        let f = ClusterFacts {
            nodes: vec![
                node("entry", V, DEAD, true),
                node("z", None, DEAD, false),
                node("b", V, DEAD, false),
                node("up", V, MemberState::Up, true),
            ],
            version: None,
        };
        let after = Duration::from_secs(60);
        assert_eq!(
            f.due_for_removal(Duration::from_secs(159), after, "entry"),
            None
        );
        let due = f.due_for_removal(Duration::from_secs(160), after, "entry");
        assert_eq!(due.map(|n| n.name.as_str()), Some("b"));
    }
}
