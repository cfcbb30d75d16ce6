//! Unit tests of probing: direct and indirect probes, relaying, nacks, hints, reconnects.

use crate::membership::tests::*;
use crate::membership::*;

/// Starts a hint probe of "b" at time 0 and returns the ping's sequence number.
fn probe_b(m: &mut Membership) -> u64 {
    m.handle(ms(0), Input::Gone { id: "b".into() });
    let out = m.drain_outputs();
    sent(&out)
        .into_iter()
        .find_map(|(to, msg)| match msg.payload {
            Payload::Ping { seq, .. } if to == "b" => Some(seq),
            _ => None,
        })
        .expect("a ping to b")
}

fn ping_reqs(out: &[Output], seq: u64) -> Vec<String> {
    sent(out)
        .into_iter()
        .filter_map(|(to, msg)| match msg.payload {
            Payload::PingReq { seq: s, target, .. } if s == seq && target == "b" => Some(to),
            _ => None,
        })
        .collect()
}

#[test]
fn ack_from_target_completes_the_probe() {
    let mut m = node_with(&["b", "c"]);
    let seq = probe_b(&mut m);
    m.handle(
        ms(5),
        Input::Message(msg(
            "b",
            Payload::Ack {
                seq,
                updates: vec![],
                view_checksum: 0,
            },
        )),
    );
    let out = run_until(&mut m, ms(1500));
    assert!(ping_reqs(&out, seq).is_empty());
    assert_eq!(status(&m, "b"), Some((Status::Alive, 1)));
}

#[test]
fn ack_from_an_uninvolved_node_is_rejected() {
    let mut m = node_with(&["b", "c"]);
    let seq = probe_b(&mut m);
    m.handle(
        ms(5),
        Input::Message(msg(
            "c",
            Payload::Ack {
                seq,
                updates: vec![],
                view_checksum: 0,
            },
        )),
    );
    let out = m.drain_outputs();
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Rejected {
            reason: RejectReason::UnexpectedSender { kind: "ack", .. },
            ..
        }
    )));
}

#[test]
fn silent_target_gets_indirect_probes_then_all_nacks_mean_suspect_at_once() {
    let mut m = node_with(&["b", "c", "d", "e"]);
    let seq = probe_b(&mut m);
    let timeout = m.config().probe_timeout;
    let out = run_until(&mut m, timeout);
    let relays = ping_reqs(&out, seq);
    assert_eq!(relays.len(), 3);
    let before = m.health_score();
    for relay in &relays {
        m.handle(
            timeout + ms(5),
            Input::Message(msg(relay, Payload::Nack { seq })),
        );
    }
    let out = m.drain_outputs();
    assert!(events(&out).contains(&(EventKind::Suspect, "b".to_owned())));
    assert_eq!(m.health_score(), before, "nacks prove our links work");
}

#[test]
fn missing_nacks_raise_the_local_health_score() {
    let mut m = node_with(&["b", "c", "d", "e"]);
    probe_b(&mut m);
    let out = run_until(&mut m, ms(1000));
    assert!(events(&out).contains(&(EventKind::Suspect, "b".to_owned())));
    assert_eq!(m.health_score(), 3, "three relays stayed silent");
}

#[test]
fn relayed_ack_completes_an_indirect_probe() {
    let mut m = node_with(&["b", "c", "d", "e"]);
    let seq = probe_b(&mut m);
    let timeout = m.config().probe_timeout;
    let out = run_until(&mut m, timeout);
    let relay = ping_reqs(&out, seq).remove(0);
    m.handle(
        ms(400),
        Input::Message(msg(
            &relay,
            Payload::Ack {
                seq,
                updates: vec![],
                view_checksum: 0,
            },
        )),
    );
    let out = run_until(&mut m, ms(1500));
    assert!(!events(&out).contains(&(EventKind::Suspect, "b".to_owned())));
}

#[test]
fn failed_send_skips_the_direct_wait() {
    let mut m = node_with(&["b", "c", "d", "e"]);
    let seq = probe_b(&mut m);
    m.handle(ms(1), Input::SendFailed { to: "b".into() });
    let out = m.drain_outputs();
    assert_eq!(ping_reqs(&out, seq).len(), 3);
    assert_eq!(
        status(&m, "b"),
        Some((Status::Alive, 1)),
        "no verdict from a failed send"
    );
}

#[test]
fn relay_pings_the_target_and_forwards_the_ack_or_nacks() {
    let mut m = node_with(&["b", "c"]);
    let req = |seq| {
        Input::Message(msg(
            "c",
            Payload::PingReq {
                seq,
                target: "b".into(),
                target_addr: "b:7946".into(),
                updates: vec![],
            },
        ))
    };
    m.handle(ms(1), req(77));
    let out = m.drain_outputs();
    let (to, ping) = sent(&out).remove(0);
    assert_eq!(to, "b");
    let Payload::Ping { seq: relay_seq, .. } = ping.payload else {
        panic!("expected a ping, got {ping:?}");
    };
    m.handle(
        ms(2),
        Input::Message(msg(
            "b",
            Payload::Ack {
                seq: relay_seq,
                updates: vec![],
                view_checksum: 0,
            },
        )),
    );
    let out = m.drain_outputs();
    assert!(
        sent(&out)
            .iter()
            .any(|(to, msg)| to == "c" && matches!(msg.payload, Payload::Ack { seq: 77, .. }))
    );
    // Second request: the target stays silent, so a nack goes back after the probe timeout.
    m.handle(ms(10), req(78));
    m.drain_outputs();
    let until = ms(10) + m.config().probe_timeout;
    let out = run_until(&mut m, until);
    assert!(
        sent(&out)
            .iter()
            .any(|(to, msg)| to == "c" && matches!(msg.payload, Payload::Nack { seq: 78 }))
    );
}

#[test]
fn ping_is_answered_with_an_ack_of_the_same_sequence() {
    let mut m = node_with(&[]);
    let ping = Payload::Ping {
        seq: 5,
        target: "a".into(),
        updates: vec![],
    };
    m.handle(ms(1), Input::Message(msg("b", ping)));
    let out = m.drain_outputs();
    let acks: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { to, addr, msg } => match msg.payload {
                Payload::Ack { seq, .. } => Some((to.as_str(), addr.as_str(), seq)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(acks, [("b", "b:7946", 5)]);
    // "b" was unknown: it becomes a seed, and a push-pull asks for its state.
    assert!(
        sent(&out)
            .iter()
            .any(|(to, m)| to == "b" && m.kind() == "sync")
    );
}

#[test]
fn reconnect_ping_to_a_dead_member_leads_to_a_sync_when_answered() {
    let mut m = node_with(&["b", "c"]);
    gossip(
        &mut m,
        ms(1),
        "c",
        vec![Update::Dead {
            id: "b".into(),
            incarnation: 1,
            from: "c".into(),
        }],
    );
    let interval = m.config().reconnect_interval;
    let out = run_until(&mut m, interval);
    let seq = sent(&out)
        .into_iter()
        .find_map(|(to, msg)| match msg.payload {
            Payload::Ping { seq, .. } if to == "b" => Some(seq),
            _ => None,
        })
        .expect("a reconnect ping to the dead member");
    let now = m.config().reconnect_interval + ms(1);
    m.handle(
        now,
        Input::Message(msg(
            "b",
            Payload::Ack {
                seq,
                updates: vec![],
                view_checksum: 0,
            },
        )),
    );
    let out = m.drain_outputs();
    assert!(
        sent(&out)
            .iter()
            .any(|(to, m)| to == "b" && m.kind() == "sync")
    );
}
