//! The local channel between the `microk8s` CLI and its host's daemon.
//!
//! A unix stream socket at `DIR/sim.sock`. The CLI writes one JSON [`Request`] line; the daemon
//! answers with JSON [`Frame`] lines (stdout text, stderr text, and finally the exit code), so
//! slow commands like `join` stream their dots as they happen. Owns the wire types, the
//! blocking client used by the CLI and the daemon-side [`Output`]; the commands themselves are
//! in `ops` and `join`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::args::JoinArgs;

/// A command the CLI hands to the daemon after the local checks passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// `status`.
    Status {
        /// Output format (`pretty`, `yaml`, `short`, `short-yaml`).
        format: String,
        /// `--wait-ready`.
        wait_ready: bool,
        /// `--timeout` seconds (0 = forever).
        timeout: i64,
        /// `--addon NAME`.
        addon: Option<String>,
    },
    /// `join`.
    Join {
        /// Entry IP.
        ip: String,
        /// Entry port.
        port: u16,
        /// Token.
        token: String,
        /// Fingerprint, if given.
        fingerprint: Option<String>,
        /// `--worker`.
        worker: bool,
        /// Not `--skip-verify`.
        verify: bool,
    },
    /// `leave`.
    Leave,
    /// `remove-node NODE [--force]`.
    RemoveNode {
        /// Name or IP.
        node: String,
        /// `--force`.
        force: bool,
    },
    /// `kubectl ARGS…`.
    Kubectl {
        /// The arguments after `kubectl`.
        args: Vec<String>,
    },
}

impl Request {
    /// The join request for validated arguments.
    pub fn join(a: &JoinArgs) -> Self {
        Self::Join {
            ip: a.ip.to_string(),
            port: a.port,
            token: a.token.clone(),
            fingerprint: a.fingerprint.clone(),
            worker: a.worker,
            verify: a.verify,
        }
    }
}

/// One piece of the daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frame {
    /// Text for stdout.
    Out(String),
    /// Text for stderr.
    Err(String),
    /// The command's exit code; last frame.
    Exit(i32),
}

/// Why the CLI could not talk to its daemon.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No daemon listens on the socket.
    #[error("cannot reach the simulated host's daemon at {path}: {source}")]
    Unreachable {
        /// The socket path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The daemon went away mid-command.
    #[error("the simulated host's daemon closed the connection before the command finished")]
    Lost,
}

/// Sends `req` and copies the answer to `out` / `err` as it arrives. Returns the exit code.
pub fn call(
    socket: &Path,
    req: &Request,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, ControlError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| ControlError::Unreachable {
        path: socket.display().to_string(),
        source,
    })?;
    let mut line = serde_json::to_vec(req).map_err(|_| ControlError::Lost)?;
    line.push(b'\n');
    stream.write_all(&line).map_err(|_| ControlError::Lost)?;
    let reader = BufReader::new(stream);
    for l in reader.lines() {
        let l = l.map_err(|_| ControlError::Lost)?;
        // Broken pipes on our own stdout are the caller's business; keep draining.
        match serde_json::from_str::<Frame>(&l) {
            Ok(Frame::Out(s)) => {
                let _ = out.write_all(s.as_bytes());
                let _ = out.flush();
            }
            Ok(Frame::Err(s)) => {
                let _ = err.write_all(s.as_bytes());
                let _ = err.flush();
            }
            Ok(Frame::Exit(code)) => return Ok(code),
            Err(_) => return Err(ControlError::Lost),
        }
    }
    Err(ControlError::Lost)
}

/// The daemon side's writer for one command's output.
#[derive(Debug, Clone)]
pub struct Output {
    tx: mpsc::UnboundedSender<Frame>,
}

impl Output {
    /// An output feeding `tx`.
    pub fn new(tx: mpsc::UnboundedSender<Frame>) -> Self {
        Self { tx }
    }

    /// Writes to stdout. A CLI that went away is ignored: the command still runs to its end,
    /// as a real one would after its terminal closed.
    pub fn out(&self, s: impl Into<String>) {
        let _ = self.tx.send(Frame::Out(s.into()));
    }

    /// Writes to stderr.
    pub fn err(&self, s: impl Into<String>) {
        let _ = self.tx.send(Frame::Err(s.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_frames_round_trip_as_json_lines() {
        let r = Request::RemoveNode {
            node: "n2".into(),
            force: true,
        };
        let s = serde_json::to_string(&r).expect("json");
        assert_eq!(s, r#"{"cmd":"remove-node","node":"n2","force":true}"#);
        assert_eq!(serde_json::from_str::<Request>(&s).expect("parse"), r);
        let f = serde_json::to_string(&Frame::Exit(6)).expect("json");
        assert_eq!(f, r#"{"exit":6}"#);
    }
}
