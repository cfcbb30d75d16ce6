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
    /// This node's latest measured resources (with available memory, which the mesh does
    /// not gossip); shown for the local member.
    pub local_resources: Option<pb::Resources>,
}

impl Snapshot {
    /// This node's own member entry, with its latest measured resources.
    pub fn local(&self) -> Option<pb::Member> {
        self.members_for_api().into_iter().find(|m| m.local)
    }

    /// The member list as the API serves it: sorted by name, the local member's resources
    /// replaced by the latest measurement.
    pub fn members_for_api(&self) -> Vec<pb::Member> {
        let mut members = self.members.clone();
        for m in members.iter_mut().filter(|m| m.local) {
            if let Some(r) = &self.local_resources {
                m.resources = Some(r.clone());
            }
        }
        members.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        members
    }
}
