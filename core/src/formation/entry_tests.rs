//! Scripted tests of the join coordinator: requests and inputs in, exact outputs asserted.

use std::net::IpAddr;
use std::time::Duration;

use super::JoinCoordinator;
use crate::formation::config::FormationConfig;
use crate::formation::entry_msg::{
    Input, JoinFailure, JoinRequest, JoinResponse, Output, WaitReason,
};
use crate::formation::facts::{ClusterFacts, ClusterNode, DatastoreRole, MemberState};
use crate::formation::outcome::{Failure, FailureKind};
use crate::formation::policy::{JoinRole, RolePreference};

pub(super) fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(super) fn ip(x: &str) -> IpAddr {
    x.parse().expect("test address")
}

pub(super) fn config() -> FormationConfig {
    FormationConfig::default()
}

pub(super) fn req(id: &str, addr: &str) -> JoinRequest {
    JoinRequest {
        follower: id.into(),
        name: format!("host-{id}"),
        addr: ip(addr),
        met_on: None,
        preference: RolePreference::Auto,
        version: Some("1.32".into()),
    }
}

pub(super) fn voter(name: &str, addr: &str, member: MemberState) -> ClusterNode {
    ClusterNode {
        name: name.into(),
        ip: Some(ip(addr)),
        ready: member == MemberState::Up,
        datastore: Some(DatastoreRole::Voter),
        member,
    }
}

pub(super) fn worker(name: &str, addr: &str) -> ClusterNode {
    ClusterNode {
        name: name.into(),
        ip: Some(ip(addr)),
        ready: true,
        datastore: None,
        member: MemberState::Up,
    }
}

pub(super) fn facts(nodes: Vec<ClusterNode>) -> ClusterFacts {
    ClusterFacts {
        nodes,
        version: Some("1.32".into()),
    }
}

/// An entry point alone in its cluster, with fresh facts and networks.
pub(super) fn coordinator(cfg: FormationConfig) -> JoinCoordinator {
    let mut c = JoinCoordinator::new("entry".into(), cfg, 9, Duration::ZERO).expect("valid");
    c.handle(
        s(0),
        Input::Networks(vec![(ip("198.18.0.1"), 24), (ip("10.9.0.1"), 16)]),
    );
    c.handle(
        s(0),
        Input::Facts(facts(vec![voter("entry", "198.18.0.1", MemberState::Up)])),
    );
    assert!(c.drain_outputs().is_empty());
    c
}

pub(super) fn urls() -> Vec<String> {
    vec![
        "10.9.0.1:25000/tok/chk".into(),
        "198.18.0.1:25000/tok/chk".into(),
    ]
}

pub(super) fn add_node_token(out: &[Output]) -> Option<String> {
    out.iter().find_map(|o| match o {
        Output::AddNode { token, .. } => Some(token.clone()),
        _ => None,
    })
}

