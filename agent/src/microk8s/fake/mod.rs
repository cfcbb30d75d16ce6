//! The in-memory twin of microk8s, for pure-core and workflow tests.
//!
//! Owns [`MemoryCluster`], a model of several hosts and the microk8s clusters they form, and
//! [`FakeMicrok8s`], one host's view of it implementing [`Microk8s`]. It keeps the rules the
//! workflow depends on (spec `microk8s-cli.md` §1–4): tokens are node-local, single-use ones
//! are consumed *before* the other checks, TTL tokens expire on a virtual clock; the first join
//! re-binds the entry's dqlite from 127.0.0.1; dqlite roles fill 3 voters, then 3 standbys, then
//! spares; HA means ≥3 voters; `leave` leaves a NotReady Node behind; `remove-node` needs
//! `--force` for dqlite members and purges ghosts by IP; a node joining another cluster leaves a
//! ghost in the old one; no quorum → `leave`/forced removal fail and `status` is not ready.
//! Errors are the same [`Microk8sError`] values the CLI adapter produces. Faults are injected
//! per host ([`JoinFault`], `stop`, `set_reachable`). Commands complete instantly; time moves
//! only through [`MemoryCluster::advance`]. Not a byte-exact simulator (that is `sim`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::contract::{
    AddNodeOutput, ClusterStatus, DatastoreMember, DqliteRole, JoinOutcome, Microk8s,
    Microk8sFuture, Microk8sVersion, NodeInfo, Readiness, RemoveOutcome, Role, Status,
};
use super::error::{
    CommandLine, JoinFailure, JoinRejection, LeaveFailure, Microk8sError, RemoveFailure,
};
use super::secret::{CLUSTER_AGENT_PORT, JoinToken, JoinUrl, Kubeconfig, TokenTtl};

/// The dqlite port every member listens on.
const DQLITE_PORT: u16 = 19001;

/// A fault to inject into the next `join` run *on* a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinFault {
    /// Exit 0, but the node never becomes Ready nor a dqlite member (#4555, #1880).
    Silent,
    /// The entry cannot be reached (traceback, exit 1).
    Unreachable,
    /// The entry refuses with this reason, after consuming a single-use token.
    Reject(JoinRejection),
}

#[derive(Debug)]
struct Host {
    ip: IpAddr,
    running: bool,
    reachable: bool,
    cluster: u64,
    role: Role,
    /// `no-cert-reissue` exists: this node has been part of a multi-node cluster.
    clustered: bool,
    /// A silent join failure left it half-joined.
    broken: bool,
    /// `(token, expiry)`; `None` expiry = single use.
    tokens: Vec<(String, Option<Duration>)>,
    join_fault: Option<JoinFault>,
}

#[derive(Debug)]
struct NodeObj {
    ip: IpAddr,
    role: Role,
    host: String,
}

#[derive(Debug, Default)]
struct Cluster {
    dqlite: Vec<(String, DqliteRole)>,
    nodes: BTreeMap<String, NodeObj>,
}

#[derive(Debug, Default)]
struct World {
    now: Duration,
    hosts: BTreeMap<String, Host>,
    clusters: BTreeMap<u64, Cluster>,
    next_cluster: u64,
    version: String,
    calls: Vec<(String, CommandLine)>,
}

/// A shared in-memory model of hosts running microk8s. Cheap to clone (one shared state).
#[derive(Debug, Clone)]
pub struct MemoryCluster {
    world: Arc<Mutex<World>>,
}

/// One host's microk8s, backed by a [`MemoryCluster`].
#[derive(Debug, Clone)]
pub struct FakeMicrok8s {
    world: Arc<Mutex<World>>,
    host: String,
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    // A panicking test thread must not hide the model from the others.
    world
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The 12-hex-character "certificate fingerprint" of a fake host.
fn fingerprint(hostname: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in hostname.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")[..12].to_owned()
}

fn dqlite_addr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{DQLITE_PORT}"),
        IpAddr::V6(v6) => format!("[{v6}]:{DQLITE_PORT}"),
    }
}

