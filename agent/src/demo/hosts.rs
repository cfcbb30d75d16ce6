//! The demo's machines: per host a simulated microk8s (`microk8s-sim serve`) and a real
//! `muster agent`, in a network namespace of its own ([`super::Mode::Netns`]), as processes
//! on one veth of a private namespace ([`super::Mode::Userns`]) or on loopback addresses.
//!
//! Owns [`DemoCluster`], which starts everything and, when dropped (normal end, error, panic
//! or after Ctrl-C), stops the agents and simulators (SIGTERM, then SIGKILL after a grace
//! period) and removes namespaces, bridge and directories. Children are also started under
//! `setpriv --pdeathsig KILL` when `setpriv` exists, so that even a SIGKILLed demo takes its
//! processes with it; the namespaces of a killed demo are swept by the next one
//! ([`muster_lab::sweep`]). What happens inside the agents is theirs; this module only wires
//! them up.
//!
//! A simulated machine is started with the simulator's own command line, which is the contract
//! (the same recipe `microk8s_sim::machine` builds for the tests and benchmarks; the agent may
//! not link the simulator, so it spawns the binary): `microk8s-sim link --dir D --state-dir S`
//! (`prepare`), `microk8s-sim serve --state-dir S --bind IP --hostname H --ip IP` and
//! `microk8s-sim wait --state-dir S --timeout-ms N` ([`DemoCluster::start`]).

use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Latency, Mode};
use muster_lab::process::run_ok;
use muster_lab::{ChildGuard, Lab, LabError, Signal};

/// The agents' gRPC port.
pub const AGENT_PORT: u16 = 7440;

/// How long stopped processes get to exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a simulator may take to open its CLI socket.
const SIM_START: Duration = Duration::from_secs(30);

/// Why the demo could not set its hosts up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Building or driving the namespace lab failed.
    #[error("{0}")]
    Lab(#[from] LabError),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A simulated host did not come up.
    #[error("the simulated microk8s of {host} did not start: {detail}")]
    Sim {
        /// The host.
        host: String,
        /// What was seen (its log's end).
        detail: String,
    },
    /// No block of loopback addresses has the ports free.
    #[error("no free block of loopback addresses 127.0.B.x (ports 7440, 25000, 16443 all taken)")]
    NoLoopbackBlock,
    /// Ctrl-C (or SIGTERM) arrived while setting up.
    #[error("interrupted")]
    Interrupted,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SetupError {
    let what = what.into();
    move |source| SetupError::Io { what, source }
}

/// One simulated machine.
#[derive(Debug, Clone)]
pub struct DemoHost {
    /// Its name, `hN`: node name and microk8s hostname.
    pub name: String,
    /// Its address: `eth0`'s in a namespace, a loopback address otherwise.
    pub ip: Ipv4Addr,
    /// Its directory: agent data, socket, config, simulator state, logs.
    pub dir: PathBuf,
    /// Its network namespace, in namespace mode.
    pub netns: Option<String>,
}

impl DemoHost {
    /// The agent's unix socket (reachable from outside the namespace too).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("muster.sock")
    }

    /// The simulator's state directory.
    pub fn sim_state(&self) -> PathBuf {
        self.dir.join("sim")
    }

    /// The `microk8s` link the agent drives.
    pub fn microk8s(&self) -> PathBuf {
        self.dir.join("bin").join("microk8s")
    }

    /// The agent's log file.
    pub fn agent_log(&self) -> PathBuf {
        self.dir.join("agent.log")
    }

    /// A command running `program` on this host: inside its namespace when it has one, and
    /// under `setpriv --pdeathsig KILL` when `setpriv` is available.
    fn command(&self, program: &Path, setpriv: Option<&Path>) -> Command {
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns.as_str()].map(Into::into));
        }
        if let Some(sp) = setpriv {
            argv.push(sp.into());
            argv.extend(["--pdeathsig", "KILL", "--"].map(Into::into));
        }
        argv.push(program.into());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }
}

/// What to start; see [`DemoCluster::start`].
#[derive(Debug, Clone)]
pub struct Plan {
    /// Number of hosts.
    pub nodes: usize,
    /// Namespaces or loopback (already resolved, never `Auto`).
    pub mode: Mode,
    /// The simulator's join latency.
    pub latency: Latency,
    /// The `muster` executable the agents run.
    pub exe: PathBuf,
    /// The `microk8s-sim` executable: each host's simulator daemon and its `microk8s`.
    pub sim_exe: PathBuf,
}

