//! The narrow interface through which muster drives microk8s, and the values it returns.
//!
//! Owns the [`Microk8s`] trait and its result types ([`Status`], [`AddNodeOutput`],
//! [`JoinOutcome`], [`RemoveOutcome`], [`NodeInfo`], [`Microk8sVersion`]). Two implementations
//! exist: `cli::CliMicrok8s` (runs the real executable) and `fake::FakeMicrok8s` (an in-memory
//! twin). Deciding *when* to call which command is the workflow's job, not this module's.
//!
//! # Why boxed futures
//! The trait returns `Pin<Box<dyn Future + Send>>` instead of using `async fn` so that it stays
//! dyn-compatible: the agent picks the real CLI or the twin at run time and hands an
//! `Arc<dyn Microk8s>` to its drivers without threading a type parameter through every task.
//! One allocation per call is nothing next to a process spawn that takes seconds.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use super::error::Microk8sError;
use super::secret::{JoinToken, JoinUrl, Kubeconfig, TokenTtl};

/// The future every [`Microk8s`] method returns.
pub type Microk8sFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, Microk8sError>> + Send + 'a>>;

/// The microk8s operations muster needs, one method per CLI command.
///
/// Exit codes of microk8s do not prove success (a join can exit 0 and leave a broken node);
/// confirm every change with `verify::verify_joined` / `verify::verify_removed` over
/// [`Microk8s::nodes`] and [`Microk8s::status`] of a control-plane node.
pub trait Microk8s: Send + Sync {
    /// `microk8s status --format yaml [--wait-ready --timeout N]`. Not-ready, stopped and
    /// worker nodes are reported as [`Status`] values, not errors.
    fn status(&self, wait_ready: Option<Duration>) -> Microk8sFuture<'_, Status>;

    /// `microk8s add-node --token T --token-ttl N --format json` (falls back to the pretty
    /// output on versions without `--format`). Registers `token` on *this* node only.
    fn add_node<'a>(
        &'a self,
        token: &'a JoinToken,
        ttl: TokenTtl,
    ) -> Microk8sFuture<'a, AddNodeOutput>;

    /// `microk8s join <url> [--worker]`. On failure the error is `Microk8sError::Join` with a
    /// classified [`JoinFailure`](super::error::JoinFailure).
    fn join<'a>(&'a self, url: &'a JoinUrl, role: Role) -> Microk8sFuture<'a, JoinOutcome>;

    /// `microk8s leave`, run on the departing node. Its Node object stays behind `NotReady`
    /// until a control plane runs `remove-node`.
    fn leave(&self) -> Microk8sFuture<'_, ()>;

    /// `microk8s remove-node <name|ip> [--force]`, run on a remaining control plane.
    fn remove_node<'a>(&'a self, node: &'a str, force: bool) -> Microk8sFuture<'a, RemoveOutcome>;

    /// `microk8s kubectl get nodes -o json`.
    fn nodes(&self) -> Microk8sFuture<'_, Vec<NodeInfo>>;

    /// `microk8s config`: the admin kubeconfig pointing at this node's default IP.
    fn kubeconfig(&self) -> Microk8sFuture<'_, Kubeconfig>;

    /// `microk8s version` (1.20+); `None` on versions without the subcommand.
    fn version(&self) -> Microk8sFuture<'_, Option<Microk8sVersion>>;
}

/// Whether a node runs the control plane (and is a dqlite member) or is a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A full node: control plane, dqlite member (voter, standby or spare).
    ControlPlane,
    /// `join --worker` (1.23+): kubelet and proxy only, never a dqlite member.
    Worker,
}

/// What `microk8s status` reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// `microk8s is running`.
    Running(ClusterStatus),
    /// `microk8s is not running. Use microk8s inspect …`: services up but not ready (yet).
    /// The yaml format still lists the datastore members it could read.
    NotReady {
        /// dqlite members, when printed.
        datastore: Vec<DatastoreMember>,
    },
    /// `microk8s is not running, try microk8s start`: stopped on purpose.
    Stopped,
    /// `This MicroK8s deployment is acting as a node in a cluster.`: this node is a worker.
    Worker,
}

impl Status {
    /// The cluster status when running.
    pub fn running(&self) -> Option<&ClusterStatus> {
        match self {
            Self::Running(s) => Some(s),
            _ => None,
        }
    }
}

/// The running part of `microk8s status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterStatus {
    /// At least three dqlite voters (`high-availability: yes`).
    pub high_availability: bool,
    /// dqlite members in membership order. Empty when dqlite could not be read (`none`) or
    /// the node is not in dqlite mode. Spares appear only in the yaml format.
    pub datastore: Vec<DatastoreMember>,
    /// External etcd endpoints (non-dqlite clusters only).
    pub etcd_endpoints: Vec<String>,
    /// Names of enabled addons (without the `core/` repository prefix).
    pub addons_enabled: Vec<String>,
}

impl ClusterStatus {
    /// The member whose address has host `ip`, if any (any role).
    pub fn datastore_member(&self, ip: IpAddr) -> Option<&DatastoreMember> {
        self.datastore.iter().find(|m| m.ip() == Some(ip))
    }

    /// The voters.
    pub fn voters(&self) -> impl Iterator<Item = &DatastoreMember> {
        self.datastore
            .iter()
            .filter(|m| m.role == DqliteRole::Voter)
    }

    /// True while the datastore runs on loopback only (a node that never clustered). False
    /// when the member list could not be read.
    pub fn is_standalone(&self) -> bool {
        !self.datastore.is_empty()
            && self
                .datastore
                .iter()
                .all(|m| m.ip().is_some_and(|ip| ip.is_loopback()))
    }
}

/// One dqlite member as listed by `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatastoreMember {
    /// `IP:19001` as printed (IPv6 in brackets).
    pub address: String,
    /// Its raft role.
    pub role: DqliteRole,
}

