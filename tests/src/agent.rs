//! The real `muster agent` on lab hosts, and the `muster` CLI that queries it.
//!
//! [`muster_bin`] finds the built binary; [`AgentHost::start_agent`] starts it inside a lab
//! [`Host`] with the host's own data directory, unix socket and generated config (mDNS limited
//! to `eth0`), listening on `<host ip>:7440`; [`Agent::members`] runs `muster members --json`
//! against its socket and parses the answer. The data directory and socket live in the host's directory,
//! so an agent restarted on the same host finds its earlier state. What the agent does with
//! its flags is the agent's business; this module only fixes how tests call it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::Duration;

use serde::Deserialize;

use muster_lab::process::{run, run_ok};
use muster_lab::{ChildGuard, Host, LabError, Result, Signal, wait_until};

/// The port agents listen on for gRPC.
pub const AGENT_PORT: u16 = 7440;

/// Environment variable naming the `muster` binary to test, overriding the build directory.
pub const MUSTER_BIN_ENV: &str = "MUSTER_BIN";

/// The error for a `muster` binary that is not where the harness looked (`tried`).
pub fn binary_missing(tried: &str) -> LabError {
    LabError::Invalid(format!(
        "the muster binary was not found (looked at {tried}); run `cargo build -p muster` first, \
         or set MUSTER_BIN to its path"
    ))
}

/// Where the `muster` binary is: `$MUSTER_BIN`, else `muster` beside the test executable's
/// build directory (`target/<profile>/`), else `<workspace>/target/debug/muster`.
///
/// Fails with a message that says to run `cargo build -p muster` when none exists.
pub fn muster_bin() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(MUSTER_BIN_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(binary_missing(&format!(
                "{} (from {MUSTER_BIN_ENV})",
                path.display()
            )))
        };
    }
    let mut candidates = Vec::new();
    // Test executables live in target/<profile>/deps/; binaries one level up.
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent)
    {
        candidates.push(profile_dir.join("muster"));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    candidates.push(workspace.join("target/debug/muster"));
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .ok_or_else(|| {
            binary_missing(
                &candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
}

/// How to start an agent; [`AgentOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// `--cluster`: the cluster name agents must share to see each other.
    pub cluster: String,
    /// `--node-name`; the host's name (`hN`) when `None`.
    pub node_name: Option<String>,
    /// Port of `--listen <host ip>:<port>`.
    pub port: u16,
    /// `interfaces` in the generated config: where mDNS may speak.
    pub interfaces: Vec<String>,
    /// TOML appended to the generated config.
    pub config_extra: String,
    /// The whole config file instead of the generated one.
    pub config_override: Option<String>,
    /// `--log-level`, if set.
    pub log_level: Option<String>,
    /// `--microk8s`: path of the microk8s CLI (or a fake of it), if set.
    pub microk8s: Option<PathBuf>,
    /// Further arguments after the ones above.
    pub extra_args: Vec<String>,
    /// The binary to run (agent and CLI) instead of [`muster_bin`]: an older release, or a
    /// fake in the harness's own tests.
    pub binary: Option<PathBuf>,
}

impl AgentOptions {
    /// Defaults: cluster `cluster`, node name = host name, port 7440, mDNS on `eth0` only,
    /// log level `debug`.
    pub fn new(cluster: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            node_name: None,
            port: AGENT_PORT,
            interfaces: vec!["eth0".to_owned()],
            config_extra: String::new(),
            config_override: None,
            log_level: Some("debug".to_owned()),
            microk8s: None,
            extra_args: Vec::new(),
            binary: None,
        }
    }

    /// The config file these options produce.
    pub fn config_toml(&self) -> String {
        if let Some(config) = &self.config_override {
            return config.clone();
        }
        let interfaces: Vec<String> = self.interfaces.iter().map(|i| format!("{:?}", i)).collect();
        format!(
            "# Written by the muster test harness.\ninterfaces = [{}]\n{}",
            interfaces.join(", "),
            self.config_extra
        )
    }
}

/// State of a member as `muster members --json` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Answers probes.
    Alive,
    /// Missed probes; may still refute.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left on purpose.
    Left,
    /// A status this harness does not know yet.
    #[serde(other)]
    Unknown,
}

