//! Simulated machines for formation tests and benchmarks: on a lab host, the microk8s
//! simulator's daemon plus a real `muster agent` whose `microk8s` is that machine's link.
//!
//! The machine itself is [`microk8s_sim::machine::Machine`], the simulator's own recipe (its
//! `link`, `serve` and `wait` subcommands); this module only places one on a lab [`Host`]: the
//! files in `<host dir>/mk8s`, the daemon inside the host's namespace, a default route first.
//! Owns [`sim_bin`] (where the simulator binary is), [`SimHost`] (the extension of
//! [`Host`]), [`SimDaemon`], [`SimNode`] and [`SimNodeOptions`]. What the agent then does
//! with the machine is the agent's business.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use microk8s_sim::machine::{Machine, MachineError};
use muster_lab::{ChildGuard, Host, LabError, Result};

use crate::agent::{Agent, AgentHost, AgentOptions, muster_bin};

/// Environment variable naming the `microk8s-sim` binary, overriding the one beside `muster`.
pub const SIM_BIN_ENV: &str = "MUSTER_SIM_BIN";

/// Where the microk8s simulator is: `$MUSTER_SIM_BIN`, else `microk8s-sim` beside the
/// [`muster_bin`] in use (cargo builds the binaries of the workspace into one directory).
pub fn sim_bin() -> Result<PathBuf> {
    let path = match std::env::var_os(SIM_BIN_ENV) {
        Some(path) => PathBuf::from(path),
        None => muster_bin()?.with_file_name("microk8s-sim"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(LabError::Invalid(format!(
            "the simulator binary was not found at {}; run `cargo build -p muster -p microk8s-sim` \
             (it builds `muster` and `microk8s-sim`), or set {SIM_BIN_ENV} to its path",
            path.display()
        )))
    }
}

/// A failed step of the simulator's recipe, as the lab's error (which already has the shapes:
/// a command that would not start, a command that failed with its stderr).
pub fn machine_error(err: MachineError) -> LabError {
    match err {
        MachineError::Spawn { command, source } => LabError::Spawn { command, source },
        MachineError::Failed {
            command,
            status,
            stderr,
        } => LabError::CommandFailed {
            command,
            status,
            stderr,
        },
    }
}

/// A running simulator daemon on a lab host: the machine it serves and its process, which is
/// killed (SIGKILL) when this drops.
#[derive(Debug)]
pub struct SimDaemon {
    /// The machine's recipe: its `microk8s` link, state directory, hostname and address.
    pub machine: Machine,
    /// The `microk8s-sim serve` process.
    pub child: ChildGuard,
}

impl SimDaemon {
    /// The machine's `microk8s` command.
    pub fn microk8s(&self) -> PathBuf {
        self.machine.microk8s()
    }

    /// Waits until the daemon answers, asking the simulator itself (`microk8s-sim wait`).
    /// A failure quotes the end of the daemon's log.
    pub fn wait(&self, timeout: Duration) -> Result<()> {
        self.machine
            .wait(timeout)
            .map_err(|err| LabError::CommandFailed {
                command: self.child.command_line().to_owned(),
                status: format!("did not answer: {}", machine_error(err)),
                stderr: self.child.log_tail(20),
            })
    }
}

/// One simulated machine: its microk8s daemon and its agent.
#[derive(Debug)]
pub struct SimNode {
    /// The agent.
    pub agent: Agent,
    /// The microk8s daemon.
    pub sim: SimDaemon,
}

impl SimNode {
    /// The `microk8s` command of this machine.
    pub fn microk8s(&self) -> PathBuf {
        self.sim.microk8s()
    }
}

/// How to start a [`SimNode`].
#[derive(Debug, Clone)]
pub struct SimNodeOptions {
    /// Mesh cluster name.
    pub cluster: String,
    /// Node (and microk8s host) name; the lab host's name when `None`.
    pub name: Option<String>,
    /// Environment of the simulator daemon (`MUSTER_SIM_JOIN_LATENCY`, ...).
    pub sim_env: Vec<(String, String)>,
    /// TOML appended to the agent's config.
    pub config: String,
    /// The agent's log level.
    pub log_level: String,
}

impl SimNodeOptions {
    /// Zero join latency, quick verification, info logs.
    pub fn new(cluster: &str) -> Self {
        SimNodeOptions {
            cluster: cluster.to_owned(),
            name: None,
            sim_env: vec![("MUSTER_SIM_JOIN_LATENCY".to_owned(), "zero".to_owned())],
            config: "[formation]\nverify_timeout = \"30s\"\n".to_owned(),
            log_level: "info".to_owned(),
        }
    }

    /// The hostname (and node name) a simulated machine on `host` gets.
    pub fn hostname_on(&self, host: &Host) -> String {
        self.name.clone().unwrap_or_else(|| host.name().to_owned())
    }
}

/// Simulated machines on a lab host: `host.start_sim_node(&options)`, or the daemon and the
/// agent one after the other (as the formation benchmark does, to start every agent at once).
///
/// An extension of [`muster_lab::Host`]; bring it into scope with `use muster_tests::SimHost`.
pub trait SimHost {
    /// The recipe of this host's simulated machine called `hostname`: [`sim_bin`], files in
    /// `<host dir>/mk8s`, the host's address.
    fn sim_machine(&self, hostname: &str) -> Result<Machine>;

    /// Links this host's machine and starts its daemon inside the host, with `env` (a default
    /// route first: microk8s needs one and lab hosts lack it). Returns at once; see
    /// [`SimDaemon::wait`].
    fn start_sim(&self, hostname: &str, env: &[(String, String)]) -> Result<SimDaemon>;

    /// Starts the agent of a simulated machine whose daemon `sim` already runs.
    fn start_sim_agent(&self, o: &SimNodeOptions, sim: &SimDaemon) -> Result<Agent>;

    /// Starts a simulated machine: microk8s daemon, then the agent driving it.
    fn start_sim_node(&self, o: &SimNodeOptions) -> Result<SimNode>;
}

impl SimHost for Host {
    fn sim_machine(&self, hostname: &str) -> Result<Machine> {
        Ok(Machine::in_dir(
            sim_bin()?,
            &self.dir().join("mk8s"),
            hostname,
            IpAddr::V4(self.ip()),
        ))
    }

    fn start_sim(&self, hostname: &str, env: &[(String, String)]) -> Result<SimDaemon> {
        self.run("ip", &["route", "replace", "default", "dev", "eth0"])?;
        let machine = self.sim_machine(hostname)?;
        machine.link().map_err(machine_error)?;
        let mut cmd = self.command(&machine.exe);
        cmd.args(machine.serve_args());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = self.spawn_command("sim", cmd)?;
        Ok(SimDaemon { machine, child })
    }

    fn start_sim_agent(&self, o: &SimNodeOptions, sim: &SimDaemon) -> Result<Agent> {
        let mut options = AgentOptions::new(&o.cluster);
        options.node_name = Some(sim.machine.hostname.clone());
        options.microk8s = Some(sim.microk8s());
        options.log_level = Some(o.log_level.clone());
        options.config_extra = format!("socket_group = \"\"\n{}", o.config);
        self.start_agent(&options)
    }

    fn start_sim_node(&self, o: &SimNodeOptions) -> Result<SimNode> {
        let sim = self.start_sim(&o.hostname_on(self), &o.sim_env)?;
        let agent = self.start_sim_agent(o, &sim)?;
        Ok(SimNode { agent, sim })
    }
}
