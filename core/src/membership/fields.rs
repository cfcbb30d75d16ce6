//! The gossip field vocabulary: every key of [`NodeMeta::fields`](super::NodeMeta) that some
//! part of muster writes or reads, decided once, beside the metadata type that carries them.
//!
//! Owns the key names and what each value means. Does not own who writes them (the agent's
//! workflow writes the microk8s, election and cluster keys; the daemon writes the GPU models)
//! nor how they are parsed into the cores' views (the workflow's facts module). A key is an
//! interface between agents of different versions: rename one and older peers stop reading it.
//!
//! Each publisher on a node (the workflow, the daemon) owns its keys and hands the mesh only
//! those; [`merge`] keeps the others, and an empty value withdraws a key (a node that stops
//! being the entry point withdraws its `cluster.*` keys and its `entry_term`).

use std::collections::BTreeMap;

/// Election priority (lower wins), decimal.
pub const PRIORITY: &str = "priority";
/// microk8s state in words (`absent`, `stopped`, `not ready`, `ready`, `worker`, `error`).
pub const STATE: &str = "mk8s.state";
/// Cluster id (a hash of the cluster's CA or admin credential).
pub const CLUSTER: &str = "mk8s.cluster";
/// Nodes in that cluster as this member sees it, decimal.
pub const SIZE: &str = "mk8s.size";
/// `1` when this member runs the control plane of its cluster.
pub const CONTROL_PLANE: &str = "mk8s.cp";
/// microk8s `major.minor`.
pub const VERSION: &str = "mk8s.version";
/// `1` when the member has a default route.
pub const ROUTE: &str = "route";
/// The confirmed entry term this member announces, decimal.
pub const ENTRY_TERM: &str = "entry_term";
/// `id:term` of the highest entry point this member followed.
pub const FOLLOWED: &str = "followed";
/// The member's role in words (`entry-point`, `control-plane`, `worker`, `joining`,
/// `unclustered`).
pub const ROLE: &str = "role";
/// Entry point only: Ready node names of its cluster, comma-separated.
pub const READY_NODES: &str = "cluster.ready";
/// Entry point only: datastore member IPs of its cluster, comma-separated.
pub const DATASTORE: &str = "cluster.datastore";
/// Entry point only: datastore voters, decimal.
pub const VOTERS: &str = "cluster.voters";
/// Entry point only: `1` when the cluster is highly available.
pub const HA: &str = "cluster.ha";
/// GPU models of the machine, comma-separated (the count travels in the resources).
pub const GPU_MODELS: &str = "gpu_models";

/// Merges a publisher's `update` into a node's `fields`: keys of other publishers stay, a key
/// with an empty value is removed.
pub fn merge(fields: &mut BTreeMap<String, String>, update: BTreeMap<String, String>) {
    for (key, value) in update {
        if value.is_empty() {
            fields.remove(&key);
        } else {
            fields.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_keeps_other_publishers_keys_and_withdraws_empty_ones() {
        let mut f: BTreeMap<String, String> = [
            (GPU_MODELS.to_owned(), "T4".to_owned()),
            (ENTRY_TERM.to_owned(), "3".to_owned()),
            (HA.to_owned(), "1".to_owned()),
        ]
        .into();
        merge(
            &mut f,
            [
                (ENTRY_TERM.to_owned(), String::new()),
                (HA.to_owned(), "0".to_owned()),
                (ROLE.to_owned(), "control-plane".to_owned()),
            ]
            .into(),
        );
        let want: BTreeMap<String, String> = [
            (GPU_MODELS.to_owned(), "T4".to_owned()),
            (HA.to_owned(), "0".to_owned()),
            (ROLE.to_owned(), "control-plane".to_owned()),
        ]
        .into();
        assert_eq!(f, want);
    }
}