/// One entry of `muster members --json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Member {
    /// Node name.
    pub name: String,
    /// Gossip address (`ip:port`).
    pub addr: String,
    /// Membership state.
    pub status: MemberStatus,
    /// SWIM incarnation number.
    pub incarnation: u64,
    /// Every other field, unparsed.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct MembersReply {
    members: Vec<Member>,
}

/// Parses the output of `muster members --json`.
pub fn parse_members(json: &str) -> Result<Vec<Member>> {
    serde_json::from_str::<MembersReply>(json)
        .map(|reply| reply.members)
        .map_err(|e| LabError::Parse {
            what: "`muster members --json` output".to_owned(),
            detail: format!("{e}; output was: {}", json.trim()),
        })
}

/// A running `muster agent` on a lab host. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Agent {
    host: String,
    node_name: String,
    listen: SocketAddrV4,
    socket: PathBuf,
    data_dir: PathBuf,
    config: PathBuf,
    bin: PathBuf,
    child: ChildGuard,
}

/// Starting the real agent on a lab host: `host.start_agent(&options)`.
///
/// An extension of [`muster_lab::Host`], which knows namespaces but not what runs in them;
/// bring it into scope with `use muster_tests::AgentHost`.
pub trait AgentHost {
    /// Starts `muster agent` inside this host with `options`. Its data directory is
    /// `<host dir>/muster-data`, its socket `<host dir>/muster.sock`, its config
    /// `<host dir>/muster.toml`, its output `<host dir>/muster-agent.log`. Returns at once;
    /// see [`Agent::wait_ready`].
    fn start_agent(&self, options: &AgentOptions) -> Result<Agent>;
}

impl AgentHost for Host {
    fn start_agent(&self, options: &AgentOptions) -> Result<Agent> {
        let bin = match &options.binary {
            Some(bin) => bin.clone(),
            None => muster_bin()?,
        };
        let data_dir = self.dir().join("muster-data");
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| LabError::io(format!("creating {}", data_dir.display()), e))?;
        let config = self.dir().join("muster.toml");
        std::fs::write(&config, options.config_toml())
            .map_err(|e| LabError::io(format!("writing {}", config.display()), e))?;
        let socket = self.dir().join("muster.sock");
        let listen = SocketAddrV4::new(self.ip(), options.port);
        let node_name = options
            .node_name
            .clone()
            .unwrap_or_else(|| self.name().to_owned());

        let mut cmd = self.command(&bin);
        cmd.arg("agent")
            .arg("--config")
            .arg(&config)
            .args(["--node-name", &node_name])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--socket")
            .arg(&socket)
            .args(["--listen", &listen.to_string()])
            .args(["--cluster", &options.cluster]);
        if let Some(level) = &options.log_level {
            cmd.args(["--log-level", level]);
        }
        if let Some(microk8s) = &options.microk8s {
            cmd.arg("--microk8s").arg(microk8s);
        }
        cmd.args(&options.extra_args)
            // Under a systemd-run test runner the agent would otherwise log to the journal and
            // notify the runner's unit.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .env("RUST_BACKTRACE", "1");
        let child = self.spawn_command("muster-agent", cmd)?;
        Ok(Agent {
            host: self.name().to_owned(),
            node_name,
            listen,
            socket,
            data_dir,
            config,
            bin,
            child,
        })
    }
}

impl Agent {
    /// The host it runs on (`hN`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Its `--node-name`.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Its `--listen` address.
    pub fn listen(&self) -> SocketAddrV4 {
        self.listen
    }

    /// Its address.
    pub fn ip(&self) -> Ipv4Addr {
        *self.listen.ip()
    }

