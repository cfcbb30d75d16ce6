//! The membership protocol's vocabulary: node metadata, state updates and messages.
//!
//! Owns: the plain Rust types exchanged between agents ([`Message`], [`Payload`],
//! [`Update`], [`Digest`], [`NodeMeta`]), their validation against hostile input
//! ([`RejectReason`], [`Limits`]) and a size estimate used for piggyback budgets and traffic
//! accounting.
//! Does not own: the wire encoding (the gRPC driver maps these types to protobuf) or any
//! decision about what a message means (that is `swim.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

/// A member's identity: stable across restarts and address changes (e.g. the machine id).
pub type NodeId = String;

/// Compute resources a node offers, as gossiped (after system reservations are subtracted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// Allocatable CPU in thousandths of a core.
    pub cpu_millis: u64,
    /// Allocatable memory in bytes.
    pub memory_bytes: u64,
    /// Number of GPUs.
    pub gpus: u32,
}

/// What the mesh carries about one node besides its liveness.
///
/// `meta_version` orders successive versions published by the node itself: among `alive`
/// updates of equal incarnation the higher version wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeMeta {
    /// Stable node id; the key of the member table.
    pub id: NodeId,
    /// Human name (host name).
    pub name: String,
    /// Endpoint of the node's Peer gRPC service (`host:port`), where protocol messages go.
    pub addr: String,
    /// All addresses of the node, informational.
    pub addresses: Vec<String>,
    /// muster version the node runs.
    pub version: String,
    /// Allocatable resources.
    pub resources: Resources,
    /// Free-form fields filled by later subsystems (microk8s state, role, ...).
    pub fields: BTreeMap<String, String>,
    /// Version of this metadata, bumped by the node on every change.
    pub meta_version: u64,
}

/// Liveness of a member as one node believes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Answers probes, or refuted the last suspicion.
    Alive,
    /// Failed a probe; dies when the suspicion times out unless it refutes.
    Suspect,
    /// Declared failed. Only an `alive` with a higher incarnation brings it back.
    Dead,
    /// Left on purpose. Only an `alive` with a higher incarnation brings it back.
    Left,
}

impl Status {
    /// Precedence among updates of the same incarnation: a higher rank wins.
    pub fn rank(self) -> u8 {
        match self {
            Status::Alive => 0,
            Status::Suspect => 1,
            Status::Dead => 2,
            Status::Left => 3,
        }
    }

    /// Alive or suspect: still probed and gossiped to.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Alive | Status::Suspect)
    }
}

/// One piece of membership news, disseminated by piggyback, gossip and push-pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// The node is alive at `incarnation` with this metadata (only the node itself creates
    /// these; others relay them).
    Alive {
        /// The node's incarnation number.
        incarnation: u64,
        /// Its metadata; `meta.id` names the node.
        meta: Arc<NodeMeta>,
    },
    /// `from` could not reach `id` at `incarnation`.
    Suspect {
        /// The suspected node.
        id: NodeId,
        /// Its incarnation as the suspector knew it.
        incarnation: u64,
        /// The suspector (counted as a confirmation when independent).
        from: NodeId,
    },
    /// `from` declared `id` dead at `incarnation`.
    Dead {
        /// The dead node.
        id: NodeId,
        /// Its incarnation when declared dead.
        incarnation: u64,
        /// The node that declared it.
        from: NodeId,
    },
    /// The node left on purpose at `incarnation` (created only by the node itself).
    Left {
        /// The node leaving.
        id: NodeId,
        /// Its incarnation, bumped for the leave.
        incarnation: u64,
    },
}

impl Update {
    /// The member this update is about.
    pub fn id(&self) -> &str {
        match self {
            Update::Alive { meta, .. } => &meta.id,
            Update::Suspect { id, .. } | Update::Dead { id, .. } | Update::Left { id, .. } => id,
        }
    }

    /// The incarnation this update carries.
    pub fn incarnation(&self) -> u64 {
        match self {
            Update::Alive { incarnation, .. }
            | Update::Suspect { incarnation, .. }
            | Update::Dead { incarnation, .. }
            | Update::Left { incarnation, .. } => *incarnation,
        }
    }

