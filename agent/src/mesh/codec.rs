//! Wire encoding of the membership protocol: [`muster_core::membership`] messages to and from the
//! `muster.v1.Peer` protobuf types. Decoding is total: anything a peer can send either becomes
//! a message or a [`DecodeError`] that names what was wrong; nothing panics.

use std::collections::BTreeMap;
use std::sync::Arc;

use muster_proto::v1 as pb;

use muster_core::membership::fields::GPU_MODELS;
use muster_core::membership::{Digest, Message, NodeMeta, Payload, Resources, Status, Update};

/// Why an envelope from the network could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The envelope has no payload (or one this version does not know).
    #[error("envelope from {0:?} has no payload this agent understands")]
    NoPayload(String),
    /// An update has no kind.
    #[error("update without a kind")]
    EmptyUpdate,
    /// An alive update lacks its metadata.
    #[error("alive update without metadata")]
    MissingMeta,
    /// A digest carries an unknown status number.
    #[error("digest of {id:?} has unknown status {status}")]
    BadStatus {
        /// The member.
        id: String,
        /// The number received.
        status: i32,
    },
}

fn status_to_pb(s: Status) -> pb::MemberStatus {
    match s {
        Status::Alive => pb::MemberStatus::Alive,
        Status::Suspect => pb::MemberStatus::Suspect,
        Status::Dead => pb::MemberStatus::Dead,
        Status::Left => pb::MemberStatus::Left,
    }
}

fn status_from_pb(id: &str, n: i32) -> Result<Status, DecodeError> {
    match pb::MemberStatus::try_from(n) {
        Ok(pb::MemberStatus::Alive) => Ok(Status::Alive),
        Ok(pb::MemberStatus::Suspect) => Ok(Status::Suspect),
        Ok(pb::MemberStatus::Dead) => Ok(Status::Dead),
        Ok(pb::MemberStatus::Left) => Ok(Status::Left),
        _ => Err(DecodeError::BadStatus {
            id: id.chars().take(64).collect(),
            status: n,
        }),
    }
}

/// Core metadata to protobuf.
pub fn meta_to_pb(m: &NodeMeta) -> pb::PeerMeta {
    pb::PeerMeta {
        id: m.id.clone(),
        name: m.name.clone(),
        addr: m.addr.clone(),
        addresses: m.addresses.clone(),
        version: m.version.clone(),
        resources: Some(pb::Resources {
            cpus: (m.resources.cpu_millis / 1000) as u32,
            memory_total_bytes: m.resources.memory_bytes,
            memory_available_bytes: 0,
            gpus: Vec::new(),
        }),
        fields: m
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        meta_version: m.meta_version,
    }
}

/// Protobuf metadata to the core's form.
pub fn meta_from_pb(m: pb::PeerMeta) -> NodeMeta {
    let r = m.resources.unwrap_or_default();
    let fields: BTreeMap<String, String> = m.fields.into_iter().collect();
    let gpus = fields
        .get(GPU_MODELS)
        .map(|v| v.split(',').filter(|s| !s.is_empty()).count() as u32)
        .unwrap_or(r.gpus.len() as u32);
    NodeMeta {
        id: m.id,
        name: m.name,
        addr: m.addr,
        addresses: m.addresses,
        version: m.version,
        resources: Resources {
            cpu_millis: u64::from(r.cpus) * 1000,
            memory_bytes: r.memory_total_bytes,
            gpus,
        },
        fields,
        meta_version: m.meta_version,
    }
}

fn update_to_pb(u: &Update) -> pb::Update {
    use pb::update::Kind;
    let kind = match u {
        Update::Alive { incarnation, meta } => Kind::Alive(pb::MemberAlive {
            incarnation: *incarnation,
            meta: Some(meta_to_pb(meta)),
        }),
        Update::Suspect {
            id,
            incarnation,
            from,
        } => Kind::Suspect(pb::MemberSuspect {
            id: id.clone(),
            incarnation: *incarnation,
            from: from.clone(),
        }),
        Update::Dead {
            id,
            incarnation,
            from,
        } => Kind::Dead(pb::MemberDead {
            id: id.clone(),
            incarnation: *incarnation,
            from: from.clone(),
        }),
        Update::Left { id, incarnation } => Kind::Left(pb::MemberLeft {
            id: id.clone(),
            incarnation: *incarnation,
        }),
    };
    pb::Update { kind: Some(kind) }
}

