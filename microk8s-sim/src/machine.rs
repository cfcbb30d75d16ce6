//! One simulated machine, started from Rust the way any caller starts it: through the
//! `microk8s-sim` binary's own subcommands.
//!
//! The command line is the contract. A simulated machine is
//! 1. `microk8s-sim link --dir D --state-dir S`: the machine's `microk8s` (a symlink `D/microk8s`
//!    to the binary) and the `D/microk8s.sim-state` file that tells it its state directory, so
//!    that the link needs no environment, as a real `microk8s` needs none;
//! 2. `microk8s-sim serve --state-dir S --bind IP --hostname H --ip IP`: the host daemon,
//!    which initialises `S` on first start; run it wherever the machine's network is (inside a
//!    network namespace, on a loopback address);
//! 3. `microk8s-sim wait --state-dir S --timeout-ms N`: exits 0 once that daemon answers on its
//!    CLI socket, 1 (naming the socket) when it does not in time.
//!
//! [`Machine`] builds exactly these command lines for Rust callers (the multi-host harness,
//! the adapter contract test, the benchmarks, this crate's network tests), so that none of them
//! knows where the simulator keeps its socket or how its link finds its state. `muster demo`
//! spawns the same subcommands without this module: the agent must not link the simulator.
//!
//! Owns: the recipe (paths and arguments). Does not own: where the daemon runs (the caller
//! wraps [`Machine::serve_args`] in its own command, e.g. `ip netns exec`), its environment
//! (the knobs of the crate documentation) or the lifetime of its process.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::cli::STATE_FILE;

/// Why a subcommand of the recipe failed.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// The simulator binary could not be started.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// The subcommand ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
        /// Its stderr, trimmed: for `wait`, the message naming the socket that did not answer.
        stderr: String,
    },
}

/// One simulated machine: where its `microk8s` link and its state live, and who it is on the
/// network. Plain data; nothing runs until a method is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The `microk8s-sim` executable.
    pub exe: PathBuf,
    /// The directory that holds the machine's `microk8s` link and its state file.
    pub link_dir: PathBuf,
    /// The machine's state directory (`--state-dir`): its datastore, tokens and CLI socket.
    pub state_dir: PathBuf,
    /// Its hostname (`--hostname`); Kubernetes shows it lowercased as the node name.
    pub hostname: String,
    /// Its address: the daemon binds it (`--bind`) and announces it (`--ip`).
    pub ip: IpAddr,
}

impl Machine {
    /// A machine whose files live under `dir`: the link in `dir/bin`, the state in
    /// `dir/state`.
    pub fn in_dir(
        exe: impl Into<PathBuf>,
        dir: &Path,
        hostname: impl Into<String>,
        ip: IpAddr,
    ) -> Self {
        Self {
            exe: exe.into(),
            link_dir: dir.join("bin"),
            state_dir: dir.join("state"),
            hostname: hostname.into(),
            ip,
        }
    }

    /// The machine's `microk8s` command (exists once [`Machine::link`] ran).
    pub fn microk8s(&self) -> PathBuf {
        self.link_dir.join("microk8s")
    }

    /// The file next to the link that names the state directory.
    pub fn state_file(&self) -> PathBuf {
        self.link_dir.join(STATE_FILE)
    }

    /// `microk8s-sim link --dir D --state-dir S`.
    pub fn link_command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("link")
            .arg("--dir")
            .arg(&self.link_dir)
            .arg("--state-dir")
            .arg(&self.state_dir);
        cmd
    }

    /// Runs [`Machine::link_command`] and returns the `microk8s` link it made. The link
    /// directory is created if needed; an earlier link there is replaced.
    pub fn link(&self) -> Result<PathBuf, MachineError> {
        run(self.link_command())?;
        Ok(self.microk8s())
    }

    /// The arguments after the executable of `microk8s-sim serve`:
    /// `serve --state-dir S --bind IP --hostname H --ip IP`. For callers that run the daemon
    /// through a wrapper (`ip netns exec NS EXE ARGS…`).
    pub fn serve_args(&self) -> Vec<OsString> {
        let ip = self.ip.to_string();
        vec![
            "serve".into(),
            "--state-dir".into(),
            self.state_dir.clone().into(),
            "--bind".into(),
            ip.clone().into(),
            "--hostname".into(),
            self.hostname.clone().into(),
            "--ip".into(),
            ip.into(),
        ]
    }

    /// `microk8s-sim serve …` run directly (in the caller's network namespace); add the
    /// environment knobs before spawning it.
    pub fn serve_command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(self.serve_args());
        cmd
    }

    /// `microk8s-sim wait --state-dir S --timeout-ms N`.
    pub fn wait_command(&self, timeout: Duration) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("wait")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--timeout-ms")
            .arg(timeout.as_millis().to_string());
        cmd
    }

    /// Runs [`Machine::wait_command`]: `Ok` once the daemon answers, else
    /// [`MachineError::Failed`] quoting the simulator's message (which names the socket).
    /// Works from any network namespace: the socket is a file.
    pub fn wait(&self, timeout: Duration) -> Result<(), MachineError> {
        run(self.wait_command(timeout)).map(drop)
    }
}

/// Runs `cmd` to completion with stdin closed; fails unless it exits 0.
fn run(mut cmd: Command) -> Result<Output, MachineError> {
    let command = describe(&cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| MachineError::Spawn {
            command: command.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(MachineError::Failed {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// The command line, for messages.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
