//! The microk8s simulator used by `muster demo` and the tests.
//!
//! It behaves as the `microk8s` CLI of the 1.28+/1.29+ line (as the upstream wrapper scripts,
//! cluster agent and go-dqlite behave; the agent's parser fixtures in
//! `agent/tests/fixtures/microk8s/` hold the byte-exact outputs) for the commands muster drives, byte for byte in its outputs, messages and exit codes, with
//! per-host state and a per-host daemon that really talks over the network.
//!
//! # Pieces
//! - **CLI** ([`microk8s_main`], `cli`): the `microk8s-sim` binary run as `microk8s` (a symlink;
//!   `microk8s.<command>` names work too). The host's state directory comes from
//!   `MUSTER_SIM_STATE`, else from a `microk8s.sim-state` file (holding the path) next to the
//!   link. Wrapper checks, argument parsing (`args`), `add-node`, `config`, `stop`, `start`
//!   and `version` run in the CLI; `join`, `leave`, `remove-node`, `status` and `kubectl` are
//!   sent to the host's daemon over the unix socket `DIR/sim.sock` (`control`), which streams
//!   stdout/stderr back and ends with the exit code.
//! - **Daemon** ([`sim_main`] `serve`, `daemon`): one per simulated host. The cluster agent on
//!   port 25000 of the host's IPs (`agent`; plain HTTP, the server certificate is a per-host
//!   random blob whose SHA-256 is sent in the `X-Muster-Sim-Cert-Sha256` header and checked
//!   against the join string's fingerprint), the Kubernetes API on port 16443 of a running
//!   control plane (`kubeapi`), heartbeats, role adjustment and the CLI socket. While
//!   `stopped.lock` exists nothing listens (connections are refused).
//! - **A machine from outside** ([`machine`]): the recipe every Rust caller uses to start a
//!   simulated machine, as command lines of this binary: `link --dir D --state-dir S` (the
//!   `microk8s` link and its state file), `serve --state-dir S --bind IP --hostname H --ip IP`
//!   (the daemon), `wait --state-dir S --timeout-ms N` (exit 0 once the daemon answers). The
//!   CLI is the contract; `muster demo`, which may not link this crate, spawns the same ones.
//! - **Cluster state** (`replica`): held, as in reality, by the control planes: each control
//!   plane's daemon keeps a replica (dqlite members with voter/standby/spare roles, Node
//!   objects, namespaces, ConfigMaps). A write happens on the daemon that performs it (the
//!   entry for joins, the node running `remove-node`, the API server for kubectl/kube-rs
//!   writes), only when a majority of voters is alive, and is pushed to the other control
//!   planes; heartbeat replies carry newer replicas to control planes that missed a push.
//!   Concurrent writes on two control planes are not ordered (last version wins).
//! - **Liveness**: every running node heartbeats each control plane every
//!   `MUSTER_SIM_HEARTBEAT_MS`; a node not heard from for `MUSTER_SIM_NOT_READY_AFTER_MS` is
//!   `NotReady` (Ready condition `Unknown`) and a voter not heard from does not count for
//!   quorum. A killed daemon, a cut link or `microk8s stop` all make the node NotReady. The
//!   dqlite leader (first alive voter) adjusts roles every `MUSTER_SIM_ROLE_INTERVAL_MS`
//!   (3 voters + 3 stand-bys, a dead voter replaced by an alive stand-by or spare).
//!
//! # Join, as simulated
//! The joiner prints `Contacting cluster at IP`, connects from its own IP to `IP:PORT` (a failed
//! connect prints Python's traceback to stderr, exit 1; `MUSTER_SIM_CONNECT_TIMEOUT_MS` caps the
//! OS's ~2 min SYN timeout and still reports `TimeoutError: [Errno 110] Connection timed out`),
//! compares the fingerprint (exit 4) before sending anything, then posts the join. The entry
//! checks, in the Go agent's order: token (single-use tokens consumed first; 500 `Invalid token`),
//! `ha-cluster` lock (501), agent port (502), same IP (503), quorum (500 `Failed to retrieve
//! dqlite cluster nodes: context deadline exceeded` — simulator wording), a join still in
//! progress on this entry (the overlap hazard: 500 `Failed to retrieve dqlite cluster nodes:
//! database is locked` — simulator wording), already a dqlite member (500 `… is already known to
//! dqlite`), then re-binds a lone `127.0.0.1:19001` member to the contacted IP on the first join.
//! The joiner then discards its own datastore, waits the join latency (dots), and completes the
//! membership on the entry; its Node registers `NotReady` and turns `Ready` after the profile's
//! start-up delay. Silent failures skip the completion: success printed, exit 0, never Ready.
//!
//! # Knobs (environment of `microk8s-sim serve`)
//! | variable | meaning | default |
//! |---|---|---|
//! | `MUSTER_SIM_JOIN_LATENCY` | `zero`, `fast` (CP 3 s, worker 2 s), `realistic` (CP 20-60 s, worker 10-30 s, first join +10-20 s on the entry, leave 30-60 s) or milliseconds | `fast` |
//! | `MUSTER_SIM_SILENT_FAILURE` | probability (`0.3`) or count of first joins (`2`) that fail silently | none |
//! | `MUSTER_SIM_HEARTBEAT_MS` | heartbeat period | 1000 |
//! | `MUSTER_SIM_NOT_READY_AFTER_MS` | silence before NotReady / not counted for quorum | 5000 |
//! | `MUSTER_SIM_ROLE_INTERVAL_MS` | dqlite role adjustment period | 30000 |
//! | `MUSTER_SIM_CONNECT_TIMEOUT_MS` | cap on TCP connects | OS default |
//! | `MUSTER_SIM_SEED` | seed of the daemon's random choices | random |
//!
//! # Deliberate differences from a real MicroK8s
//! Plain HTTP instead of TLS on 25000 and 16443, so `microk8s config` prints
//! `server: http://IP:16443` and a `token:` user (the ≤1.27 shape) instead of x509 data; the
//! API server does not authenticate. `status` lists a fixed set of core addons (dns, ha-cluster,
//! helm, helm3 enabled). The hostname-resolution check is skipped (the 1.28+ default).
//! `kubectl` beyond `get`/`delete` of nodes needs a real kubectl on PATH.