    /// Its `--socket` path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Its `--config` file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The process guard, for anything not wrapped here.
    pub fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// Runs `muster <args…> --socket <its socket>` (from the harness's namespace: the socket
    /// is a file) and returns the output whatever the exit status.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        run(Command::new(&self.bin)
            .args(args)
            .arg("--socket")
            .arg(&self.socket))
    }

    /// Its member list (`muster members --json`).
    pub fn members(&self) -> Result<Vec<Member>> {
        let out = run_ok(
            Command::new(&self.bin)
                .args(["members", "--json", "--socket"])
                .arg(&self.socket),
        )?;
        parse_members(&String::from_utf8_lossy(&out.stdout))
    }

    /// Names of the members it sees with `status`, sorted.
    pub fn members_with(&self, status: MemberStatus) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .members()?
            .into_iter()
            .filter(|m| m.status == status)
            .map(|m| m.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Waits until its API answers `muster members --json`. Fails early, quoting its log,
    /// if the agent exits meanwhile.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let what = format!(
            "agent on {} to answer on {}",
            self.host,
            self.socket.display()
        );
        let result = wait_until(&what, timeout, Duration::from_millis(100), || {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(Err(status));
            }
            self.members().map(|_| Ok(())).map_err(|e| e.to_string())
        })?;
        result.map_err(|status| self.exited_error(status))
    }

    fn exited_error(&self, status: ExitStatus) -> LabError {
        LabError::CommandFailed {
            command: self.child.command_line().to_owned(),
            status: format!("exited early: {status}"),
            stderr: self.child.log_tail(40),
        }
    }

    /// Sends `signal` to the agent.
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        self.child.signal(signal)
    }

    /// SIGTERM, then waits up to `grace` for a clean exit (SIGKILL after). Returns the exit
    /// status and whether it exited within `grace`.
    pub fn stop(&mut self, grace: Duration) -> Result<(ExitStatus, bool)> {
        self.child.stop(grace)
    }

    /// SIGKILL: a crash without goodbye.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        self.child.kill()
    }

    /// Its resident set size in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        self.child.rss_kib()
    }

    /// Everything it has logged (across restarts on this host).
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// Its last `lines` log lines, prefixed with the host name; for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.child.log_tail(lines)
    }
}

/// Waits until every agent in `agents` reports exactly the node names `expected` as alive.
/// The timeout error shows each agent's alive list as last seen.
pub fn wait_all_alive(agents: &[&Agent], expected: &[&str], timeout: Duration) -> Result<()> {
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    let what = format!("every agent to see exactly {want:?} alive");
    wait_until(&what, timeout, Duration::from_millis(250), || {
        let views: Vec<(String, std::result::Result<Vec<String>, String>)> = agents
            .iter()
            .map(|a| {
                let view = a
                    .members_with(MemberStatus::Alive)
                    .map_err(|e| e.to_string());
                (a.host().to_owned(), view)
            })
            .collect();
        if views
            .iter()
            .all(|(_, v)| v.as_ref().is_ok_and(|v| *v == want))
        {
            Ok(())
        } else {
            Err(views)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_json_is_parsed_with_unknown_fields_kept() {
        let json = r#"{"members":[
            {"name":"h1","addr":"198.18.0.1:7440","status":"alive","incarnation":3,"role":"entry"},
            {"name":"h2","addr":"198.18.0.2:7440","status":"suspect","incarnation":0},
            {"name":"h3","addr":"198.18.0.3:7440","status":"rebooting","incarnation":1}
        ]}"#;
        let members = parse_members(json).expect("valid");
        assert_eq!(members.len(), 3);
        assert_eq!(members[0].status, MemberStatus::Alive);
        assert_eq!(members[0].incarnation, 3);
        assert_eq!(members[0].extra["role"], "entry");
        assert_eq!(members[1].status, MemberStatus::Suspect);
        assert_eq!(members[2].status, MemberStatus::Unknown);
    }

    #[test]
    fn bad_members_json_error_quotes_the_output() {
        let err = parse_members("error: no agent").expect_err("not json");
        assert!(err.to_string().contains("no agent"), "{err}");
    }

    #[test]
    fn generated_config_limits_mdns_to_eth0() {
        let mut options = AgentOptions::new("lab");
        assert!(options.config_toml().contains("interfaces = [\"eth0\"]"));
        options.config_extra = "secret = \"x\"\n".to_owned();
        assert!(options.config_toml().ends_with("secret = \"x\"\n"));
        options.config_override = Some("cluster = \"c\"\n".to_owned());
        assert_eq!(options.config_toml(), "cluster = \"c\"\n");
    }

    #[test]
    fn missing_binary_error_says_how_to_build_it() {
        let err = binary_missing("/x/target/debug/muster");
        assert!(err.to_string().contains("cargo build -p muster"));
    }
}
