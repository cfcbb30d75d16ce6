//! Reverse routes: sending to a member over the stream that member opened to us, so that two
//! agents share one connection instead of one in each direction.
//!
//! Owns: [`Routes`], the registry of served streams by the member that opened them, and the
//! rule for pairs that opened streams both ways ([`Routes::yields_to`]).
//! Does not own: the streams themselves (the served end lives in `serve`, the opening end in
//! `transport`).
//!
//! Every member keeps a stream with every other, so per-connection state (HTTP/2 buffers,
//! tasks) is most of an agent's heap; halving the connections halves it. When both agents of
//! a pair open a stream at once (a simultaneous start), the one with the higher node id gives
//! its own up as soon as it has the other's: the lower id never does, so the pair settles on
//! exactly one connection without a handshake.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use muster_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// Sender into a served stream's outgoing half.
pub type RouteSender = mpsc::Sender<Box<pb::Envelope>>;

#[derive(Debug)]
struct Route {
    id: u64,
    tx: RouteSender,
}

/// The served streams by the member id that opened them. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct Routes {
    inner: Arc<Mutex<HashMap<String, Route>>>,
    next_id: Arc<AtomicU64>,
}

/// Why [`Routes::try_send`] did not queue a message.
#[derive(Debug)]
pub enum RouteError {
    /// No open stream from that member; the message comes back for another way.
    NoRoute(Box<pb::Envelope>),
    /// The stream's queue is full; the message is dropped.
    Full,
}

/// Unregisters its route when dropped (the served stream ended), unless a newer stream of the
/// same member replaced it meanwhile.
#[derive(Debug)]
pub struct RouteGuard {
    routes: Routes,
    peer: String,
    id: u64,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        let mut map = self.routes.lock();
        if map.get(&self.peer).is_some_and(|r| r.id == self.id) {
            map.remove(&self.peer);
        }
    }
}

impl Routes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Route>> {
        // The map stays consistent whatever panicked while holding it: every update is one call.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the stream that `peer` opened (fed by `tx`) the way to send to `peer`; the newest
    /// stream of a member wins (the older one is from before its restart).
    pub fn register(&self, peer: &str, tx: RouteSender) -> RouteGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(peer.to_owned(), Route { id, tx });
        RouteGuard {
            routes: self.clone(),
            peer: peer.to_owned(),
            id,
        }
    }

    /// Whether `peer` has an open stream to us.
    pub fn has(&self, peer: &str) -> bool {
        self.lock().get(peer).is_some_and(|r| !r.tx.is_closed())
    }

    /// Queues `envelope` on the stream `peer` opened, without waiting.
    pub fn try_send(&self, peer: &str, envelope: Box<pb::Envelope>) -> Result<(), RouteError> {
        let mut map = self.lock();
        let Some(route) = map.get(peer) else {
            return Err(RouteError::NoRoute(envelope));
        };
        match route.tx.try_send(envelope) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(RouteError::Full),
            Err(TrySendError::Closed(envelope)) => {
                map.remove(peer);
                Err(RouteError::NoRoute(envelope))
            }
        }
    }

    /// Drops the route of a member that failed or left: whatever it opened before is stale,
    /// and the next message to it should find out afresh whether it answers.
    pub fn forget(&self, peer: &str) {
        self.lock().remove(peer);
    }

    /// True when `local` should give up its own stream to `peer` for the one `peer` opened:
    /// the higher node id yields.
    pub fn yields_to(local: &str, peer: &str) -> bool {
        local > peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(from: &str) -> Box<pb::Envelope> {
        Box::new(pb::Envelope {
            from: from.into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_registered_stream_carries_messages_until_its_guard_drops() {
        let routes = Routes::default();
        let (tx, mut rx) = mpsc::channel(2);
        let guard = routes.register("b", tx);
        assert!(routes.has("b"));
        assert!(routes.try_send("b", env("a")).is_ok());
        assert_eq!(rx.try_recv().expect("queued").from, "a");
        drop(guard);
        assert!(!routes.has("b"));
        assert!(matches!(
            routes.try_send("b", env("a")),
            Err(RouteError::NoRoute(e)) if e.from == "a"
        ));
    }

    #[test]
    fn a_newer_stream_replaces_the_older_and_survives_the_older_guard() {
        let routes = Routes::default();
        let (old_tx, _old_rx) = mpsc::channel(2);
        let (new_tx, mut new_rx) = mpsc::channel(2);
        let old = routes.register("b", old_tx);
        let _new = routes.register("b", new_tx);
        drop(old);
        assert!(routes.try_send("b", env("a")).is_ok());
        assert!(new_rx.try_recv().is_ok());
    }

    #[test]
    fn a_full_stream_drops_and_a_closed_one_gives_the_message_back() {
        let routes = Routes::default();
        let (tx, rx) = mpsc::channel(1);
        let _guard = routes.register("b", tx);
        assert!(routes.try_send("b", env("1")).is_ok());
        assert!(matches!(
            routes.try_send("b", env("2")),
            Err(RouteError::Full)
        ));
        drop(rx);
        assert!(!routes.has("b"));
        assert!(matches!(
            routes.try_send("b", env("3")),
            Err(RouteError::NoRoute(e)) if e.from == "3"
        ));
        routes.forget("b");
        assert!(!routes.has("b"));
    }

    #[test]
    fn only_the_higher_id_yields() {
        assert!(Routes::yields_to("node-b", "node-a"));
        assert!(!Routes::yields_to("node-a", "node-b"));
    }
}
