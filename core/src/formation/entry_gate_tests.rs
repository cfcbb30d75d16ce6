//! Scripted tests of what holds the join coordinator back: dead voters, lost quorum,
//! removals (dead members, leaving nodes), refusals and expired queue places.

use super::*;
use crate::formation::config::FormationConfig;
use crate::formation::entry_msg::{
    Blocked, EntryRefusal, Input, JoinRequest, JoinResponse, Output, WaitReason,
};
use crate::formation::facts::MemberState;
use crate::formation::outcome::{Failure, FailureKind};

#[test]
fn never_adds_a_node_while_a_dead_voter_is_registered() {
    let dead = MemberState::Dead { since: s(100) };
    let mut c = coordinator(config());
    c.handle(
        s(100),
        Input::Facts(facts(vec![
            voter("entry", "198.18.0.1", MemberState::Up),
            voter("b", "198.18.0.2", MemberState::Up),
            voter("gone", "198.18.0.3", dead),
        ])),
    );
    let r = c.request(s(101), req("a", "198.18.0.7"));
    let want = Blocked::DeadVoters {
        names: vec!["gone".into()],
    };
    assert!(
        matches!(&r, JoinResponse::Wait { position: 1, reason: WaitReason::Blocked(b), .. } if *b == want),
        "{r:?}"
    );
    assert_eq!(c.drain_outputs(), [Output::Blocked(want)]);
    assert_eq!(
        c.next_deadline(),
        Some(s(131)),
        "only the queue expiry; removal is off"
    );
}

#[test]
fn dead_members_are_removed_after_remove_after_then_joins_resume() {
    let dead = MemberState::Dead { since: s(100) };
    let cfg = FormationConfig {
        remove_after: Some(s(60)),
        ..config()
    };
    let mut c = coordinator(cfg);
    let with_gone = facts(vec![
        voter("entry", "198.18.0.1", MemberState::Up),
        voter("b", "198.18.0.2", MemberState::Up),
        voter("gone", "198.18.0.3", dead),
    ]);
    c.handle(s(100), Input::Facts(with_gone.clone()));
    c.request(s(101), req("a", "198.18.0.7"));
    c.drain_outputs();
    assert_eq!(c.next_deadline(), Some(s(131)));
    c.handle(s(160), Input::Facts(with_gone.clone()));
    assert_eq!(
        c.drain_outputs(),
        [Output::RemoveNode {
            name: "gone".into(),
            force: true
        }]
    );
    c.handle(
        s(165),
        Input::RemoveDone {
            name: "gone".into(),
            outcome: Ok(()),
        },
    );
    assert_eq!(
        c.drain_outputs(),
        [
            Output::Removed {
                name: "gone".into()
            },
            Output::RefreshFacts
        ]
    );
    // Nothing more until fresh facts arrive, even though the old ones still list "gone".
    c.handle(s(166), Input::Tick);
    assert!(c.drain_outputs().is_empty());
    c.request(s(166), req("a", "198.18.0.7"));
    c.handle(
        s(167),
        Input::Facts(facts(vec![
            voter("entry", "198.18.0.1", MemberState::Up),
            voter("b", "198.18.0.2", MemberState::Up),
        ])),
    );
    let out = c.drain_outputs();
    assert_eq!(out[0], Output::Unblocked);
    assert!(add_node_token(&out).is_some());
}

#[test]
fn dead_members_are_never_removed_without_quorum() {
    let dead = MemberState::Dead { since: s(0) };
    let cfg = FormationConfig {
        remove_after: Some(s(60)),
        ..config()
    };
    let mut c = coordinator(cfg);
    c.handle(
        s(1000),
        Input::Facts(facts(vec![
            voter("entry", "198.18.0.1", MemberState::Up),
            voter("gone", "198.18.0.3", dead),
        ])),
    );
    c.request(s(1001), req("a", "198.18.0.7"));
    let out = c.drain_outputs();
    assert_eq!(
        out,
        [Output::Blocked(Blocked::QuorumLost { live: 1, voters: 2 })]
    );
}

#[test]
fn a_failed_removal_is_not_retried_at_once() {
    let cfg = FormationConfig {
        remove_after: Some(s(60)),
        ..config()
    };
    let mut c = coordinator(cfg);
    let f = facts(vec![
        voter("entry", "198.18.0.1", MemberState::Up),
        voter("b", "198.18.0.2", MemberState::Up),
        worker("gone", "198.18.0.3"),
    ]);
    let mut f = f;
    f.nodes[2].member = MemberState::Dead { since: s(0) };
    c.handle(s(100), Input::Facts(f.clone()));
    assert_eq!(
        c.drain_outputs(),
        [Output::RemoveNode {
            name: "gone".into(),
            force: true
        }]
    );
    c.handle(
        s(101),
        Input::RemoveDone {
            name: "gone".into(),
            outcome: Err(Failure::new(FailureKind::Other, "exit 2")),
        },
    );
    c.handle(s(102), Input::Facts(f.clone()));
    let out = c.drain_outputs();
    assert!(
        !out.iter().any(|o| matches!(o, Output::RemoveNode { .. })),
        "{out:?}"
    );
    c.handle(s(101 + 120), Input::Facts(f));
    assert_eq!(
        c.drain_outputs(),
        [Output::RemoveNode {
            name: "gone".into(),
            force: true
        }]
    );
}

