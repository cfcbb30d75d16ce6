//! `muster demo --nodes N`: an N-node MicroK8s cluster on this one machine, formed by real
//! `muster agent`s driving the built-in microk8s simulator.
//!
//! Each simulated host runs `microk8s-sim serve` (its microk8s daemon) and `muster agent`
//! (the real agent, its `--microk8s` pointing at a simulator link). Nothing is ever sent on
//! the machine's real interfaces; where the hosts live depends on [`Mode`]:
//! - as root, each host is a network namespace on a private bridge (198.18.0.0/15,
//!   [`muster_lab`]);
//! - otherwise the demo re-executes itself inside `unshare --user --map-root-user --net`: one
//!   private network namespace where the hosts are processes on `198.18.0.i`, all on one veth
//!   (`muster0`) with mDNS limited to it;
//! - when the kernel refuses unprivileged user namespaces, the hosts are processes on
//!   loopback addresses `127.0.B.i` with mDNS on `lo`. Agents discover each other and elect
//!   there, but joins cannot complete: muster never hands out a loopback join URL.
//!
//! # Pieces
//! - this module: the flags ([`DemoArgs`]) and their validation;
//! - [`progress`]: pure: from the agents' status answers to the progress line and the verdict;
//! - [`hosts`]: starting and cleaning up the hosts, simulators and agents;
//! - [`driver`]: the run: signals, polling, the progress display, the end;
//! - [`report`]: the `--json` document and the final `muster status` / `muster members`;
//! - [`userns`]: re-running the demo inside a private user namespace when not root.

pub mod driver;
pub mod hosts;
pub mod progress;
pub mod report;
pub mod userns;

use std::time::Duration;

use clap::{Args, ValueEnum};

/// The largest demo: every node runs two processes on a machine that may have 2 cores.
pub const MAX_NODES: u16 = 50;

/// Flags of `muster demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of simulated machines (1 to 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_NODES)))]
    pub nodes: u16,
    /// Print only one JSON document at the end (the final status of every node).
    #[arg(long)]
    pub json: bool,
    /// The simulator's join latency profile.
    #[arg(long, value_enum, default_value_t = Latency::Fast)]
    pub latency: Latency,
    /// Keep the cluster running until Ctrl-C and print how to reach the agents.
    #[arg(long)]
    pub keep: bool,
    /// Give up when the cluster has not formed after this long [default: depends on
    /// --latency and --nodes; 180s for 3 nodes at `fast`].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Where the hosts live: namespaces (root), one private user+network namespace (anyone,
    /// the default without root), or loopback (fallback; joins cannot complete there).
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
}

/// The simulator's join latency (`MUSTER_SIM_JOIN_LATENCY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Latency {
    /// Joins complete at once.
    Zero,
    /// Control planes join in 3 s, workers in 2 s.
    Fast,
    /// As measured on real machines: 20-60 s per control plane, 10-30 s per worker.
    Realistic,
}

impl Latency {
    /// The value of `MUSTER_SIM_JOIN_LATENCY`.
    pub fn env_value(self) -> &'static str {
        match self {
            Latency::Zero => "zero",
            Latency::Fast => "fast",
            Latency::Realistic => "realistic",
        }
    }

    /// The time budget per node: the slowest join of the profile and some slack for
    /// discovery and the agents' own waiting.
    fn per_node(self) -> Duration {
        match self {
            Latency::Zero => Duration::from_secs(2),
            Latency::Fast => Duration::from_secs(10),
            Latency::Realistic => Duration::from_secs(90),
        }
    }
}

/// Where the demo's hosts live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Namespaces when running as root, a user namespace otherwise.
    Auto,
    /// One network namespace per host on a private bridge (needs root).
    Netns,
    /// One private user and network namespace (`unshare --user --map-root-user --net`)
    /// holding every host on `198.18.0.i` of one veth; no privileges needed.
    Userns,
    /// Processes on loopback addresses 127.0.B.i, mDNS on `lo` (no privileges needed); joins
    /// cannot complete there, since muster never hands out loopback join URLs.
    Loopback,
}

impl Mode {
    /// The concrete mode for a process whose effective uid is `euid`.
    pub fn resolve(self, euid: Option<u32>) -> Mode {
        match self {
            Mode::Auto if euid == Some(0) => Mode::Netns,
            Mode::Auto => Mode::Userns,
            other => other,
        }
    }

    /// Its name in messages and in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Netns => "netns",
            Mode::Userns => "userns",
            Mode::Loopback => "loopback",
        }
    }
}

/// Base of the default timeout, for starting the processes and electing.
const TIMEOUT_BASE: Duration = Duration::from_secs(150);

