//! Tests of the served stream against a stand-in driver.

use muster_core::membership::{Message, Payload};

use super::*;
use crate::mesh::codec;
use crate::mesh::driver::Command;
use crate::mesh::handle::test_handle;

fn ping(from: &str, target: &str, seq: u64) -> pb::Envelope {
    pb::Envelope {
        cluster: "lab".into(),
        from: from.into(),
        from_addr: "198.18.0.1:7440".into(),
        payload: Some(pb::envelope::Payload::Ping(pb::SwimPing {
            seq,
            target: target.into(),
            updates: vec![],
        })),
    }
}

fn ack(from: &str, seq: u64) -> pb::Envelope {
    pb::Envelope {
        cluster: "lab".into(),
        from: from.into(),
        from_addr: "198.18.0.2:7440".into(),
        payload: Some(pb::envelope::Payload::Ack(pb::SwimAck {
            seq,
            updates: vec![],
            view_checksum: 0,
        })),
    }
}

/// [`ack`] as the driver answers it: a core message.
fn ack_message(from: &str, seq: u64) -> Message {
    codec::decode(ack(from, seq)).expect("an ack decodes")
}

#[tokio::test]
async fn answers_go_back_on_the_stream_compressed() {
    let (handle, mut driver, _stop) = test_handle("lab");
    let (in_tx, in_rx) = mpsc::channel(8);
    let mut answers = serve(handle, "b".into(), ReceiverStream::new(in_rx));
    // The stand-in driver acks every ping with the sequence number it got.
    tokio::spawn(async move {
        while let Some(Command::Deliver { message, reply }) = driver.recv().await {
            let Payload::Ping { seq, target, .. } = message.payload else {
                continue;
            };
            assert_eq!(target, "b", "empty targets mean the receiver");
            assert_eq!(message.from, "a", "the header is inherited");
            let _ = reply.send(vec![ack_message("b", seq)]);
        }
    });
    in_tx.send(Ok(ping("a", "b", 1))).await.expect("open");
    let mut second = ping("a", "", 2);
    second.cluster.clear();
    second.from.clear();
    second.from_addr.clear();
    in_tx.send(Ok(second)).await.expect("open");
    let first = answers.next().await.expect("answer").expect("ok");
    assert_eq!(first, ack("b", 1));
    let next = answers.next().await.expect("answer").expect("ok");
    assert!(
        next.from.is_empty() && next.cluster.is_empty(),
        "header sent once"
    );
    assert!(matches!(next.payload, Some(pb::envelope::Payload::Ack(a)) if a.seq == 2));
    drop(in_tx);
    assert!(answers.next().await.is_none(), "ends when the peer closes");
}

#[tokio::test]
async fn once_the_peer_is_known_the_stream_carries_the_drivers_messages_to_it() {
    let (handle, mut driver, _stop) = test_handle("lab");
    let routes = handle.routes().clone();
    let (in_tx, in_rx) = mpsc::channel(8);
    let mut answers = serve(handle, "b".into(), ReceiverStream::new(in_rx));
    assert!(!routes.has("a"), "unknown before its first envelope");
    tokio::spawn(async move {
        while let Some(Command::Deliver { reply, .. }) = driver.recv().await {
            let _ = reply.send(vec![ack_message("b", 1)]);
        }
    });
    in_tx.send(Ok(ping("a", "b", 1))).await.expect("open");
    assert_eq!(
        answers.next().await.expect("answer").expect("ok"),
        ack("b", 1)
    );
    assert!(routes.has("a"), "registered as the way to a");
    // A probe of b's own goes to a on a's stream, with the header already sent left out.
    let mut probe = ping("b", "a", 7);
    probe.from_addr = ack("b", 0).from_addr;
    let routed = routes.try_send("a", Box::new(probe));
    assert!(routed.is_ok());
    let got = answers.next().await.expect("routed").expect("ok");
    assert!(got.from.is_empty(), "header sent once");
    assert!(matches!(got.payload, Some(pb::envelope::Payload::Ping(p)) if p.seq == 7));
    drop(in_tx);
    assert!(answers.next().await.is_none(), "ends when the peer closes");
    assert!(!routes.has("a"), "unregistered with the stream");
}

#[tokio::test]
async fn other_clusters_are_refused() {
    let (handle, _driver, _stop) = test_handle("lab");
    let (in_tx, in_rx) = mpsc::channel(8);
    let mut answers = serve(handle, "b".into(), ReceiverStream::new(in_rx));
    let mut foreign = ping("a", "b", 1);
    foreign.cluster = "other".into();
    in_tx.send(Ok(foreign)).await.expect("open");
    let status = answers
        .next()
        .await
        .expect("an answer")
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(answers.next().await.is_none());
}

#[tokio::test]
async fn a_stream_without_header_is_refused() {
    let (handle, _driver, _stop) = test_handle("lab");
    let (in_tx, in_rx) = mpsc::channel(8);
    let mut answers = serve(handle, "b".into(), ReceiverStream::new(in_rx));
    let mut bare = ping("a", "b", 1);
    bare.from.clear();
    in_tx.send(Ok(bare)).await.expect("open");
    let status = answers
        .next()
        .await
        .expect("an answer")
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn streams_end_when_the_mesh_stops() {
    let (handle, driver, stop) = test_handle("lab");
    let (_in_tx, in_rx) = mpsc::channel::<Result<pb::Envelope, Status>>(8);
    let mut answers = serve(handle, "b".into(), ReceiverStream::new(in_rx));
    drop(driver);
    stop.cancel();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(2), answers.next()).await;
    assert!(
        matches!(ended, Ok(None)),
        "the served stream must end with the mesh"
    );
}
