//! What the workflow knows about microk8s: this node's own facts (probed through the
//! [`Microk8s`] adapter), the gossiped metadata fields that carry them to every member (keys
//! from [`muster_core::membership::fields`]), and the conversions from the mesh's membership
//! view into the election's and the planners' inputs.
//!
//! The probing is the only I/O here; everything else is pure and unit-tested.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::microk8s::{DqliteRole, Microk8s, Microk8sError, NodeInfo, Readiness, Role, Status};
use muster_core::election::{Liveness, MemberView, Term};
use muster_core::formation::{ClusterFacts, ClusterNode, DatastoreRole, MemberState};
use muster_core::membership::{Member, Status as MemberStatus, fields};

/// microk8s on this node, in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mk8sState {
    /// Not installed (the executable is missing).
    Absent,
    /// `microk8s stop`ped.
    Stopped,
    /// Running but not ready.
    NotReady,
    /// Running and ready (a control plane or a standalone node).
    Ready,
    /// A worker of a cluster.
    Worker,
    /// The CLI failed in an unexpected way.
    Error,
}

impl Mk8sState {
    /// The word used in fields and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Mk8sState::Absent => "absent",
            Mk8sState::Stopped => "stopped",
            Mk8sState::NotReady => "not ready",
            Mk8sState::Ready => "ready",
            Mk8sState::Worker => "worker",
            Mk8sState::Error => "error",
        }
    }
}

/// This node's microk8s, as last probed.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalFacts {
    /// State in words.
    pub state: Mk8sState,
    /// The cluster it belongs to (a standalone node is a cluster of one).
    pub cluster_id: Option<String>,
    /// Nodes in that cluster (0 when unknown, e.g. on a worker).
    pub size: u32,
    /// Runs the control plane (standalone nodes do).
    pub control_plane: bool,
    /// microk8s major.minor.
    pub version: Option<String>,
    /// `kubectl get nodes` (control planes only).
    pub nodes: Vec<NodeInfo>,
    /// `status` (control planes only).
    pub status: Option<Status>,
    /// The last error, for status and the journal.
    pub error: Option<String>,
}

impl LocalFacts {
    /// Nothing known yet.
    pub fn unknown() -> Self {
        LocalFacts {
            state: Mk8sState::Error,
            cluster_id: None,
            size: 0,
            control_plane: false,
            version: None,
            nodes: Vec::new(),
            status: None,
            error: Some("not probed yet".to_owned()),
        }
    }
}

/// A short stable id of a cluster from its kubeconfig: every node of a cluster shares the CA
/// (x509 clusters) or the admin token (token clusters), and a fresh install has its own.
pub fn cluster_id_of(kubeconfig: &str) -> Option<String> {
    let pick = |key: &str| {
        kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_owned()))
            .filter(|v| !v.is_empty())
    };
    let secret = pick("certificate-authority-data:").or_else(|| pick("token:"))?;
    let digest = Sha256::digest(secret.as_bytes());
    Some(hex::encode(&digest[..8]))
}

/// Probes microk8s through the adapter. `remembered` is the cluster id this node stored when
/// it last joined as a worker (a worker cannot read the cluster's credentials itself);
/// `was_running`: the last probe found a running control plane.
pub async fn probe(
    m8s: &dyn Microk8s,
    remembered: Option<&str>,
    version: Option<String>,
    was_running: bool,
) -> LocalFacts {
    let mut facts = LocalFacts::unknown();
    facts.error = None;
    facts.version = version;
    // On a node that ran a control plane at the last probe, all three at once: the entry
    // point's probe is on the critical path of every verified join. Elsewhere the node list
    // and kubeconfig are asked for only once status says the node runs (a worker would spend
    // two failing commands per probe).
    let (status, early) = if was_running {
        let (status, nodes, kubeconfig) =
            tokio::join!(m8s.status(None), m8s.nodes(), m8s.kubeconfig());
        (status, Some((nodes, kubeconfig)))
    } else {
        (m8s.status(None).await, None)
    };
    match status {
        Ok(Status::Running(cs)) => {
            let (nodes, kubeconfig) = match early {
                Some(both) => both,
                None => tokio::join!(m8s.nodes(), m8s.kubeconfig()),
            };
            facts.state = Mk8sState::Ready;
            facts.control_plane = true;
            match nodes {
                Ok(nodes) => {
                    facts.size = nodes.len().max(1) as u32;
                    facts.nodes = nodes;
                }
                Err(e) => facts.error = Some(e.to_string()),
            }
            match kubeconfig {
                Ok(kc) => facts.cluster_id = cluster_id_of(kc.expose()),
                Err(e) => facts.error = Some(e.to_string()),
            }
            facts.status = Some(Status::Running(cs));
        }
        Ok(Status::Worker) => {
            // A worker cannot list its cluster: it is in one of at least two nodes; the
            // workflow refines the size from the entry point's view.
            facts.state = Mk8sState::Worker;
            facts.cluster_id = Some(remembered.unwrap_or("unknown").to_owned());
            facts.size = 2;
        }
        Ok(Status::NotReady { .. }) => facts.state = Mk8sState::NotReady,
        Ok(Status::Stopped) => facts.state = Mk8sState::Stopped,
        Err(Microk8sError::Spawn { .. }) => facts.state = Mk8sState::Absent,
        Err(e) => {
            facts.state = Mk8sState::Error;
            facts.error = Some(e.to_string());
        }
    }
    facts
}