impl Default for MemoryCluster {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryCluster {
    /// An empty model whose nodes report kubelet `v1.32.3`.
    pub fn new() -> Self {
        Self::with_version("v1.32.3")
    }

    /// An empty model whose nodes report this version.
    pub fn with_version(version: &str) -> Self {
        let world = World {
            version: version.to_owned(),
            ..World::default()
        };
        Self {
            world: Arc::new(Mutex::new(world)),
        }
    }

    /// Adds a freshly installed, running, single-node microk8s host (dqlite on 127.0.0.1).
    pub fn add_host(&self, hostname: &str, ip: IpAddr) -> FakeMicrok8s {
        let mut w = lock(&self.world);
        let cluster = w.new_cluster(hostname, ip);
        let host = Host {
            ip,
            running: true,
            reachable: true,
            cluster,
            role: Role::ControlPlane,
            clustered: false,
            broken: false,
            tokens: Vec::new(),
            join_fault: None,
        };
        w.hosts.insert(hostname.to_owned(), host);
        FakeMicrok8s {
            world: Arc::clone(&self.world),
            host: hostname.to_owned(),
        }
    }

    /// The handle of an existing host.
    pub fn host(&self, hostname: &str) -> Option<FakeMicrok8s> {
        let exists = lock(&self.world).hosts.contains_key(hostname);
        exists.then(|| FakeMicrok8s {
            world: Arc::clone(&self.world),
            host: hostname.to_owned(),
        })
    }

    /// Moves the virtual clock (token expiry).
    pub fn advance(&self, by: Duration) {
        lock(&self.world).now += by;
    }

    /// `microk8s stop` / a crash: commands report stopped, its node turns Unknown, it no longer
    /// counts for quorum, its dqlite membership stays.
    pub fn stop(&self, hostname: &str) {
        self.with_host(hostname, |h| h.running = false);
    }

    /// `microk8s start`.
    pub fn start(&self, hostname: &str) {
        self.with_host(hostname, |h| h.running = true);
    }

    /// Whether joins can reach this host's cluster agent.
    pub fn set_reachable(&self, hostname: &str, reachable: bool) {
        self.with_host(hostname, |h| h.reachable = reachable);
    }

    /// Injects a fault into the next `join` run on `hostname` (consumed by it).
    pub fn set_join_fault(&self, hostname: &str, fault: JoinFault) {
        self.with_host(hostname, |h| h.join_fault = Some(fault));
    }

    /// Hostnames in the same microk8s cluster as `hostname` (itself included), sorted.
    pub fn cluster_members(&self, hostname: &str) -> Vec<String> {
        let w = lock(&self.world);
        let Some(c) = w.hosts.get(hostname).map(|h| h.cluster) else {
            return Vec::new();
        };
        w.hosts
            .iter()
            .filter(|(_, h)| h.cluster == c)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// How many token lines `hostname` holds (expired ones included, as microk8s keeps them).
    pub fn token_count(&self, hostname: &str) -> usize {
        lock(&self.world)
            .hosts
            .get(hostname)
            .map_or(0, |h| h.tokens.len())
    }

    /// Every command run so far, as `(host, redacted command line)`.
    pub fn calls(&self) -> Vec<(String, CommandLine)> {
        lock(&self.world).calls.clone()
    }

    fn with_host(&self, hostname: &str, f: impl FnOnce(&mut Host)) {
        if let Some(h) = lock(&self.world).hosts.get_mut(hostname) {
            f(h);
        }
    }
}

impl World {
    fn new_cluster(&mut self, hostname: &str, ip: IpAddr) -> u64 {
        let id = self.next_cluster;
        self.next_cluster += 1;
        let mut c = Cluster {
            dqlite: vec![(format!("127.0.0.1:{DQLITE_PORT}"), DqliteRole::Voter)],
            ..Cluster::default()
        };
        c.nodes.insert(
            hostname.to_lowercase(),
            NodeObj {
                ip,
                role: Role::ControlPlane,
                host: hostname.to_owned(),
            },
        );
        self.clusters.insert(id, c);
        id
    }

