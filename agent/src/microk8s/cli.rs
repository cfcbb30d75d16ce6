//! The real [`Microk8s`]: runs the configured `microk8s` executable.
//!
//! Owns the command lines (which flags, which format), the per-command timeouts and the
//! fallback for versions without `add-node --format` (1.19–1.22). The agent only ever calls
//! this one executable (default `/snap/bin/microk8s`); tests and the simulator point it at a
//! stand-in. Output interpretation is `classify`'s, process handling `process`'s.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;

use super::classify::{self, Context, Output};
use super::contract::{
    AddNodeOutput, JoinOutcome, Microk8s, Microk8sFuture, Microk8sVersion, NodeInfo, RemoveOutcome,
    Role, Status,
};
use super::error::{CommandLine, Microk8sError};
use super::process::{self, Invocation};
use super::secret::{JoinToken, JoinUrl, Kubeconfig, REDACTED, TokenTtl};

/// The default executable: the snap's command wrapper.
pub const DEFAULT_PROGRAM: &str = "/snap/bin/microk8s";

/// How long each command may run before its process group is killed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// `status` without waiting. dqlite retries alone can take ~1.5 min on a sick datastore.
    #[serde(with = "humantime_serde")]
    pub status: Duration,
    /// `add-node`.
    #[serde(with = "humantime_serde")]
    pub add_node: Duration,
    /// `join`: 20–60 s normally, ~2 min on a Raspberry Pi, plus a ~2 min TCP connect timeout
    /// and the agent's 240 s deadline when the entry is unreachable or slow.
    #[serde(with = "humantime_serde")]
    pub join: Duration,
    /// `leave`: at least 30 s (two fixed 10 s sleeps), often 1–2 min.
    #[serde(with = "humantime_serde")]
    pub leave: Duration,
    /// `remove-node` (a dqlite `.remove` with retries).
    #[serde(with = "humantime_serde")]
    pub remove_node: Duration,
    /// `kubectl get nodes`, `config`, `version`.
    #[serde(with = "humantime_serde")]
    pub query: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            status: Duration::from_secs(150),
            add_node: Duration::from_secs(60),
            join: Duration::from_secs(480),
            leave: Duration::from_secs(300),
            remove_node: Duration::from_secs(180),
            query: Duration::from_secs(60),
        }
    }
}

/// Configuration of [`CliMicrok8s`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CliConfig {
    /// The `microk8s` executable (default `/snap/bin/microk8s`).
    pub program: PathBuf,
    /// Per-command timeouts.
    pub timeouts: Timeouts,
}

impl Default for CliConfig {
    fn default() -> Self {
        Self {
            program: PathBuf::from(DEFAULT_PROGRAM),
            timeouts: Timeouts::default(),
        }
    }
}

/// [`Microk8s`] over the real CLI.
#[derive(Debug)]
pub struct CliMicrok8s {
    config: CliConfig,
    /// Set once `add-node --format` was refused, so later calls skip the doomed attempt.
    add_node_without_format: AtomicBool,
}

/// One argument: shown as is, or shown redacted.
enum Arg {
    Plain(String),
    Secret { real: String, shown: String },
}

impl Arg {
    fn plain(s: &str) -> Self {
        Self::Plain(s.to_owned())
    }
}

