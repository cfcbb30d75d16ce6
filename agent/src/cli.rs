//! Command-line interface of the `muster` binary: argument definitions and the dispatch to
//! the daemon or the API client. Exit codes: 0 success, 1 failure, 2 usage error (clap),
//! 64 bad configuration (EX_USAGE, as sysexits.h and systemd expect).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::api::client::{self, Target};
use crate::config::{self, Config, LogLevel, Overrides};

/// Exit code for an unusable configuration.
pub const EXIT_CONFIG: u8 = 64;

/// muster: MicroK8s clusters that form themselves.
#[derive(Debug, Parser)]
#[command(name = "muster", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (what systemd starts).
    Agent(AgentArgs),
    /// Show this node and its view of the cluster.
    Status(ClientArgs),
    /// List every member of the mesh.
    Members(ClientArgs),
    /// Print the dask-kubernetes worker-spec.yml sized for this cluster.
    WorkerSpec(ClientArgs),
    /// Print the cluster's admin kubeconfig (local socket only).
    Kubeconfig(ClientArgs),
    /// Make the agent leave the cluster gracefully and stop.
    Leave(ClientArgs),
    /// Follow the agent's events as they happen.
    Events(ClientArgs),
    /// Form an N-node cluster on this machine with the built-in microk8s simulator.
    Demo(crate::demo::DemoArgs),
}

/// Flags of `muster agent`; each set flag overrides the config file.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Config file [default: /etc/muster/muster.toml, all defaults if absent].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Node name (default: the hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// State directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Local API socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// TCP address of the gRPC API.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Cluster name.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The microk8s executable.
    #[arg(long, value_name = "PATH")]
    pub microk8s: Option<PathBuf>,
    /// Log verbosity.
    #[arg(long, value_enum)]
    pub log_level: Option<LogLevel>,
}

/// How a client command reaches its agent.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The local agent's socket.
    #[arg(long, value_name = "PATH", env = "MUSTER_SOCKET", default_value = config::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// A remote agent's API, HOST:PORT (instead of the socket).
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// Machine-readable JSON output (status, members, events).
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the agent to connect and answer.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl ClientArgs {
    fn target(&self) -> Target {
        match &self.addr {
            Some(a) => Target::Addr(a.clone()),
            None => Target::Socket(self.socket.clone()),
        }
    }
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Agent(args) => run_agent(args),
        Command::Status(a) => run_client(client::Command::Status, &a),
        Command::Members(a) => run_client(client::Command::Members, &a),
        Command::WorkerSpec(a) => run_client(client::Command::WorkerSpec, &a),
        Command::Kubeconfig(a) => run_client(client::Command::Kubeconfig, &a),
        Command::Leave(a) => run_client(client::Command::Leave, &a),
        Command::Events(a) => run_client(client::Command::Events, &a),
        Command::Demo(a) => crate::demo::driver::run(a),
    }
}

/// One thread runs everything: the agent's work is a few messages a second, and a runtime with
/// a worker per CPU would give a 64-core machine 64 threads (and malloc arenas) for nothing.
/// Nothing in the agent blocks a task: microk8s runs as child processes, resources are probed
/// on the blocking pool, mDNS has its own thread.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("muster: cannot start the async runtime: {e}");
            None
        }
    }
}

fn run_agent(args: AgentArgs) -> ExitCode {
    let overrides = Overrides {
        node_name: args.node_name,
        data_dir: args.data_dir,
        socket: args.socket,
        listen: args.listen,
        cluster: args.cluster,
        microk8s: args.microk8s,
        log_level: args.log_level,
    };
    let loaded = match Config::load(args.config.as_deref(), &overrides) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("muster: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    crate::journal::init(loaded.config.log_level.into());
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(crate::daemon::run(loaded.config, loaded.origin)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("muster agent failed: {e}");
            eprintln!("muster: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_client(command: client::Command, args: &ClientArgs) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(client::run(
        command,
        &args.target(),
        args.json,
        args.timeout,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muster: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn agent_flags_parse() {
        let cli = Cli::try_parse_from([
            "muster",
            "agent",
            "--listen",
            "127.0.0.1:0",
            "--socket",
            "/tmp/s",
            "--cluster",
            "lab",
            "--log-level",
            "debug",
        ])
        .expect("parses");
        let Command::Agent(a) = cli.command else {
            panic!("not agent")
        };
        assert_eq!(a.listen, Some("127.0.0.1:0".parse().expect("addr")));
        assert_eq!(a.log_level, Some(LogLevel::Debug));
    }

    #[test]
    fn bad_listen_is_a_usage_error() {
        let err = Cli::try_parse_from(["muster", "agent", "--listen", "nowhere"]).expect_err("bad");
        assert!(err.to_string().contains("--listen"), "{err}");
    }
}
