//! The typed errors of the microk8s adapter.
//!
//! Owns [`Microk8sError`] and the per-command failure kinds ([`JoinFailure`], [`JoinRejection`],
//! [`LeaveFailure`], [`RemoveFailure`]). Every variant carries the command line with secrets
//! already replaced ([`CommandLine`]) and, where a process ran, its exit code and a bounded,
//! redacted excerpt of what it printed. Does not decide what to do about a failure (the
//! workflow does); it only names it precisely.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::secret::redact;

/// The longest excerpt of output kept in an error, in characters per stream.
pub const EXCERPT_CHARS: usize = 400;

/// A command line for display: program and arguments with every secret already replaced by
/// `<redacted>`. There is no way to get the secret back out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine(String);

impl CommandLine {
    /// Builds the display form from a program name and display-safe arguments.
    pub fn new<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut s = program.to_owned();
        for a in args {
            s.push(' ');
            s.push_str(a.as_ref());
        }
        Self(s)
    }

    /// The display string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds the excerpt stored in errors: the tail of each stream (the end of a traceback or a
/// message is the informative part), secrets removed, on one line.
pub fn excerpt(stdout: &str, stderr: &str, secrets: &[&str]) -> String {
    let mut parts = Vec::new();
    for (name, text) in [("stderr", stderr), ("stdout", stdout)] {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let redacted = redact(text, secrets);
        let chars: Vec<char> = redacted.chars().collect();
        let tail: String = if chars.len() > EXCERPT_CHARS {
            let t: String = chars[chars.len() - EXCERPT_CHARS..].iter().collect();
            format!("…{t}")
        } else {
            redacted
        };
        let one_line = tail
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ⏎ ");
        parts.push(format!("{name}: {one_line}"));
    }
    if parts.is_empty() {
        "no output".to_owned()
    } else {
        parts.join("; ")
    }
}

/// Why the agent on the entry node refused a join (`Connection failed. <message> (<status>).`
/// on 1.21+, `Failed to join cluster. Error code <status>. <message>` on 1.19). Classified by
/// message because the status codes changed between versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRejection {
    /// `Invalid token`: unknown, expired, or a single-use token already consumed (also by an
    /// earlier attempt that failed for another reason).
    InvalidToken,
    /// The joiner's source IP equals the entry's (joining a node to itself).
    SameIp,
    /// The joiner's IP is already a dqlite member: remove it with `remove-node <ip> --force`.
    AlreadyKnown,
    /// The entry cannot resolve the joiner's hostname to its IP (1.24–1.27).
    HostnameNotResolving,
    /// The entry is not in HA (dqlite) mode.
    NotHa,
    /// The joiner's cluster agent does not listen on the entry's port.
    PortMismatch,
    /// The IP in the join address is not on any interface of the entry (first join only).
    BindAddressNotFound,
    /// A pre-1.28 control plane tried to join an x509 cluster.
    X509Required,
    /// A message this adapter does not know.
    Other,
}

impl JoinRejection {
    /// Classifies the agent's error message.
    pub fn from_message(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        if m.contains("invalid token") {
            Self::InvalidToken
        } else if m.contains("already known to dqlite") {
            Self::AlreadyKnown
        } else if m.contains("has the same ip") {
            Self::SameIp
        } else if m.contains("does not resolve to the ip") {
            Self::HostnameNotResolving
        } else if m.contains("not an ha") || m.contains("this is an ha dqlite cluster") {
            Self::NotHa
        } else if m.contains("port of the cluster agent") {
            Self::PortMismatch
        } else if m.contains("bind address") {
            Self::BindAddressNotFound
        } else if m.contains("x509") {
            Self::X509Required
        } else {
            Self::Other
        }
    }
}

