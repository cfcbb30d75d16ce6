//! One simulated host's state directory: identity, lock files, tokens, replica.
//!
//! Owns the on-disk layout (a reduced `$SNAP_DATA`) and its reading and writing:
//!
//! ```text
//! DIR/host.json                          hostname, IPs, kubelet version, server cert digest
//! DIR/certs/server.crt                   per-host random "certificate" (fingerprint source)
//! DIR/credentials/cluster-tokens.txt     `TOKEN` or `TOKEN|EXPIRY` lines (real format)
//! DIR/credentials/persistent-cluster-tokens.txt
//! DIR/credentials/callback-token.txt
//! DIR/credentials/client.config          admin kubeconfig with 127.0.0.1 (like the real one)
//! DIR/var/lock/{ha-cluster,clustered.lock,no-cert-reissue,stopped.lock,join-in-progress,no-k8s-dqlite}
//! DIR/args/{cluster-agent,k8s-dqlite}     present like on a real control plane
//! DIR/var/kubernetes/backend/sim-cluster.json   this host's replica of the cluster state
//! DIR/var/kubernetes/backend/cluster.yaml      dqlite's member list, rewritten on change
//! DIR/sim-node.json                      which cluster this host belongs to, and how
//! DIR/sim.sock                           the daemon's socket for the `microk8s` CLI
//! ```
//!
//! It does not decide anything about clusters (see `replica`) or serve anything (see `daemon`).

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::replica::{ClusterState, NodeKind};
use super::tokens::TokenStore;

/// The cluster agent's port.
pub const AGENT_PORT: u16 = 25000;
/// The daemon's CLI socket, in the state directory; it exists once the daemon serves.
pub const SOCKET: &str = "sim.sock";
/// The Kubernetes API port.
pub const API_PORT: u16 = 16443;
/// Kubelet version reported by simulated nodes unless `host.json` says otherwise.
pub const DEFAULT_VERSION: &str = "v1.32.3";

/// Errors reading or writing a state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory has no `host.json`.
    #[error(
        "{0} is not an initialised simulator state directory (no host.json); run `microk8s-sim init`"
    )]
    NotInitialised(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A JSON file did not parse.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// Bad arguments to `init`.
    #[error("{0}")]
    Invalid(String),
}

/// Who a simulated host is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// The machine's hostname (the node name is its lowercase form).
    pub hostname: String,
    /// Its IPs, `hostname -I` order; the first is the default-route IP.
    pub ips: Vec<IpAddr>,
    /// Kubelet version string.
    pub version: String,
    /// Lowercase hex SHA-256 of the server certificate (the join fingerprint is its first 12).
    pub cert_sha256: String,
}

impl HostInfo {
    /// The IP of the default interface.
    pub fn default_ip(&self) -> IpAddr {
        self.ips
            .first()
            .copied()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    }

    /// The Kubernetes node name: the lowercased hostname.
    pub fn node_name(&self) -> String {
        self.hostname.to_lowercase()
    }

    /// The 12-hex fingerprint printed by `add-node`.
    pub fn fingerprint(&self) -> &str {
        self.cert_sha256.get(..12).unwrap_or(&self.cert_sha256)
    }

    /// A host for unit tests.
    #[cfg(test)]
    pub fn for_tests(hostname: &str, ip: &str) -> Self {
        Self {
            hostname: hostname.to_owned(),
            ips: vec![ip.parse().expect("test ip")],
            version: DEFAULT_VERSION.to_owned(),
            cert_sha256: "d5e0ad1fa4f1f7d7b4b3a9e3c1c2b0a99f8e7d6c5b4a3928171605f4e3d2c1b0"
                .to_owned(),
        }
    }
}

/// Which cluster this host belongs to and in what capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalMembership {
    /// The cluster's id.
    pub cluster_id: String,
    /// Control plane or worker.
    pub kind: NodeKind,
    /// Control-plane IPs a worker reports to (empty on control planes: they use the replica).
    pub control_planes: Vec<IpAddr>,
    /// A join "succeeded" but never completed: kubelet and API never come up.
    pub broken: bool,
}

/// Lock files under `var/lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// dqlite mode (always present on 1.19+ installs).
    HaCluster,
    /// This node is a worker.
    Clustered,
    /// Created by the first accepted join on either side.
    NoCertReissue,
    /// `microk8s stop` was run.
    Stopped,
    /// A join is running on this node.
    JoinInProgress,
    /// Workers do not run k8s-dqlite.
    NoK8sDqlite,
}