/// The running demo: hosts, simulators and agents. Dropping it cleans everything up.
#[derive(Debug)]
pub struct DemoCluster {
    // Field order is drop order: processes first, then the namespaces, then the directory.
    agents: Vec<ChildGuard>,
    sims: Vec<ChildGuard>,
    lab: Option<Lab>,
    tmp: Option<tempfile::TempDir>,
    hosts: Vec<DemoHost>,
    cluster: String,
    mode: Mode,
    exe: PathBuf,
}

impl DemoCluster {
    /// Creates the hosts, starts every simulator, waits until they answer, then starts every
    /// agent at once. `note` hears about each step; `stop` interrupts between steps.
    pub fn start(
        plan: &Plan,
        stop: &CancellationToken,
        note: &mut dyn FnMut(&str),
    ) -> Result<DemoCluster, SetupError> {
        let tag = muster_lab::names::base36(u64::from(std::process::id()));
        let mut demo = DemoCluster {
            agents: Vec::new(),
            sims: Vec::new(),
            lab: None,
            tmp: None,
            hosts: Vec::new(),
            cluster: format!("demo-{tag}"),
            mode: plan.mode,
            exe: plan.exe.clone(),
        };
        demo.create_hosts(plan, &tag, note)?;
        let setpriv = find_program("setpriv");
        for host in &demo.hosts {
            prepare(host, &plan.sim_exe, plan.mode)?;
        }
        note(&format!("starting {} simulated microk8s hosts", plan.nodes));
        for host in &demo.hosts {
            if stop.is_cancelled() {
                return Err(SetupError::Interrupted);
            }
            let mut cmd = host.command(&plan.sim_exe, setpriv.as_deref());
            let ip = host.ip.to_string();
            cmd.arg("serve")
                .arg("--state-dir")
                .arg(host.sim_state())
                .args(["--bind", &ip, "--hostname", &host.name, "--ip", &ip])
                .env("MUSTER_SIM_JOIN_LATENCY", plan.latency.env_value());
            let guard = demo.spawn(host, "sim", cmd)?;
            demo.sims.push(guard);
        }
        demo.wait_sims(&plan.sim_exe, stop)?;
        note(&format!("starting {} agents at once", plan.nodes));
        for host in &demo.hosts {
            if stop.is_cancelled() {
                return Err(SetupError::Interrupted);
            }
            let mut cmd = host.command(&demo.exe, setpriv.as_deref());
            cmd.arg("agent")
                .arg("--config")
                .arg(host.dir.join("muster.toml"))
                .args(["--node-name", &host.name])
                .arg("--data-dir")
                .arg(host.dir.join("data"))
                .arg("--socket")
                .arg(host.socket())
                .args(["--listen", &format!("{}:{AGENT_PORT}", host.ip)])
                .args(["--cluster", &demo.cluster])
                .arg("--microk8s")
                .arg(host.microk8s())
                .args(["--log-level", "info"])
                .env("MUSTER_SIM_STATE", host.sim_state())
                .env_remove("MUSTER_SOCKET");
            let guard = demo.spawn(host, "agent", cmd)?;
            demo.agents.push(guard);
        }
        Ok(demo)
    }