/// The gossiped fields that describe this node's microk8s.
pub fn local_fields(
    facts: &LocalFacts,
    priority: u32,
    has_route: bool,
) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert(fields::PRIORITY.to_owned(), priority.to_string());
    f.insert(fields::STATE.to_owned(), facts.state.as_str().to_owned());
    f.insert(
        fields::CLUSTER.to_owned(),
        facts.cluster_id.clone().unwrap_or_default(),
    );
    f.insert(fields::SIZE.to_owned(), facts.size.to_string());
    f.insert(
        fields::CONTROL_PLANE.to_owned(),
        flag(facts.control_plane).to_owned(),
    );
    f.insert(
        fields::VERSION.to_owned(),
        facts.version.clone().unwrap_or_default(),
    );
    f.insert(fields::ROUTE.to_owned(), flag(has_route).to_owned());
    f
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// A member's liveness for the election and the planners: a dead member carries the time of
/// its death, `dead_since`, on the workflow's clock (the mesh knew it; the caller converts).
pub fn liveness(status: MemberStatus, dead_since: Duration) -> Liveness {
    match status {
        MemberStatus::Alive => Liveness::Alive,
        MemberStatus::Suspect => Liveness::Suspect,
        MemberStatus::Dead => Liveness::Dead { since: dead_since },
        MemberStatus::Left => Liveness::Left,
    }
}

/// A membership member as the election sees it.
pub fn member_view(m: &Member, liveness: Liveness) -> MemberView {
    let f = |k: &str| m.meta.fields.get(k).map(String::as_str).unwrap_or("");
    let state = f(fields::STATE);
    let cluster = f(fields::CLUSTER);
    MemberView {
        id: m.meta.id.clone(),
        name: m.meta.name.clone(),
        liveness,
        priority: f(fields::PRIORITY).parse().unwrap_or(u32::MAX),
        cluster_id: (!cluster.is_empty() && (state == "ready" || state == "worker"))
            .then(|| cluster.to_owned()),
        cluster_size: f(fields::SIZE).parse().unwrap_or(0),
        control_plane: f(fields::CONTROL_PLANE) == "1",
        microk8s_ready: state == "ready" || state == "worker",
        has_default_route: f(fields::ROUTE) == "1",
        version: Some(f(fields::VERSION))
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        entry_term: f(fields::ENTRY_TERM).parse::<Term>().ok(),
        followed: f(fields::FOLLOWED)
            .rsplit_once(':')
            .and_then(|(id, t)| Some((id.to_owned(), t.parse::<Term>().ok()?))),
    }
}

/// The entry point's cluster facts: its node list and datastore lines, with membership's
/// verdict on each machine matched by name.
pub fn cluster_facts(local: &LocalFacts, views: &[MemberView]) -> Option<ClusterFacts> {
    let Some(Status::Running(cs)) = &local.status else {
        return None;
    };
    let nodes = local
        .nodes
        .iter()
        .map(|n| {
            let datastore = n
                .internal_ip
                .and_then(|ip| cs.datastore_member(ip))
                .map(|d| match d.role {
                    DqliteRole::Voter => DatastoreRole::Voter,
                    DqliteRole::Standby => DatastoreRole::Standby,
                    DqliteRole::Spare => DatastoreRole::Spare,
                });
            let member = views
                .iter()
                .find(|v| v.name == n.name)
                .map(|v| match v.liveness {
                    Liveness::Alive | Liveness::Suspect => MemberState::Up,
                    Liveness::Dead { since } => MemberState::Dead { since },
                    Liveness::Left => MemberState::Left,
                })
                .unwrap_or_default();
            ClusterNode {
                name: n.name.clone(),
                ip: n.internal_ip,
                ready: n.readiness == Readiness::Ready,
                // A standalone node still on 127.0.0.1 is the only datastore member.
                datastore: datastore
                    .or((local.nodes.len() == 1 && cs.is_standalone())
                        .then_some(DatastoreRole::Voter)),
                member,
            }
        })
        .collect();
    Some(ClusterFacts {
        nodes,
        version: local.version.clone(),
    })
}

