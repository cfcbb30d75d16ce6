//! The replicated cluster state of one simulated MicroK8s cluster and its rules.
//!
//! Owns what a real cluster keeps in dqlite and what the control planes agree on: the dqlite
//! members and their roles (voter / standby / spare, targets 3 + 3), the Kubernetes Node
//! objects, ConfigMaps, and the quorum rule that refuses writes when fewer than a majority of
//! voters are alive. Every function here is pure: liveness and time are passed in. Who holds a
//! replica, how it travels and how liveness is observed belongs to `daemon` and `agent`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::state_dir::HostInfo;

/// The dqlite port every member address carries.
pub const DQLITE_PORT: u16 = 19001;
/// Voters dqlite aims for.
pub const TARGET_VOTERS: usize = 3;
/// Stand-bys dqlite aims for.
pub const TARGET_STANDBYS: usize = 3;

/// A dqlite member's role (the numbers are dqlite's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Votes in raft (role 0); shown in `datastore master nodes`.
    Voter,
    /// Replicates, does not vote (role 1); shown in `datastore standby nodes`.
    Standby,
    /// Member without replication (role 2); only in `status --format yaml`.
    Spare,
}

impl Role {
    /// dqlite's number for the role.
    pub fn code(self) -> u8 {
        match self {
            Self::Voter => 0,
            Self::Standby => 1,
            Self::Spare => 2,
        }
    }

    /// The word `status` prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Voter => "voter",
            Self::Standby => "standby",
            Self::Spare => "spare",
        }
    }
}

/// One dqlite member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `IP:19001` (`127.0.0.1:19001` on a node that never took part in a join).
    pub address: String,
    /// dqlite's node id.
    pub id: u64,
    /// Current role.
    pub role: Role,
    /// The Kubernetes node name of the host behind the member.
    pub node: String,
}

impl Member {
    /// The IP part of the address.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.rsplit_once(':')?.0.parse().ok()
    }
}

/// Whether a node runs the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// Runs the API server and (usually) is a dqlite member.
    ControlPlane,
    /// Joined with `--worker`: kubelet only, never a dqlite member.
    Worker,
}

/// A Kubernetes Node object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// `metadata.name`: the lowercased hostname.
    pub name: String,
    /// The InternalIP address.
    pub ip: IpAddr,
    /// Control plane or worker.
    pub kind: NodeKind,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
    /// Before this Unix millisecond the node reports `Ready=False` (CNI starting).
    pub ready_at_ms: u64,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: u64,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// kubelet version, e.g. `v1.32.3`.
    pub version: String,
}

/// What the Ready condition of a node says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// `Ready=True`.
    Ready,
    /// Registered, heartbeating, but not ready yet: `Ready=False`.
    Starting,
    /// Kubelet stopped posting status: `Ready=Unknown`.
    Lost,
}

impl Readiness {
    /// Pure readiness rule: heard from within `not_ready_after_ms` and past its start-up delay.
    pub fn of(
        node: &NodeRecord,
        heard_ms_ago: Option<u64>,
        now_ms: u64,
        not_ready_after_ms: u64,
    ) -> Self {
        match heard_ms_ago {
            Some(age) if age <= not_ready_after_ms => {
                if now_ms >= node.ready_at_ms {
                    Self::Ready
                } else {
                    Self::Starting
                }
            }
            _ => Self::Lost,
        }
    }
}

/// The state one cluster's control planes replicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Random id telling clusters apart (a node that joins another cluster changes it).
    pub cluster_id: String,
    /// Incremented by every write; replicas keep the highest.
    pub version: u64,
    /// Kubernetes resourceVersion counter.
    pub resource_version: u64,
    /// The admin token printed in kubeconfigs.
    pub admin_token: String,
    /// dqlite membership, in dqlite's order.
    pub members: Vec<Member>,
    /// Node objects by name.
    pub nodes: BTreeMap<String, NodeRecord>,
    /// ConfigMaps as API objects, keyed `namespace/name`.
    pub configmaps: BTreeMap<String, serde_json::Value>,
    /// Namespaces created through the API, as objects (the four built-in ones always exist).
    #[serde(default)]
    pub namespaces: BTreeMap<String, serde_json::Value>,
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Fewer than a majority of voters are alive: the datastore is frozen.
    #[error("context deadline exceeded")]
    NoQuorum,
}

