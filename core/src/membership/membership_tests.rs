//! Unit tests of the state machine, one per protocol rule: drive one `Membership` with
//! hand-made inputs and assert on the exact outputs, as openraft's engine tests do.

use std::sync::Arc;
use std::time::Duration;

use super::*;

pub(super) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

pub(super) fn meta(id: &str) -> NodeMeta {
    NodeMeta {
        id: id.to_owned(),
        name: id.to_owned(),
        addr: format!("{id}:7946"),
        version: "0.1.0".to_owned(),
        ..NodeMeta::default()
    }
}

pub(super) fn alive(id: &str, incarnation: u64) -> Update {
    Update::Alive {
        incarnation,
        meta: Arc::new(meta(id)),
    }
}

pub(super) fn msg(from: &str, payload: Payload) -> Message {
    Message {
        from: from.to_owned(),
        from_addr: format!("{from}:7946"),
        payload,
    }
}

/// Node "a" at time 0 that already knows `others` (alive, incarnation 1).
pub(super) fn node_with(others: &[&str]) -> Membership {
    node_cfg(MembershipConfig::default(), others)
}

pub(super) fn node_cfg(config: MembershipConfig, others: &[&str]) -> Membership {
    let mut m = Membership::new(config, meta("a"), 7, Duration::ZERO).expect("valid");
    m.restore(Duration::ZERO, others.iter().map(|id| (1, meta(id))));
    m.drain_outputs();
    m
}

pub(super) fn gossip(
    m: &mut Membership,
    now: Duration,
    from: &str,
    updates: Vec<Update>,
) -> Vec<Output> {
    m.handle(now, Input::Message(msg(from, Payload::Gossip { updates })));
    m.drain_outputs()
}