    /// The status this update asserts.
    pub fn status(&self) -> Status {
        match self {
            Update::Alive { .. } => Status::Alive,
            Update::Suspect { .. } => Status::Suspect,
            Update::Dead { .. } => Status::Dead,
            Update::Left { .. } => Status::Left,
        }
    }

    /// Estimated encoded size in bytes (protobuf-like: strings plus small field overheads).
    pub fn size_hint(&self) -> usize {
        match self {
            Update::Alive { meta, .. } => 12 + meta_size(meta),
            Update::Suspect { id, from, .. } | Update::Dead { id, from, .. } => {
                16 + id.len() + from.len()
            }
            Update::Left { id, .. } => 12 + id.len(),
        }
    }
}

fn meta_size(meta: &NodeMeta) -> usize {
    let strings = meta.id.len()
        + meta.name.len()
        + meta.addr.len()
        + meta.version.len()
        + meta.addresses.iter().map(|a| a.len() + 2).sum::<usize>()
        + meta
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>();
    strings + 12 + 20
}

/// A compact summary of one member's state, exchanged by push-pull so that only what differs
/// travels in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    /// The member.
    pub id: NodeId,
    /// Its incarnation.
    pub incarnation: u64,
    /// Its status.
    pub status: Status,
    /// Its metadata version.
    pub meta_version: u64,
}

/// A protocol message between two agents. The sender names itself and where it can be
/// answered, so a message from a node not yet in the table can still be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sender's node id.
    pub from: NodeId,
    /// Sender's Peer endpoint (`host:port`).
    pub from_addr: String,
    /// What the message says.
    pub payload: Payload,
}

/// The kinds of protocol messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// "Are you alive?" Answered with an [`Payload::Ack`] of the same `seq`, only by `target`.
    Ping {
        /// Sender-chosen sequence number.
        seq: u64,
        /// The node the sender means to reach (guards against a reused address).
        target: NodeId,
        /// Piggybacked updates.
        updates: Vec<Update>,
    },
    /// Answer to a ping, or a relayed answer to an indirect probe.
    Ack {
        /// Sequence number of the ping (or ping-req) being answered.
        seq: u64,
        /// Piggybacked updates.
        updates: Vec<Update>,
        /// Checksum of the sender's view (`Membership::view_checksum`), or 0 when the sender
        /// does not publish one (leaving, an older agent): a prober whose own checksum
        /// differs starts a push-pull with the sender (ALGORITHM.md, "View checksums").
        view_checksum: u64,
    },
    /// "Please ping `target` for me": an indirect probe through a relay.
    PingReq {
        /// The origin's sequence number, echoed in the relayed ack or nack.
        seq: u64,
        /// The node to probe.
        target: NodeId,
        /// Where to reach it.
        target_addr: String,
        /// Piggybacked updates.
        updates: Vec<Update>,
    },
    /// A relay could not reach the target in time: the relay itself is healthy (Lifeguard).
    Nack {
        /// The origin's sequence number.
        seq: u64,
    },
    /// Pure dissemination, sent only while updates are queued.
    Gossip {
        /// The updates.
        updates: Vec<Update>,
    },
    /// Push-pull, step 1: the initiator's digest of everything it knows.
    Sync {
        /// One entry per member, the sender included.
        digest: Vec<Digest>,
    },
    /// Push-pull, step 2: what the initiator lacks, and the replier's digest.
    SyncReply {
        /// The replier's digest (after merging the request).
        digest: Vec<Digest>,
        /// Full updates newer than the initiator's digest.
        updates: Vec<Update>,
    },
    /// Push-pull, step 3: what the replier lacks (sent only when non-empty).
    SyncDelta {
        /// Full updates newer than the replier's digest.
        updates: Vec<Update>,
    },
}