/// Standard labels of a MicroK8s node.
pub fn node_labels(name: &str, kind: NodeKind) -> BTreeMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut l = BTreeMap::new();
    l.insert("beta.kubernetes.io/arch".to_owned(), arch.to_owned());
    l.insert("beta.kubernetes.io/os".to_owned(), "linux".to_owned());
    l.insert("kubernetes.io/arch".to_owned(), arch.to_owned());
    l.insert("kubernetes.io/hostname".to_owned(), name.to_owned());
    l.insert("kubernetes.io/os".to_owned(), "linux".to_owned());
    l.insert("microk8s.io/cluster".to_owned(), "true".to_owned());
    match kind {
        NodeKind::ControlPlane => l.insert(
            "node.kubernetes.io/microk8s-controlplane".to_owned(),
            "microk8s-controlplane".to_owned(),
        ),
        NodeKind::Worker => l.insert(
            "node.kubernetes.io/microk8s-worker".to_owned(),
            "microk8s-worker".to_owned(),
        ),
    };
    l
}

/// A random RFC 4122-looking uid.
pub fn random_uid(rng: &mut impl Rng) -> String {
    let b: [u8; 16] = rng.random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl ClusterState {
    /// A fresh single-node cluster around `host`: one voter on `127.0.0.1:19001`.
    pub fn standalone(host: &HostInfo, now_ms: u64, rng: &mut impl Rng) -> Self {
        let name = host.node_name();
        let mut state = Self {
            cluster_id: hex::encode(rng.random::<[u8; 8]>()),
            version: 1,
            resource_version: 1,
            admin_token: hex::encode(rng.random::<[u8; 16]>()),
            members: vec![Member {
                address: format!("127.0.0.1:{DQLITE_PORT}"),
                id: rng.random(),
                role: Role::Voter,
                node: name.clone(),
            }],
            nodes: BTreeMap::new(),
            configmaps: BTreeMap::new(),
            namespaces: BTreeMap::new(),
        };
        let rv = state.next_rv();
        state.nodes.insert(
            name.clone(),
            NodeRecord {
                labels: node_labels(&name, NodeKind::ControlPlane),
                name,
                ip: host.default_ip(),
                kind: NodeKind::ControlPlane,
                annotations: BTreeMap::new(),
                created_ms: now_ms,
                ready_at_ms: now_ms,
                uid: random_uid(rng),
                resource_version: rv,
                unschedulable: false,
                version: host.version.clone(),
            },
        );
        state
    }

    /// Takes the next resourceVersion.
    pub fn next_rv(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    /// Members in the given role, in membership order.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(move |m| m.role == role)
    }

    /// The member whose address is on `ip`, if any (dqlite's `startswith("IP:")` test).
    pub fn member_on_ip(&self, ip: &str) -> Option<&Member> {
        let prefix = format!("{ip}:");
        self.members.iter().find(|m| m.address.starts_with(&prefix))
    }

    /// True when a majority of voters are alive.
    pub fn has_quorum(&self, alive: impl Fn(&Member) -> bool) -> bool {
        let voters: Vec<&Member> = self.with_role(Role::Voter).collect();
        let up = voters.iter().filter(|m| alive(m)).count();
        !voters.is_empty() && up * 2 > voters.len()
    }

    /// Refuses with [`WriteError::NoQuorum`] unless a majority of voters are alive.
    pub fn check_quorum(&self, alive: impl Fn(&Member) -> bool) -> Result<(), WriteError> {
        if self.has_quorum(alive) {
            Ok(())
        } else {
            Err(WriteError::NoQuorum)
        }
    }

    /// The dqlite leader as far as this replica can tell: the first alive voter.
    pub fn leader(&self, alive: impl Fn(&Member) -> bool) -> Option<&Member> {
        self.with_role(Role::Voter).find(|m| alive(m))
    }

    /// The first join moves a lone `127.0.0.1` member onto the IP the joiner contacted.
    /// Returns true when it did.
    pub fn rebind_first_member(&mut self, ip: IpAddr) -> bool {
        if self.members.len() == 1 && self.members[0].address.starts_with("127.0.0.1:") {
            self.members[0].address = format!("{}:{DQLITE_PORT}", ip_for_address(ip));
            true
        } else {
            false
        }
    }

    /// Adds a control-plane member with the role dqlite would give it right away.
    pub fn add_member(&mut self, node: &str, ip: IpAddr, id: u64) -> Role {
        let voters = self.with_role(Role::Voter).count();
        let standbys = self.with_role(Role::Standby).count();
        let role = if voters < TARGET_VOTERS {
            Role::Voter
        } else if standbys < TARGET_STANDBYS {
            Role::Standby
        } else {
            Role::Spare
        };
        self.members.push(Member {
            address: format!("{}:{DQLITE_PORT}", ip_for_address(ip)),
            id,
            role,
            node: node.to_owned(),
        });
        role
    }

    /// Removes the member with exactly this address; true when one was removed.
    pub fn remove_member(&mut self, address: &str) -> bool {
        let before = self.members.len();
        self.members.retain(|m| m.address != address);
        before != self.members.len()
    }

    /// The leader's periodic roles adjustment: replace dead voters and stand-bys with alive
    /// members and fill up to the 3 + 3 targets. A dead member is only demoted when an alive
    /// one can take its place (with exactly three members nothing moves). True if roles changed.
    pub fn adjust_roles(&mut self, alive: impl Fn(&Member) -> bool) -> bool {
        let before: Vec<Role> = self.members.iter().map(|m| m.role).collect();
        let n = self.members.len();
        let target_v = TARGET_VOTERS.min(n);
        let target_s = TARGET_STANDBYS.min(n - target_v);
        let up: Vec<bool> = self.members.iter().map(&alive).collect();
        for (role, target, sources) in [
            (Role::Voter, target_v, [Role::Standby, Role::Spare]),
            (Role::Standby, target_s, [Role::Spare, Role::Spare]),
        ] {
            // Swap each dead holder of `role` with an alive candidate.
            for i in 0..n {
                if self.members[i].role != role || up[i] {
                    continue;
                }
                if let Some(j) = self.candidate(&up, &sources) {
                    self.members[j].role = role;
                    self.members[i].role = Role::Spare;
                }
            }
            // Fill up to the target.
            while self.with_role(role).count() < target {
                match self.candidate(&up, &sources) {
                    Some(j) => self.members[j].role = role,
                    None => break,
                }
            }
        }
        before != self.members.iter().map(|m| m.role).collect::<Vec<_>>()
    }

    fn candidate(&self, up: &[bool], sources: &[Role; 2]) -> Option<usize> {
        sources.iter().find_map(|src| {
            self.members
                .iter()
                .enumerate()
                .find(|(i, m)| m.role == *src && up[*i])
                .map(|(i, _)| i)
        })
    }

    /// The IPs of the control-plane nodes (what the agent tells joining workers).
    pub fn control_plane_ips(&self) -> Vec<IpAddr> {
        self.nodes
            .values()
            .filter(|n| n.kind == NodeKind::ControlPlane)
            .map(|n| n.ip)
            .collect()
    }

    /// The node whose InternalIP is `ip`.
    pub fn node_by_ip(&self, ip: &str) -> Option<&NodeRecord> {
        self.nodes.values().find(|n| n.ip.to_string() == ip)
    }

    /// `cluster.yaml` in dqlite's format (a YAML list of Address / ID / Role).
    pub fn cluster_yaml(&self) -> String {
        let mut s = String::new();
        for m in &self.members {
            s.push_str(&format!(
                "- Address: {}\n  ID: {}\n  Role: {}\n",
                m.address,
                m.id,
                m.role.code()
            ));
        }
        s
    }
}

/// How an IP appears inside a `host:port` address.
pub fn ip_for_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cluster(n: usize) -> ClusterState {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let host = HostInfo::for_tests("n0", "10.0.0.1");
        let mut c = ClusterState::standalone(&host, 0, &mut rng);
        c.rebind_first_member("10.0.0.1".parse().expect("ip"));
        for i in 1..n {
            c.add_member(
                &format!("n{i}"),
                format!("10.0.0.{}", i + 1).parse().expect("ip"),
                i as u64,
            );
        }
        c
    }

    fn roles(c: &ClusterState) -> Vec<Role> {
        c.members.iter().map(|m| m.role).collect()
    }

    use Role::{Spare as P, Standby as S, Voter as V};

    #[test]
    fn joins_fill_three_voters_then_three_standbys_then_spares() {
        assert_eq!(roles(&cluster(1)), vec![V]);
        assert_eq!(roles(&cluster(2)), vec![V, V]);
        assert_eq!(roles(&cluster(5)), vec![V, V, V, S, S]);
        assert_eq!(roles(&cluster(8)), vec![V, V, V, S, S, S, P, P]);
    }

    #[test]
    fn first_join_rebinds_the_loopback_member_once() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let host = HostInfo::for_tests("a", "10.0.0.1");
        let mut c = ClusterState::standalone(&host, 0, &mut rng);
        assert_eq!(c.members[0].address, "127.0.0.1:19001");
        assert!(c.rebind_first_member("10.0.0.1".parse().expect("ip")));
        assert_eq!(c.members[0].address, "10.0.0.1:19001");
        assert!(!c.rebind_first_member("10.0.0.9".parse().expect("ip")));
    }

    #[test]
    fn quorum_needs_a_strict_majority_of_voters() {
        let two = cluster(2);
        assert!(two.has_quorum(|_| true));
        assert!(
            !two.has_quorum(|m| m.node == "n0"),
            "2-node clusters freeze on any loss"
        );
        let three = cluster(3);
        assert!(
            three.has_quorum(|m| m.node != "n2"),
            "3 voters survive one loss"
        );
        assert!(!three.has_quorum(|m| m.node == "n0"));
        let five = cluster(5);
        assert!(
            !five.has_quorum(|m| m.node != "n1" && m.node != "n2"),
            "two voters down"
        );
    }

    #[test]
    fn adjust_roles_promotes_a_standby_in_place_of_a_dead_voter() {
        let mut c = cluster(4);
        assert!(c.adjust_roles(|m| m.node != "n1"));
        assert_eq!(roles(&c), vec![V, P, V, V]);
    }

    #[test]
    fn adjust_roles_with_three_members_keeps_the_dead_voter() {
        let mut c = cluster(3);
        assert!(!c.adjust_roles(|m| m.node != "n1"));
        assert_eq!(roles(&c), vec![V, V, V]);
    }

    #[test]
    fn adjust_roles_fills_voters_after_a_removal() {
        let mut c = cluster(5);
        assert!(c.remove_member("10.0.0.2:19001"));
        assert_eq!(roles(&c), vec![V, V, S, S]);
        assert!(c.adjust_roles(|_| true));
        assert_eq!(roles(&c), vec![V, V, V, S]);
    }

    #[test]
    fn readiness_follows_heartbeats_and_start_delay() {
        let c = cluster(1);
        let n = c.nodes.values().next().expect("node");
        assert_eq!(Readiness::of(n, Some(100), 10, 5000), Readiness::Ready);
        assert_eq!(Readiness::of(n, Some(6000), 10, 5000), Readiness::Lost);
        assert_eq!(Readiness::of(n, None, 10, 5000), Readiness::Lost);
        let mut late = n.clone();
        late.ready_at_ms = 50;
        assert_eq!(Readiness::of(&late, Some(0), 10, 5000), Readiness::Starting);
    }
}
