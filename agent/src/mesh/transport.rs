//! Sending membership messages to peers: one long-lived `Peer.Stream` per peer address, opened
//! lazily by the first message for that address and reopened by the next message after it
//! broke (a peer restart). Each message is one HTTP/2 DATA frame; what the peer answers on the
//! stream comes back as [`TransportEvent::Received`]. A connection that is refused or reset
//! comes back as [`SendOutcome::FailedFast`] (the core may probe indirectly at once); a message
//! that gets no answer is simply lost (only the core's timeout says that).
//!
//! A member that opened a stream to us is sent to over that stream instead (a reverse route,
//! see [`super::routes`]), so a pair of agents shares one connection.
//!
//! Per-peer queues are bounded and [`Transport::send`] never waits: a full queue drops the
//! message. The server side of the stream lives in [`super::serve`].
//!
//! The transport is wire code: it owns the cluster name, encodes the core messages it is
//! given and decodes what comes back, so the driver sends and receives core [`Message`]s
//! only. An answer of another cluster, or one that does not decode, reaches the driver as
//! [`TransportEvent::Rejected`] (the driver keeps the journal's rate limit for those).

use std::collections::HashMap;
use std::time::Duration;

use muster_proto::v1 as pb;
use pb::peer_client::PeerClient;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::task::TaskTracker;
use tonic::transport::Endpoint;

use super::codec::{self, DecodeError};
use super::header::{Compressor, Expander};
use super::routes::{RouteError, Routes};
use muster_core::membership::Message;

/// Messages one peer's queue holds (both before the stream and inside it) before dropping.
pub const PEER_QUEUE: usize = 64;

/// How a send failed.
#[derive(Debug)]
pub enum SendOutcome {
    /// Refused or reset at once: nothing listens there (process dead, host down with an ICMP
    /// answer). The core may probe indirectly at once.
    FailedFast(String),
    /// No answer in time, or the receiver refused the stream.
    Failed(String),
}

/// What the per-peer streams report to the driver.
#[derive(Debug)]
pub enum TransportEvent {
    /// A peer sent this on one of our streams (decoded, its header already filled in).
    Received(Message),
    /// A peer sent something on one of our streams that cannot reach the core.
    Rejected {
        /// The sender the envelope names.
        from: String,
        /// Why it was dropped.
        reason: InboundError,
    },
    /// Sending to member `to` failed.
    Failed {
        /// The member the failed message was for.
        to: String,
        /// How it failed.
        outcome: SendOutcome,
    },
}

/// Why an envelope a peer sent on one of our streams was dropped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// It names another cluster.
    #[error("reply from another cluster")]
    OtherCluster,
    /// It does not decode to a core message.
    #[error(transparent)]
    Undecodable(#[from] DecodeError),
}

/// Why [`Transport::send`] did not queue a message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The address cannot be turned into an endpoint.
    #[error("bad peer address {addr:?}: {why}")]
    BadAddress {
        /// The address.
        addr: String,
        /// What was wrong.
        why: String,
    },
    /// The peer's queue is full (its stream is slow or stuck); the message is dropped.
    #[error("the queue to {0} is full; message dropped")]
    QueueFull(String),
}

/// Boxed in the queues: a tokio channel allocates its slots 32 at a time, and an agent keeps
/// three queues per member; with the 152-byte envelope inline they cost 0.2 MB of heap at
/// N = 20 (about a tenth of it).
struct Outgoing {
    to: String,
    envelope: Box<pb::Envelope>,
}

/// Streams to peers, keyed by `IP:PORT`. Owned by the mesh driver task; the stream tasks run
/// on its task tracker and end once the transport forgets them or is dropped.
#[derive(Debug)]
pub struct Transport {
    local_id: String,
    cluster: String,
    routes: Routes,
    peers: HashMap<String, mpsc::Sender<Outgoing>>,
    events: mpsc::Sender<TransportEvent>,
    timeout: Duration,
    queue: usize,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing").field("to", &self.to).finish()
    }
}