/// Why `microk8s join` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinFailure {
    /// The join string was refused before contacting anyone (`Invalid connection: …`, 1.29+).
    #[error("invalid join address: {reason}")]
    InvalidConnection {
        /// The reason microk8s printed.
        reason: String,
    },
    /// The entry could not be reached (traceback from the TCP connect, `Please ensure the
    /// master node is reachable`, `Connecting to cluster failed with …`).
    #[error("entry node unreachable: {detail}")]
    Unreachable {
        /// The last line microk8s printed about it.
        detail: String,
    },
    /// The entry's certificate did not match the fingerprint, or TLS failed (exit 4).
    #[error("entry node identity not verified: {detail}")]
    Fingerprint {
        /// What microk8s printed.
        detail: String,
    },
    /// The entry's cluster agent answered with an error.
    #[error("entry node refused the join ({reason:?}{}): {message}", status.map(|s| format!(", HTTP {s}")).unwrap_or_default())]
    Rejected {
        /// The classified reason.
        reason: JoinRejection,
        /// The HTTP status, when printed.
        status: Option<u16>,
        /// The agent's message.
        message: String,
    },
    /// The low-memory guard refused a control-plane join (≤512 MiB hosts).
    #[error("not enough memory for a control-plane join; join as a worker")]
    LowMemory,
    /// A worker join into a cluster that cannot take workers.
    #[error("the cluster does not support joining worker nodes")]
    WorkerNotSupported,
    /// A worker could not get its certificates signed.
    #[error("certificate signing failed: {detail}")]
    CertificateSigning {
        /// What microk8s printed.
        detail: String,
    },
    /// Anything else (see the excerpt in the surrounding error).
    #[error("join failed")]
    Other,
}

/// Why `microk8s leave` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeaveFailure {
    /// Exit 3: this node is the only dqlite voter while other members exist.
    #[error("this node holds the only copy of the Kubernetes database")]
    OnlyVoter,
    /// Exit 2 (`Contacting node … failed`): the others could not remove it (no quorum).
    #[error("the remaining members could not remove this node (datastore quorum?)")]
    NoQuorum,
    /// Exit 1/2: the node is not in a cluster (`not acting as a node in a cluster`,
    /// `Not in clustering mode.`).
    #[error("this node is not in a cluster")]
    NotClustered,
    /// Anything else.
    #[error("leave failed")]
    Other,
}

/// Why `microk8s remove-node` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RemoveFailure {
    /// The node is still a dqlite member: it must `leave` first, or be removed with `--force`.
    #[error("the node is still registered with dqlite; it must leave first or be forced out")]
    RegisteredWithDqlite,
    /// The Node object has no InternalIP (`is not part of the cluster`).
    #[error("the node is not part of the cluster")]
    NotPartOfCluster,
    /// Exit 2: dqlite could not be asked to drop the member (quorum?).
    #[error("the datastore could not remove the member (datastore quorum?)")]
    ContactFailed,
    /// Anything else.
    #[error("remove-node failed")]
    Other,
}

