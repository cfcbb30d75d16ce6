//! Simulated machines for formation tests and benchmarks: on a lab host, the microk8s
//! simulator's daemon (`microk8s-sim serve`) plus a real `muster agent` whose `microk8s` is a
//! link to the simulator bound to that host's state.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::agent::{Agent, AgentOptions, sim_bin};
use crate::error::{HarnessError, Result};
use crate::netns::Host;
use crate::process::ChildGuard;

/// One simulated machine: its microk8s daemon and its agent.
#[derive(Debug)]
pub struct SimNode {
    /// The agent.
    pub agent: Agent,
    /// The microk8s daemon.
    pub sim: ChildGuard,
    /// The `microk8s` command of this machine.
    pub microk8s: PathBuf,
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
}

impl Host {
    /// Starts the simulator daemon of this host (with a default route, which microk8s needs
    /// and lab hosts lack) and returns the `microk8s` link and the daemon's guard.
    pub fn start_sim(&self, name: &str, env: &[(String, String)]) -> Result<(PathBuf, ChildGuard)> {
        self.run("ip", &["route", "replace", "default", "dev", "eth0"])?;
        let bin = sim_bin()?;
        let dir = self.dir().join("mk8s");
        let link_dir = dir.join("link");
        std::fs::create_dir_all(&link_dir)
            .map_err(|e| HarnessError::io(format!("creating {}", link_dir.display()), e))?;
        let state = self.sim_state();
        let out = Command::new(&bin)
            .args(["link", "--dir"])
            .arg(&link_dir)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .map_err(|e| HarnessError::io("running microk8s-sim link", e))?;
        if !out.status.success() {
            return Err(HarnessError::Invalid(format!(
                "microk8s-sim link failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let ip = self.ip().to_string();
        let mut cmd = self.command(&bin);
        cmd.args(["serve", "--state-dir"]).arg(&state).args([
            "--hostname",
            name,
            "--ip",
            &ip,
            "--bind",
            &ip,
        ]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let sim = self.spawn_command("sim", cmd)?;
        Ok((link_dir.join("microk8s"), sim))
    }

    /// Starts a simulated machine: microk8s daemon, then the agent driving it.
    pub fn start_sim_node(&self, o: &SimNodeOptions) -> Result<SimNode> {
        let (microk8s, sim) = self.start_sim(&self.sim_name(o), &o.sim_env)?;
        let agent = self.start_sim_agent(o, &microk8s)?;
        Ok(SimNode {
            agent,
            sim,
            microk8s,
        })
    }

    /// The hostname a simulated machine of this host gets.
    pub fn sim_name(&self, o: &SimNodeOptions) -> String {
        o.name.clone().unwrap_or_else(|| self.name().to_owned())
    }

    /// Starts the agent of a simulated machine whose simulator already runs (`microk8s` is
    /// the link [`Host::start_sim`] returned).
    pub fn start_sim_agent(&self, o: &SimNodeOptions, microk8s: &Path) -> Result<Agent> {
        let mut options = AgentOptions::new(&o.cluster);
        options.node_name = Some(self.sim_name(o));
        options.microk8s = Some(microk8s.to_path_buf());
        options.log_level = Some(o.log_level.clone());
        options.config_extra = format!("socket_group = \"\"\n{}", o.config);
        self.start_agent(&options)
    }

    /// The state directory of this host's simulator.
    fn sim_state(&self) -> PathBuf {
        self.dir().join("mk8s").join("state")
    }

    /// Waits until this host's simulator (started by [`Host::start_sim`]) answers, asking the
    /// simulator itself (`microk8s-sim wait`).
    pub fn wait_sim(&self, timeout: Duration) -> Result<()> {
        let out = Command::new(sim_bin()?)
            .arg("wait")
            .arg("--state-dir")
            .arg(self.sim_state())
            .args(["--timeout-ms", &timeout.as_millis().to_string()])
            .output()
            .map_err(|e| HarnessError::io("running microk8s-sim wait", e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(HarnessError::Invalid(format!(
                "the simulator of {} did not answer: {}",
                self.name(),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}