    /// A host returns to a fresh single-node installation (after `leave`).
    fn reset_host(&mut self, hostname: &str) {
        let Some(ip) = self.hosts.get(hostname).map(|h| h.ip) else {
            return;
        };
        let cluster = self.new_cluster(hostname, ip);
        if let Some(h) = self.hosts.get_mut(hostname) {
            h.cluster = cluster;
            h.role = Role::ControlPlane;
            h.clustered = false;
            h.broken = false;
            h.tokens.clear();
        }
    }

    fn host_by_ip(&self, ip: IpAddr) -> Option<(&String, &Host)> {
        self.hosts.iter().find(|(_, h)| h.ip == ip)
    }

    fn is_live_member(&self, cluster: u64, addr: &str) -> bool {
        self.hosts
            .values()
            .any(|h| h.cluster == cluster && h.running && !h.broken && dqlite_addr(h.ip) == addr)
            || (addr.starts_with("127.0.0.1:")
                && self
                    .hosts
                    .values()
                    .any(|h| h.cluster == cluster && h.running))
    }

    /// A majority of the cluster's voters is running.
    fn has_quorum(&self, cluster: u64) -> bool {
        let Some(c) = self.clusters.get(&cluster) else {
            return false;
        };
        let voters: Vec<&String> = c
            .dqlite
            .iter()
            .filter(|(_, r)| *r == DqliteRole::Voter)
            .map(|(a, _)| a)
            .collect();
        let alive = voters
            .iter()
            .filter(|a| self.is_live_member(cluster, a))
            .count();
        alive * 2 > voters.len()
    }

    /// The dqlite leader's role adjustment: 3 voters, then 3 standbys, from live members.
    fn rebalance(&mut self, cluster: u64) {
        let live: Vec<bool> = match self.clusters.get(&cluster) {
            Some(c) => c
                .dqlite
                .iter()
                .map(|(a, _)| self.is_live_member(cluster, a))
                .collect(),
            None => return,
        };
        let Some(c) = self.clusters.get_mut(&cluster) else {
            return;
        };
        for (target, want, from) in [
            (
                DqliteRole::Voter,
                3,
                [DqliteRole::Standby, DqliteRole::Spare],
            ),
            (
                DqliteRole::Standby,
                3,
                [DqliteRole::Spare, DqliteRole::Spare],
            ),
        ] {
            for source in from {
                for (i, is_live) in live.iter().enumerate() {
                    let have = c.dqlite.iter().filter(|(_, r)| *r == target).count();
                    if have < want && c.dqlite[i].1 == source && *is_live {
                        c.dqlite[i].1 = target;
                    }
                }
            }
        }
    }

    fn next_role(&self, cluster: u64) -> DqliteRole {
        let Some(c) = self.clusters.get(&cluster) else {
            return DqliteRole::Voter;
        };
        let count = |r| c.dqlite.iter().filter(|(_, x)| *x == r).count();
        if count(DqliteRole::Voter) < 3 {
            DqliteRole::Voter
        } else if count(DqliteRole::Standby) < 3 {
            DqliteRole::Standby
        } else {
            DqliteRole::Spare
        }
    }

    fn readiness(&self, cluster: u64, node: &NodeObj) -> Readiness {
        match self.hosts.get(&node.host) {
            Some(h) if h.cluster == cluster && h.ip == node.ip && !h.broken => {
                if h.running {
                    Readiness::Ready
                } else {
                    Readiness::Unknown
                }
            }
            _ => Readiness::NotReady,
        }
    }
}

mod ops;

#[cfg(test)]
#[path = "fake_tests.rs"]
mod tests;
