//! The read-only picture of the agent that API handlers serve. The tasks that own each part
//! (membership, election, cluster workflow, sizing) publish it through a `watch` channel;
//! handlers never reach into those tasks.

use muster_proto::v1 as pb;

/// What the API serves at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every known member, this node included (`local = true`), sorted by name.
    pub members: Vec<pb::Member>,
    /// This node's role in words (entry-point, control-plane, worker, joining, unclustered).
    pub role: String,
    /// The microk8s cluster as this node sees it.
    pub cluster_state: pb::ClusterState,
    /// Problems an operator should see.
    pub warnings: Vec<String>,
    /// The sized dask worker spec, once there is one.
    pub worker_spec: Option<String>,
}

impl Snapshot {
    /// This node's own member entry.
    pub fn local(&self) -> Option<&pb::Member> {
        self.members.iter().find(|m| m.local)
    }
}