pub(super) fn events(out: &[Output]) -> Vec<(EventKind, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some((e.kind, e.member.meta.id.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn sent(out: &[Output]) -> Vec<(String, Message)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, msg, .. } => Some((to.clone(), msg.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn status(m: &Membership, id: &str) -> Option<(Status, u64)> {
    m.member(id).map(|x| (x.status, x.incarnation))
}

/// Ticks at every deadline up to `until`, returning all outputs.
pub(super) fn run_until(m: &mut Membership, until: Duration) -> Vec<Output> {
    let mut out = Vec::new();
    while let Some(t) = m.next_deadline() {
        if t > until {
            break;
        }
        m.tick(t);
        out.extend(m.drain_outputs());
    }
    out
}

pub(super) fn all_updates(out: &[Output]) -> Vec<Update> {
    sent(out)
        .into_iter()
        .flat_map(|(_, msg)| match msg.payload {
            Payload::Ping { updates, .. }
            | Payload::Ack { updates, .. }
            | Payload::PingReq { updates, .. }
            | Payload::Gossip { updates }
            | Payload::SyncReply { updates, .. }
            | Payload::SyncDelta { updates } => updates,
            Payload::Nack { .. } | Payload::Sync { .. } => Vec::new(),
        })
        .collect()
}

#[test]
fn new_rejects_invalid_config_and_metadata() {
    let bad = MembershipConfig {
        gossip_fanout: 0,
        ..Default::default()
    };
    assert!(matches!(
        Membership::new(bad, meta("a"), 1, Duration::ZERO),
        Err(MembershipError::Config(ConfigError::ZeroCount {
            field: "gossip_fanout"
        }))
    ));
    let mut m = meta("a");
    m.addr = String::new();
    assert!(matches!(
        Membership::new(MembershipConfig::default(), m, 1, Duration::ZERO),
        Err(MembershipError::Meta(RejectReason::InvalidAddr(_)))
    ));
}

#[test]
fn alive_gossip_adds_a_member_and_is_regossiped() {
    let mut m = node_with(&["b"]);
    let out = gossip(&mut m, ms(1), "b", vec![alive("c", 0)]);
    assert_eq!(events(&out), [(EventKind::Joined, "c".to_owned())]);
    assert_eq!(status(&m, "c"), Some((Status::Alive, 0)));
    assert_eq!(m.pending_updates(), 1);
}

#[test]
fn suspicion_about_self_is_refuted_with_a_higher_incarnation() {
    let mut m = node_with(&["b"]);
    let suspect = Update::Suspect {
        id: "a".into(),
        incarnation: 0,
        from: "b".into(),
    };
    let out = gossip(&mut m, ms(1), "b", vec![suspect]);
    assert_eq!(events(&out), [(EventKind::Refuted, "a".to_owned())]);
    assert_eq!(m.local().incarnation, 1);
    assert_eq!(m.local().status, Status::Alive);
    assert_eq!(
        m.health_score(),
        1,
        "refuting raises the local health score"
    );
    // A stale suspicion (older incarnation) is not refuted again.
    let stale = Update::Suspect {
        id: "a".into(),
        incarnation: 0,
        from: "c".into(),
    };
    assert!(events(&gossip(&mut m, ms(2), "b", vec![stale])).is_empty());
    // The refutation goes out with the next gossip round.
    let out = run_until(&mut m, ms(300));
    assert!(all_updates(&out).contains(&Update::Alive {
        incarnation: 1,
        meta: Arc::clone(&m.local().meta)
    }));
}

#[test]
fn dead_or_newer_alive_about_self_is_refuted() {
    let mut m = node_with(&["b"]);
    let dead = Update::Dead {
        id: "a".into(),
        incarnation: 4,
        from: "b".into(),
    };
    gossip(&mut m, ms(1), "b", vec![dead]);
    assert_eq!(m.local().incarnation, 5);
    // A previous life of this id published incarnation 9: we must go above it.
    gossip(&mut m, ms(2), "b", vec![alive("a", 9)]);
    assert_eq!(m.local().incarnation, 10);
    // Our own alive echoed back changes nothing.
    let echo = Update::Alive {
        incarnation: 10,
        meta: Arc::clone(&m.local().meta),
    };
    assert!(events(&gossip(&mut m, ms(3), "b", vec![echo])).is_empty());
}

pub(super) fn suspect_from(id: &str, inc: u64, from: &str) -> Update {
    Update::Suspect {
        id: id.into(),
        incarnation: inc,
        from: from.into(),
    }
}

#[test]
fn suspicion_times_out_at_the_maximum_without_confirmations() {
    let mut m = node_with(&["b", "c", "d", "e", "f"]);
    let n = m.cluster_size();
    let (min, max) = (m.config().suspicion_min(n), m.config().suspicion_max(n));
    assert!(max > min);
    let t0 = ms(10);
    let out = gossip(&mut m, t0, "c", vec![suspect_from("b", 1, "c")]);
    assert_eq!(events(&out), [(EventKind::Suspect, "b".to_owned())]);
    let mut declared = None;
    while let Some(t) = m.next_deadline() {
        if t > t0 + max + ms(1) {
            break;
        }
        // Answer any probe of b as if b were unreachable but do not confirm the suspicion.
        m.tick(t);
        let out = m.drain_outputs();
        if events(&out).contains(&(EventKind::Dead, "b".to_owned())) {
            declared = Some(t);
            break;
        }
    }
    let at = declared.expect("b declared dead");
    // A probe of our own may fail and confirm; without it the deadline is exactly the max.
    assert!(at <= t0 + max, "dead at {at:?}, max {max:?}");
    assert!(at >= t0 + min);
    assert_eq!(status(&m, "b"), Some((Status::Dead, 1)));
}

#[test]
fn independent_confirmations_shrink_the_timeout_to_the_minimum() {
    let mut m = node_with(&["b", "c", "d", "e", "f"]);
    let n = m.cluster_size();
    let min = m.config().suspicion_min(n);
    let t0 = ms(10);
    gossip(&mut m, t0, "c", vec![suspect_from("b", 1, "c")]);
    let out = gossip(
        &mut m,
        t0 + ms(1),
        "d",
        vec![
            suspect_from("b", 1, "c"),
            suspect_from("b", 1, "d"),
            suspect_from("b", 1, "e"),
            suspect_from("b", 1, "f"),
        ],
    );
    assert!(events(&out).is_empty(), "confirmations are not new events");
    let out = run_until(&mut m, t0 + min - ms(1));
    assert!(!events(&out).contains(&(EventKind::Dead, "b".to_owned())));
    let out = run_until(&mut m, t0 + min);
    assert!(events(&out).contains(&(EventKind::Dead, "b".to_owned())));
}

#[test]
fn refutation_reaching_a_suspector_cancels_the_suspicion() {
    // No confirmation probe: its unanswered ping would be a second, genuine suspicion.
    let config = MembershipConfig {
        confirm_probes: 0,
        ..Default::default()
    };
    let mut m = node_cfg(config, &["b", "c", "d"]);
    gossip(&mut m, ms(1), "c", vec![suspect_from("b", 1, "c")]);
    assert_eq!(status(&m, "b"), Some((Status::Suspect, 1)));
    // Same incarnation: not a refutation.
    gossip(&mut m, ms(2), "c", vec![alive("b", 1)]);
    assert_eq!(status(&m, "b"), Some((Status::Suspect, 1)));
    let out = gossip(&mut m, ms(3), "b", vec![alive("b", 2)]);
    assert_eq!(events(&out), [(EventKind::AliveAgain, "b".to_owned())]);
    let out = run_answering(&mut m, Duration::from_secs(60), &["b", "c", "d"]);
    assert!(!events(&out).contains(&(EventKind::Dead, "b".to_owned())));
    assert_eq!(status(&m, "b"), Some((Status::Alive, 2)));
}

/// Like [`run_until`], but every ping to one of `up` is acked at once by its target.
pub(super) fn run_answering(m: &mut Membership, until: Duration, up: &[&str]) -> Vec<Output> {
    let mut out = Vec::new();
    while let Some(t) = m.next_deadline() {
        if t > until {
            break;
        }
        m.tick(t);
        let mut batch = m.drain_outputs();
        while !batch.is_empty() {
            let acks: Vec<(String, u64)> = sent(&batch)
                .into_iter()
                .filter_map(|(to, msg)| match msg.payload {
                    Payload::Ping { seq, .. } if up.contains(&to.as_str()) => Some((to, seq)),
                    _ => None,
                })
                .collect();
            out.append(&mut batch);
            for (from, seq) in acks {
                let ack = Payload::Ack {
                    seq,
                    updates: vec![],
                    view_checksum: 0,
                };
                m.handle(t, Input::Message(msg(&from, ack)));
            }
            batch = m.drain_outputs();
        }
    }
    out
}

#[test]
fn left_is_not_dead_and_only_a_higher_incarnation_brings_it_back() {
    let mut m = node_with(&["b", "c"]);
    let out = gossip(
        &mut m,
        ms(1),
        "b",
        vec![Update::Left {
            id: "b".into(),
            incarnation: 2,
        }],
    );
    assert_eq!(events(&out), [(EventKind::Left, "b".to_owned())]);
    let dead = Update::Dead {
        id: "b".into(),
        incarnation: 2,
        from: "c".into(),
    };
    assert!(events(&gossip(&mut m, ms(2), "c", vec![dead])).is_empty());
    assert!(events(&gossip(&mut m, ms(3), "c", vec![alive("b", 2)])).is_empty());
    assert!(events(&gossip(&mut m, ms(4), "c", vec![suspect_from("b", 3, "c")])).is_empty());
    assert_eq!(status(&m, "b"), Some((Status::Left, 2)));
    let out = gossip(&mut m, ms(5), "b", vec![alive("b", 3)]);
    assert_eq!(events(&out), [(EventKind::AliveAgain, "b".to_owned())]);
}

#[test]
fn dead_member_is_not_resurrected_at_the_same_incarnation() {
    let mut m = node_with(&["b", "c"]);
    let dead = Update::Dead {
        id: "b".into(),
        incarnation: 1,
        from: "c".into(),
    };
    assert_eq!(
        events(&gossip(&mut m, ms(1), "c", vec![dead])),
        [(EventKind::Dead, "b".into())]
    );
    assert!(events(&gossip(&mut m, ms(2), "c", vec![alive("b", 1)])).is_empty());
    // The node's own word still turns dead into left.
    let left = Update::Left {
        id: "b".into(),
        incarnation: 1,
    };
    assert_eq!(
        events(&gossip(&mut m, ms(3), "c", vec![left])),
        [(EventKind::Left, "b".into())]
    );
}

#[test]
fn newest_metadata_wins() {
    let mut m = node_with(&["b"]);
    let with_version = |inc, version, role: &str| {
        let mut x = meta("c");
        x.meta_version = version;
        x.fields.insert("role".into(), role.into());
        Update::Alive {
            incarnation: inc,
            meta: Arc::new(x),
        }
    };
    gossip(&mut m, ms(1), "b", vec![with_version(1, 3, "three")]);
    assert!(events(&gossip(&mut m, ms(2), "b", vec![with_version(1, 2, "two")])).is_empty());
    let out = gossip(&mut m, ms(3), "b", vec![with_version(1, 4, "four")]);
    assert_eq!(events(&out), [(EventKind::Updated, "c".into())]);
    let role = |m: &Membership| m.member("c").map(|c| c.meta.fields["role"].clone());
    assert_eq!(role(&m).as_deref(), Some("four"));
    // A higher incarnation wins even with an older metadata version (the node restarted).
    gossip(&mut m, ms(4), "b", vec![with_version(2, 0, "restarted")]);
    assert_eq!(role(&m).as_deref(), Some("restarted"));
}

#[test]
fn local_metadata_update_bumps_the_version_and_is_disseminated() {
    let mut m = node_with(&["b"]);
    let mut new = meta("a");
    new.fields.insert("microk8s".into(), "ready".into());
    new.meta_version = 999;
    assert_eq!(m.update_local_meta(new, ms(1)), Ok(1));
    assert_eq!(m.local().meta.meta_version, 1);
    let out = run_until(&mut m, ms(300));
    assert!(all_updates(&out).iter().any(|u| matches!(u,
        Update::Alive { meta, .. } if meta.id == "a" && meta.meta_version == 1)));
    assert!(matches!(
        m.update_local_meta(meta("z"), ms(2)),
        Err(MembershipError::IdChanged { .. })
    ));
}

#[test]
fn leave_gossips_left_with_a_bumped_incarnation_then_goes_quiet() {
    let mut m = node_with(&["b", "c", "d"]);
    m.leave(ms(100));
    assert!(matches!(m.phase(), LocalPhase::Leaving { .. }));
    let out = m.drain_outputs();
    assert!(all_updates(&out).contains(&Update::Left {
        id: "a".into(),
        incarnation: 1
    }));
    // Suspicions of a leaving node are not refuted.
    gossip(&mut m, ms(101), "b", vec![suspect_from("a", 1, "b")]);
    assert_eq!(m.local().incarnation, 1);
    run_until(&mut m, Duration::from_secs(5));
    assert_eq!(m.phase(), LocalPhase::Left);
    assert_eq!(m.next_deadline(), None);
    assert_eq!(
        m.update_local_meta(meta("a"), ms(6000)),
        Err(MembershipError::NotActive)
    );
    m.handle(
        ms(6000),
        Input::Message(msg("b", Payload::Gossip { updates: vec![] })),
    );
    assert!(m.drain_outputs().is_empty());
}

#[test]
fn dead_members_are_forgotten_after_the_retention() {
    let config = MembershipConfig {
        dead_retention: Duration::from_secs(5),
        ..Default::default()
    };
    let mut m = Membership::new(config, meta("a"), 3, Duration::ZERO).expect("valid");
    m.restore(Duration::ZERO, [(1, meta("b"))]);
    gossip(
        &mut m,
        ms(1),
        "c",
        vec![Update::Left {
            id: "b".into(),
            incarnation: 2,
        }],
    );
    let out = run_until(&mut m, Duration::from_secs(61));
    assert!(events(&out).contains(&(EventKind::Forgotten, "b".into())));
    assert!(m.member("b").is_none());
}

#[test]
fn deadline_always_moves_past_now_after_a_tick() {
    let mut m = node_with(&["b", "c", "d"]);
    let mut now = Duration::ZERO;
    for _ in 0..200 {
        let Some(t) = m.next_deadline() else { break };
        now = now.max(t);
        m.tick(now);
        m.drain_outputs();
        assert!(
            m.next_deadline().is_none_or(|n| n > now),
            "stuck at {now:?}"
        );
    }
}

#[test]
fn hostile_messages_are_rejected_with_a_reason_and_change_nothing() {
    let long = "x".repeat(300);
    let mut big_fields = meta("evil");
    for i in 0..100 {
        big_fields.fields.insert(format!("k{i}"), "v".into());
    }
    type Expect = fn(&RejectReason) -> bool;
    let cases: Vec<(Message, Expect)> = vec![
        (msg("", Payload::Nack { seq: 1 }), |r| {
            matches!(r, RejectReason::InvalidId(_))
        }),
        (msg(&long, Payload::Nack { seq: 1 }), |r| {
            matches!(r, RejectReason::InvalidId(_))
        }),
        (msg("a", Payload::Nack { seq: 1 }), |r| {
            *r == RejectReason::FromSelf
        }),
        (
            Message {
                from: "b".into(),
                from_addr: "bad addr\n".into(),
                payload: Payload::Nack { seq: 1 },
            },
            |r| matches!(r, RejectReason::InvalidAddr(_)),
        ),
        (
            msg(
                "b",
                Payload::Ping {
                    seq: 1,
                    target: "other".into(),
                    updates: vec![],
                },
            ),
            |r| matches!(r, RejectReason::WrongTarget(_)),
        ),
        (
            msg(
                "b",
                Payload::PingReq {
                    seq: 1,
                    target: "b".into(),
                    target_addr: "b:1".into(),
                    updates: vec![],
                },
            ),
            |r| matches!(r, RejectReason::InvalidTarget(_)),
        ),
        (
            msg(
                "b",
                Payload::Gossip {
                    updates: vec![alive("c", u64::MAX)],
                },
            ),
            |r| matches!(r, RejectReason::IncarnationOutOfRange(..)),
        ),
        (
            msg(
                "b",
                Payload::Gossip {
                    updates: vec![Update::Alive {
                        incarnation: 1,
                        meta: Arc::new(big_fields),
                    }],
                },
            ),
            |r| {
                matches!(
                    r,
                    RejectReason::InvalidMeta {
                        what: "fields count",
                        ..
                    }
                )
            },
        ),
        (
            msg(
                "b",
                Payload::Gossip {
                    updates: vec![
                        Update::Left {
                            id: "c".into(),
                            incarnation: 1
                        };
                        5000
                    ],
                },
            ),
            |r| {
                matches!(
                    r,
                    RejectReason::TooMany {
                        what: "updates",
                        ..
                    }
                )
            },
        ),
        (
            msg(
                "b",
                Payload::Sync {
                    digest: vec![Digest {
                        id: "\u{7}".into(),
                        incarnation: 0,
                        status: Status::Alive,
                        meta_version: 0,
                    }],
                },
            ),
            |r| matches!(r, RejectReason::InvalidId(_)),
        ),
    ];
    for (bad, expected) in cases {
        let mut m = node_with(&["b", "c"]);
        let before = m.view();
        m.handle(ms(1), Input::Message(bad.clone()));
        let out = m.drain_outputs();
        match out.as_slice() {
            [Output::Rejected { reason, .. }] => assert!(expected(reason), "{bad:?}: {reason}"),
            other => panic!("{bad:?} not rejected alone: {other:?}"),
        }
        assert_eq!(m.view(), before, "{bad:?} changed the view");
    }
}

#[path = "membership_view_tests.rs"]
mod view;