#[test]
pub(super) fn first_request_runs_add_node_with_a_fresh_ttl_token() {
    let mut c = coordinator(config());
    let r = c.request(s(1), req("a", "198.18.0.7"));
    assert!(matches!(
        r,
        JoinResponse::Wait {
            position: 0,
            reason: WaitReason::Preparing,
            ..
        }
    ));
    let out = c.drain_outputs();
    let Some(Output::AddNode {
        follower,
        token,
        ttl,
    }) = out.first()
    else {
        panic!("expected add-node: {out:?}");
    };
    assert_eq!((follower.as_str(), *ttl), ("a", s(300)));
    assert_eq!(token.len(), 32);
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[test]
pub(super) fn grant_uses_the_url_on_the_followers_subnet_and_is_repeatable_until_the_token_expires()
{
    let mut c = coordinator(config());
    c.request(s(1), req("a", "198.18.0.7"));
    c.drain_outputs();
    c.handle(
        s(2),
        Input::AddNodeDone {
            follower: "a".into(),
            urls: urls(),
        },
    );
    // Granted, and from now on the node may show up at any moment: look.
    assert_eq!(
        c.drain_outputs(),
        [
            Output::Granted {
                follower: "a".into(),
                name: "host-a".into(),
                role: JoinRole::ControlPlane
            },
            Output::RefreshFacts
        ]
    );
    let granted = JoinResponse::Granted {
        url: "198.18.0.1:25000/tok/chk".into(),
        role: JoinRole::ControlPlane,
    };
    assert_eq!(c.request(s(3), req("a", "198.18.0.7")), granted);
    assert_eq!(c.request(s(301), req("a", "198.18.0.7")), granted);
    // Past the TTL, the grant is abandoned and a fresh token is made.
    let r = c.request(s(302), req("a", "198.18.0.7"));
    assert!(
        matches!(
            r,
            JoinResponse::Wait {
                reason: WaitReason::Preparing,
                ..
            }
        ),
        "{r:?}"
    );
    let out = c.drain_outputs();
    assert!(
        matches!(
            out[0],
            Output::JoinFailed {
                reason: JoinFailure::NoReport,
                ..
            }
        ),
        "{out:?}"
    );
    assert!(add_node_token(&out).is_some());
}

#[test]
pub(super) fn serves_followers_strictly_one_at_a_time_in_order() {
    let mut c = coordinator(config());
    c.request(s(1), req("a", "198.18.0.7"));
    let r = c.request(s(1), req("b", "198.18.0.8"));
    assert!(matches!(
        r,
        JoinResponse::Wait {
            position: 1,
            reason: WaitReason::Queued,
            ..
        }
    ));
    let r = c.request(s(1), req("c", "198.18.0.9"));
    assert!(matches!(r, JoinResponse::Wait { position: 2, .. }));
    assert_eq!(c.drain_outputs().len(), 1, "one add-node only");
    c.handle(
        s(2),
        Input::AddNodeDone {
            follower: "a".into(),
            urls: urls(),
        },
    );
    // a is granted; b's token is made meanwhile (add-node starts nothing).
    let out = c.drain_outputs();
    assert!(matches!(&out[0], Output::Granted { follower, .. } if follower == "a"));
    assert_eq!(out[1], Output::RefreshFacts);
    assert!(matches!(&out[2], Output::AddNode { follower, .. } if follower == "b"));
    c.handle(
        s(3),
        Input::AddNodeDone {
            follower: "b".into(),
            urls: urls(),
        },
    );
    c.handle(
        s(60),
        Input::Report {
            follower: "a".into(),
            outcome: Ok(()),
        },
    );
    c.drain_outputs();
    assert_eq!(
        c.status().serving.as_deref(),
        Some("a"),
        "verifying a still blocks b"
    );
    assert!(matches!(
        c.request(s(60), req("b", "198.18.0.8")),
        JoinResponse::Wait { position: 1, .. }
    ));
    // a shows up Ready and in the datastore: verified, and b is served next.
    let joined = facts(vec![
        voter("entry", "198.18.0.1", MemberState::Up),
        voter("host-a", "198.18.0.7", MemberState::Up),
    ]);
    c.request(s(61), req("b", "198.18.0.8"));
    c.request(s(61), req("c", "198.18.0.9"));
    c.handle(s(62), Input::Facts(joined));
    let out = c.drain_outputs();
    assert_eq!(
        out[0],
        Output::Joined {
            follower: "a".into(),
            name: "host-a".into(),
            role: JoinRole::ControlPlane
        }
    );
    // b is granted at once with the token made ahead; c's token is made now.
    assert!(matches!(&out[1], Output::Granted { follower, .. } if follower == "b"));
    assert_eq!(out[2], Output::RefreshFacts);
    assert!(matches!(&out[3], Output::AddNode { follower, .. } if follower == "c"));
    assert_eq!(c.status().queued, ["c"]);
}

#[test]
fn a_token_made_ahead_is_not_used_once_half_its_ttl_is_gone() {
    let mut c = coordinator(config());
    let ttl = config().token_ttl;
    c.request(s(1), req("a", "198.18.0.7"));
    c.request(s(1), req("b", "198.18.0.8"));
    c.handle(
        s(1),
        Input::AddNodeDone {
            follower: "a".into(),
            urls: urls(),
        },
    );
    c.handle(
        s(1),
        Input::AddNodeDone {
            follower: "b".into(),
            urls: urls(),
        },
    );
    c.drain_outputs();
    let late = s(1) + ttl / 2 + s(1);
    c.request(late, req("b", "198.18.0.8"));
    c.handle(
        late,
        Input::Facts(facts(vec![
            voter("entry", "198.18.0.1", MemberState::Up),
            voter("host-a", "198.18.0.7", MemberState::Up),
        ])),
    );
    let out = c.drain_outputs();
    assert!(matches!(&out[0], Output::Joined { follower, .. } if follower == "a"));
    assert!(
        matches!(&out[1], Output::AddNode { follower, .. } if follower == "b"),
        "a fresh token: {out:?}"
    );
}

#[test]
pub(super) fn a_control_plane_is_verified_only_once_it_is_in_the_datastore() {
    let mut c = coordinator(config());
    c.request(s(1), req("a", "198.18.0.7"));
    c.handle(
        s(2),
        Input::AddNodeDone {
            follower: "a".into(),
            urls: urls(),
        },
    );
    c.handle(
        s(60),
        Input::Report {
            follower: "a".into(),
            outcome: Ok(()),
        },
    );
    c.drain_outputs();
    let mut not_yet = worker("host-a", "198.18.0.7");
    not_yet.ready = true;
    c.handle(
        s(61),
        Input::Facts(facts(vec![
            voter("entry", "198.18.0.1", MemberState::Up),
            not_yet,
        ])),
    );
    assert!(c.drain_outputs().is_empty());
    c.handle(s(62), Input::Tick);
    assert_eq!(c.drain_outputs(), [Output::RefreshFacts]);
    c.handle(s(60 + 300), Input::Tick);
    assert!(matches!(
        c.drain_outputs()[..],
        [Output::JoinFailed {
            reason: JoinFailure::NotVerified,
            ..
        }]
    ));
}

#[test]
pub(super) fn policy_makes_three_control_planes_then_workers() {
    let mut c = coordinator(config());
    let cps = |n: usize| {
        let mut v: Vec<ClusterNode> = (0..n)
            .map(|i| {
                voter(
                    &format!("cp{i}"),
                    &format!("198.18.0.{}", i + 1),
                    MemberState::Up,
                )
            })
            .collect();
        v.push(worker("w", "198.18.0.99"));
        facts(v)
    };
    c.handle(s(0), Input::Facts(cps(2)));
    c.request(s(1), req("a", "198.18.0.7"));
    c.handle(
        s(2),
        Input::AddNodeDone {
            follower: "a".into(),
            urls: urls(),
        },
    );
    assert!(c.drain_outputs().contains(&Output::Granted {
        follower: "a".into(),
        name: "host-a".into(),
        role: JoinRole::ControlPlane
    }));
    c.handle(
        s(3),
        Input::Report {
            follower: "a".into(),
            outcome: Err(Failure::new(FailureKind::Other, "boom")),
        },
    );
    c.handle(s(4), Input::Facts(cps(3)));
    c.request(s(5), req("b", "198.18.0.8"));
    c.handle(
        s(6),
        Input::AddNodeDone {
            follower: "b".into(),
            urls: urls(),
        },
    );
    assert!(c.drain_outputs().contains(&Output::Granted {
        follower: "b".into(),
        name: "host-b".into(),
        role: JoinRole::Worker
    }));
}

#[test]
pub(super) fn failed_report_frees_the_slot_and_the_follower_can_retry_with_a_new_token() {
    let mut c = coordinator(config());
    c.request(s(1), req("a", "198.18.0.7"));
    let first = add_node_token(&c.drain_outputs());
    c.handle(
        s(2),
        Input::AddNodeDone {
            follower: "a".into(),
            urls: urls(),
        },
    );
    c.handle(
        s(30),
        Input::Report {
            follower: "a".into(),
            outcome: Err(Failure::new(FailureKind::Other, "Invalid token (500)")),
        },
    );
    let out = c.drain_outputs();
    assert!(matches!(&out[0], Output::Granted { .. }), "{out:?}");
    assert_eq!(out[1], Output::RefreshFacts);
    assert!(
        matches!(&out[2], Output::JoinFailed { reason: JoinFailure::Reported(d), .. } if d.detail.contains("500"))
    );
    c.request(s(40), req("a", "198.18.0.7"));
    let second = add_node_token(&c.drain_outputs());
    assert!(first.is_some() && second.is_some() && first != second);
}

#[test]
pub(super) fn a_lost_report_is_covered_by_the_facts() {
    let mut c = coordinator(config());
    c.request(s(1), req("a", "198.18.0.7"));
    c.handle(
        s(2),
        Input::AddNodeDone {
            follower: "a".into(),
            urls: urls(),
        },
    );
    c.drain_outputs();
    c.handle(
        s(90),
        Input::Facts(facts(vec![
            voter("entry", "198.18.0.1", MemberState::Up),
            voter("host-a", "198.18.0.7", MemberState::Up),
        ])),
    );
    assert!(matches!(c.drain_outputs()[..], [Output::Joined { .. }]));
}

#[test]
pub(super) fn add_node_failure_or_unreachable_urls_fail_the_attempt() {
    let mut c = coordinator(config());
    c.request(s(1), req("a", "198.18.0.7"));
    c.handle(
        s(2),
        Input::AddNodeFailed {
            follower: "a".into(),
            error: Failure::new(FailureKind::Other, "exit 1"),
        },
    );
    assert!(matches!(
        &c.drain_outputs()[1],
        Output::JoinFailed {
            reason: JoinFailure::AddNode(_),
            ..
        }
    ));
    c.request(s(3), req("a", "fd00::7"));
    c.handle(
        s(4),
        Input::AddNodeDone {
            follower: "a".into(),
            urls: urls(),
        },
    );
    assert!(matches!(
        &c.drain_outputs()[1],
        Output::JoinFailed {
            reason: JoinFailure::NoUsableUrl,
            ..
        }
    ));
}

#[path = "entry_gate_tests.rs"]
mod gate;
#[path = "entry_hold_tests.rs"]
mod hold;
