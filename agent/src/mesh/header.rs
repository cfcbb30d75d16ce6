//! Per-stream header compression of membership envelopes. On one direction of a
//! `Peer.Stream`, the sender's cluster, node id and address are the same in every envelope, so
//! only the first one carries them ([`Compressor`]) and the receiver fills them back in
//! ([`Expander`]). A probe's target is omitted once the sender has seen, on that stream, that
//! the receiver is the target. Pure bookkeeping: no I/O, no cluster policy (the receiver's
//! mesh handle still checks the cluster of every expanded envelope).

use muster_proto::v1 as pb;

/// Why an incoming envelope cannot be completed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// An envelope left its header empty before any envelope on the stream carried one.
    #[error("the first envelope of a stream must name its cluster, sender and address")]
    MissingHeader,
}

/// The sending half of one stream direction: strips what the receiver already knows.
#[derive(Debug, Default)]
pub struct Compressor {
    sent: Option<(String, String, String)>,
    peer: Option<String>,
}

impl Compressor {
    /// Records the receiver's node id as seen on this stream; probes of that id then travel
    /// without their target.
    pub fn set_peer(&mut self, id: &str) {
        if !id.is_empty() && self.peer.as_deref() != Some(id) {
            self.peer = Some(id.to_owned());
        }
    }

    /// The envelope as it goes on the wire.
    pub fn compress(&mut self, mut env: pb::Envelope) -> pb::Envelope {
        let same = self
            .sent
            .as_ref()
            .is_some_and(|(c, f, a)| *c == env.cluster && *f == env.from && *a == env.from_addr);
        if same {
            env.cluster.clear();
            env.from.clear();
            env.from_addr.clear();
        } else {
            self.sent = Some((env.cluster.clone(), env.from.clone(), env.from_addr.clone()));
        }
        if let (Some(peer), Some(pb::envelope::Payload::Ping(p))) = (&self.peer, &mut env.payload)
            && p.target == *peer
        {
            p.target.clear();
        }
        env
    }
}

/// The receiving half of one stream direction: completes envelopes from the last header seen.
#[derive(Debug)]
pub struct Expander {
    local_id: String,
    cluster: String,
    from: String,
    from_addr: String,
}

impl Expander {
    /// An expander for a stream received by node `local_id` (the id an empty probe target
    /// stands for).
    pub fn new(local_id: &str) -> Self {
        Expander {
            local_id: local_id.to_owned(),
            cluster: String::new(),
            from: String::new(),
            from_addr: String::new(),
        }
    }

    /// Fills in the fields the sender left out and remembers the ones it sent.
    pub fn expand(&mut self, env: &mut pb::Envelope) -> Result<(), HeaderError> {
        for (field, last) in [
            (&mut env.cluster, &mut self.cluster),
            (&mut env.from, &mut self.from),
            (&mut env.from_addr, &mut self.from_addr),
        ] {
            if field.is_empty() {
                if last.is_empty() {
                    return Err(HeaderError::MissingHeader);
                }
                field.clone_from(last);
            } else if field != last {
                last.clone_from(field);
            }
        }
        if let Some(pb::envelope::Payload::Ping(p)) = &mut env.payload
            && p.target.is_empty()
        {
            p.target.clone_from(&self.local_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(from: &str, payload: pb::envelope::Payload) -> pb::Envelope {
        pb::Envelope {
            cluster: "lab".into(),
            from: from.into(),
            from_addr: "198.18.0.1:7440".into(),
            payload: Some(payload),
        }
    }

    fn ping(target: &str) -> pb::envelope::Payload {
        pb::envelope::Payload::Ping(pb::SwimPing {
            seq: 1,
            target: target.into(),
            updates: vec![],
        })
    }

    #[test]
    fn header_travels_once_and_is_restored() {
        let mut c = Compressor::default();
        let mut x = Expander::new("b");
        let nack = pb::envelope::Payload::Nack(pb::SwimNack { seq: 2 });
        let first = c.compress(env("a", nack.clone()));
        assert_eq!(first.cluster, "lab");
        let second = c.compress(env("a", nack.clone()));
        assert!(second.cluster.is_empty() && second.from.is_empty() && second.from_addr.is_empty());
        let (mut f, mut s) = (first, second);
        x.expand(&mut f).expect("first has a header");
        x.expand(&mut s).expect("inherits");
        assert_eq!(s, env("a", nack.clone()));
        // A changed header is sent again in full.
        let mut third = c.compress(env("z", nack.clone()));
        assert_eq!(third.from, "z");
        x.expand(&mut third).expect("full");
        let mut fourth = c.compress(env("z", nack));
        x.expand(&mut fourth).expect("inherits");
        assert_eq!(fourth.from, "z");
    }

    #[test]
    fn probe_target_is_omitted_only_for_the_seen_peer() {
        let mut c = Compressor::default();
        let mut x = Expander::new("b");
        // Before the receiver's id was seen, the target travels.
        let mut e = c.compress(env("a", ping("b")));
        assert!(matches!(&e.payload, Some(pb::envelope::Payload::Ping(p)) if p.target == "b"));
        x.expand(&mut e).expect("ok");
        c.set_peer("b");
        let mut e = c.compress(env("a", ping("b")));
        assert!(matches!(&e.payload, Some(pb::envelope::Payload::Ping(p)) if p.target.is_empty()));
        x.expand(&mut e).expect("ok");
        assert_eq!(e, env("a", ping("b")));
        // A probe of another id at the same address keeps its target: the receiver must be
        // able to refuse it.
        let mut e = c.compress(env("a", ping("old")));
        x.expand(&mut e).expect("ok");
        assert_eq!(e, env("a", ping("old")));
    }

    #[test]
    fn a_stream_cannot_start_without_a_header() {
        let mut x = Expander::new("b");
        let mut e = pb::Envelope {
            payload: Some(ping("")),
            ..Default::default()
        };
        assert_eq!(x.expand(&mut e), Err(HeaderError::MissingHeader));
    }
}
