//! The agent's configuration: one serde struct with documented defaults, loading from TOML,
//! command-line overrides, and validation whose errors name the file, the field and the problem.
//!
//! Nothing is bound or started before [`Config::validate`] has passed: a daemon that starts
//! with a half-valid config is worse than one that refuses to start (systemd shows the exit
//! code 64 and the journal the message).

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the packaged config lives; a missing file at this path means "all defaults".
pub const DEFAULT_CONFIG_PATH: &str = "/etc/muster/muster.toml";
/// Default TCP port of the gRPC API (agents and remote clients).
pub const DEFAULT_PORT: u16 = 7440;
/// Default path of the local API socket.
pub const DEFAULT_SOCKET: &str = "/run/muster/muster.sock";

/// Log verbosity, from quietest to loudest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Failures only.
    Error,
    /// Failures and conditions an operator should look at.
    Warn,
    /// Every state change (the default; what `journalctl -u muster` shows).
    Info,
    /// Protocol detail for troubleshooting.
    Debug,
    /// Every message.
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// The whole agent configuration (`/etc/muster/muster.toml`). Every field has a default, so
/// an empty file (or none at the default path) is a valid config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Cluster name. Agents only mesh with agents of the same name, so two labs on one LAN
    /// stay apart. A DNS label: lowercase letters, digits and `-`, at most 63 characters.
    /// Default `muster`.
    pub cluster: String,
    /// This node's name in the mesh and in Kubernetes. Default: the hostname, lowercased
    /// (microk8s names nodes after the lowercased hostname, so the two must agree).
    pub node_name: Option<String>,
    /// Where the agent keeps its state (node id, generated files). Default `/var/lib/muster`.
    pub data_dir: PathBuf,
    /// Path of the local API socket (mode 0660). Default `/run/muster/muster.sock`.
    pub socket: PathBuf,
    /// Group that owns the socket, so that its members may use the CLI without root.
    /// Empty: leave the group as created. A group that does not exist is skipped with a
    /// warning. Default `muster`.
    pub socket_group: String,
    /// TCP address of the gRPC API, for peers and remote clients. Port 0 picks a free port
    /// (tests). Default `0.0.0.0:7440`.
    pub listen: SocketAddr,
    /// The `microk8s` executable the agent drives. Default `/snap/bin/microk8s`.
    pub microk8s: PathBuf,
    /// Log verbosity: error, warn, info, debug or trace. Default `info`.
    pub log_level: LogLevel,
    /// Election priority: among nodes that do not belong to a cluster yet, the lowest
    /// (priority, node id) becomes the entry point. Default 100.
    pub priority: u32,
    /// Network interfaces used for discovery. Empty: every multicast-capable interface.
    /// Set it on hosts with docker or VPN bridges, e.g. `["eno1"]`. Default empty.
    pub interfaces: Vec<String>,
    /// How long a stopping agent waits for its tasks to finish before it exits anyway.
    /// Between 100ms and 10min. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Tunables of the gossip mesh (`[membership]`); see the README's "Mesh tuning". The
    /// defaults suit a LAN of up to a few hundred machines.
    pub membership: muster_core::membership::MembershipConfig,
    /// Entry-point election (`[election]`): settle window, claim timeouts.
    pub election: muster_core::election::ElectionConfig,
    /// Cluster formation (`[formation]`): control planes, token TTL, join and verify
    /// timeouts, removal of dead members.
    pub formation: muster_core::formation::FormationConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster: "muster".to_owned(),
            node_name: None,
            data_dir: PathBuf::from("/var/lib/muster"),
            socket: PathBuf::from(DEFAULT_SOCKET),
            socket_group: "muster".to_owned(),
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            microk8s: PathBuf::from("/snap/bin/microk8s"),
            log_level: LogLevel::Info,
            priority: 100,
            interfaces: Vec::new(),
            shutdown_timeout: Duration::from_secs(10),
            membership: muster_core::membership::MembershipConfig::default(),
            election: muster_core::election::ElectionConfig::default(),
            formation: muster_core::formation::FormationConfig::default(),
        }
    }
}