impl DemoArgs {
    /// `--timeout`, or the default: 150 s plus a per-node budget of the latency profile
    /// (2 s `zero`, 10 s `fast`, 90 s `realistic`).
    pub fn effective_timeout(&self) -> Duration {
        self.timeout
            .unwrap_or_else(|| TIMEOUT_BASE + self.latency.per_node() * u32::from(self.nodes))
    }

    /// The flags that reproduce these arguments with another `--mode` (for the re-execution
    /// inside a user namespace).
    pub fn to_args(&self, mode: Mode) -> Vec<String> {
        let mut out = vec!["--nodes".to_owned(), self.nodes.to_string()];
        if self.json {
            out.push("--json".to_owned());
        }
        if self.keep {
            out.push("--keep".to_owned());
        }
        out.push("--latency".to_owned());
        out.push(self.latency.env_value().to_owned());
        out.push("--timeout".to_owned());
        out.push(format!("{}ms", self.effective_timeout().as_millis()));
        out.push("--mode".to_owned());
        out.push(mode.as_str().to_owned());
        out
    }
}

/// The effective uid of this process, from `/proc/self/status` (no `unsafe` for geteuid).
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<DemoArgs, String> {
        let mut argv = vec!["muster", "demo"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: Command::Demo(a),
            }) => Ok(a),
            Ok(other) => Err(format!("not demo: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn defaults() {
        let a = parse(&["--nodes", "3"]).expect("valid");
        assert_eq!(a.nodes, 3);
        assert!(!a.json && !a.keep);
        assert_eq!(a.latency, Latency::Fast);
        assert_eq!(a.mode, Mode::Auto);
        assert_eq!(a.effective_timeout(), Duration::from_secs(180));
    }

    #[test]
    fn node_count_is_bounded() {
        for bad in ["0", "51", "-1", "many"] {
            let err = parse(&["--nodes", bad]).expect_err(bad);
            assert!(err.contains("--nodes"), "{bad}: {err}");
        }
        assert!(parse(&[]).expect_err("required").contains("--nodes"));
        assert_eq!(parse(&["--nodes", "1"]).expect("1").nodes, 1);
        assert_eq!(parse(&["--nodes", "50"]).expect("50").nodes, 50);
    }

    #[test]
    fn flags_parse() {
        let a = parse(&[
            "--nodes",
            "5",
            "--json",
            "--latency",
            "realistic",
            "--keep",
            "--timeout",
            "20s",
            "--mode",
            "loopback",
        ])
        .expect("valid");
        assert!(a.json && a.keep);
        assert_eq!(a.latency, Latency::Realistic);
        assert_eq!(a.mode, Mode::Loopback);
        assert_eq!(a.effective_timeout(), Duration::from_secs(20));
        let err = parse(&["--nodes", "3", "--latency", "slow"]).expect_err("bad latency");
        assert!(err.contains("--latency"), "{err}");
        let err = parse(&["--nodes", "3", "--timeout", "soon"]).expect_err("bad timeout");
        assert!(err.contains("--timeout"), "{err}");
    }

    #[test]
    fn arguments_round_trip_with_another_mode() {
        let a = parse(&["--nodes", "4", "--json", "--keep", "--latency", "zero"]).expect("valid");
        let again: Vec<String> = a.to_args(Mode::Userns);
        let refs: Vec<&str> = again.iter().map(String::as_str).collect();
        let b = parse(&refs).expect("re-parses");
        assert_eq!((b.nodes, b.json, b.keep), (4, true, true));
        assert_eq!(b.latency, Latency::Zero);
        assert_eq!(b.mode, Mode::Userns);
        assert_eq!(b.effective_timeout(), a.effective_timeout());
    }

    #[test]
    fn default_timeout_grows_with_nodes_and_latency() {
        let mut a = parse(&["--nodes", "5", "--latency", "realistic"]).expect("valid");
        assert_eq!(a.effective_timeout(), Duration::from_secs(150 + 5 * 90));
        a.latency = Latency::Zero;
        assert_eq!(a.effective_timeout(), Duration::from_secs(160));
    }

    #[test]
    fn auto_mode_follows_the_uid() {
        assert_eq!(Mode::Auto.resolve(Some(0)), Mode::Netns);
        assert_eq!(Mode::Auto.resolve(Some(1000)), Mode::Userns);
        assert_eq!(Mode::Auto.resolve(None), Mode::Userns);
        assert_eq!(Mode::Loopback.resolve(Some(0)), Mode::Loopback);
        assert_eq!(Mode::Netns.resolve(Some(1000)), Mode::Netns);
    }

    #[test]
    fn this_process_has_an_effective_uid() {
        assert!(effective_uid().is_some());
    }
}
