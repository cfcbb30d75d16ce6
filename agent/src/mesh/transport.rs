//! Sending membership messages to peers over gRPC: one lazily connected HTTP/2 channel per
//! peer address, each message one `Peer.Exchange` call whose reply carries the receiver's
//! immediate answers. Failures come back classified, so the core can tell "refused at once"
//! (a strong hint) from "no answer" (only a timeout says that).

use std::collections::HashMap;
use std::time::Duration;

use muster_proto::v1 as pb;
use pb::peer_client::PeerClient;
use tonic::transport::{Channel, Endpoint};

/// How a send ended.
#[derive(Debug)]
pub enum SendOutcome {
    /// Delivered; these envelopes are the receiver's immediate answers.
    Delivered(Vec<pb::Envelope>),
    /// Refused or unreachable at once: nothing listens there (process dead, host down with
    /// an ICMP answer). The core may probe indirectly at once.
    FailedFast(String),
    /// No answer in time, or the receiver refused the message.
    Failed(String),
}

/// Channels to peers, keyed by `IP:PORT`. Owned by the mesh driver task.
#[derive(Debug, Default)]
pub struct Transport {
    channels: HashMap<String, PeerClient<Channel>>,
}

impl Transport {
    /// A client for `addr`, created (not yet connected) on first use.
    pub fn client(&mut self, addr: &str, timeout: Duration) -> Result<PeerClient<Channel>, String> {
        if let Some(c) = self.channels.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad peer address {addr:?}: {e}"))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true);
        let client = PeerClient::new(endpoint.connect_lazy());
        self.channels.insert(addr.to_owned(), client.clone());
        Ok(client)
    }

    /// Forgets the channel to `addr` (a member that is gone for good).
    pub fn forget(&mut self, addr: &str) {
        self.channels.remove(addr);
    }

    /// How many peers have a channel.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// True when no channel exists.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

/// Sends one envelope and classifies the result.
pub async fn send(mut client: PeerClient<Channel>, envelope: pb::Envelope) -> SendOutcome {
    match client.exchange(envelope).await {
        Ok(resp) => SendOutcome::Delivered(resp.into_inner().envelopes),
        Err(status) => {
            let refused = status.code() == tonic::Code::Unavailable && is_refused(&status);
            let text = format!("{}: {}", code_name(status.code()), status.message());
            if refused {
                SendOutcome::FailedFast(text)
            } else {
                SendOutcome::Failed(text)
            }
        }
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::DeadlineExceeded => "timeout",
        tonic::Code::Cancelled => "cancelled",
        tonic::Code::PermissionDenied => "refused",
        tonic::Code::InvalidArgument => "invalid",
        _ => "error",
    }
}

/// True when the status stems from a connection that was refused or had no route.
fn is_refused(status: &tonic::Status) -> bool {
    use std::error::Error;
    let mut source: Option<&(dyn Error + 'static)> = status.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            );
        }
        source = e.source();
    }
    let m = status.message().to_ascii_lowercase();
    m.contains("connection refused") || m.contains("no route to host")
}
