//! The handle through which the rest of the agent reaches the mesh driver.
//!
//! Owns the wire end of a delivery: [`MeshHandle::deliver`] takes the protobuf envelope the
//! `Peer` service received (one `Exchange` call, or one message of a served stream), refuses
//! another cluster's, decodes it to a core [`Message`] and encodes the driver's immediate
//! answers back to envelopes, so that the driver's inbox carries only domain values. An
//! envelope that does not decode is handed to the driver as a rejection, because the driver
//! alone keeps the journal's rate limit for rejected messages.
//!
//! [`Message`]: muster_core::membership::Message
//!
//! Does not own the driver's state: every other method sends a command or reads the view the
//! driver publishes.

use std::collections::BTreeMap;
use std::time::Duration;

use muster_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::codec;
use super::driver::{Command, MeshView};
use super::routes::Routes;
use crate::discovery::DiscoveryEvent;

/// Longest time the `Peer` service waits for the driver to answer one envelope.
const DELIVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the mesh could not take an envelope.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The envelope names another cluster.
    #[error("this agent belongs to cluster {ours:?}, not {theirs:?}")]
    WrongCluster {
        /// Our cluster.
        ours: String,
        /// The sender's.
        theirs: String,
    },
    /// The mesh is not running (starting or stopped).
    #[error("the membership mesh is not running")]
    NotRunning,
    /// The driver did not answer in time.
    #[error("the membership mesh did not answer in time")]
    Busy,
}

/// A cheap handle to the running mesh.
#[derive(Clone, Debug)]
pub struct MeshHandle {
    tx: mpsc::Sender<Command>,
    cluster: String,
    stopped: CancellationToken,
    routes: Routes,
    view: watch::Receiver<MeshView>,
}

impl MeshHandle {
    /// The handle of a driver reading `tx`, in `cluster`, that cancels `stopped` when it
    /// returns and publishes on `view`.
    pub(super) fn new(
        tx: mpsc::Sender<Command>,
        cluster: String,
        stopped: CancellationToken,
        routes: Routes,
        view: watch::Receiver<MeshView>,
    ) -> Self {
        MeshHandle {
            tx,
            cluster,
            stopped,
            routes,
            view,
        }
    }

    /// The membership view, updated by the mesh driver (its only writer) on every change.
    pub fn view(&self) -> watch::Receiver<MeshView> {
        self.view.clone()
    }

    /// Hands an envelope from a peer to the core and returns its immediate answers.
    pub async fn deliver(&self, envelope: pb::Envelope) -> Result<Vec<pb::Envelope>, DeliverError> {
        if envelope.cluster != self.cluster {
            return Err(DeliverError::WrongCluster {
                ours: self.cluster.clone(),
                theirs: envelope.cluster,
            });
        }
        let from = envelope.from.clone();
        let message = match codec::decode(envelope) {
            Ok(message) => message,
            Err(reason) => {
                // Accepted but useless: no answers, and the driver logs it (rate-limited).
                self.tx
                    .send(Command::Rejected { from, reason })
                    .await
                    .map_err(|_| DeliverError::NotRunning)?;
                return Ok(Vec::new());
            }
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Deliver { message, reply })
            .await
            .map_err(|_| DeliverError::NotRunning)?;
        match tokio::time::timeout(DELIVER_TIMEOUT, rx).await {
            Ok(Ok(answers)) => Ok(answers
                .iter()
                .map(|m| codec::encode(&self.cluster, m))
                .collect()),
            Ok(Err(_)) => Err(DeliverError::NotRunning),
            Err(_) => Err(DeliverError::Busy),
        }
    }

    /// The registry where served streams offer themselves as the way to their opener.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Resolves once the driver has stopped.
    pub async fn stopped(&self) {
        self.stopped.cancelled().await;
    }

    /// Passes a discovery event to the core.
    pub async fn discovered(&self, event: DiscoveryEvent) {
        // A stopped mesh has no use for hints.
        let _ = self.tx.send(Command::Discovery(event)).await;
    }

    /// Publishes free-form metadata fields of this node, merged over the current ones.
    pub async fn set_fields(&self, fields: BTreeMap<String, String>) {
        let _ = self.tx.send(Command::SetFields(fields)).await;
    }
}

/// A handle whose driver is the test: it receives the commands, and cancelling the token
/// stands for the driver stopping.
#[cfg(test)]
pub(crate) fn test_handle(
    cluster: &str,
) -> (MeshHandle, mpsc::Receiver<Command>, CancellationToken) {
    let (handle, rx, stopped, _) =
        test_handle_with_view(cluster, super::driver::test_member("local"));
    (handle, rx, stopped)
}

/// Like [`test_handle`], with the view's writer, so that the test plays the mesh's view too.
#[cfg(test)]
pub(crate) fn test_handle_with_view(
    cluster: &str,
    local: muster_core::membership::Member,
) -> (
    MeshHandle,
    mpsc::Receiver<Command>,
    CancellationToken,
    watch::Sender<MeshView>,
) {
    let (tx, rx) = mpsc::channel(16);
    let stopped = CancellationToken::new();
    let (view_tx, view) = watch::channel(MeshView::empty(local));
    let handle = MeshHandle::new(
        tx,
        cluster.to_owned(),
        stopped.clone(),
        Routes::default(),
        view,
    );
    (handle, rx, stopped, view_tx)
}

#[cfg(test)]
mod tests {
    use muster_core::membership::{Message, Payload};

    use super::*;

    fn ping() -> Message {
        Message {
            from: "a".into(),
            from_addr: "198.18.0.1:7440".into(),
            payload: Payload::Ping {
                seq: 1,
                target: "b".into(),
                updates: vec![],
            },
        }
    }

    #[tokio::test]
    async fn the_driver_gets_core_messages_and_its_answers_leave_as_envelopes() {
        let (handle, mut driver, _stop) = test_handle("lab");
        let envelope = codec::encode("lab", &ping());
        let answer = Message {
            from: "b".into(),
            from_addr: "198.18.0.2:7440".into(),
            payload: Payload::Nack { seq: 1 },
        };
        let sent = answer.clone();
        tokio::spawn(async move {
            if let Some(Command::Deliver { message, reply }) = driver.recv().await {
                assert_eq!(message, ping(), "decoded before the driver");
                let _ = reply.send(vec![sent]);
            }
        });
        let answers = handle.deliver(envelope).await.expect("delivered");
        assert_eq!(answers, vec![codec::encode("lab", &answer)]);
    }

    #[tokio::test]
    async fn an_envelope_that_does_not_decode_reaches_the_driver_as_a_rejection() {
        let (handle, mut driver, _stop) = test_handle("lab");
        let mut envelope = codec::encode("lab", &ping());
        envelope.payload = None;
        let answers = handle.deliver(envelope).await.expect("accepted");
        assert!(answers.is_empty(), "nothing to answer");
        match driver.try_recv() {
            Ok(Command::Rejected { from, reason }) => {
                assert_eq!(from, "a");
                assert_eq!(reason, codec::DecodeError::NoPayload("a".into()));
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn another_clusters_envelope_is_refused_before_the_driver() {
        let (handle, mut driver, _stop) = test_handle("lab");
        let envelope = codec::encode("other", &ping());
        let refused = handle.deliver(envelope).await;
        assert!(matches!(
            refused,
            Err(DeliverError::WrongCluster { ours, theirs }) if ours == "lab" && theirs == "other"
        ));
        assert!(driver.try_recv().is_err(), "the driver never sees it");
    }
}
