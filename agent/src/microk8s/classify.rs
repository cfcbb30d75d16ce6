//! Turns a finished microk8s process (exit code, stdout, stderr) into a typed result.
//!
//! Owns the mapping from microk8s' messages and exit codes to [`Microk8sError`] variants and to
//! the per-command outcomes, for 1.19 and 1.21+ wording alike. Pure: `cli` feeds it real
//! processes, the tests feed it fixtures. Parsing successful output is `parse`'s job; running
//! processes is `process`'s.

use super::contract::{
    AddNodeOutput, JoinOutcome, Microk8sVersion, NodeInfo, RemoveOutcome, Status,
};
use super::error::{
    CommandLine, JoinFailure, JoinRejection, LeaveFailure, Microk8sError, RemoveFailure, excerpt,
};
use super::parse::{self, ParseError, STOPPED_MARK, WORKER_MARK};
use super::secret::{JoinToken, Kubeconfig};

/// What a finished process left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Captured stdout (lossy UTF-8).
    pub stdout: String,
    /// Captured stderr (lossy UTF-8).
    pub stderr: String,
}

impl Output {
    fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn has(&self, needle: &str) -> bool {
        self.stdout.contains(needle) || self.stderr.contains(needle)
    }

    fn line_starting(&self, prefix: &str) -> Option<String> {
        self.text()
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(str::to_owned)
    }
}

/// A command together with the secrets that must not appear in its errors.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The display command line (already redacted).
    pub command: &'a CommandLine,
    /// Secrets that may appear in the output.
    pub secrets: &'a [&'a str],
}

impl Context<'_> {
    fn excerpt(&self, out: &Output) -> String {
        excerpt(&out.stdout, &out.stderr, self.secrets)
    }

    fn failed(&self, out: &Output) -> Microk8sError {
        Microk8sError::Failed {
            command: self.command.clone(),
            code: out.code,
            excerpt: self.excerpt(out),
        }
    }

    fn unparseable(&self, out: &Output, e: ParseError) -> Microk8sError {
        Microk8sError::Unparseable {
            command: self.command.clone(),
            expected: e.expected,
            detail: e.detail,
            excerpt: self.excerpt(out),
        }
    }

    /// Failures every subcommand shares (permissions, stopped, worker node, unsupported,
    /// API server down).
    fn common_failure(&self, out: &Output) -> Option<Microk8sError> {
        let command = self.command.clone();
        if out.has("Insufficient permissions to access MicroK8s") || out.has("Elevated permissions")
        {
            Some(Microk8sError::PermissionDenied { command })
        } else if out.has(STOPPED_MARK) {
            Some(Microk8sError::Stopped { command })
        } else if out.has(WORKER_MARK) {
            Some(Microk8sError::WorkerNode { command })
        } else if out.has("is not a valid MicroK8s subcommand")
            || (out.code == Some(2)
                && (out.has("unrecognized arguments")
                    || out.has("invalid choice")
                    || out.has("no such option")))
        {
            Some(Microk8sError::Unsupported {
                command,
                excerpt: self.excerpt(out),
            })
        } else if out.has("The connection to the server") {
            Some(Microk8sError::ApiUnavailable {
                command,
                excerpt: self.excerpt(out),
            })
        } else {
            None
        }
    }
}

/// `status`: any recognised output is a [`Status`], whatever the exit code (1.28+ exits 1
/// when not ready, older versions 0).
pub fn status(cx: Context<'_>, out: &Output) -> Result<Status, Microk8sError> {
    match parse::parse_status(&out.stdout) {
        Ok(s) => Ok(s),
        Err(e) => match cx.common_failure(out) {
            // The shell wrappers print these two on stderr; they are states, not failures.
            Some(Microk8sError::Stopped { .. }) => Ok(Status::Stopped),
            Some(Microk8sError::WorkerNode { .. }) => Ok(Status::Worker),
            Some(other) => Err(other),
            None if out.code == Some(0) => Err(cx.unparseable(out, e)),
            None => Err(cx.failed(out)),
        },
    }
}