impl Message {
    /// Estimated encoded size of the message in bytes, without transport overhead.
    pub fn size_hint(&self) -> usize {
        let updates = |u: &[Update]| u.iter().map(Update::size_hint).sum::<usize>();
        let digest = |d: &[Digest]| d.iter().map(|e| e.id.len() + 14).sum::<usize>();
        let body = match &self.payload {
            Payload::Ping {
                target, updates: u, ..
            } => 10 + target.len() + updates(u),
            Payload::Ack {
                updates: u,
                view_checksum,
                ..
            } => 8 + updates(u) + if *view_checksum == 0 { 0 } else { 9 },
            Payload::PingReq {
                target,
                target_addr,
                updates: u,
                ..
            } => 12 + target.len() + target_addr.len() + updates(u),
            Payload::Nack { .. } => 8,
            Payload::Gossip { updates: u } | Payload::SyncDelta { updates: u } => 2 + updates(u),
            Payload::Sync { digest: d } => 2 + digest(d),
            Payload::SyncReply {
                digest: d,
                updates: u,
            } => 4 + digest(d) + updates(u),
        };
        body + self.from.len() + self.from_addr.len() + 6
    }

    /// A short name of the payload kind, for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self.payload {
            Payload::Ping { .. } => "ping",
            Payload::Ack { .. } => "ack",
            Payload::PingReq { .. } => "ping_req",
            Payload::Nack { .. } => "nack",
            Payload::Gossip { .. } => "gossip",
            Payload::Sync { .. } => "sync",
            Payload::SyncReply { .. } => "sync_reply",
            Payload::SyncDelta { .. } => "sync_delta",
        }
    }
}

/// Bounds a message from the network must respect. Generous for a LAN, small enough that a
/// hostile peer cannot make a node allocate without limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits;

impl Limits {
    /// Longest node id or host name (a DNS name).
    pub const MAX_ID_LEN: usize = 253;
    /// Longest address string.
    pub const MAX_ADDR_LEN: usize = 256;
    /// Most addresses in one [`NodeMeta`].
    pub const MAX_ADDRESSES: usize = 32;
    /// Longest version string.
    pub const MAX_VERSION_LEN: usize = 64;
    /// Most free-form fields in one [`NodeMeta`].
    pub const MAX_FIELDS: usize = 64;
    /// Longest field key.
    pub const MAX_FIELD_KEY_LEN: usize = 128;
    /// Longest field value.
    pub const MAX_FIELD_VALUE_LEN: usize = 4096;
    /// Most updates in one message.
    pub const MAX_UPDATES: usize = 4096;
    /// Most digest entries in one message.
    pub const MAX_DIGEST: usize = 16_384;
    /// Highest incarnation accepted: far above any real count, far below overflow when
    /// refuting adds one.
    pub const MAX_INCARNATION: u64 = u64::MAX / 4;
}

/// Why a message (or a discovery record) was dropped. The core never panics on input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// An id is empty, too long or contains control characters.
    #[error("invalid node id {0:?}")]
    InvalidId(String),
    /// An address is empty, too long or contains control characters.
    #[error("invalid address {0:?}")]
    InvalidAddr(String),
    /// A metadata field breaks a limit.
    #[error("invalid metadata for {id:?}: {what}")]
    InvalidMeta {
        /// The member the metadata is about.
        id: String,
        /// Which limit it breaks.
        what: &'static str,
    },
    /// A list is longer than its limit.
    #[error("{what}: {len} entries exceed the limit of {limit}")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// An incarnation number is beyond [`Limits::MAX_INCARNATION`].
    #[error("incarnation {0} of {1:?} is out of range")]
    IncarnationOutOfRange(u64, String),
    /// The message claims to come from this node.
    #[error("message claims to come from this node")]
    FromSelf,
    /// A ping meant for another node reached us (its address was reused).
    #[error("ping for {0:?} reached this node")]
    WrongTarget(String),
    /// A ping-req names the requester or this node as target.
    #[error("ping-req with invalid target {0:?}")]
    InvalidTarget(String),
    /// An ack or nack for one of our probes came from a node the probe did not involve.
    #[error("{kind} for sequence {seq} from a node the probe did not ask")]
    UnexpectedSender {
        /// `ack` or `nack`.
        kind: &'static str,
        /// The sequence number it claimed.
        seq: u64,
    },
}

