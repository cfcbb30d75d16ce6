//! Logging: the one vocabulary of structured fields and event names, and the logger that
//! writes them to the systemd journal (when stderr is connected to it) or as readable lines on
//! stderr.
//!
//! Every structured log line goes through [`log_event`] with an [`Event`] and [`Field`]s from
//! this module, so that `journalctl -u muster MUSTER_EVENT=node_joined` keeps working as the
//! code grows. Join tokens and secrets are never passed here.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use log::kv::{Key, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};

/// Journal field names (uppercase, as journald requires), decided once here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// What happened: one of [`Event`]'s names.
    Event,
    /// The peer (node name or id) the event is about.
    Peer,
    /// This node's role after the event.
    Role,
    /// A network address (`IP:PORT` or a socket path).
    Addr,
    /// The cluster name.
    Cluster,
    /// An election term.
    Term,
    /// An attempt counter for retried work.
    Attempt,
    /// A process exit code.
    ExitCode,
    /// A command line, with tokens redacted.
    Command,
    /// An error's description.
    Error,
    /// A config file path.
    Config,
    /// A member status (alive, suspect, dead, left).
    Status,
    /// A duration in milliseconds.
    DurationMs,
    /// A member's SWIM incarnation number.
    Incarnation,
}

impl Field {
    /// The journal field name.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Event => "MUSTER_EVENT",
            Field::Peer => "MUSTER_PEER",
            Field::Role => "MUSTER_ROLE",
            Field::Addr => "MUSTER_ADDR",
            Field::Cluster => "MUSTER_CLUSTER",
            Field::Term => "MUSTER_TERM",
            Field::Attempt => "MUSTER_ATTEMPT",
            Field::ExitCode => "MUSTER_EXIT_CODE",
            Field::Command => "MUSTER_COMMAND",
            Field::Error => "MUSTER_ERROR",
            Field::Config => "MUSTER_CONFIG",
            Field::Status => "MUSTER_STATUS",
            Field::DurationMs => "MUSTER_DURATION_MS",
            Field::Incarnation => "MUSTER_INCARNATION",
        }
    }

    /// Every field, for documentation and tests.
    pub const ALL: [Field; 14] = [
        Field::Event,
        Field::Peer,
        Field::Role,
        Field::Addr,
        Field::Cluster,
        Field::Term,
        Field::Attempt,
        Field::ExitCode,
        Field::Command,
        Field::Error,
        Field::Config,
        Field::Status,
        Field::DurationMs,
        Field::Incarnation,
    ];
}

/// Event names (values of `MUSTER_EVENT` and of the API's `Event.event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// The agent started with a valid config.
    AgentStarted,
    /// The API listens on an address.
    Listening,
    /// The agent is draining its tasks.
    AgentStopping,
    /// The agent finished draining.
    AgentStopped,
    /// A leave was requested through the API.
    LeaveRequested,
    /// A member appeared in the mesh.
    MemberJoined,
    /// A member's metadata changed.
    MemberUpdated,
    /// A member is suspected to have failed.
    MemberSuspect,
    /// A member's failure is confirmed.
    MemberDead,
    /// A member left gracefully.
    MemberLeft,
    /// A suspected or dead member is alive again.
    MemberAlive,
    /// This node refuted a suspicion about itself.
    MemberRefuted,
    /// A dead or left member was dropped from the view after its retention.
    MemberForgotten,
    /// A peer found by mDNS.
    PeerDiscovered,
    /// This node claims the entry point for a term.
    ClaimStarted,
    /// This node became the entry point.
    EntryElected,
    /// This node stopped being the entry point.
    EntrySteppedDown,
    /// This node follows an entry point.
    EntryFollowed,
    /// Two microk8s clusters met after a partition healed.
    ClusterConflict,
    /// The entry point granted a follower a join.
    JoinGranted,
    /// This node runs `microk8s join`.
    JoinStarted,
    /// `microk8s join` returned (with its duration).
    JoinFinished,
    /// A join was verified.
    NodeJoined,
    /// A join attempt failed.
    JoinFailed,
    /// This node refuses to join (duplicate hostname, other cluster, ...).
    JoinRefused,
    /// The entry point cannot add nodes (dead voters, lost quorum).
    JoinsBlocked,
    /// A node was removed from the cluster.
    NodeRemoved,
    /// A removal failed.
    RemoveFailed,
    /// This node runs `microk8s leave`.
    LeaveStarted,
    /// A `WatchEvents` subscription started (sent to that subscriber only).
    WatchStarted,
    /// A network message or record was rejected.
    MessageRejected,
}

