//! What the workflow tells the rest of the agent: this node's role and its microk8s cluster as
//! this node sees it, published on a `watch` channel whose only writer is the workflow task.
//!
//! Domain values only; the API turns them into protobuf.

/// The microk8s cluster as this node sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Name of the entry point, empty when none is elected.
    pub entry_point: String,
    /// Nodes in the cluster.
    pub size: u32,
    /// The datastore has at least three voters.
    pub ha: bool,
    /// Datastore voters.
    pub voters: u32,
    /// Local microk8s state in words (`absent`, `ready`, `not ready`, …).
    pub microk8s: String,
    /// Election term of the current entry point.
    pub term: u64,
    /// This node's membership of the cluster was verified, not merely reported by `join`.
    pub verified: bool,
    /// Two microk8s clusters among the members: what they are and how to resolve it.
    pub conflict: Option<String>,
}

/// The workflow's published state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormationStatus {
    /// This node's role in words (`entry-point`, `control-plane`, `worker`, `joining`,
    /// `unclustered`).
    pub role: &'static str,
    /// The cluster as this node sees it.
    pub cluster: ClusterView,
    /// Problems an operator should see (refusals, blocked joins, cluster health).
    pub warnings: Vec<String>,
}

impl Default for FormationStatus {
    /// Before the first probe: unclustered, microk8s state unknown.
    fn default() -> Self {
        FormationStatus {
            role: "unclustered",
            cluster: ClusterView {
                microk8s: "unknown".to_owned(),
                ..ClusterView::default()
            },
            warnings: Vec::new(),
        }
    }
}