impl Lock {
    fn file(self) -> &'static str {
        match self {
            Self::HaCluster => "ha-cluster",
            Self::Clustered => "clustered.lock",
            Self::NoCertReissue => "no-cert-reissue",
            Self::Stopped => "stopped.lock",
            Self::JoinInProgress => "join-in-progress",
            Self::NoK8sDqlite => "no-k8s-dqlite",
        }
    }
}

/// A simulated host's state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write(path: &Path, contents: &[u8]) -> Result<(), StateError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    // Write-then-rename so a concurrent reader never sees half a file.
    let tmp = path.with_extension("tmp-write");
    fs::write(&tmp, contents).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StateError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Json {
                path: path.to_owned(),
                source,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail; an empty file would be caught on read.
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A PEM block around `der`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// The admin kubeconfig as stored (server on 127.0.0.1, replaced by `microk8s config`).
/// Plain HTTP: the simulated API server does not speak TLS.
pub fn client_config(admin_token: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    server: http://127.0.0.1:{API_PORT}\n  name: microk8s-cluster\ncontexts:\n- context:\n    cluster: microk8s-cluster\n    user: admin\n  name: microk8s\ncurrent-context: microk8s\nkind: Config\npreferences: {{}}\nusers:\n- name: admin\n  user:\n    token: {admin_token}\n"
    )
}

