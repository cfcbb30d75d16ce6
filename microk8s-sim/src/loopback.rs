//! Simulated hosts in one process, for tests: each on a loopback address (127.0.N.10, .11, …)
//! with its own state directory and in-process daemon, and a CLI run in-process too. The
//! simulator's own integration tests and the agent's adapter contract test use it.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{LatencyProfile, SimConfig};
use crate::daemon::{Daemon, now_ms};
use crate::replica::{NodeKind, Role};
use crate::state_dir::StateDir;

/// Fast knobs for tests: no latency, quick liveness.
pub fn fast_config() -> SimConfig {
    SimConfig {
        latency: LatencyProfile::Zero,
        heartbeat_interval: Duration::from_millis(100),
        not_ready_after: Duration::from_millis(1500),
        role_interval: Duration::from_millis(300),
        connect_timeout: Some(Duration::from_millis(1500)),
        ..SimConfig::default()
    }
}

/// One simulated host.
pub struct Host {
    /// Hostname.
    pub name: String,
    /// The host's one address (127.0.N.x).
    pub ip: IpAddr,
    /// Its state directory.
    pub state: PathBuf,
    /// Its running daemon; `None` while stopped.
    pub daemon: Option<Arc<Daemon>>,
    _dir: tempfile::TempDir,
}

/// Several hosts sharing one runtime.
pub struct Lab {
    /// The runtime every daemon of the lab runs on.
    pub rt: tokio::runtime::Runtime,
    /// The hosts, in the order of their names.
    pub hosts: Vec<Host>,
}

/// What a CLI call printed.
#[derive(Debug)]
pub struct Run {
    /// Standard output.
    pub out: String,
    /// Standard error.
    pub err: String,
    /// Exit code.
    pub code: i32,
}

impl Lab {
    /// Hosts `names` on 127.0.`net`.10, .11, …, all with `cfg` unless `per_host` overrides.
    pub fn new(net: u8, names: &[&str], cfg: SimConfig) -> Self {
        Self::with(net, names, |_| cfg.clone())
    }

    /// Like [`Lab::new`] with a config per host index.
    pub fn with(net: u8, names: &[&str], cfg: impl Fn(usize) -> SimConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut lab = Self {
            rt,
            hosts: Vec::new(),
        };
        for (i, name) in names.iter().enumerate() {
            let ip: IpAddr = format!("127.0.{net}.{}", 10 + i).parse().expect("ip");
            let dir = tempfile::tempdir().expect("tempdir");
            StateDir::init(dir.path(), name, vec![ip], now_ms(), &mut rand::rng()).expect("init");
            lab.hosts.push(Host {
                name: (*name).to_owned(),
                ip,
                state: dir.path().to_owned(),
                daemon: None,
                _dir: dir,
            });
            lab.start(i, cfg(i));
        }
        lab
    }

    /// Starts (or restarts) host `i`'s daemon and waits until it listens.
    pub fn start(&mut self, i: usize, cfg: SimConfig) {
        let dir = StateDir::open(&self.hosts[i].state).expect("open");
        let d = Daemon::new(dir, cfg, Vec::new()).expect("daemon");
        let run = Arc::clone(&d);
        self.rt.spawn(async move { run.run().await });
        let deadline = Instant::now() + Duration::from_secs(5);
        let addr = SocketAddr::new(self.hosts[i].ip, 25000);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err()
            || !self.hosts[i].state.join("sim.sock").exists()
        {
            assert!(Instant::now() < deadline, "daemon {i} did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.hosts[i].daemon = Some(d);
    }

    /// Kills host `i`'s daemon (the host goes down).
    pub fn kill(&mut self, i: usize) {
        if let Some(d) = self.hosts[i].daemon.take() {
            d.shutdown.cancel();
        }
        let addr = SocketAddr::new(self.hosts[i].ip, 25000);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            assert!(Instant::now() < deadline, "daemon {i} did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `microk8s ARGS` on host `i`.
    pub fn cli(&self, i: usize, args: &[&str]) -> Run {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = crate::cli::run_cli(&self.hosts[i].state, &args, &mut out, &mut err);
        Run {
            out: String::from_utf8_lossy(&out).into_owned(),
            err: String::from_utf8_lossy(&err).into_owned(),
            code,
        }
    }

    /// `add-node --format token-check` on host `i` with extra args; returns `T/C`.
    pub fn token(&self, i: usize, extra: &[&str]) -> String {
        let mut args = vec!["add-node", "--format", "token-check"];
        args.extend_from_slice(extra);
        let r = self.cli(i, &args);
        assert_eq!(r.code, 0, "{r:?}");
        r.out.trim().to_owned()
    }

    /// Joins host `j` to host `i` with a fresh single-use token.
    pub fn join(&self, j: usize, i: usize, extra: &[&str]) -> Run {
        let tc = self.token(i, &[]);
        let conn = format!("{}:25000/{tc}", self.hosts[i].ip);
        let mut args = vec!["join", conn.as_str()];
        args.extend_from_slice(extra);
        self.cli(j, &args)
    }

    /// Roles of the dqlite members in host `i`'s replica, as (address, role).
    pub fn members(&self, i: usize) -> Vec<(String, Role)> {
        let d = self.hosts[i].daemon.as_ref().expect("running");
        let g = d.lock();
        g.cluster
            .iter()
            .flat_map(|c| c.members.iter().map(|m| (m.address.clone(), m.role)))
            .collect()
    }

    /// Node names and kinds in host `i`'s replica.
    pub fn node_kinds(&self, i: usize) -> Vec<(String, NodeKind)> {
        let d = self.hosts[i].daemon.as_ref().expect("running");
        let g = d.lock();
        g.cluster
            .iter()
            .flat_map(|c| c.nodes.values().map(|n| (n.name.clone(), n.kind)))
            .collect()
    }

    /// Polls `f` until true or panics after `secs`.
    pub fn wait_for(&self, secs: u64, what: &str, mut f: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `kubectl get nodes` table of host `i`.
    pub fn nodes_table(&self, i: usize) -> String {
        self.cli(i, &["kubectl", "get", "nodes"]).out
    }
}

/// The STATUS column of `name` in a `kubectl get nodes` table.
pub fn status_of(table: &str, name: &str) -> Option<String> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|c| c.first() == Some(&name))
        .and_then(|c| c.get(1).map(|s| (*s).to_owned()))
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            if let Some(d) = h.daemon.take() {
                d.shutdown.cancel();
            }
        }
    }
}