fn clean(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

/// Checks a node id.
pub fn check_id(id: &str) -> Result<(), RejectReason> {
    if clean(id, Limits::MAX_ID_LEN) {
        Ok(())
    } else {
        Err(RejectReason::InvalidId(truncate(id)))
    }
}

/// Checks a `host:port` style address (only its length and characters; the driver parses).
pub fn check_addr(addr: &str) -> Result<(), RejectReason> {
    if clean(addr, Limits::MAX_ADDR_LEN) && !addr.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(RejectReason::InvalidAddr(truncate(addr)))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

fn check_incarnation(inc: u64, id: &str) -> Result<(), RejectReason> {
    if inc > Limits::MAX_INCARNATION {
        Err(RejectReason::IncarnationOutOfRange(inc, truncate(id)))
    } else {
        Ok(())
    }
}

fn check_count(what: &'static str, len: usize, limit: usize) -> Result<(), RejectReason> {
    if len > limit {
        Err(RejectReason::TooMany { what, len, limit })
    } else {
        Ok(())
    }
}

/// Checks metadata against [`Limits`].
pub fn check_meta(meta: &NodeMeta) -> Result<(), RejectReason> {
    check_id(&meta.id)?;
    check_addr(&meta.addr)?;
    let bad = |what| RejectReason::InvalidMeta {
        id: truncate(&meta.id),
        what,
    };
    if meta.name.len() > Limits::MAX_ID_LEN || meta.name.chars().any(char::is_control) {
        return Err(bad("name"));
    }
    if meta.version.len() > Limits::MAX_VERSION_LEN {
        return Err(bad("version"));
    }
    if meta.addresses.len() > Limits::MAX_ADDRESSES
        || meta
            .addresses
            .iter()
            .any(|a| a.len() > Limits::MAX_ADDR_LEN)
    {
        return Err(bad("addresses"));
    }
    if meta.fields.len() > Limits::MAX_FIELDS {
        return Err(bad("fields count"));
    }
    if meta.fields.iter().any(|(k, v)| {
        k.is_empty() || k.len() > Limits::MAX_FIELD_KEY_LEN || v.len() > Limits::MAX_FIELD_VALUE_LEN
    }) {
        return Err(bad("field length"));
    }
    Ok(())
}

/// Checks one update.
pub fn check_update(update: &Update) -> Result<(), RejectReason> {
    match update {
        Update::Alive { incarnation, meta } => {
            check_meta(meta)?;
            check_incarnation(*incarnation, &meta.id)
        }
        Update::Suspect {
            id,
            incarnation,
            from,
        }
        | Update::Dead {
            id,
            incarnation,
            from,
        } => {
            check_id(id)?;
            check_id(from)?;
            check_incarnation(*incarnation, id)
        }
        Update::Left { id, incarnation } => {
            check_id(id)?;
            check_incarnation(*incarnation, id)
        }
    }
}

fn check_updates(updates: &[Update]) -> Result<(), RejectReason> {
    check_count("updates", updates.len(), Limits::MAX_UPDATES)?;
    updates.iter().try_for_each(check_update)
}

fn check_digest(digest: &[Digest]) -> Result<(), RejectReason> {
    check_count("digest", digest.len(), Limits::MAX_DIGEST)?;
    for d in digest {
        check_id(&d.id)?;
        check_incarnation(d.incarnation, &d.id)?;
    }
    Ok(())
}

impl Message {
    /// Validates a message received by node `local`: well-formed, within [`Limits`], and
    /// addressed sensibly. A rejected message must be dropped whole.
    pub fn validate(&self, local: &str) -> Result<(), RejectReason> {
        check_id(&self.from)?;
        check_addr(&self.from_addr)?;
        if self.from == local {
            return Err(RejectReason::FromSelf);
        }
        match &self.payload {
            Payload::Ping {
                target, updates, ..
            } => {
                check_id(target)?;
                if target != local {
                    return Err(RejectReason::WrongTarget(truncate(target)));
                }
                check_updates(updates)
            }
            Payload::PingReq {
                target,
                target_addr,
                updates,
                ..
            } => {
                check_id(target)?;
                check_addr(target_addr)?;
                if target == local || *target == self.from {
                    return Err(RejectReason::InvalidTarget(truncate(target)));
                }
                check_updates(updates)
            }
            Payload::Ack { updates, .. }
            | Payload::Gossip { updates }
            | Payload::SyncDelta { updates } => check_updates(updates),
            Payload::Nack { .. } => Ok(()),
            Payload::Sync { digest } => check_digest(digest),
            Payload::SyncReply { digest, updates } => {
                check_digest(digest)?;
                check_updates(updates)
            }
        }
    }
}