pub mod agent;
pub mod args;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod format;
pub mod http;
pub mod join;
pub mod kubeapi;
pub mod kubectl;
pub mod loopback;
pub mod machine;
pub mod nodes;
pub mod ops;
pub mod replica;
pub mod state_dir;
pub mod tokens;

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

pub use cli::microk8s_main;

const SIM_USAGE: &str = "usage: microk8s-sim init  --state-dir DIR --hostname NAME --ip IP [--ip IP]...\n       microk8s-sim serve --state-dir DIR [--bind IP]... [--hostname NAME --ip IP...]\n       microk8s-sim link  --dir DIR [--state-dir DIR]\n       microk8s-sim wait  --state-dir DIR [--timeout-ms N]\n";

/// How long `microk8s-sim wait` waits for a host's daemon by default.
const DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Default)]
struct SimArgs {
    state_dir: Option<PathBuf>,
    hostname: Option<String>,
    ips: Vec<IpAddr>,
    binds: Vec<IpAddr>,
    dir: Option<PathBuf>,
    timeout_ms: Option<u64>,
}

fn parse_sim_args(args: &[String]) -> Result<SimArgs, String> {
    let mut a = SimArgs::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--state-dir" => a.state_dir = Some(PathBuf::from(value()?)),
            "--hostname" => a.hostname = Some(value()?),
            "--ip" => a.ips.push(
                value()?
                    .parse()
                    .map_err(|_| format!("bad --ip for {flag}"))?,
            ),
            "--bind" => a
                .binds
                .push(value()?.parse().map_err(|_| "bad --bind".to_owned())?),
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            "--timeout-ms" => {
                a.timeout_ms = Some(
                    value()?
                        .parse()
                        .map_err(|_| "bad --timeout-ms".to_owned())?,
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// Runs the `microk8s-sim` binary on its whole argv: `argv[0]` named `microk8s` (or
/// `microk8s.<command>`) runs [`microk8s_main`], anything else [`sim_main`] on the arguments.
/// Returns the exit code.
pub fn dispatch(argv: Vec<OsString>) -> i32 {
    let base = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    if base == "microk8s" || base.starts_with("microk8s.") {
        return microk8s_main(argv);
    }
    sim_main(argv.into_iter().skip(1).collect())
}

/// Entry point of `microk8s-sim <init|serve|link|wait> …` (argv without the program name).
pub fn sim_main(args: Vec<OsString>) -> i32 {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Some((sub, rest)) = args.split_first() else {
        eprint!("{SIM_USAGE}");
        return 64;
    };
    let a = match parse_sim_args(rest) {
        Ok(a) => a,
        Err(e) => {
            eprint!("microk8s-sim: {e}\n{SIM_USAGE}");
            return 64;
        }
    };
    match sub.as_str() {
        "init" => match (&a.state_dir, &a.hostname) {
            (Some(dir), Some(host)) => match state_dir::StateDir::init(
                dir,
                host,
                a.ips,
                daemon::now_ms(),
                &mut rand::rng(),
            ) {
                Ok(_) => 0,
                Err(e) => {
                    eprintln!("microk8s-sim: {e}");
                    1
                }
            },
            _ => {
                eprint!("{SIM_USAGE}");
                64
            }
        },
        "serve" => serve(a),
        "link" => link(a.dir, a.state_dir),
        "wait" => wait(a.state_dir, a.timeout_ms),
        _ => {
            eprint!("{SIM_USAGE}");
            64
        }
    }
}

/// `link --dir D [--state-dir S]`: makes `D/microk8s` a link to this binary and, with a state
/// directory, writes `D/microk8s.sim-state` naming it, so that the link finds its host without
/// `MUSTER_SIM_STATE` (as a real `microk8s` needs no environment).
fn link(dir: Option<PathBuf>, state_dir: Option<PathBuf>) -> i32 {
    let Some(dir) = dir else {
        eprint!("{SIM_USAGE}");
        return 64;
    };
    let result = std::env::current_exe().and_then(|exe| {
        std::fs::create_dir_all(&dir)?;
        let target = dir.join("microk8s");
        let _ = std::fs::remove_file(&target);
        std::os::unix::fs::symlink(exe, &target)?;
        match &state_dir {
            Some(state) => std::fs::write(dir.join(cli::STATE_FILE), state.display().to_string()),
            None => Ok(()),
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("microk8s-sim: {e}");
            1
        }
    }
}

/// `wait --state-dir S [--timeout-ms N]`: exits 0 once the host's daemon accepts connections
/// on its CLI socket, 1 when it does not within the timeout (30 s by default). Callers wait
/// for a host through this instead of knowing where the socket lives.
fn wait(state_dir: Option<PathBuf>, timeout_ms: Option<u64>) -> i32 {
    let Some(dir) = state_dir else {
        eprint!("{SIM_USAGE}");
        return 64;
    };
    let timeout = timeout_ms.map_or(DEFAULT_WAIT, std::time::Duration::from_millis);
    let socket = dir.join(state_dir::SOCKET);
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return 0;
        }
        if std::time::Instant::now() >= deadline {
            eprintln!(
                "microk8s-sim: no simulated host answers on {} after {timeout:?}",
                socket.display()
            );
            return 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn serve(a: SimArgs) -> i32 {
    let Some(dir) = a.state_dir else {
        eprint!("{SIM_USAGE}");
        return 64;
    };
    let cfg = match config::SimConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("microk8s-sim: {e}");
            return 64;
        }
    };
    let opened = match state_dir::StateDir::open(&dir) {
        Ok(d) => Ok(d),
        Err(state_dir::StateError::NotInitialised(_)) if a.hostname.is_some() => {
            let host = a.hostname.clone().unwrap_or_default();
            state_dir::StateDir::init(
                &dir,
                &host,
                a.ips.clone(),
                daemon::now_ms(),
                &mut rand::rng(),
            )
        }
        Err(e) => Err(e),
    };
    let d = match opened
        .map_err(daemon::DaemonError::from)
        .and_then(|s| daemon::Daemon::new(s, cfg, a.binds))
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("microk8s-sim: {e}");
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("microk8s-sim: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let stop = d.shutdown.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            stop.cancel();
        });
        eprintln!(
            "microk8s-sim: host {} serving the cluster agent on {:?} port {} (API {} on control planes), CLI socket {}",
            d.host.hostname,
            d.binds,
            state_dir::AGENT_PORT,
            state_dir::API_PORT,
            d.dir.socket_path().display()
        );
        match d.run().await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("microk8s-sim: {e}");
                1
            }
        }
    })
}
