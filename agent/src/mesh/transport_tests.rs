//! Tests of the per-peer streams against a real gRPC server on loopback whose mesh driver is
//! a stand-in that acks every probe.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use muster_core::membership::Payload;

use super::*;
use crate::mesh::driver::Command;
use crate::mesh::handle::{MeshHandle, test_handle};
use crate::mesh::serve;

const WAIT: Duration = Duration::from_secs(5);

struct TestPeer {
    mesh: MeshHandle,
}

#[tonic::async_trait]
impl pb::peer_server::Peer for TestPeer {
    async fn ping(
        &self,
        _: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        Err(Status::unimplemented("test"))
    }
    async fn exchange(&self, _: Request<pb::Envelope>) -> Result<Response<pb::Replies>, Status> {
        Err(Status::unimplemented("test"))
    }
    type StreamStream = serve::Answers;
    async fn stream(
        &self,
        request: Request<tonic::Streaming<pb::Envelope>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        Ok(Response::new(serve::serve(
            self.mesh.clone(),
            "b".into(),
            request.into_inner(),
        )))
    }
    async fn claim(
        &self,
        _: Request<pb::ClaimRequest>,
    ) -> Result<Response<pb::ClaimResponse>, Status> {
        Err(Status::unimplemented("test"))
    }
    async fn request_join(
        &self,
        _: Request<pb::JoinRequestMsg>,
    ) -> Result<Response<pb::JoinResponseMsg>, Status> {
        Err(Status::unimplemented("test"))
    }
    async fn report_join(
        &self,
        _: Request<pb::JoinReportMsg>,
    ) -> Result<Response<pb::JoinReportAck>, Status> {
        Err(Status::unimplemented("test"))
    }
    async fn request_removal(
        &self,
        _: Request<pb::RemovalRequest>,
    ) -> Result<Response<pb::RemovalResponse>, Status> {
        Err(Status::unimplemented("test"))
    }
}

/// A running test server: node "b" of cluster "lab".
struct TestServer {
    stop: CancellationToken,
    mesh_stopped: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    async fn start(listener: TcpListener) -> Self {
        let (mesh, mut driver, mesh_stopped) = test_handle(CLUSTER);
        tokio::spawn(async move {
            while let Some(cmd) = driver.recv().await {
                if let Command::Deliver { message, reply } = cmd
                    && let Payload::Ping { seq, target, .. } = message.payload
                {
                    assert_eq!(target, "b");
                    let _ = reply.send(vec![ack(seq)]);
                }
            }
        });
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            Server::builder()
                .add_service(pb::peer_server::PeerServer::new(TestPeer { mesh }))
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), until.cancelled())
                .await
                .expect("test server runs");
        });
        TestServer {
            stop,
            mesh_stopped,
            task,
        }
    }

    /// Stops like the agent does: server and mesh at once; must not hang on open streams.
    async fn stop(self) {
        self.stop.cancel();
        self.mesh_stopped.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("graceful shutdown does not wait on peer streams")
            .expect("server task");
    }
}

/// The cluster of every node in these tests.
const CLUSTER: &str = "lab";

fn ping(seq: u64) -> Message {
    Message {
        from: "a".into(),
        from_addr: "127.0.0.1:1".into(),
        payload: Payload::Ping {
            seq,
            target: "b".into(),
            updates: vec![],
        },
    }
}

fn ack(seq: u64) -> Message {
    Message {
        from: "b".into(),
        from_addr: "127.0.0.1:2".into(),
        payload: Payload::Ack {
            seq,
            updates: vec![],
            view_checksum: 0,
        },
    }
}

async fn next_event(events: &mut mpsc::Receiver<TransportEvent>) -> TransportEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("transport alive")
}

async fn expect_ack(events: &mut mpsc::Receiver<TransportEvent>, seq: u64) {
    match next_event(events).await {
        TransportEvent::Received(msg) => assert_eq!(msg, ack(seq), "header restored"),
        other => panic!("expected ack {seq}, got {other:?}"),
    }
}

fn transport(tracker: &TaskTracker) -> (Transport, mpsc::Receiver<TransportEvent>) {
    let (tx, rx) = mpsc::channel(64);
    (
        Transport::new(
            "a".into(),
            CLUSTER.into(),
            crate::mesh::routes::Routes::default(),
            tx,
            Duration::from_secs(2),
            tracker.clone(),
        ),
        rx,
    )
}

#[tokio::test]
async fn acks_come_back_on_the_stream_and_it_reopens_after_a_restart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = TestServer::start(listener).await;
    let tracker = TaskTracker::new();
    let (mut t, mut events) = transport(&tracker);
    for seq in 1..=3 {
        t.send("b".into(), &addr, &ping(seq)).expect("queued");
        expect_ack(&mut events, seq).await;
    }
    assert_eq!(t.len(), 1, "one stream per peer");
    server.stop().await;
    // The restarted peer listens on the same address; the next message reconnects.
    let listener = TcpListener::bind(&addr).await.expect("rebind");
    let server = TestServer::start(listener).await;
    let mut acked = false;
    for seq in 10..20 {
        t.send("b".into(), &addr, &ping(seq)).expect("queued");
        match next_event(&mut events).await {
            TransportEvent::Received(msg) => {
                assert_eq!(msg, ack(seq));
                acked = true;
                break;
            }
            // The message that found the old stream broken may be lost or refused.
            TransportEvent::Failed { to, .. } => assert_eq!(to, "b"),
            TransportEvent::Rejected { from, reason } => {
                panic!("the answer from {from} was rejected: {reason}")
            }
        }
    }
    assert!(acked, "the stream reopened after the restart");
    t.forget("b", &addr);
    tracker.close();
    tokio::time::timeout(WAIT, tracker.wait())
        .await
        .expect("forgotten streams end");
    server.stop().await;
}