    /// Creates the hosts of `plan.mode`: the namespace lab, or the private network, or a
    /// free loopback block; and the directory that holds their state.
    fn create_hosts(
        &mut self,
        plan: &Plan,
        tag: &str,
        note: &mut dyn FnMut(&str),
    ) -> Result<(), SetupError> {
        match plan.mode {
            Mode::Netns => {
                note(&format!(
                    "creating {} network namespaces on a private bridge",
                    plan.nodes
                ));
                // microk8s (and so the agent) refuses a machine without a default route.
                let lab = Lab::builder()
                    .hosts(plan.nodes)
                    .ipv6(false)
                    .default_route(true)
                    .build()?;
                self.hosts = lab
                    .hosts()
                    .iter()
                    .map(|h| DemoHost {
                        name: h.name().to_owned(),
                        ip: h.ip(),
                        dir: h.dir().to_owned(),
                        netns: Some(h.netns().to_owned()),
                    })
                    .collect();
                self.lab = Some(lab);
            }
            Mode::Userns | Mode::Loopback | Mode::Auto => {
                let block = if plan.mode == Mode::Userns {
                    note(&format!(
                        "one private network namespace: hosts on {USERNS_NET}.1-{} of {USERNS_IF}",
                        plan.nodes
                    ));
                    private_network(plan.nodes)?;
                    None
                } else {
                    let block = free_loopback_block()?;
                    note(&format!(
                        "using loopback addresses 127.0.{block}.1-{} (joins cannot complete on \
                         loopback: muster never hands out loopback join URLs)",
                        plan.nodes
                    ));
                    Some(block)
                };
                let tmp = tempfile::Builder::new()
                    .prefix(&format!("muster-demo-{tag}-"))
                    .tempdir()
                    .map_err(io("creating the demo directory"))?;
                self.hosts = (1..=plan.nodes)
                    .map(|i| DemoHost {
                        name: format!("h{i}"),
                        ip: host_ip(block, i),
                        dir: tmp.path().join(format!("h{i}")),
                        netns: None,
                    })
                    .collect();
                self.tmp = Some(tmp);
            }
        }
        Ok(())
    }

    fn spawn(&self, host: &DemoHost, what: &str, cmd: Command) -> Result<ChildGuard, SetupError> {
        let name = format!("{}/{what}", host.name);
        let log = host.dir.join(format!("{what}.log"));
        let guard = match (&self.lab, &host.netns) {
            // Through the lab, so that the guard returns once the child is inside.
            (Some(lab), Some(_)) => match lab.hosts().iter().find(|h| h.name() == host.name) {
                Some(h) => h.spawn_command(what, cmd)?,
                None => ChildGuard::spawn(name, cmd, Some(&log))?,
            },
            _ => ChildGuard::spawn(name, cmd, Some(&log))?,
        };
        Ok(guard)
    }