/// Everything that can go wrong when muster drives microk8s.
#[derive(Debug, thiserror::Error)]
pub enum Microk8sError {
    /// The executable could not be started (not installed, wrong path, not executable).
    #[error("could not run `{command}`: {source} (is microk8s installed at {}?)", program.display())]
    Spawn {
        /// The command line, secrets redacted.
        command: CommandLine,
        /// The configured executable.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the process or reading its output failed.
    #[error("lost track of `{command}`: {source}")]
    Io {
        /// The command line, secrets redacted.
        command: CommandLine,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The command ran longer than its timeout and was killed with its process group.
    #[error("`{command}` did not finish within {}; killed it ({excerpt})", humantime::format_duration(*timeout))]
    Timeout {
        /// The command line, secrets redacted.
        command: CommandLine,
        /// The timeout that expired.
        timeout: Duration,
        /// What it had printed so far, redacted.
        excerpt: String,
    },
    /// microk8s is stopped (`microk8s is not running, try microk8s start`).
    #[error("`{command}`: microk8s is stopped (start it with `microk8s start`)")]
    Stopped {
        /// The command line, secrets redacted.
        command: CommandLine,
    },
    /// The command must run on a control-plane node but this node is a worker.
    #[error("`{command}`: this node is a microk8s worker; the command needs a control-plane node")]
    WorkerNode {
        /// The command line, secrets redacted.
        command: CommandLine,
    },
    /// The caller may not use microk8s (not root, not in group `microk8s`).
    #[error("`{command}`: insufficient permissions to access MicroK8s (run muster as root)")]
    PermissionDenied {
        /// The command line, secrets redacted.
        command: CommandLine,
    },
    /// This microk8s version lacks the subcommand or flag (`not a valid MicroK8s subcommand`,
    /// argparse `unrecognized arguments`).
    #[error("`{command}`: not supported by this microk8s version ({excerpt})")]
    Unsupported {
        /// The command line, secrets redacted.
        command: CommandLine,
        /// What it printed, redacted.
        excerpt: String,
    },
    /// The kubernetes API server did not answer (`The connection to the server … was refused`).
    #[error("`{command}`: the Kubernetes API server is not answering ({excerpt})")]
    ApiUnavailable {
        /// The command line, secrets redacted.
        command: CommandLine,
        /// What it printed, redacted.
        excerpt: String,
    },
    /// The output was not what the parser expects.
    #[error("`{command}`: could not read its output as {expected}: {detail} ({excerpt})")]
    Unparseable {
        /// The command line, secrets redacted.
        command: CommandLine,
        /// What the parser expected.
        expected: &'static str,
        /// What was wrong.
        detail: String,
        /// The output, redacted.
        excerpt: String,
    },
    /// `join` failed.
    #[error("`{command}` failed ({}): {failure} ({excerpt})", code_str(*code))]
    Join {
        /// The command line, secrets redacted.
        command: CommandLine,
        /// The exit code (`None` if killed by a signal).
        code: Option<i32>,
        /// The classified failure.
        failure: JoinFailure,
        /// The output, redacted.
        excerpt: String,
    },
    /// `leave` failed.
    #[error("`{command}` failed ({}): {failure} ({excerpt})", code_str(*code))]
    Leave {
        /// The command line, secrets redacted.
        command: CommandLine,
        /// The exit code.
        code: Option<i32>,
        /// The classified failure.
        failure: LeaveFailure,
        /// The output, redacted.
        excerpt: String,
    },
    /// `remove-node` failed.
    #[error("`{command}` failed ({}): {failure} ({excerpt})", code_str(*code))]
    RemoveNode {
        /// The command line, secrets redacted.
        command: CommandLine,
        /// The exit code.
        code: Option<i32>,
        /// The classified failure.
        failure: RemoveFailure,
        /// The output, redacted.
        excerpt: String,
    },
    /// Any other non-zero exit.
    #[error("`{command}` failed ({}): {excerpt}", code_str(*code))]
    Failed {
        /// The command line, secrets redacted.
        command: CommandLine,
        /// The exit code (`None` if killed by a signal).
        code: Option<i32>,
        /// The output, redacted.
        excerpt: String,
    },
}

impl Microk8sError {
    /// The command line (secrets redacted) that failed.
    pub fn command(&self) -> &CommandLine {
        match self {
            Self::Spawn { command, .. }
            | Self::Io { command, .. }
            | Self::Timeout { command, .. }
            | Self::Stopped { command }
            | Self::WorkerNode { command }
            | Self::PermissionDenied { command }
            | Self::Unsupported { command, .. }
            | Self::ApiUnavailable { command, .. }
            | Self::Unparseable { command, .. }
            | Self::Join { command, .. }
            | Self::Leave { command, .. }
            | Self::RemoveNode { command, .. }
            | Self::Failed { command, .. } => command,
        }
    }

    /// The exit code, for the variants that saw the process exit with one.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Self::Join { code, .. }
            | Self::Leave { code, .. }
            | Self::RemoveNode { code, .. }
            | Self::Failed { code, .. } => *code,
            _ => None,
        }
    }

    /// The redacted output excerpt, where one was kept.
    pub fn excerpt(&self) -> Option<&str> {
        match self {
            Self::Timeout { excerpt, .. }
            | Self::Unsupported { excerpt, .. }
            | Self::ApiUnavailable { excerpt, .. }
            | Self::Unparseable { excerpt, .. }
            | Self::Join { excerpt, .. }
            | Self::Leave { excerpt, .. }
            | Self::RemoveNode { excerpt, .. }
            | Self::Failed { excerpt, .. } => Some(excerpt),
            _ => None,
        }
    }
}

