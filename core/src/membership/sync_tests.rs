//! Unit tests of push-pull and discovery.

use crate::membership::tests::*;
use crate::membership::*;

#[test]
fn push_pull_sends_only_what_the_peer_lacks_and_merges_dead_as_suspect() {
    let mut m = node_with(&["b", "c"]);
    // x knows b at our incarnation, and c as dead; x lacks a.
    let digest = vec![
        Digest {
            id: "x".into(),
            incarnation: 0,
            status: Status::Alive,
            meta_version: 0,
        },
        Digest {
            id: "b".into(),
            incarnation: 1,
            status: Status::Alive,
            meta_version: 0,
        },
        Digest {
            id: "c".into(),
            incarnation: 1,
            status: Status::Dead,
            meta_version: 0,
        },
    ];
    m.handle(ms(1), Input::Message(msg("x", Payload::Sync { digest })));
    let out = m.drain_outputs();
    let (to, reply) = sent(&out).remove(0);
    assert_eq!(to, "x");
    let Payload::SyncReply { digest, updates } = reply.payload else {
        panic!("expected a sync reply, got {reply:?}");
    };
    let ids: Vec<&str> = updates.iter().map(Update::id).collect();
    assert_eq!(ids, ["a"], "b is equal and c is older on our side");
    assert_eq!(digest.len(), 3);
    // The delta from x: x itself, and c dead, which we only suspect.
    let dead_c = Update::Dead {
        id: "c".into(),
        incarnation: 1,
        from: "x".into(),
    };
    let delta = Payload::SyncDelta {
        updates: vec![alive("x", 0), dead_c],
    };
    let out = {
        m.handle(ms(2), Input::Message(msg("x", delta)));
        m.drain_outputs()
    };
    assert_eq!(
        events(&out),
        [
            (EventKind::Joined, "x".into()),
            (EventKind::Suspect, "c".into())
        ]
    );
}

#[test]
fn sync_reply_is_merged_and_answered_with_a_delta() {
    let mut m = node_with(&["b"]);
    let digest = vec![Digest {
        id: "y".into(),
        incarnation: 3,
        status: Status::Alive,
        meta_version: 0,
    }];
    let reply = Payload::SyncReply {
        digest,
        updates: vec![alive("y", 3), alive("z", 0)],
    };
    m.handle(ms(1), Input::Message(msg("y", reply)));
    let out = m.drain_outputs();
    assert_eq!(status(&m, "z"), Some((Status::Alive, 0)));
    let delta: Vec<Vec<String>> = sent(&out)
        .into_iter()
        .filter_map(|(_, msg)| match msg.payload {
            Payload::SyncDelta { updates } => {
                Some(updates.iter().map(|u| u.id().to_owned()).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(delta, [["a", "b", "z"]]);
}

#[test]
fn discovery_starts_a_rate_limited_join_sync() {
    let mut m = node_with(&[]);
    for i in 0..5 {
        m.handle(
            ms(1),
            Input::Discovered {
                id: format!("p{i}"),
                addr: format!("p{i}:1"),
            },
        );
    }
    let syncs = |out: &[Output]| sent(out).iter().filter(|(_, m)| m.kind() == "sync").count();
    assert_eq!(syncs(&m.drain_outputs()), 3, "join_syncs per window");
    let out = run_until(&mut m, ms(600));
    let late: Vec<String> = sent(&out)
        .into_iter()
        .filter(|(_, m)| m.kind() == "sync")
        .map(|(to, _)| to)
        .collect();
    assert_eq!(late.len(), 3, "one window's worth: {late:?}");
    assert!(
        late.contains(&"p3".to_owned()) && late.contains(&"p4".to_owned()),
        "{late:?}"
    );
    // Our own id and malformed records are ignored or rejected.
    m.handle(
        ms(700),
        Input::Discovered {
            id: "a".into(),
            addr: "a:1".into(),
        },
    );
    m.handle(
        ms(700),
        Input::Discovered {
            id: String::new(),
            addr: "x:1".into(),
        },
    );
    let out = m.drain_outputs();
    assert!(matches!(
        out.as_slice(),
        [Output::Rejected {
            reason: RejectReason::InvalidId(_),
            ..
        }]
    ));
}