fn update_from_pb(u: pb::Update) -> Result<Update, DecodeError> {
    use pb::update::Kind;
    Ok(match u.kind.ok_or(DecodeError::EmptyUpdate)? {
        Kind::Alive(a) => Update::Alive {
            incarnation: a.incarnation,
            meta: Arc::new(meta_from_pb(a.meta.ok_or(DecodeError::MissingMeta)?)),
        },
        Kind::Suspect(s) => Update::Suspect {
            id: s.id,
            incarnation: s.incarnation,
            from: s.from,
        },
        Kind::Dead(d) => Update::Dead {
            id: d.id,
            incarnation: d.incarnation,
            from: d.from,
        },
        Kind::Left(l) => Update::Left {
            id: l.id,
            incarnation: l.incarnation,
        },
    })
}

fn updates_to_pb(us: &[Update]) -> Vec<pb::Update> {
    us.iter().map(update_to_pb).collect()
}

fn updates_from_pb(us: Vec<pb::Update>) -> Result<Vec<Update>, DecodeError> {
    us.into_iter().map(update_from_pb).collect()
}

fn digest_to_pb(d: &[Digest]) -> Vec<pb::Digest> {
    d.iter()
        .map(|e| pb::Digest {
            id: e.id.clone(),
            incarnation: e.incarnation,
            status: status_to_pb(e.status) as i32,
            meta_version: e.meta_version,
        })
        .collect()
}

fn digest_from_pb(d: Vec<pb::Digest>) -> Result<Vec<Digest>, DecodeError> {
    d.into_iter()
        .map(|e| {
            Ok(Digest {
                status: status_from_pb(&e.id, e.status)?,
                id: e.id,
                incarnation: e.incarnation,
                meta_version: e.meta_version,
            })
        })
        .collect()
}

/// A core message to an envelope of `cluster`.
pub fn encode(cluster: &str, m: &Message) -> pb::Envelope {
    use pb::envelope::Payload as P;
    let payload = match &m.payload {
        Payload::Ping {
            seq,
            target,
            updates,
        } => P::Ping(pb::SwimPing {
            seq: *seq,
            target: target.clone(),
            updates: updates_to_pb(updates),
        }),
        Payload::Ack {
            seq,
            updates,
            view_checksum,
        } => P::Ack(pb::SwimAck {
            seq: *seq,
            updates: updates_to_pb(updates),
            view_checksum: *view_checksum,
        }),
        Payload::PingReq {
            seq,
            target,
            target_addr,
            updates,
        } => P::PingReq(pb::SwimPingReq {
            seq: *seq,
            target: target.clone(),
            target_addr: target_addr.clone(),
            updates: updates_to_pb(updates),
        }),
        Payload::Nack { seq } => P::Nack(pb::SwimNack { seq: *seq }),
        Payload::Gossip { updates } => P::Gossip(pb::SwimGossip {
            updates: updates_to_pb(updates),
        }),
        Payload::Sync { digest } => P::Sync(pb::SwimSync {
            digest: digest_to_pb(digest),
        }),
        Payload::SyncReply { digest, updates } => P::SyncReply(pb::SwimSyncReply {
            digest: digest_to_pb(digest),
            updates: updates_to_pb(updates),
        }),
        Payload::SyncDelta { updates } => P::SyncDelta(pb::SwimSyncDelta {
            updates: updates_to_pb(updates),
        }),
    };
    pb::Envelope {
        cluster: cluster.to_owned(),
        from: m.from.clone(),
        from_addr: m.from_addr.clone(),
        payload: Some(payload),
    }
}