impl StateDir {
    /// Opens an initialised directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StateError> {
        let dir = Self { root: root.into() };
        if !dir.root.join("host.json").is_file() {
            return Err(StateError::NotInitialised(dir.root));
        }
        Ok(dir)
    }

    /// Initialises `root` as a fresh single-node MicroK8s on `hostname` with `ips`.
    pub fn init(
        root: impl Into<PathBuf>,
        hostname: &str,
        ips: Vec<IpAddr>,
        now_ms: u64,
        rng: &mut impl Rng,
    ) -> Result<Self, StateError> {
        if hostname.is_empty() || hostname.contains(char::is_whitespace) {
            return Err(StateError::Invalid(format!(
                "invalid hostname {hostname:?}"
            )));
        }
        if ips.is_empty() {
            return Err(StateError::Invalid(
                "a simulated host needs at least one IP".into(),
            ));
        }
        let dir = Self { root: root.into() };
        let cert: Vec<u8> = (0..512).map(|_| rng.random::<u8>()).collect();
        let host = HostInfo {
            hostname: hostname.to_owned(),
            ips,
            version: DEFAULT_VERSION.to_owned(),
            cert_sha256: hex::encode(Sha256::digest(&cert)),
        };
        write(
            &dir.path("certs/server.crt"),
            pem("CERTIFICATE", &cert).as_bytes(),
        )?;
        write(&dir.path("host.json"), &to_json(&host))?;
        write(
            &dir.path("args/cluster-agent"),
            format!("--bind 0.0.0.0:{AGENT_PORT}\n--keyfile ${{SNAP_DATA}}/certs/server.key\n--certfile ${{SNAP_DATA}}/certs/server.crt\n--timeout 240\n").as_bytes(),
        )?;
        dir.write_dqlite_args()?;
        let callback: String = (0..64)
            .map(|_| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[rng.random_range(0..36)]))
            .collect();
        write(
            &dir.path("credentials/callback-token.txt"),
            format!("{callback}\n").as_bytes(),
        )?;
        fs::create_dir_all(dir.path("var/lock")).map_err(io_err(&dir.root))?;
        dir.set(Lock::HaCluster)?;
        let state = ClusterState::standalone(&host, now_ms, rng);
        dir.reset_to(&state)?;
        Ok(dir)
    }

    fn write_dqlite_args(&self) -> Result<(), StateError> {
        write(
            &self.path("args/k8s-dqlite"),
            b"--storage-dir=${SNAP_DATA}/var/kubernetes/backend/\n--listen=unix://${SNAP_DATA}/var/kubernetes/backend/kine.sock:12379\n",
        )
    }

    /// Makes this host a standalone control plane of `state` (fresh install or after leave).
    pub fn reset_to(&self, state: &ClusterState) -> Result<(), StateError> {
        self.save_cluster(state)?;
        self.save_local(&LocalMembership {
            cluster_id: state.cluster_id.clone(),
            kind: NodeKind::ControlPlane,
            control_planes: Vec::new(),
            broken: false,
        })?;
        self.write_dqlite_args()?;
        write(
            &self.path("credentials/client.config"),
            client_config(&state.admin_token).as_bytes(),
        )
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The CLI socket.
    pub fn socket_path(&self) -> PathBuf {
        self.path(SOCKET)
    }

    /// Reads `host.json`.
    pub fn host(&self) -> Result<HostInfo, StateError> {
        read_json(&self.path("host.json"))?
            .ok_or_else(|| StateError::NotInitialised(self.root.clone()))
    }

    /// Whether a lock file exists.
    pub fn has(&self, lock: Lock) -> bool {
        self.path("var/lock").join(lock.file()).exists()
    }

    /// Creates a lock file.
    pub fn set(&self, lock: Lock) -> Result<(), StateError> {
        let p = self.path("var/lock").join(lock.file());
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map(drop)
            .map_err(io_err(&p))
    }

    /// Removes a lock file (absent is fine).
    pub fn clear(&self, lock: Lock) -> Result<(), StateError> {
        let p = self.path("var/lock").join(lock.file());
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&p)(e)),
            _ => Ok(()),
        }
    }

    /// Whether `args/k8s-dqlite` exists (what `leave`'s wrapper tests on control planes).
    pub fn has_dqlite_args(&self) -> bool {
        self.path("args/k8s-dqlite").is_file()
    }

    /// Removes `args/k8s-dqlite` (a worker does not run it).
    pub fn remove_dqlite_args(&self) -> Result<(), StateError> {
        let p = self.path("args/k8s-dqlite");
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&p)(e)),
            _ => Ok(()),
        }
    }

    /// The token files.
    pub fn tokens(&self) -> TokenStore {
        TokenStore::new(
            self.path("credentials/cluster-tokens.txt"),
            self.path("credentials/persistent-cluster-tokens.txt"),
        )
    }

    /// Reads `credentials/client.config`.
    pub fn client_config(&self) -> Result<String, StateError> {
        let p = self.path("credentials/client.config");
        fs::read_to_string(&p).map_err(io_err(&p))
    }

    /// Rewrites `credentials/client.config` for a cluster's admin token.
    pub fn write_client_config(&self, admin_token: &str) -> Result<(), StateError> {
        write(
            &self.path("credentials/client.config"),
            client_config(admin_token).as_bytes(),
        )
    }

    /// Reads this host's membership record.
    pub fn load_local(&self) -> Result<LocalMembership, StateError> {
        read_json(&self.path("sim-node.json"))?
            .ok_or_else(|| StateError::NotInitialised(self.root.clone()))
    }

    /// Writes this host's membership record.
    pub fn save_local(&self, local: &LocalMembership) -> Result<(), StateError> {
        write(&self.path("sim-node.json"), &to_json(local))
    }

    /// Reads this host's replica of the cluster state, if it holds one.
    pub fn load_cluster(&self) -> Result<Option<ClusterState>, StateError> {
        read_json(&self.path("var/kubernetes/backend/sim-cluster.json"))
    }

    /// Writes the replica and dqlite's `cluster.yaml` / `info.yaml` beside it.
    pub fn save_cluster(&self, state: &ClusterState) -> Result<(), StateError> {
        let backend = "var/kubernetes/backend";
        write(
            &self.path(&format!("{backend}/sim-cluster.json")),
            &to_json(state),
        )?;
        write(
            &self.path(&format!("{backend}/cluster.yaml")),
            state.cluster_yaml().as_bytes(),
        )
    }

    /// Drops the replica (a node joining as worker keeps no datastore).
    pub fn drop_cluster(&self) -> Result<(), StateError> {
        for f in ["sim-cluster.json", "cluster.yaml"] {
            let p = self.path("var/kubernetes/backend").join(f);
            match fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&p)(e)),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn init_creates_a_standalone_control_plane() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let dir = StateDir::init(
            tmp.path(),
            "Alpha",
            vec!["10.0.0.1".parse().expect("ip")],
            0,
            &mut rng,
        )
        .expect("init");
        let host = dir.host().expect("host");
        assert_eq!(host.node_name(), "alpha");
        assert_eq!(host.fingerprint().len(), 12);
        assert!(dir.has(Lock::HaCluster) && !dir.has(Lock::Clustered));
        let state = dir.load_cluster().expect("read").expect("replica");
        assert_eq!(state.members[0].address, "127.0.0.1:19001");
        assert_eq!(
            dir.load_local().expect("local").cluster_id,
            state.cluster_id
        );
        assert!(StateDir::open(tmp.path()).is_ok());
        assert!(StateDir::open(tmp.path().join("nope")).is_err());
    }
}