/// Where a configuration value came from, so that an error points at what to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The config file at this path.
    File(PathBuf),
    /// The built-in defaults (no config file was read).
    Defaults,
    /// A command-line flag, e.g. `--listen`.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Defaults => f.write_str("built-in defaults"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists (or was named explicitly) but could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid TOML or a value has the wrong type or name.
    #[error("config file {}: {}{}: {message}", path.display(), field_part(field), line_part(*line))]
    Parse {
        /// The file.
        path: PathBuf,
        /// Dotted path of the offending field, when known.
        field: Option<String>,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// Well-formed, but a value is out of range or inconsistent.
    #[error("{origin}: field `{field}`: {problem}")]
    Invalid {
        /// Where the bad value came from.
        origin: Origin,
        /// The field's name as written in the TOML file.
        field: &'static str,
        /// What is wrong with it, and what would be right.
        problem: String,
    },
}

fn field_part(field: &Option<String>) -> String {
    match field {
        Some(f) if !f.is_empty() && f != "." => format!("field `{f}`"),
        _ => "syntax".to_owned(),
    }
}

fn line_part(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

/// Values given on the command line; each one that is set replaces the file's value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--node-name`.
    pub node_name: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--cluster`.
    pub cluster: Option<String>,
    /// `--microk8s`.
    pub microk8s: Option<PathBuf>,
    /// `--log-level`.
    pub log_level: Option<LogLevel>,
}

/// A loaded, overridden and validated configuration, with where it came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The file it was read from, or `Defaults`.
    pub origin: Origin,
}

impl Config {
    /// Parses a TOML document. `path` only names the source in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let parse_error = |field: Option<String>, span: Option<std::ops::Range<usize>>, message| {
            // toml points unknown keys at their table, not the key: find the key's own line.
            let key_line = field
                .as_deref()
                .and_then(|f| f.rsplit('.').next())
                .and_then(|key| {
                    text.lines().position(|l| {
                        l.trim_start()
                            .strip_prefix(key)
                            .is_some_and(|rest| rest.trim_start().starts_with('='))
                    })
                })
                .map(|i| i + 1);
            let span_line = span.map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            ConfigError::Parse {
                path: path.to_owned(),
                field,
                line: key_line.or(span_line),
                message,
            }
        };
        let de = toml::Deserializer::parse(text)
            .map_err(|e| parse_error(None, e.span(), e.message().to_owned()))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            parse_error(Some(field), inner.span(), inner.message().to_owned())
        })
    }

    /// Loads the config. An explicitly named file must exist; the default path may be absent,
    /// which means all defaults. Then applies `overrides` and validates the result.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Loaded, ConfigError> {
        let (file, explicit) = match path {
            Some(p) => (p.to_owned(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let (mut config, origin) = match std::fs::read_to_string(&file) {
            Ok(text) => (Config::from_toml(&text, &file)?, Origin::File(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                (Config::default(), Origin::Defaults)
            }
            Err(source) => return Err(ConfigError::Read { path: file, source }),
        };
        let from_flags = config.apply(overrides);
        config.validate_with(|field| {
            from_flags
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, flag)| Origin::Flag(flag))
                .unwrap_or_else(|| origin.clone())
        })?;
        Ok(Loaded { config, origin })
    }

    /// Replaces fields with the overrides that are set; returns (field, flag) of each.
    fn apply(&mut self, o: &Overrides) -> Vec<(&'static str, &'static str)> {
        let mut set = Vec::new();
        if let Some(v) = &o.node_name {
            self.node_name = Some(v.clone());
            set.push(("node_name", "--node-name"));
        }
        if let Some(v) = &o.data_dir {
            self.data_dir = v.clone();
            set.push(("data_dir", "--data-dir"));
        }
        if let Some(v) = &o.socket {
            self.socket = v.clone();
            set.push(("socket", "--socket"));
        }
        if let Some(v) = o.listen {
            self.listen = v;
            set.push(("listen", "--listen"));
        }
        if let Some(v) = &o.cluster {
            self.cluster = v.clone();
            set.push(("cluster", "--cluster"));
        }
        if let Some(v) = &o.microk8s {
            self.microk8s = v.clone();
            set.push(("microk8s", "--microk8s"));
        }
        if let Some(v) = o.log_level {
            self.log_level = v;
            set.push(("log_level", "--log-level"));
        }
        set
    }

    /// Checks every field and the relations between them.
    pub fn validate(&self, origin: &Origin) -> Result<(), ConfigError> {
        self.validate_with(|_| origin.clone())
    }

    fn validate_with(&self, origin_of: impl Fn(&'static str) -> Origin) -> Result<(), ConfigError> {
        let fail = |field: &'static str, problem: String| ConfigError::Invalid {
            origin: origin_of(field),
            field,
            problem,
        };
        if let Err(p) = check_dns_label(&self.cluster) {
            return Err(fail("cluster", p));
        }
        if let Some(name) = &self.node_name {
            check_node_name(name).map_err(|p| fail("node_name", p))?;
        }
        if !self.data_dir.is_absolute() {
            return Err(fail(
                "data_dir",
                format!("{:?} is not an absolute path", self.data_dir),
            ));
        }
        if !self.socket.is_absolute() {
            return Err(fail(
                "socket",
                format!("{:?} is not an absolute path", self.socket),
            ));
        }
        // sun_path holds 108 bytes including the terminating NUL.
        if self.socket.as_os_str().len() > 107 {
            return Err(fail(
                "socket",
                format!(
                    "path is {} bytes long; unix socket paths are limited to 107",
                    self.socket.as_os_str().len()
                ),
            ));
        }
        if !self.socket_group.is_empty()
            && !self
                .socket_group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(fail(
                "socket_group",
                format!("{:?} is not a valid group name", self.socket_group),
            ));
        }
        if self.microk8s.as_os_str().is_empty() {
            return Err(fail(
                "microk8s",
                "must name the microk8s executable".to_owned(),
            ));
        }
        let mut seen = BTreeSet::new();
        for iface in &self.interfaces {
            if iface.is_empty() || iface.len() > 15 || iface.contains(['/', ' ', '\t']) {
                return Err(fail(
                    "interfaces",
                    format!(
                        "{iface:?} is not an interface name (1 to 15 characters, no '/' or spaces)"
                    ),
                ));
            }
            if !seen.insert(iface) {
                return Err(fail("interfaces", format!("{iface:?} is listed twice")));
            }
        }
        let (lo, hi) = (Duration::from_millis(100), Duration::from_secs(600));
        if self.shutdown_timeout < lo || self.shutdown_timeout > hi {
            return Err(fail(
                "shutdown_timeout",
                format!(
                    "{} is out of range (100ms to 10min)",
                    humantime::format_duration(self.shutdown_timeout)
                ),
            ));
        }
        self.membership
            .validate()
            .map_err(|e| fail("membership", e.to_string()))?;
        self.election
            .validate()
            .map_err(|e| fail("election", e.to_string()))?;
        self.formation
            .validate()
            .map_err(|e| fail("formation", e.to_string()))?;
        Ok(())
    }
}

/// A cluster name must fit in a DNS label, because it travels in mDNS TXT records.
fn check_dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err(format!("{s:?} must be 1 to 63 characters long"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "{s:?} may contain only lowercase letters, digits and '-'"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(format!("{s:?} must not start or end with '-'"));
    }
    Ok(())
}

/// Node names become Kubernetes node names (RFC 1123 subdomains, lowercase).
fn check_node_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err(format!("{s:?} must be 1 to 253 characters long"));
    }
    for label in s.split('.') {
        check_dns_label(label)
            .map_err(|_| format!("{s:?} is not a valid lowercase hostname (RFC 1123)"))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