#[tokio::test]
async fn a_member_that_opened_a_stream_to_us_is_sent_to_over_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let tracker = TaskTracker::new();
    let routes = crate::mesh::routes::Routes::default();
    let (events_tx, _events) = mpsc::channel(64);
    // Node "c" first opens its own stream to "b" (nothing listens; it keeps retrying).
    let mut t = Transport::new(
        "c".into(),
        CLUSTER.into(),
        routes.clone(),
        events_tx,
        Duration::from_secs(2),
        tracker.clone(),
    );
    t.send("b".into(), &addr, &ping(1)).expect("queued");
    assert_eq!(t.len(), 1);
    // Then "b" opens one to "c": "c" has the higher id, so it gives its own up and uses b's.
    let (route_tx, mut route_rx) = mpsc::channel(8);
    let guard = routes.register("b", route_tx);
    t.send("b".into(), &addr, &ping(2)).expect("queued");
    assert_eq!(t.len(), 0, "c's own stream is closed");
    assert_eq!(
        route_rx.try_recv().expect("on b's stream").payload,
        codec::encode(CLUSTER, &ping(2)).payload
    );
    // When b's stream ends, c opens its own again.
    drop(guard);
    t.send("b".into(), &addr, &ping(3)).expect("queued");
    assert_eq!(t.len(), 1);
}

#[tokio::test]
async fn the_lower_id_keeps_its_own_stream_when_both_exist() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = TestServer::start(listener).await;
    let tracker = TaskTracker::new();
    let routes = crate::mesh::routes::Routes::default();
    let (events_tx, mut events) = mpsc::channel(64);
    let mut t = Transport::new(
        "a".into(),
        CLUSTER.into(),
        routes.clone(),
        events_tx,
        Duration::from_secs(2),
        tracker.clone(),
    );
    t.send("b".into(), &addr, &ping(1)).expect("queued");
    expect_ack(&mut events, 1).await;
    let (route_tx, mut route_rx) = mpsc::channel(8);
    let _guard = routes.register("b", route_tx);
    t.send("b".into(), &addr, &ping(2)).expect("queued");
    expect_ack(&mut events, 2).await;
    assert_eq!(t.len(), 1);
    assert!(route_rx.try_recv().is_err(), "b's stream was not used");
    server.stop().await;
}

#[tokio::test]
async fn a_refused_connection_fails_fast_once_per_member() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let tracker = TaskTracker::new();
    let (mut t, mut events) = transport(&tracker);
    t.send("b".into(), &addr, &ping(1)).expect("queued");
    match next_event(&mut events).await {
        TransportEvent::Failed {
            to,
            outcome: SendOutcome::FailedFast(_),
        } => assert_eq!(to, "b"),
        other => panic!("expected a fast failure, got {other:?}"),
    }
    // The next message tries again (a peer may come back).
    t.send("b".into(), &addr, &ping(2)).expect("queued");
    assert!(matches!(
        next_event(&mut events).await,
        TransportEvent::Failed {
            outcome: SendOutcome::FailedFast(_),
            ..
        }
    ));
}

#[tokio::test]
async fn a_stuck_peer_fills_its_queue_without_blocking() {
    // Accepts TCP but never speaks HTTP/2: the stream never opens.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let _hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let tracker = TaskTracker::new();
    let (mut t, _events) = transport(&tracker);
    let mut full = 0;
    for seq in 0..(3 * PEER_QUEUE as u64) {
        match t.send("b".into(), &addr, &ping(seq)) {
            Ok(()) => {}
            Err(SendError::QueueFull(_)) => full += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(full >= PEER_QUEUE, "{full} messages dropped");
}

#[test]
fn bad_addresses_are_refused_before_any_task_starts() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tracker = TaskTracker::new();
        let (mut t, _events) = transport(&tracker);
        let err = t.send("b".into(), "not an address\n", &ping(1));
        assert!(matches!(err, Err(SendError::BadAddress { .. })));
        assert!(t.is_empty());
    });
}

#[test]
fn answers_of_another_cluster_or_that_do_not_decode_are_rejected() {
    match answer_event(CLUSTER, codec::encode(CLUSTER, &ack(1))) {
        TransportEvent::Received(msg) => assert_eq!(msg, ack(1)),
        other => panic!("expected the ack, got {other:?}"),
    }
    match answer_event(CLUSTER, codec::encode("other", &ack(1))) {
        TransportEvent::Rejected { from, reason } => {
            assert_eq!(from, "b");
            assert_eq!(reason, InboundError::OtherCluster);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let mut empty = codec::encode(CLUSTER, &ack(1));
    empty.payload = None;
    match answer_event(CLUSTER, empty) {
        TransportEvent::Rejected { from, reason } => {
            assert_eq!(from, "b");
            assert_eq!(
                reason,
                InboundError::Undecodable(DecodeError::NoPayload("b".into()))
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}
