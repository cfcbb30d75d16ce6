//! The receiving end of a `Peer.Stream`: each envelope a peer sends is completed from the
//! stream's header, handed to the mesh (decoded by [`MeshHandle::deliver`] on its way to the
//! driver), and the driver's immediate answers for that peer go back on the same stream. Once the peer has identified itself, the stream is also
//! registered as the route for everything else the driver sends to that peer
//! ([`super::routes`]), so that the pair needs no second connection. The stream ends when the
//! peer closes it, when the mesh stops (so the gRPC server's graceful shutdown never waits on
//! a peer), or with PERMISSION_DENIED when an envelope names another cluster.

use std::pin::Pin;
use std::task::{Context, Poll};

use muster_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use super::handle::{DeliverError, MeshHandle};
use super::header::{Compressor, Expander};
use super::transport::PEER_QUEUE;

/// The answers of a served stream. Queued boxed (small channel slots, as in the transport)
/// and unboxed as the server sends them.
#[derive(Debug)]
pub struct Answers(ReceiverStream<Result<Box<pb::Envelope>, Status>>);

impl Stream for Answers {
    type Item = Result<pb::Envelope, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0)
            .poll_next(cx)
            .map(|next| next.map(|answer| answer.map(|e| *e)))
    }
}

/// Serves one incoming stream received by node `local_id`: starts a task that feeds `inbound`
/// to `mesh` and returns the stream of answers.
pub fn serve<S>(mesh: MeshHandle, local_id: String, inbound: S) -> Answers
where
    S: Stream<Item = Result<pb::Envelope, Status>> + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(PEER_QUEUE);
    tokio::spawn(run(mesh, local_id, inbound, tx));
    Answers(ReceiverStream::new(rx))
}

async fn run<S>(
    mesh: MeshHandle,
    local_id: String,
    mut inbound: S,
    tx: mpsc::Sender<Result<Box<pb::Envelope>, Status>>,
) where
    S: Stream<Item = Result<pb::Envelope, Status>> + Send + Unpin + 'static,
{
    let mut expander = Expander::new(&local_id);
    let mut compressor = Compressor::default();
    // Messages the driver sends to the peer over this stream once it is registered.
    let (route_tx, mut route_rx) = mpsc::channel::<Box<pb::Envelope>>(PEER_QUEUE);
    let mut route_tx = Some(route_tx);
    let mut route_open = true;
    let mut _route = None;
    loop {
        let next = tokio::select! {
            next = inbound.next() => next,
            routed = route_rx.recv(), if route_open => {
                match routed {
                    Some(env) => {
                        let env = Box::new(compressor.compress(*env));
                        if let Err(TrySendError::Closed(_)) = tx.try_send(Ok(env)) {
                            return;
                        }
                    }
                    // A newer stream of the same peer took over the route.
                    None => route_open = false,
                }
                continue;
            }
            _ = mesh.stopped() => return,
            _ = tx.closed() => return,
        };
        let mut env = match next {
            Some(Ok(env)) => env,
            // The peer closed its half or the connection broke.
            Some(Err(_)) | None => return,
        };
        if let Err(e) = expander.expand(&mut env) {
            let _ = tx.send(Err(Status::invalid_argument(e.to_string()))).await;
            return;
        }
        compressor.set_peer(&env.from);
        let from = env.from.clone();
        let answers = match mesh.deliver(env).await {
            Ok(answers) => answers,
            Err(e @ DeliverError::WrongCluster { .. }) => {
                let _ = tx.send(Err(Status::permission_denied(e.to_string()))).await;
                return;
            }
            Err(DeliverError::Busy) => continue,
            Err(e @ DeliverError::NotRunning) => {
                let _ = tx.send(Err(Status::unavailable(e.to_string()))).await;
                return;
            }
        };
        // Registered only after the driver accepted an envelope: the peer is of our cluster.
        if let Some(route) = route_tx.take() {
            _route = Some(mesh.routes().register(&from, route));
        }
        for answer in answers {
            match tx.try_send(Ok(Box::new(compressor.compress(answer)))) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => log::debug!("answer stream stuck; answer dropped"),
                Err(TrySendError::Closed(_)) => return,
            }
        }
    }
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;