impl CliMicrok8s {
    /// A CLI adapter with this configuration.
    pub fn new(config: CliConfig) -> Self {
        Self {
            config,
            add_node_without_format: AtomicBool::new(false),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CliConfig {
        &self.config
    }

    /// Runs `microk8s <args>`, returning the display command line and the output.
    async fn run(
        &self,
        args: Vec<Arg>,
        timeout: Duration,
        secrets: &[&str],
    ) -> Result<(CommandLine, Output), Microk8sError> {
        let shown: Vec<&str> = args
            .iter()
            .map(|a| match a {
                Arg::Plain(s) => s.as_str(),
                Arg::Secret { shown, .. } => shown.as_str(),
            })
            .collect();
        let display = CommandLine::new(&self.config.program.to_string_lossy(), shown);
        let real: Vec<OsString> = args
            .into_iter()
            .map(|a| match a {
                Arg::Plain(s) | Arg::Secret { real: s, .. } => OsString::from(s),
            })
            .collect();
        let out = process::run(Invocation {
            program: &self.config.program,
            args: real,
            display: display.clone(),
            timeout,
            secrets,
        })
        .await?;
        // Plain lines only: structured events belong to the workflow (journal::log_event).
        log::debug!("`{display}` exited with {:?}", out.code);
        Ok((display, out))
    }

    async fn status_impl(&self, wait_ready: Option<Duration>) -> Result<Status, Microk8sError> {
        let mut args = vec![
            Arg::plain("status"),
            Arg::plain("--format"),
            Arg::plain("yaml"),
        ];
        let mut timeout = self.config.timeouts.status;
        if let Some(wait) = wait_ready {
            // `--timeout 0` would mean "wait forever".
            let secs = wait.as_secs().max(1);
            args.extend([
                Arg::plain("--wait-ready"),
                Arg::plain("--timeout"),
                Arg::Plain(secs.to_string()),
            ]);
            timeout += Duration::from_secs(secs);
        }
        let (command, out) = self.run(args, timeout, &[]).await?;
        classify::status(
            Context {
                command: &command,
                secrets: &[],
            },
            &out,
        )
    }

    async fn add_node_impl(
        &self,
        token: &JoinToken,
        ttl: TokenTtl,
    ) -> Result<AddNodeOutput, Microk8sError> {
        let secrets = [token.expose()];
        let args = |json: bool| {
            let mut v = vec![
                Arg::plain("add-node"),
                Arg::plain("--token"),
                Arg::Secret {
                    real: token.expose().to_owned(),
                    shown: REDACTED.to_owned(),
                },
                Arg::plain("--token-ttl"),
                Arg::Plain(ttl.as_arg()),
            ];
            if json {
                v.extend([Arg::plain("--format"), Arg::plain("json")]);
            }
            v
        };
        let timeout = self.config.timeouts.add_node;
        if !self.add_node_without_format.load(Ordering::Relaxed) {
            let (command, out) = self.run(args(true), timeout, &secrets).await?;
            match classify::add_node(
                Context {
                    command: &command,
                    secrets: &secrets,
                },
                &out,
                token,
            ) {
                // argparse refused `--format` before registering anything: safe to retry.
                Err(Microk8sError::Unsupported { .. }) => {
                    log::info!(
                        "`{command}` is not supported by this microk8s; using the pretty output"
                    );
                    self.add_node_without_format.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        let (command, out) = self.run(args(false), timeout, &secrets).await?;
        classify::add_node(
            Context {
                command: &command,
                secrets: &secrets,
            },
            &out,
            token,
        )
    }

    async fn join_impl(&self, url: &JoinUrl, role: Role) -> Result<JoinOutcome, Microk8sError> {
        let token = url.token().expose();
        let mut args = vec![
            Arg::plain("join"),
            Arg::Secret {
                real: url.expose(),
                shown: url.to_string(),
            },
        ];
        if role == Role::Worker {
            args.push(Arg::plain("--worker"));
        }
        let (command, out) = self.run(args, self.config.timeouts.join, &[token]).await?;
        classify::join(
            Context {
                command: &command,
                secrets: &[token],
            },
            &out,
        )
    }

    async fn simple<T>(
        &self,
        args: &[&str],
        timeout: Duration,
        classify: fn(Context<'_>, &Output) -> Result<T, Microk8sError>,
    ) -> Result<T, Microk8sError> {
        let (command, out) = self
            .run(args.iter().map(|a| Arg::plain(a)).collect(), timeout, &[])
            .await?;
        classify(
            Context {
                command: &command,
                secrets: &[],
            },
            &out,
        )
    }

    async fn remove_node_impl(
        &self,
        node: &str,
        force: bool,
    ) -> Result<RemoveOutcome, Microk8sError> {
        // `--force` must follow the name or the wrapper refuses.
        let mut args = vec!["remove-node", node];
        if force {
            args.push("--force");
        }
        self.simple(
            &args,
            self.config.timeouts.remove_node,
            classify::remove_node,
        )
        .await
    }
}

impl Microk8s for CliMicrok8s {
    fn status(&self, wait_ready: Option<Duration>) -> Microk8sFuture<'_, Status> {
        Box::pin(self.status_impl(wait_ready))
    }

    fn add_node<'a>(
        &'a self,
        token: &'a JoinToken,
        ttl: TokenTtl,
    ) -> Microk8sFuture<'a, AddNodeOutput> {
        Box::pin(self.add_node_impl(token, ttl))
    }

    fn join<'a>(&'a self, url: &'a JoinUrl, role: Role) -> Microk8sFuture<'a, JoinOutcome> {
        Box::pin(self.join_impl(url, role))
    }

    fn leave(&self) -> Microk8sFuture<'_, ()> {
        Box::pin(self.simple(&["leave"], self.config.timeouts.leave, classify::leave))
    }

    fn remove_node<'a>(&'a self, node: &'a str, force: bool) -> Microk8sFuture<'a, RemoveOutcome> {
        Box::pin(self.remove_node_impl(node, force))
    }

    fn nodes(&self) -> Microk8sFuture<'_, Vec<NodeInfo>> {
        Box::pin(self.simple(
            &["kubectl", "get", "nodes", "-o", "json"],
            self.config.timeouts.query,
            classify::nodes,
        ))
    }

    fn kubeconfig(&self) -> Microk8sFuture<'_, Kubeconfig> {
        Box::pin(self.simple(
            &["config"],
            self.config.timeouts.query,
            classify::kubeconfig,
        ))
    }

    fn version(&self) -> Microk8sFuture<'_, Option<Microk8sVersion>> {
        Box::pin(self.simple(&["version"], self.config.timeouts.query, classify::version))
    }
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