/// The fields an entry point adds so that every member sees its cluster (and a worker can
/// verify its own join).
pub fn entry_fields(local: &LocalFacts) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let ready: Vec<&str> = local
        .nodes
        .iter()
        .filter(|n| n.readiness == Readiness::Ready)
        .map(|n| n.name.as_str())
        .collect();
    f.insert(fields::READY_NODES.to_owned(), ready.join(","));
    if let Some(Status::Running(cs)) = &local.status {
        let ips: Vec<String> = cs
            .datastore
            .iter()
            .filter_map(|d| d.ip())
            .map(|ip| ip.to_string())
            .collect();
        f.insert(fields::DATASTORE.to_owned(), ips.join(","));
        f.insert(fields::VOTERS.to_owned(), cs.voters().count().to_string());
        f.insert(fields::HA.to_owned(), flag(cs.high_availability).to_owned());
    }
    f
}

/// Checks this node's join from the entry point's gossiped view: listed Ready and, for a
/// control plane, in the datastore lines.
pub fn verified_by_entry(
    entry: &Member,
    name: &str,
    ip: Option<IpAddr>,
    role: Role,
) -> Result<(), String> {
    let list = |k: &str| -> Vec<String> {
        entry
            .meta
            .fields
            .get(k)
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    if !list(fields::READY_NODES).iter().any(|n| n == name) {
        return Err(format!("{name} is not listed Ready by the entry point yet"));
    }
    if role == Role::ControlPlane {
        let ip = ip.map(|i| i.to_string()).unwrap_or_default();
        if !list(fields::DATASTORE).contains(&ip) {
            return Err(format!(
                "{ip} is not in the datastore lines of the entry point yet"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_member_carries_its_time_of_death() {
        let t = Duration::from_secs(9);
        assert_eq!(liveness(MemberStatus::Dead, t), Liveness::Dead { since: t });
        assert_eq!(liveness(MemberStatus::Suspect, t), Liveness::Suspect);
        assert_eq!(liveness(MemberStatus::Left, t), Liveness::Left);
        assert_eq!(liveness(MemberStatus::Alive, t), Liveness::Alive);
    }

    #[test]
    fn cluster_id_comes_from_the_ca_or_the_token() {
        let x509 = "clusters:\n- cluster:\n    certificate-authority-data: QUJD\n    server: https://10.0.0.1:16443\n";
        let token = "users:\n- name: admin\n  user:\n    token: s3cr3t\n";
        let a = cluster_id_of(x509).expect("ca");
        assert_eq!(a.len(), 16);
        assert_eq!(
            Some(a.clone()),
            cluster_id_of(&x509.replace("10.0.0.1", "10.0.0.2"))
        );
        assert_ne!(Some(a), cluster_id_of(token));
        assert!(cluster_id_of("apiVersion: v1\n").is_none());
    }

    /// A member `id` named `name` with these gossiped fields.
    fn member(id: &str, name: &str, f: BTreeMap<String, String>) -> Member {
        let mut m = crate::mesh::driver::test_member(id);
        let mut meta = (*m.meta).clone();
        meta.name = name.to_owned();
        meta.fields = f;
        m.meta = std::sync::Arc::new(meta);
        m
    }

    #[test]
    fn member_fields_become_an_election_view() {
        let facts = LocalFacts {
            state: Mk8sState::Ready,
            cluster_id: Some("c1".into()),
            size: 3,
            control_plane: true,
            version: Some("1.32".into()),
            ..LocalFacts::unknown()
        };
        let mut f = local_fields(&facts, 7, true);
        f.insert(fields::ENTRY_TERM.into(), "4".into());
        f.insert(fields::FOLLOWED.into(), "b:3".into());
        let v = member_view(&member("a", "n1", f.clone()), Liveness::Alive);
        assert_eq!(v.priority, 7);
        assert_eq!(v.cluster_id.as_deref(), Some("c1"));
        assert_eq!(v.cluster_size, 3);
        assert!(v.control_plane && v.microk8s_ready && v.has_default_route);
        assert_eq!(v.version.as_deref(), Some("1.32"));
        assert_eq!(v.entry_term, Some(4));
        assert_eq!(v.followed, Some(("b".to_owned(), 3)));
        // A node whose microk8s is not ready belongs to no known cluster.
        f.insert(fields::STATE.into(), "not ready".into());
        assert_eq!(
            member_view(&member("a", "n1", f), Liveness::Alive).cluster_id,
            None
        );
    }

    #[test]
    fn entry_view_verifies_ready_and_datastore() {
        let mut f = BTreeMap::new();
        f.insert(fields::READY_NODES.into(), "n1,n2".into());
        f.insert(fields::DATASTORE.into(), "198.18.0.1,198.18.0.2".into());
        let e = member("e", "entry", f);
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        assert!(verified_by_entry(&e, "n2", ip("198.18.0.2"), Role::ControlPlane).is_ok());
        assert!(verified_by_entry(&e, "n3", ip("198.18.0.3"), Role::Worker).is_err());
        assert!(verified_by_entry(&e, "n1", ip("198.18.0.9"), Role::ControlPlane).is_err());
        assert!(verified_by_entry(&e, "n1", ip("198.18.0.9"), Role::Worker).is_ok());
    }
}
