//! The agent's event bus: every notable state change is logged to the journal with its
//! structured fields and broadcast to `WatchEvents` subscribers, from one call.
//!
//! Owns [`AgentEvent`], the domain value subscribers receive. Does not own its protobuf
//! form: the API's `WatchEvents` handler converts each event as it leaves the agent.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use log::Level;
use tokio::sync::broadcast;

use crate::journal::{self, Event, Field};

/// How many events a slow `WatchEvents` subscriber may fall behind before it skips ahead.
const BACKLOG: usize = 1024;

/// One notable state change, as `WatchEvents` subscribers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentEvent {
    /// When it happened, in milliseconds since the Unix epoch (0 when the clock is before it).
    pub unix_ms: u64,
    /// What happened.
    pub event: Event,
    /// The node the event is about (empty: none in particular).
    pub node: String,
    /// The journal's message, for people.
    pub message: String,
    /// The event's structured fields, keyed by their journal names (`MUSTER_ADDR`, …); the
    /// node is not repeated here.
    pub fields: BTreeMap<String, String>,
}

impl AgentEvent {
    /// An event that happens now, without fields.
    pub fn now(event: Event, node: String, message: String) -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        AgentEvent {
            unix_ms,
            event,
            node,
            message,
            fields: BTreeMap::new(),
        }
    }
}

/// Publishes events to the journal and to API subscribers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<AgentEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        EventBus {
            tx: broadcast::channel(BACKLOG).0,
        }
    }

    /// Logs `event` at `level` and broadcasts it. `node` is the node the event is about
    /// (logged as `MUSTER_PEER` when not empty).
    pub fn emit(
        &self,
        level: Level,
        event: Event,
        node: &str,
        fields: &[(Field, &str)],
        message: String,
    ) {
        let mut all: Vec<(Field, &str)> = Vec::with_capacity(fields.len() + 1);
        if !node.is_empty() {
            all.push((Field::Peer, node));
        }
        all.extend(fields.iter().filter(|(f, _)| *f != Field::Peer).copied());
        journal::log_event(level, event, &all, format_args!("{message}"));
        let mut ev = AgentEvent::now(event, node.to_owned(), message);
        ev.fields = fields
            .iter()
            .map(|(f, v)| (f.name().to_owned(), (*v).to_owned()))
            .collect();
        // No subscriber is the normal case; the journal already has the event.
        let _ = self.tx.send(ev);
    }

    /// A new subscriber that sees every event emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_receive_events_with_fields() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        bus.emit(
            Level::Info,
            Event::MemberJoined,
            "node-b",
            &[(Field::Addr, "198.18.0.2:7440")],
            "node-b joined".into(),
        );
        let ev = rx.try_recv().expect("event delivered");
        assert_eq!(ev.event.name(), "member_joined");
        assert_eq!(ev.node, "node-b");
        assert_eq!(ev.message, "node-b joined");
        assert_eq!(
            ev.fields.get("MUSTER_ADDR").map(String::as_str),
            Some("198.18.0.2:7440")
        );
        assert!(ev.unix_ms > 0);
    }
}
