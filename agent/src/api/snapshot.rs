//! The read-only picture of the agent that API handlers serve, assembled per request from the
//! `watch` channels of the tasks that own each part: the mesh's membership view, the
//! workflow's formation status and the latest resource measurement. Handlers never reach into
//! those tasks, and this is the one place where their domain values become protobuf.

use muster_core::membership::{Member, Status, fields};
use muster_proto::v1 as pb;
use tokio::sync::watch;

use crate::mesh::MeshView;
use crate::resources::NodeResources;
use crate::workflow::{ClusterView, FormationStatus};

/// Where the API reads the agent's state; each channel has one writer elsewhere.
#[derive(Clone, Debug)]
pub struct Sources {
    /// The mesh driver's membership view.
    pub mesh: watch::Receiver<MeshView>,
    /// The workflow's status.
    pub formation: watch::Receiver<FormationStatus>,
    /// The latest measurement of this machine (with available memory, which the mesh does
    /// not gossip).
    pub resources: watch::Receiver<NodeResources>,
}

impl Sources {
    /// The picture at this moment.
    pub fn snapshot(&self) -> Snapshot {
        let resources = resources_to_pb(&self.resources.borrow());
        let mesh = self.mesh.borrow();
        let mut members: Vec<pb::Member> = mesh
            .all()
            .map(|m| {
                let local = mesh.is_local(m);
                let mut pb = member_to_pb(m, local);
                if local {
                    pb.resources = Some(resources.clone());
                }
                pb
            })
            .collect();
        drop(mesh);
        members.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        let formation = self.formation.borrow().clone();
        Snapshot {
            members,
            role: formation.role.to_owned(),
            cluster_state: cluster_to_pb(&formation.cluster),
            warnings: formation.warnings,
        }
    }
}

/// What the API serves at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every known member, this node included (`local = true`), sorted by name; the local
    /// member carries the latest measured resources.
    pub members: Vec<pb::Member>,
    /// This node's role in words (entry-point, control-plane, worker, joining, unclustered).
    pub role: String,
    /// The microk8s cluster as this node sees it.
    pub cluster_state: pb::ClusterState,
    /// Problems an operator should see.
    pub warnings: Vec<String>,
}

impl Snapshot {
    /// This node's own member entry.
    pub fn local(&self) -> Option<pb::Member> {
        self.members.iter().find(|m| m.local).cloned()
    }
}

/// A member as the API shows it.
pub fn member_to_pb(m: &Member, local: bool) -> pb::Member {
    let meta = crate::mesh::codec::meta_to_pb(&m.meta);
    let mut resources = meta.resources.unwrap_or_default();
    if let Some(models) = m.meta.fields.get(fields::GPU_MODELS) {
        resources.gpus = models
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|model| pb::Gpu {
                vendor: "nvidia".to_owned(),
                model: model.to_owned(),
                memory_bytes: 0,
            })
            .collect();
    }
    pb::Member {
        id: meta.id,
        name: meta.name,
        addr: meta.addr,
        status: match m.status {
            Status::Alive => pb::MemberStatus::Alive,
            Status::Suspect => pb::MemberStatus::Suspect,
            Status::Dead => pb::MemberStatus::Dead,
            Status::Left => pb::MemberStatus::Left,
        } as i32,
        incarnation: m.incarnation,
        version: meta.version,
        resources: Some(resources),
        role: m.meta.fields.get(fields::ROLE).cloned().unwrap_or_default(),
        fields: meta.fields,
        addresses: meta.addresses,
        local,
        meta_version: meta.meta_version,
    }
}

/// The workflow's cluster view as the API shows it.
pub fn cluster_to_pb(c: &ClusterView) -> pb::ClusterState {
    pb::ClusterState {
        entry_point: c.entry_point.clone(),
        size: c.size,
        ha: c.ha,
        voters: c.voters,
        microk8s: c.microk8s.clone(),
        term: c.term,
        verified: c.verified,
        conflict: c.conflict.clone().unwrap_or_default(),
    }
}

/// A resource measurement as the API shows it.
pub fn resources_to_pb(r: &NodeResources) -> pb::Resources {
    pb::Resources {
        cpus: r.cpus,
        memory_total_bytes: r.memory_total_bytes,
        memory_available_bytes: r.memory_available_bytes,
        gpus: r
            .gpus
            .iter()
            .map(|g| pb::Gpu {
                vendor: g.vendor.clone(),
                model: g.model.clone(),
                memory_bytes: g.memory_bytes,
            })
            .collect(),
    }
}