/// An envelope to a core message (the cluster name is checked by the caller).
pub fn decode(e: pb::Envelope) -> Result<Message, DecodeError> {
    use pb::envelope::Payload as P;
    let payload = match e.payload {
        None => return Err(DecodeError::NoPayload(e.from.chars().take(64).collect())),
        Some(P::Ping(p)) => Payload::Ping {
            seq: p.seq,
            target: p.target,
            updates: updates_from_pb(p.updates)?,
        },
        Some(P::Ack(a)) => Payload::Ack {
            seq: a.seq,
            updates: updates_from_pb(a.updates)?,
            view_checksum: a.view_checksum,
        },
        Some(P::PingReq(p)) => Payload::PingReq {
            seq: p.seq,
            target: p.target,
            target_addr: p.target_addr,
            updates: updates_from_pb(p.updates)?,
        },
        Some(P::Nack(n)) => Payload::Nack { seq: n.seq },
        Some(P::Gossip(g)) => Payload::Gossip {
            updates: updates_from_pb(g.updates)?,
        },
        Some(P::Sync(s)) => Payload::Sync {
            digest: digest_from_pb(s.digest)?,
        },
        Some(P::SyncReply(s)) => Payload::SyncReply {
            digest: digest_from_pb(s.digest)?,
            updates: updates_from_pb(s.updates)?,
        },
        Some(P::SyncDelta(s)) => Payload::SyncDelta {
            updates: updates_from_pb(s.updates)?,
        },
    };
    Ok(Message {
        from: e.from,
        from_addr: e.from_addr,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Arc<NodeMeta> {
        Arc::new(NodeMeta {
            id: "a".repeat(32),
            name: "n1".into(),
            addr: "198.18.0.1:7440".into(),
            addresses: vec!["198.18.0.1".into()],
            version: "0.1.0".into(),
            resources: Resources {
                cpu_millis: 4000,
                memory_bytes: 16 << 30,
                gpus: 1,
            },
            fields: [(GPU_MODELS.to_owned(), "Tesla T4".to_owned())].into(),
            meta_version: 7,
        })
    }

    fn all_updates() -> Vec<Update> {
        vec![
            Update::Alive {
                incarnation: 3,
                meta: meta(),
            },
            Update::Suspect {
                id: "b".into(),
                incarnation: 1,
                from: "c".into(),
            },
            Update::Dead {
                id: "b".into(),
                incarnation: 2,
                from: "c".into(),
            },
            Update::Left {
                id: "d".into(),
                incarnation: 9,
            },
        ]
    }

    #[test]
    fn every_payload_round_trips() {
        let digest = vec![Digest {
            id: "b".into(),
            incarnation: 4,
            status: Status::Suspect,
            meta_version: 2,
        }];
        let payloads = vec![
            Payload::Ping {
                seq: 1,
                target: "t".into(),
                updates: all_updates(),
            },
            Payload::Ack {
                seq: 2,
                updates: all_updates(),
                view_checksum: 0xDEAD_BEEF_0123_4567,
            },
            Payload::Ack {
                seq: 2,
                updates: vec![],
                view_checksum: 0,
            },
            Payload::PingReq {
                seq: 3,
                target: "t".into(),
                target_addr: "1.2.3.4:5".into(),
                updates: vec![],
            },
            Payload::Nack { seq: 4 },
            Payload::Gossip {
                updates: all_updates(),
            },
            Payload::Sync {
                digest: digest.clone(),
            },
            Payload::SyncReply {
                digest: digest.clone(),
                updates: all_updates(),
            },
            Payload::SyncDelta {
                updates: all_updates(),
            },
        ];
        for payload in payloads {
            let m = Message {
                from: "f".into(),
                from_addr: "198.18.0.9:7440".into(),
                payload,
            };
            let env = encode("lab", &m);
            assert_eq!(env.cluster, "lab");
            let bytes = prost::Message::encode_to_vec(&env);
            let back: pb::Envelope = prost::Message::decode(bytes.as_slice()).expect("decodes");
            assert_eq!(decode(back).expect("valid"), m);
        }
    }

    #[test]
    fn hostile_envelopes_are_errors_not_panics() {
        let empty = pb::Envelope {
            cluster: "lab".into(),
            from: "x".into(),
            ..Default::default()
        };
        assert_eq!(decode(empty), Err(DecodeError::NoPayload("x".into())));
        let no_kind = pb::Envelope {
            payload: Some(pb::envelope::Payload::Gossip(pb::SwimGossip {
                updates: vec![pb::Update { kind: None }],
            })),
            ..Default::default()
        };
        assert_eq!(decode(no_kind), Err(DecodeError::EmptyUpdate));
        let no_meta = pb::Envelope {
            payload: Some(pb::envelope::Payload::Gossip(pb::SwimGossip {
                updates: vec![pb::Update {
                    kind: Some(pb::update::Kind::Alive(pb::MemberAlive {
                        incarnation: 1,
                        meta: None,
                    })),
                }],
            })),
            ..Default::default()
        };
        assert_eq!(decode(no_meta), Err(DecodeError::MissingMeta));
        let bad_status = pb::Envelope {
            payload: Some(pb::envelope::Payload::Sync(pb::SwimSync {
                digest: vec![pb::Digest {
                    id: "q".into(),
                    status: 42,
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        assert_eq!(
            decode(bad_status),
            Err(DecodeError::BadStatus {
                id: "q".into(),
                status: 42
            })
        );
        // Random bytes never panic the protobuf decoder either.
        for seed in 0u8..=255 {
            let junk: Vec<u8> = (0..64u8)
                .map(|i| i.wrapping_mul(seed).wrapping_add(seed))
                .collect();
            if let Ok(env) = <pb::Envelope as prost::Message>::decode(junk.as_slice()) {
                let _ = decode(env);
            }
        }
    }
}