fn code_str(code: Option<i32>) -> String {
    code.map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_is_classified_by_message_across_versions() {
        let cases = [
            ("Invalid token", JoinRejection::InvalidToken),
            (
                "The joining node has the same IP (10.0.0.1) as the node we contact",
                JoinRejection::SameIp,
            ),
            (
                "Failed to retrieve dqlite cluster nodes: the joining node (10.0.0.2) is already known to dqlite",
                JoinRejection::AlreadyKnown,
            ),
            (
                "The joining node (10.0.0.2) is already known to dqlite.",
                JoinRejection::AlreadyKnown,
            ),
            (
                "The hostname (b) of the joining node does not resolve to the IP \"10.0.0.2\". Refusing join",
                JoinRejection::HostnameNotResolving,
            ),
            (
                "Not possible to join. This is not an HA MicroK8s cluster",
                JoinRejection::NotHa,
            ),
            (
                "Not possible to join. This is not an HA dqlite cluster.",
                JoinRejection::NotHa,
            ),
            (
                "The port of the cluster agent port has to be set to 25000",
                JoinRejection::PortMismatch,
            ),
            (
                "The port of the cluster agent has to be set to 25000.",
                JoinRejection::PortMismatch,
            ),
            (
                "Failed to retrieve dqlite cluster nodes: failed to find matching dqlite bind address for 1.2.3.4:25000",
                JoinRejection::BindAddressNotFound,
            ),
            (
                "Joining this MicroK8s cluster requires x509 authentication.",
                JoinRejection::X509Required,
            ),
            ("Something new", JoinRejection::Other),
        ];
        for (message, want) in cases {
            assert_eq!(JoinRejection::from_message(message), want, "{message}");
        }
    }

    #[test]
    fn excerpt_keeps_tails_on_one_line_and_redacts() {
        let long = format!(
            "{}\nConnectionRefusedError: [Errno 111] Connection refused",
            "x".repeat(2000)
        );
        let e = excerpt("Contacting cluster at 10.0.0.9\n", &long, &[]);
        assert!(e.starts_with("stderr: …"), "{e}");
        assert!(e.ends_with("stdout: Contacting cluster at 10.0.0.9"), "{e}");
        assert!(e.contains("x ⏎ ConnectionRefusedError"), "{e}");
        assert!(!e.contains('\n'));
        assert!(e.chars().count() < 2 * EXCERPT_CHARS + 40);
        let t = "3f2c1a9e8d7b6c5a4f3e2d1c0b9a8f7e";
        assert!(!excerpt(&format!("microk8s join 1.2.3.4:25000/{t}"), "", &[]).contains(t));
        assert_eq!(excerpt("", " \n", &[]), "no output");
    }

    #[test]
    fn error_display_names_command_code_and_excerpt() {
        let err = Microk8sError::Join {
            command: CommandLine::new("/snap/bin/microk8s", ["join", "10.0.0.1:25000/<redacted>"]),
            code: Some(6),
            failure: JoinFailure::Rejected {
                reason: JoinRejection::InvalidToken,
                status: Some(500),
                message: "Invalid token".into(),
            },
            excerpt: "stdout: Connection failed. Invalid token (500).".into(),
        };
        let shown = err.to_string();
        assert!(
            shown.contains("`/snap/bin/microk8s join 10.0.0.1:25000/<redacted>` failed (exit 6)"),
            "{shown}"
        );
        assert!(
            shown.contains("(InvalidToken, HTTP 500): Invalid token"),
            "{shown}"
        );
        assert_eq!(err.exit_code(), Some(6));
        let timeout = Microk8sError::Timeout {
            command: CommandLine::new("microk8s", ["leave"]),
            timeout: Duration::from_secs(90),
            excerpt: "no output".into(),
        };
        assert!(timeout.to_string().contains("within 1m 30s"), "{timeout}");
    }
}