impl DatastoreMember {
    /// The IP part of the address.
    pub fn ip(&self) -> Option<IpAddr> {
        let host = match self.address.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
            _ => &self.address,
        };
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }
}

/// A dqlite raft role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DqliteRole {
    /// Votes; three of them make HA.
    Voter,
    /// Replicates, promoted when a voter goes.
    Standby,
    /// Member that neither votes nor replicates (yaml format only).
    Spare,
}

/// What `add-node` printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddNodeOutput {
    /// The registered token.
    pub token: JoinToken,
    /// The certificate fingerprint (1.21+).
    pub fingerprint: Option<String>,
    /// Join addresses, one per IP of the node. With the pretty/short formats the first is the
    /// default-route IP; the json format gives no such order.
    pub urls: Vec<JoinUrl>,
}

impl AddNodeOutput {
    /// The join address for one of the node's IPs.
    pub fn url_for(&self, ip: IpAddr) -> Option<&JoinUrl> {
        self.urls.iter().find(|u| u.ip() == Some(ip))
    }
}

/// What a successful (exit 0) `join` printed. Exit 0 is not proof: verify afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinOutcome {
    /// `Successfully joined the cluster.` was printed (1.29+ only; older versions print
    /// nothing at the end, so `false` is normal there).
    pub confirmed: bool,
    /// The IP from `Contacting cluster at <ip>`.
    pub contacted: Option<String>,
    /// `WARNING:` lines (different CIDR, hostpath storage).
    pub warnings: Vec<String>,
}

/// What a `remove-node` that did not fail reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// Exit 0: the Node object was deleted (and its dqlite member, with `--force`).
    Removed,
    /// `Node <n> does not exist in Kubernetes.` (microk8s exits 1). With `--force` microk8s
    /// also looked for a dqlite member with that address and removed it if found.
    NotInKubernetes {
        /// `--force` was given, so dqlite was checked too.
        dqlite_checked: bool,
        /// `Removing node entry found in dqlite.` was printed: a ghost member was purged.
        purged_from_dqlite: bool,
    },
}

/// The `Ready` condition of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// `status: "True"`.
    Ready,
    /// `status: "False"`.
    NotReady,
    /// `status: "Unknown"` (kubelet stopped reporting) or no Ready condition yet.
    Unknown,
}

/// One item of `kubectl get nodes -o json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `metadata.name`: the node's hostname, lowercased.
    pub name: String,
    /// The Ready condition.
    pub readiness: Readiness,
    /// The `InternalIP` address.
    pub internal_ip: Option<IpAddr>,
    /// From the `node.kubernetes.io/microk8s-controlplane` / `-worker` labels (1.23+);
    /// `None` on older versions.
    pub role: Option<Role>,
    /// `status.nodeInfo.kubeletVersion`, e.g. `v1.32.3`.
    pub kubelet_version: Option<String>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
}

/// A microk8s / Kubernetes version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Microk8sVersion {
    /// Major version (1).
    pub major: u32,
    /// Minor version (e.g. 32).
    pub minor: u32,
    /// Patch version when given.
    pub patch: Option<u32>,
    /// The snap revision from `microk8s version`.
    pub revision: Option<String>,
    /// The version string as printed, e.g. `v1.32.3` or `v1.19.0-34+ff9309c628eb68`.
    pub raw: String,
}

impl Microk8sVersion {
    /// Parses `v1.32.3`, `1.32.3`, `v1.19.0-34+ff93…` or `1.28/stable`-like strings.
    pub fn parse(raw: &str) -> Option<Self> {
        let s = raw.trim();
        let digits = s.strip_prefix('v').unwrap_or(s);
        let mut parts = digits.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match digits
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .next()
        {
            Some(core) => core.split('.').nth(2).and_then(|p| p.parse().ok()),
            None => None,
        };
        Some(Self {
            major,
            minor,
            patch,
            revision: None,
            raw: s.to_owned(),
        })
    }

    /// `(major, minor)`, what cluster compatibility depends on.
    pub fn minor_version(&self) -> (u32, u32) {
        (self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_snap_and_kubelet_forms() {
        let v = Microk8sVersion::parse("v1.32.3").expect("parses");
        assert_eq!((v.major, v.minor, v.patch), (1, 32, Some(3)));
        let old = Microk8sVersion::parse("v1.19.0-34+ff9309c628eb68").expect("parses");
        assert_eq!((old.minor_version(), old.patch), ((1, 19), Some(0)));
        let channel = Microk8sVersion::parse("1.28/stable").expect("parses");
        assert_eq!((channel.minor_version(), channel.patch), ((1, 28), None));
        assert_eq!(Microk8sVersion::parse("latest"), None);
    }

    #[test]
    fn datastore_member_ip_handles_ports_and_brackets() {
        let m = |a: &str| DatastoreMember {
            address: a.into(),
            role: DqliteRole::Voter,
        };
        assert_eq!(m("10.0.0.1:19001").ip(), "10.0.0.1".parse().ok());
        assert_eq!(m("[fd00::1]:19001").ip(), "fd00::1".parse().ok());
        assert_eq!(m("10.0.0.1").ip(), "10.0.0.1".parse().ok());
        let local = ClusterStatus {
            datastore: vec![m("127.0.0.1:19001")],
            ..Default::default()
        };
        assert!(local.is_standalone());
        assert!(!ClusterStatus::default().is_standalone());
        let clustered = ClusterStatus {
            datastore: vec![m("10.0.0.1:19001")],
            ..Default::default()
        };
        assert!(!clustered.is_standalone());
        assert!(
            clustered
                .datastore_member("10.0.0.1".parse().expect("ip"))
                .is_some()
        );
    }
}