impl Transport {
    /// The transport of node `local_id` of `cluster`, reporting to `events` and sending over
    /// the streams peers opened to us where `routes` has one; `timeout` bounds connecting and
    /// opening a stream.
    pub fn new(
        local_id: String,
        cluster: String,
        routes: Routes,
        events: mpsc::Sender<TransportEvent>,
        timeout: Duration,
        tracker: TaskTracker,
    ) -> Self {
        Transport {
            local_id,
            cluster,
            routes,
            peers: HashMap::new(),
            events,
            timeout,
            queue: PEER_QUEUE,
            tracker,
        }
    }

    /// Queues `msg` for member `to` at `addr`: on our stream to it, else on the stream it
    /// opened to us, else on a new stream of ours.
    pub fn send(&mut self, to: String, addr: &str, msg: &Message) -> Result<(), SendError> {
        let envelope = Box::new(codec::encode(&self.cluster, msg));
        if self.peers.contains_key(addr)
            && Routes::yields_to(&self.local_id, &to)
            && self.routes.has(&to)
        {
            // We both opened one: ours goes (the peer's task ends once its queue is dropped).
            self.peers.remove(addr);
        }
        if let Some(tx) = self.peers.get(addr) {
            match tx.try_send(Outgoing { to, envelope }) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(_)) => return Err(SendError::QueueFull(addr.to_owned())),
                // The stream task is gone (it only ends when forgotten, so this is a
                // leftover): start a new one.
                Err(TrySendError::Closed(m)) => return self.open(m.to, addr, m.envelope),
            }
        }
        match self.routes.try_send(&to, envelope) {
            Ok(()) => Ok(()),
            Err(RouteError::Full) => Err(SendError::QueueFull(addr.to_owned())),
            Err(RouteError::NoRoute(envelope)) => self.open(to, addr, envelope),
        }
    }

    /// Starts a stream task for `addr` with `envelope` as its first message.
    fn open(
        &mut self,
        to: String,
        addr: &str,
        envelope: Box<pb::Envelope>,
    ) -> Result<(), SendError> {
        let msg = Outgoing { to, envelope };
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| SendError::BadAddress {
                addr: addr.to_owned(),
                why: e.to_string(),
            })?
            .connect_timeout(self.timeout)
            .tcp_nodelay(true);
        let (tx, rx) = mpsc::channel(self.queue);
        // A fresh channel has room.
        let _ = tx.try_send(msg);
        let peer = PeerTask {
            endpoint,
            cluster: self.cluster.clone(),
            rx,
            events: self.events.clone(),
            timeout: self.timeout,
            queue: self.queue,
        };
        self.tracker.spawn(peer.run());
        self.peers.insert(addr.to_owned(), tx);
        Ok(())
    }

    /// Closes the stream to member `id` at `addr` and drops its route (a member that is gone).
    pub fn forget(&mut self, id: &str, addr: &str) {
        self.peers.remove(addr);
        self.routes.forget(id);
    }

    /// How many peers have a stream task.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when no stream task exists.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

/// How one connection to a peer ended.
enum SessionEnd {
    /// The transport forgot the peer: stop.
    Forgotten,
    /// The stream broke or could not open: reconnect on the next message.
    Broken,
}

/// One peer's stream, across reconnects.
struct PeerTask {
    endpoint: Endpoint,
    /// Answers must name this cluster.
    cluster: String,
    rx: mpsc::Receiver<Outgoing>,
    events: mpsc::Sender<TransportEvent>,
    timeout: Duration,
    queue: usize,
}

impl PeerTask {
    async fn run(mut self) {
        loop {
            // Lazy: connect only when there is something to say.
            let Some(first) = self.rx.recv().await else {
                return;
            };
            match self.session(first).await {
                SessionEnd::Forgotten => return,
                SessionEnd::Broken => {}
            }
        }
    }

    async fn fail(&self, to: String, outcome: SendOutcome) -> bool {
        self.events
            .send(TransportEvent::Failed { to, outcome })
            .await
            .is_ok()
    }

    /// Reports the failure for `first` and for everything queued behind it (once per
    /// member), so that a dead peer costs one connection attempt per burst, not per message.
    async fn fail_queued(&mut self, first: String, why: impl Fn() -> SendOutcome) {
        let mut seen = vec![first];
        while let Ok(m) = self.rx.try_recv() {
            if !seen.contains(&m.to) {
                seen.push(m.to);
            }
        }
        for to in seen {
            if !self.fail(to, why()).await {
                return;
            }
        }
    }