#[test]
fn leave_requests_are_removed_without_force_before_the_next_join() {
    let mut c = coordinator(config());
    c.handle(s(1), Input::LeaveRequested { name: "w1".into() });
    c.request(s(1), req("a", "198.18.0.7"));
    assert_eq!(
        c.drain_outputs(),
        [Output::RemoveNode {
            name: "w1".into(),
            force: false
        }]
    );
    c.handle(
        s(5),
        Input::RemoveDone {
            name: "w1".into(),
            outcome: Ok(()),
        },
    );
    c.handle(
        s(6),
        Input::Facts(facts(vec![voter("entry", "198.18.0.1", MemberState::Up)])),
    );
    assert!(add_node_token(&c.drain_outputs()).is_some());
}

#[test]
fn entry_refusals_table() {
    let mut c = coordinator(config());
    c.handle(
        s(0),
        Input::Facts(facts(vec![
            voter("entry", "198.18.0.1", MemberState::Up),
            worker("host-a", "198.18.0.7"),
            worker("host-b", "198.18.0.50"),
        ])),
    );
    let old = JoinRequest {
        version: Some("1.31".into()),
        ..req("c", "198.18.0.9")
    };
    let cases = [
        (
            "a Ready node at the same address is already a member",
            req("a", "198.18.0.7"),
            EntryRefusal::AlreadyMember,
        ),
        (
            "the name of another machine is taken",
            req("b", "198.18.0.8"),
            EntryRefusal::NameTaken {
                name: "host-b".into(),
            },
        ),
        (
            "mixed versions are refused",
            old,
            EntryRefusal::MixedVersions {
                follower: "1.31".into(),
                entry: "1.32".into(),
            },
        ),
    ];
    for (name, r, want) in cases {
        assert_eq!(
            c.request(s(1), r),
            JoinResponse::Refused(want),
            "case: {name}"
        );
    }
    assert!(c.drain_outputs().is_empty());
}

#[test]
fn queued_followers_that_stop_asking_lose_their_place() {
    let mut c = coordinator(config());
    c.request(s(1), req("a", "198.18.0.7"));
    c.request(s(1), req("b", "198.18.0.8"));
    c.request(s(1), req("c", "198.18.0.9"));
    c.request(s(25), req("c", "198.18.0.9"));
    c.drain_outputs();
    // b last asked at 1 s, so at 35 s (queue_expiry 30 s) its place is gone; c's is not.
    c.handle(
        s(35),
        Input::AddNodeFailed {
            follower: "a".into(),
            error: Failure::new(FailureKind::Other, "x"),
        },
    );
    let out = c.drain_outputs();
    assert!(
        matches!(&out[1], Output::AddNode { follower, .. } if follower == "c"),
        "{out:?}"
    );
    assert!(c.status().queued.is_empty());
}

#[test]
fn a_stale_object_of_the_follower_itself_is_removed_before_its_join() {
    let mut c = coordinator(config());
    // A join of host-a that never completed left a NotReady Node object, no datastore member.
    let stale = ClusterNode {
        datastore: None,
        ..voter("host-a", "198.18.0.7", MemberState::Up)
    };
    let stale = ClusterNode {
        ready: false,
        ..stale
    };
    c.handle(
        s(0),
        Input::Facts(facts(vec![
            voter("entry", "198.18.0.1", MemberState::Up),
            stale.clone(),
        ])),
    );
    let r = c.request(s(1), req("a", "198.18.0.7"));
    assert!(matches!(r, JoinResponse::Wait { .. }), "{r:?}");
    assert_eq!(
        c.drain_outputs(),
        [Output::RemoveNode {
            name: "host-a".into(),
            force: false
        }]
    );
    // Another machine with that name but another address is still refused.
    let other = JoinRequest {
        name: "host-a".into(),
        ..req("z", "198.18.0.99")
    };
    assert_eq!(
        c.request(s(1), other),
        JoinResponse::Refused(EntryRefusal::NameTaken {
            name: "host-a".into()
        })
    );
    c.handle(
        s(2),
        Input::RemoveDone {
            name: "host-a".into(),
            outcome: Ok(()),
        },
    );
    assert!(c.drain_outputs().contains(&Output::RefreshFacts));
    c.handle(
        s(3),
        Input::Facts(facts(vec![voter("entry", "198.18.0.1", MemberState::Up)])),
    );
    c.request(s(3), req("a", "198.18.0.7"));
    assert!(
        add_node_token(&c.drain_outputs()).is_some(),
        "then a is served"
    );
}

#[test]
fn a_stale_datastore_member_is_left_to_the_operator() {
    let mut c = coordinator(config());
    let stale = ClusterNode {
        ready: false,
        ..voter("host-a", "198.18.0.7", MemberState::Up)
    };
    c.handle(
        s(0),
        Input::Facts(facts(vec![
            voter("entry", "198.18.0.1", MemberState::Up),
            voter("host-b", "198.18.0.8", MemberState::Up),
            voter("host-c", "198.18.0.9", MemberState::Up),
            stale,
        ])),
    );
    assert_eq!(
        c.request(s(1), req("a", "198.18.0.7")),
        JoinResponse::Refused(EntryRefusal::NameTaken {
            name: "host-a".into()
        })
    );
    assert!(c.drain_outputs().is_empty());
}