/// `add-node`: also checks that microk8s printed the token it was given (1.19 prints the last
/// line of its token file, which a concurrent `add-node` may have written).
pub fn add_node(
    cx: Context<'_>,
    out: &Output,
    requested: &JoinToken,
) -> Result<AddNodeOutput, Microk8sError> {
    if out.code != Some(0) {
        return Err(cx.common_failure(out).unwrap_or_else(|| cx.failed(out)));
    }
    let parsed = parse::parse_add_node(&out.stdout).map_err(|e| cx.unparseable(out, e))?;
    if &parsed.token != requested {
        return Err(cx.unparseable(
            out,
            ParseError {
                expected: "the requested token",
                detail: "add-node printed a different token".into(),
            },
        ));
    }
    if parsed.urls.is_empty() {
        return Err(cx.unparseable(
            out,
            ParseError {
                expected: "join addresses",
                detail: "none printed".into(),
            },
        ));
    }
    Ok(parsed)
}

/// Reads `Connection failed. <message> (<status>).` (1.21+) or
/// `Failed to join cluster. Error code <status>. <message>` (1.19).
fn rejection(out: &Output) -> Option<JoinFailure> {
    if let Some(line) = out.line_starting("Connection failed.") {
        let body = line
            .trim_start_matches("Connection failed.")
            .trim()
            .trim_end_matches('.');
        let (message, status) = match body.rsplit_once(" (") {
            Some((m, s)) => (m, s.trim_end_matches(')').parse().ok()),
            None => (body, None),
        };
        let message = message.trim().to_owned();
        return Some(JoinFailure::Rejected {
            reason: JoinRejection::from_message(&message),
            status,
            message,
        });
    }
    let line = out.line_starting("Failed to join cluster.")?;
    let rest = line.trim_start_matches("Failed to join cluster.").trim();
    let (status, message) = match rest.strip_prefix("Error code ") {
        Some(r) => {
            let (code, msg) = r.split_once('.').unwrap_or((r, ""));
            (code.trim().parse().ok(), msg.trim().to_owned())
        }
        None => (None, rest.to_owned()),
    };
    Some(JoinFailure::Rejected {
        reason: JoinRejection::from_message(&message),
        status,
        message,
    })
}

fn last_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned()
}

/// Classifies a failed join from its output.
pub fn join_failure(out: &Output) -> JoinFailure {
    if let Some(r) = rejection(out) {
        return r;
    }
    if let Some(line) = out.line_starting("Invalid connection:") {
        let reason = line
            .trim_start_matches("Invalid connection:")
            .trim()
            .to_owned();
        return JoinFailure::InvalidConnection { reason };
    }
    if out.has("does not have enough RAM") {
        return JoinFailure::LowMemory;
    }
    if out.has("supports joining worker nodes") {
        return JoinFailure::WorkerNotSupported;
    }
    if let Some(line) = out.line_starting("Failed to sign") {
        return JoinFailure::CertificateSigning { detail: line };
    }
    let identity = [
        "Could not verify the identity",
        "Peer node verification failed",
        "Fingerprint too short",
    ];
    if out.code == Some(4) || identity.iter().any(|m| out.has(m)) {
        let detail = identity.iter().find_map(|m| {
            out.line_starting(m)
                .or_else(|| out.line_starting("Joining cluster failed"))
        });
        return JoinFailure::Fingerprint {
            detail: detail.unwrap_or_else(|| last_line(&out.text())),
        };
    }
    for prefix in [
        "Please ensure the master node is reachable",
        "Connecting to cluster failed with",
    ] {
        if let Some(line) = out.line_starting(prefix) {
            return JoinFailure::Unreachable { detail: line };
        }
    }
    // The TCP connect is not guarded in join.py: refused or timed out connections end in a
    // Python traceback whose last line names the OSError.
    if out.stderr.contains("Traceback (most recent call last)") {
        let detail = last_line(&out.stderr);
        let network = [
            "ConnectionRefusedError",
            "TimeoutError",
            "OSError",
            "ConnectionResetError",
            "socket",
            "No route",
        ];
        if network.iter().any(|n| detail.contains(n)) {
            return JoinFailure::Unreachable { detail };
        }
    }
    JoinFailure::Other
}

/// `join`: exit 0 is success (not proof: verify), anything else a classified failure.
pub fn join(cx: Context<'_>, out: &Output) -> Result<JoinOutcome, Microk8sError> {
    if out.code == Some(0) {
        return Ok(parse::parse_join_success(&out.stdout));
    }
    if let Some(e @ Microk8sError::PermissionDenied { .. }) = cx.common_failure(out) {
        return Err(e);
    }
    Err(Microk8sError::Join {
        command: cx.command.clone(),
        code: out.code,
        failure: join_failure(out),
        excerpt: cx.excerpt(out),
    })
}