impl Event {
    /// The event's name as it appears in the journal and the API.
    pub const fn name(self) -> &'static str {
        match self {
            Event::AgentStarted => "agent_started",
            Event::Listening => "listening",
            Event::AgentStopping => "agent_stopping",
            Event::AgentStopped => "agent_stopped",
            Event::LeaveRequested => "leave_requested",
            Event::MemberJoined => "member_joined",
            Event::MemberUpdated => "member_updated",
            Event::MemberSuspect => "member_suspect",
            Event::MemberDead => "member_dead",
            Event::MemberLeft => "member_left",
            Event::MemberAlive => "member_alive",
            Event::MemberRefuted => "member_refuted",
            Event::MemberForgotten => "member_forgotten",
            Event::PeerDiscovered => "peer_discovered",
            Event::ClaimStarted => "claim_started",
            Event::EntryElected => "entry_elected",
            Event::EntrySteppedDown => "entry_stepped_down",
            Event::EntryFollowed => "entry_followed",
            Event::ClusterConflict => "cluster_conflict",
            Event::JoinGranted => "join_granted",
            Event::JoinStarted => "join_started",
            Event::JoinFinished => "join_finished",
            Event::NodeJoined => "node_joined",
            Event::JoinFailed => "join_failed",
            Event::JoinRefused => "join_refused",
            Event::JoinsBlocked => "joins_blocked",
            Event::NodeRemoved => "node_removed",
            Event::RemoveFailed => "remove_failed",
            Event::LeaveStarted => "leave_started",
            Event::WatchStarted => "watch_started",
            Event::MessageRejected => "message_rejected",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Logs one structured line: `MUSTER_EVENT=<event>` plus the given fields.
pub fn log_event(
    level: Level,
    event: Event,
    fields: &[(Field, &str)],
    message: fmt::Arguments<'_>,
) {
    let logger = log::logger();
    let metadata = Metadata::builder().level(level).target("muster").build();
    if !logger.enabled(&metadata) || level > log::max_level() {
        return;
    }
    let pairs = EventFields { event, fields };
    logger.log(
        &Record::builder()
            .metadata(metadata)
            .args(message)
            .key_values(&pairs)
            .build(),
    );
}

/// The key-value source of one event: the event name first, then the fields.
struct EventFields<'a> {
    event: Event,
    fields: &'a [(Field, &'a str)],
}

impl log::kv::Source for EventFields<'_> {
    fn visit<'kvs>(&'kvs self, visitor: &mut dyn VisitSource<'kvs>) -> Result<(), log::kv::Error> {
        visitor.visit_pair(
            Key::from_str(Field::Event.name()),
            Value::from(self.event.name()),
        )?;
        for (field, value) in self.fields {
            visitor.visit_pair(Key::from_str(field.name()), Value::from(*value))?;
        }
        Ok(())
    }
}

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// The systemd journal, with structured fields.
    Journal,
    /// Human-readable lines on stderr.
    Stderr,
}

/// Installs the process-wide logger: the journal when stderr is connected to it
/// (`JOURNAL_STREAM`), stderr lines otherwise. Returns the sink chosen.
pub fn init(level: LevelFilter) -> Sink {
    log::set_max_level(level);
    if systemd_journal_logger::connected_to_journal()
        && let Ok(journal) = systemd_journal_logger::JournalLog::new()
    {
        let journal = journal.with_syslog_identifier("muster".to_owned());
        if journal.install().is_ok() {
            return Sink::Journal;
        }
    }
    // A second init (tests) keeps the first logger; that is fine.
    let _ = log::set_boxed_logger(Box::new(StderrLogger));
    Sink::Stderr
}

/// Writes `2026-01-01T00:00:00.000Z INFO message KEY=value …` lines to stderr.
struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(
            &humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            record,
        );
        // A closed stderr must not take the daemon down.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Formats one stderr line; separated from the clock for tests.
fn format_line(timestamp: &str, record: &Record<'_>) -> String {
    let mut line = format!("{timestamp} {:<5} {}", record.level(), record.args());
    let mut visitor = LineFields(&mut line);
    let _ = record.key_values().visit(&mut visitor);
    line.push('\n');
    line
}

struct LineFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for LineFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let key = key.as_str();
        let short = key
            .strip_prefix("MUSTER_")
            .unwrap_or(key)
            .to_ascii_lowercase();
        let value = value.to_string();
        if value.is_empty() || value.contains([' ', '"', '=']) {
            let _ = write!(self.0, " {short}={value:?}");
        } else {
            let _ = write!(self.0, " {short}={value}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn field_names_are_valid_journal_fields_and_unique() {
        let mut seen = HashSet::new();
        for f in Field::ALL {
            let n = f.name();
            assert!(n.starts_with("MUSTER_"), "{n}");
            assert!(n.len() <= 64, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{n}"
            );
            assert!(seen.insert(n), "duplicate field {n}");
        }
    }

    #[test]
    fn stderr_line_carries_event_and_quoted_fields() {
        let pairs = EventFields {
            event: Event::Listening,
            fields: &[(Field::Addr, "127.0.0.1:7440"), (Field::Error, "two words")],
        };
        let line = format_line(
            "T",
            &Record::builder()
                .level(Level::Info)
                .args(format_args!("listening on tcp"))
                .key_values(&pairs)
                .build(),
        );
        assert_eq!(
            line,
            "T INFO  listening on tcp event=listening addr=127.0.0.1:7440 error=\"two words\"\n"
        );
    }
}