    /// Waits until every host's simulator answers, asking the simulator itself
    /// (`microk8s-sim wait`) rather than knowing where it keeps its socket.
    fn wait_sims(&mut self, sim_exe: &Path, stop: &CancellationToken) -> Result<(), SetupError> {
        let deadline = Instant::now() + SIM_START;
        for (host, sim) in self.hosts.iter().zip(self.sims.iter_mut()) {
            loop {
                let mut probe = Command::new(sim_exe);
                probe
                    .arg("wait")
                    .arg("--state-dir")
                    .arg(host.sim_state())
                    .args(["--timeout-ms", "200"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                if probe.status().is_ok_and(|s| s.success()) {
                    break;
                }
                if stop.is_cancelled() {
                    return Err(SetupError::Interrupted);
                }
                if !sim.is_running()? || Instant::now() >= deadline {
                    return Err(SetupError::Sim {
                        host: host.name.clone(),
                        detail: sim.log_tail(10),
                    });
                }
            }
        }
        Ok(())
    }

    /// The hosts, `h1` first.
    pub fn hosts(&self) -> &[DemoHost] {
        &self.hosts
    }

    /// The cluster name the agents share (`demo-<pid>`), so that concurrent demos never mesh.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Namespaces or loopback.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The `muster` executable everything runs.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The directory holding every host's directory.
    pub fn dir(&self) -> Option<&Path> {
        match (&self.lab, &self.tmp) {
            (Some(lab), _) => Some(lab.dir()),
            (None, Some(tmp)) => Some(tmp.path()),
            (None, None) => None,
        }
    }

    /// Agents that have exited, with the end of their logs: a crashed agent explains a
    /// cluster that does not form.
    pub fn exited_agents(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (host, agent) in self.hosts.iter().zip(self.agents.iter_mut()) {
            if let Ok(Some(status)) = agent.try_wait() {
                out.push((
                    host.name.clone(),
                    format!("{status}\n{}", agent.log_tail(5)),
                ));
            }
        }
        out
    }

    /// Stops every agent and simulator: SIGTERM to all, up to 5 s for all of them to exit,
    /// then SIGKILL. Dropping the cluster does this too.
    pub fn stop(&mut self) {
        let deadline = Instant::now() + STOP_GRACE;
        for child in self.agents.iter_mut().chain(self.sims.iter_mut()) {
            // An error means it has exited already.
            let _ = child.signal(Signal::Term);
        }
        for child in self.agents.iter_mut().chain(self.sims.iter_mut()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if !matches!(child.wait_timeout(left), Ok(Some(_))) {
                let _ = child.kill();
            }
        }
    }
}

impl Drop for DemoCluster {
    fn drop(&mut self) {
        self.stop();
        // The lab and the directory go with the fields.
    }
}

/// Creates a host's directories, its `microk8s` link (to `sim_exe`) and its agent config.
fn prepare(host: &DemoHost, sim_exe: &Path, mode: Mode) -> Result<(), SetupError> {
    let bin = host.dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(io(format!("creating {}", bin.display())))?;
    let data = host.dir.join("data");
    std::fs::create_dir_all(&data).map_err(io(format!("creating {}", data.display())))?;
    // The simulator makes the `microk8s` link and the file that tells it its host: step one
    // of the recipe (see the module doc).
    run_ok(
        Command::new(sim_exe)
            .arg("link")
            .arg("--dir")
            .arg(&bin)
            .arg("--state-dir")
            .arg(host.sim_state()),
    )?;
    let interface = match mode {
        Mode::Netns => "eth0",
        Mode::Userns => USERNS_IF,
        Mode::Loopback | Mode::Auto => "lo",
    };
    let config = host.dir.join("muster.toml");
    let mut file =
        std::fs::File::create(&config).map_err(io(format!("writing {}", config.display())))?;
    writeln!(
        file,
        "# Written by `muster demo`: mDNS only on the demo's own network.\n\
         interfaces = [\"{interface}\"]\nsocket_group = \"\"\nshutdown_timeout = \"3s\""
    )
    .map_err(io(format!("writing {}", config.display())))?;
    Ok(())
}

/// The interface of the private network in user-namespace mode (its peer is `muster1`).
pub const USERNS_IF: &str = "muster0";

/// The /24 of the private network in user-namespace mode.
const USERNS_NET: &str = "198.18.0";

/// Host `i`'s address: `127.0.B.i` on loopback block `B`, else `198.18.0.i`.
fn host_ip(loopback_block: Option<u8>, i: usize) -> Ipv4Addr {
    let i = u8::try_from(i).unwrap_or(u8::MAX);
    match loopback_block {
        Some(b) => Ipv4Addr::new(127, 0, b, i),
        None => Ipv4Addr::new(198, 18, 0, i),
    }
}

/// Sets up the private network of user-namespace mode in the current (fresh, private)
/// network namespace: a veth pair (a veth has carrier, so mDNS sees it up; multicast reaches
/// the other hosts through local loopback of multicast), the hosts' addresses, a default
/// route (microk8s needs one) and the multicast route.
fn private_network(nodes: usize) -> Result<(), SetupError> {
    let ip = |args: &[&str]| run_ok(Command::new("ip").args(args)).map(drop);
    ip(&["link", "set", "lo", "up"])?;
    ip(&[
        "link", "add", USERNS_IF, "type", "veth", "peer", "name", "muster1",
    ])?;
    for i in 1..=nodes {
        let cidr = format!("{}/24", host_ip(None, i));
        ip(&["addr", "add", &cidr, "dev", USERNS_IF])?;
    }
    ip(&["link", "set", "muster1", "up"])?;
    ip(&["link", "set", USERNS_IF, "up"])?;
    let gateway = format!("{USERNS_NET}.254");
    ip(&["route", "add", "default", "via", &gateway, "dev", USERNS_IF])?;
    ip(&["route", "add", "224.0.0.0/4", "dev", USERNS_IF])?;
    Ok(())
}

/// A block `B` of 127.0.B.0/24 whose first address has the agent's and the simulator's ports
/// free; starts from a block derived from the pid so that concurrent demos spread out.
fn free_loopback_block() -> Result<u8, SetupError> {
    const FIRST: u32 = 100;
    const COUNT: u32 = 150;
    let start = std::process::id() % COUNT;
    (0..COUNT)
        .map(|k| u8::try_from(FIRST + (start + k) % COUNT).unwrap_or(u8::MAX))
        .find(|&b| {
            [AGENT_PORT, 25000, 16443]
                .iter()
                .all(|&port| TcpListener::bind((Ipv4Addr::new(127, 0, b, 1), port)).is_ok())
        })
        .ok_or(SetupError::NoLoopbackBlock)
}

/// `program` on PATH, if it is there.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
