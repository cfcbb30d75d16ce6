//! The CLI side of the API: connecting to an agent over its unix socket or TCP, calling it,
//! and turning every way that can fail into one clear line. It also owns the demo's view of
//! an agent ([`StatusClient`]), so that the demo never handles protobuf.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use muster_proto::v1 as pb;
use pb::agent_client::AgentClient;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint, Uri};

use super::render;
use crate::demo::progress::{NodeSnapshot, Role};

/// Which agent to talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The local agent's unix socket.
    Socket(PathBuf),
    /// A remote agent's TCP address, `HOST:PORT`.
    Addr(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Socket(p) => write!(f, "{}", p.display()),
            Target::Addr(a) => f.write_str(a),
        }
    }
}

/// Why a CLI call failed; each variant renders as one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket file does not exist.
    #[error("no agent socket at {}: is the agent running? (systemctl status muster)", path.display())]
    NoSocket {
        /// The socket path.
        path: PathBuf,
    },
    /// The caller may not open the socket.
    #[error("permission denied on {}: run as root or as a member of group `muster`", path.display())]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
    },
    /// Nothing accepts connections there.
    #[error("connection refused by {target}: is the agent running? (systemctl status muster)")]
    Refused {
        /// Where we tried.
        target: Target,
    },
    /// Any other transport failure.
    #[error("cannot reach the agent at {target}: {reason}")]
    Connect {
        /// Where we tried.
        target: Target,
        /// What went wrong.
        reason: String,
    },
    /// `--addr` is not a usable address.
    #[error("invalid --addr {addr:?}: expected HOST:PORT")]
    BadAddr {
        /// What was given.
        addr: String,
    },
    /// The agent answered with an error.
    #[error("{call}: {message}")]
    Rpc {
        /// The call.
        call: &'static str,
        /// The agent's message.
        message: String,
    },
}

/// Connects to the agent. `timeout` bounds the connection and each call.
pub async fn connect(
    target: &Target,
    timeout: Duration,
) -> Result<AgentClient<Channel>, ClientError> {
    let channel = match target {
        Target::Socket(path) => {
            preflight_socket(path)?;
            let path = path.clone();
            // The URI is required by tonic but unused: the connector below decides where to go.
            Endpoint::from_static("http://muster.local")
                .connect_timeout(timeout)
                .timeout(timeout)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
        }
        Target::Addr(addr) => {
            let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|_| ClientError::BadAddr { addr: addr.clone() })?;
            endpoint
                .connect_timeout(timeout)
                .timeout(timeout)
                .connect()
                .await
        }
    };
    channel
        .map(AgentClient::new)
        .map_err(|e| classify_connect(target, &e))
}

/// Catches the common cases before connecting, for precise messages.
fn preflight_socket(path: &Path) -> Result<(), ClientError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ClientError::NoSocket {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(ClientError::PermissionDenied {
                path: path.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

fn classify_connect(target: &Target, err: &(dyn std::error::Error + 'static)) -> ClientError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match (io.kind(), target) {
                (std::io::ErrorKind::NotFound, Target::Socket(p)) => {
                    ClientError::NoSocket { path: p.clone() }
                }
                (std::io::ErrorKind::PermissionDenied, Target::Socket(p)) => {
                    ClientError::PermissionDenied { path: p.clone() }
                }
                (std::io::ErrorKind::ConnectionRefused, _) => ClientError::Refused {
                    target: target.clone(),
                },
                _ => ClientError::Connect {
                    target: target.clone(),
                    reason: io.to_string(),
                },
            };
        }
        source = e.source();
    }
    ClientError::Connect {
        target: target.clone(),
        reason: err.to_string(),
    }
}

fn rpc_error(call: &'static str, status: tonic::Status) -> ClientError {
    let message = if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        status.message().to_owned()
    };
    ClientError::Rpc { call, message }
}

/// A connection to one agent that is asked for its status again and again (the demo's
/// polling). Cheap to clone; a failed call leaves it to the caller to reconnect.
#[derive(Clone, Debug)]
pub struct StatusClient(AgentClient<Channel>);

impl StatusClient {
    /// Connects to the agent at `target`; `timeout` bounds the connection and each call.
    pub async fn connect(target: &Target, timeout: Duration) -> Result<Self, ClientError> {
        connect(target, timeout).await.map(StatusClient)
    }

    /// Asks for the agent's status, reduced to what the demo follows.
    pub async fn node_snapshot(&mut self) -> Result<NodeSnapshot, ClientError> {
        let reply = self
            .0
            .status(pb::StatusRequest {})
            .await
            .map_err(|s| rpc_error("status", s))?;
        Ok(node_snapshot(&reply.into_inner()))
    }
}

/// The part of a Status answer the demo follows.
fn node_snapshot(s: &pb::StatusResponse) -> NodeSnapshot {
    let c = s.cluster_state.clone().unwrap_or_default();
    NodeSnapshot {
        role: Role::parse(&s.role),
        members_alive: s.members_alive,
        entry_point: c.entry_point,
        verified: c.verified,
        ha: c.ha,
        size: c.size,
        conflict: c.conflict,
    }
}

/// The client commands of the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `muster status`.
    Status,
    /// `muster members`.
    Members,
    /// `muster worker-spec`.
    WorkerSpec,
    /// `muster kubeconfig`.
    Kubeconfig,
    /// `muster leave`.
    Leave,
    /// `muster events`.
    Events,
}

/// Runs one client command and prints its result on stdout.
pub async fn run(
    command: Command,
    target: &Target,
    json: bool,
    timeout: Duration,
) -> Result<(), ClientError> {
    let mut client = connect(target, timeout).await?;
    let out = match command {
        Command::Status => {
            let s = client
                .status(pb::StatusRequest {})
                .await
                .map_err(|e| rpc_error("status", e))?
                .into_inner();
            if json {
                render::status_json(&s)
            } else {
                render::status_text(&s)
            }
        }
        Command::Members => {
            let m = client
                .members(pb::MembersRequest {})
                .await
                .map_err(|e| rpc_error("members", e))?
                .into_inner();
            if json {
                render::members_json(&m.members)
            } else {
                render::members_table(&m.members)
            }
        }
        Command::WorkerSpec => {
            client
                .worker_spec(pb::WorkerSpecRequest {})
                .await
                .map_err(|e| rpc_error("worker-spec", e))?
                .into_inner()
                .yaml
        }
        Command::Kubeconfig => {
            client
                .kubeconfig(pb::KubeconfigRequest {})
                .await
                .map_err(|e| rpc_error("kubeconfig", e))?
                .into_inner()
                .kubeconfig
        }
        Command::Leave => {
            let r = client
                .leave(pb::LeaveRequest {})
                .await
                .map_err(|e| rpc_error("leave", e))?
                .into_inner();
            format!("{}\n", r.message)
        }
        Command::Events => return follow_events(client, json).await,
    };
    print!("{out}");
    Ok(())
}

/// Prints events as they arrive until the agent closes the stream.
async fn follow_events(mut client: AgentClient<Channel>, json: bool) -> Result<(), ClientError> {
    let mut stream = client
        .watch_events(pb::WatchEventsRequest {})
        .await
        .map_err(|e| rpc_error("events", e))?
        .into_inner();
    while let Some(item) = stream.next().await {
        let event = item.map_err(|e| rpc_error("events", e))?;
        let line = if json {
            render::event_json(&event)
        } else {
            render::event_text(&event)
        };
        println!("{line}");
    }
    Ok(())
}