/// `leave`.
pub fn leave(cx: Context<'_>, out: &Output) -> Result<(), Microk8sError> {
    if out.code == Some(0) {
        return Ok(());
    }
    if let Some(e @ (Microk8sError::PermissionDenied { .. } | Microk8sError::Stopped { .. })) =
        cx.common_failure(out)
    {
        return Err(e);
    }
    let failure = if out.code == Some(3) || out.has("holds the only copy") {
        LeaveFailure::OnlyVoter
    } else if out.has("Contacting node") {
        LeaveFailure::NoQuorum
    } else if out.has("not acting as a node in a cluster") || out.has("Not in clustering mode") {
        LeaveFailure::NotClustered
    } else {
        LeaveFailure::Other
    };
    Err(Microk8sError::Leave {
        command: cx.command.clone(),
        code: out.code,
        failure,
        excerpt: cx.excerpt(out),
    })
}

/// `remove-node`: "does not exist in Kubernetes" is an outcome, not an error, because a
/// `--force` run may have purged a ghost dqlite member while exiting 1.
pub fn remove_node(cx: Context<'_>, out: &Output) -> Result<RemoveOutcome, Microk8sError> {
    if out.code == Some(0) {
        return Ok(RemoveOutcome::Removed);
    }
    let fail = |failure| Microk8sError::RemoveNode {
        command: cx.command.clone(),
        code: out.code,
        failure,
        excerpt: cx.excerpt(out),
    };
    if out.has("Contacting node") {
        return Err(fail(RemoveFailure::ContactFailed));
    }
    if out.has("does not exist in Kubernetes") {
        return Ok(RemoveOutcome::NotInKubernetes {
            dqlite_checked: out.has("Attempting to remove"),
            purged_from_dqlite: out.has("Removing node entry found in dqlite"),
        });
    }
    if out
        .stdout
        .lines()
        .any(|l| l.starts_with("Node ") && l.trim_end().ends_with(" does not exist."))
    {
        return Ok(RemoveOutcome::NotInKubernetes {
            dqlite_checked: false,
            purged_from_dqlite: false,
        });
    }
    if let Some(e) = cx.common_failure(out) {
        return Err(e);
    }
    let failure = if out.has("is registered with dqlite") {
        RemoveFailure::RegisteredWithDqlite
    } else if out.has("is not part of the cluster") || out.has("detect the IP of") {
        RemoveFailure::NotPartOfCluster
    } else {
        RemoveFailure::Other
    };
    Err(fail(failure))
}

/// `kubectl get nodes -o json` (on a worker microk8s prints a message and exits 0).
pub fn nodes(cx: Context<'_>, out: &Output) -> Result<Vec<NodeInfo>, Microk8sError> {
    if let Some(e) = cx.common_failure(out) {
        return Err(e);
    }
    if out.code != Some(0) {
        return Err(cx.failed(out));
    }
    parse::parse_nodes(&out.stdout).map_err(|e| cx.unparseable(out, e))
}

/// `config`. The output holds the admin credential, so errors never excerpt stdout.
pub fn kubeconfig(cx: Context<'_>, out: &Output) -> Result<Kubeconfig, Microk8sError> {
    let scrubbed = Output {
        code: out.code,
        stdout: String::new(),
        stderr: out.stderr.clone(),
    };
    if out
        .stdout
        .lines()
        .next()
        .is_some_and(|l| l.contains(WORKER_MARK))
    {
        return Err(Microk8sError::WorkerNode {
            command: cx.command.clone(),
        });
    }
    if let Some(e) = cx.common_failure(&scrubbed) {
        return Err(e);
    }
    if out.code != Some(0) {
        return Err(cx.failed(&scrubbed));
    }
    parse::parse_kubeconfig(&out.stdout).map_err(|e| cx.unparseable(&scrubbed, e))
}

/// `version`; `None` when the subcommand does not exist (1.19).
pub fn version(cx: Context<'_>, out: &Output) -> Result<Option<Microk8sVersion>, Microk8sError> {
    if out.has("is not a valid MicroK8s subcommand") {
        return Ok(None);
    }
    if let Some(e) = cx.common_failure(out) {
        return Err(e);
    }
    if out.code != Some(0) {
        return Err(cx.failed(out));
    }
    parse::parse_version(&out.stdout)
        .map(Some)
        .map_err(|e| cx.unparseable(out, e))
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