    async fn session(&mut self, first: Outgoing) -> SessionEnd {
        let channel = match tokio::time::timeout(self.timeout, self.endpoint.connect()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let fast = is_refused(&e);
                let text = format!("connect: {e}");
                self.fail_queued(first.to, || outcome(fast, text.clone()))
                    .await;
                return SessionEnd::Broken;
            }
            Err(_) => {
                self.fail_queued(first.to, || SendOutcome::Failed("connect timed out".into()))
                    .await;
                return SessionEnd::Broken;
            }
        };
        let mut expander = Expander::new(&first.envelope.from);
        let mut compressor = Compressor::default();
        let (stx, srx) = mpsc::channel(self.queue);
        let mut last_to = first.to;
        let _ = stx.try_send(Box::new(compressor.compress(*first.envelope)));
        let mut client = PeerClient::new(channel);
        let opened = tokio::time::timeout(
            self.timeout,
            client.stream(ReceiverStream::new(srx).map(|e| *e)),
        );
        let mut inbound = match opened.await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                let (fast, text) = classify(&status);
                self.fail_queued(last_to, || outcome(fast, text.clone()))
                    .await;
                return SessionEnd::Broken;
            }
            Err(_) => {
                self.fail_queued(last_to, || {
                    SendOutcome::Failed("stream open timed out".into())
                })
                .await;
                return SessionEnd::Broken;
            }
        };
        loop {
            tokio::select! {
                m = self.rx.recv() => match m {
                    Some(m) => {
                        last_to = m.to;
                        if let Err(TrySendError::Full(_)) = stx.try_send(Box::new(compressor.compress(*m.envelope))) {
                            log::debug!("stream to {last_to} is stuck; message dropped");
                        }
                    }
                    None => {
                        // Close our half and give the peer a moment to see the last messages
                        // (a `left`) and close its half.
                        drop(stx);
                        let drain = async { while inbound.next().await.is_some() {} };
                        let _ = tokio::time::timeout(self.timeout, drain).await;
                        return SessionEnd::Forgotten;
                    }
                },
                r = inbound.next() => match r {
                    Some(Ok(mut env)) => {
                        if let Err(e) = expander.expand(&mut env) {
                            log::debug!("reply from {last_to} dropped: {e}");
                            continue;
                        }
                        compressor.set_peer(&env.from);
                        if self.events.send(answer_event(&self.cluster, env)).await.is_err() {
                            return SessionEnd::Forgotten;
                        }
                    }
                    // The peer ended the stream (it is stopping): reconnect when needed.
                    None => return SessionEnd::Broken,
                    Some(Err(status)) => {
                        let (fast, text) = classify(&status);
                        if !self.fail(last_to, outcome(fast, text)).await {
                            return SessionEnd::Forgotten;
                        }
                        return SessionEnd::Broken;
                    }
                },
            }
        }
    }
}

/// An answer of a peer (its header filled in) as the driver takes it.
fn answer_event(cluster: &str, env: pb::Envelope) -> TransportEvent {
    if env.cluster != cluster {
        return TransportEvent::Rejected {
            from: env.from,
            reason: InboundError::OtherCluster,
        };
    }
    let from = env.from.clone();
    match codec::decode(env) {
        Ok(msg) => TransportEvent::Received(msg),
        Err(e) => TransportEvent::Rejected {
            from,
            reason: e.into(),
        },
    }
}

fn outcome(fast: bool, text: String) -> SendOutcome {
    if fast {
        SendOutcome::FailedFast(text)
    } else {
        SendOutcome::Failed(text)
    }
}

/// (refused at once?, text) of a failed call.
fn classify(status: &tonic::Status) -> (bool, String) {
    let fast = match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal => {
            is_refused(status) || message_says_refused(status.message())
        }
        _ => false,
    };
    (
        fast,
        format!("{}: {}", code_name(status.code()), status.message()),
    )
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

/// True when the error stems from a connection that was refused, reset or had no route.
fn is_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            );
        }
        source = e.source();
    }
    message_says_refused(&error.to_string())
}

fn message_says_refused(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.contains("connection refused")
        || m.contains("no route to host")
        || m.contains("connection reset")
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
