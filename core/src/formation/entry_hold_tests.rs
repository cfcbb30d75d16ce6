//! The coordinator's long poll and its pace while a join is in flight: requests that would wait
//! are held until their grant or [`JOIN_HOLD`], superseded, released when this node stops
//! being the entry point; facts are asked for often while a join is in flight.

use std::time::Duration;

use super::*;
use crate::formation::entry_msg::{Input, JoinResponse, Output, WaitReason};
use crate::formation::pacing::{JOIN_HOLD, NOT_ENTRY_RETRY, SERVING_REFRESH};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn active() -> JoinCoordinator {
    let mut c = coordinator(config());
    c.handle(s(0), Input::Active(true));
    assert!(c.drain_outputs().is_empty());
    c
}

fn ask(c: &mut JoinCoordinator, now: Duration, ticket: u64, id: &str, addr: &str) {
    c.handle(
        now,
        Input::Request {
            ticket,
            req: req(id, addr),
        },
    );
}

/// The answers among `out`, by ticket.
fn answers(out: &[Output]) -> Vec<(u64, JoinResponse)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Answer { ticket, response } => Some((*ticket, response.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_request_that_would_wait_is_held_and_answered_with_its_grant() {
    let mut c = active();
    ask(&mut c, s(1), 7, "a", "198.18.0.7");
    let out = c.drain_outputs();
    assert!(answers(&out).is_empty(), "held, not answered: {out:?}");
    assert!(add_node_token(&out).is_some());
    assert_eq!(c.status().held, 1);
    assert_eq!(c.next_deadline(), Some(s(1) + JOIN_HOLD));
    c.handle(
        s(1) + ms(300),
        Input::AddNodeDone {
            follower: "a".into(),
            urls: urls(),
        },
    );
    let out = c.drain_outputs();
    assert_eq!(
        answers(&out),
        [(
            7,
            JoinResponse::Granted {
                url: "198.18.0.1:25000/tok/chk".into(),
                role: JoinRole::ControlPlane,
            }
        )],
        "{out:?}"
    );
    assert_eq!(c.status().held, 0);
}

#[test]
fn a_hold_ends_after_join_hold_with_ask_again_now() {
    let mut c = active();
    ask(&mut c, s(1), 1, "a", "198.18.0.7");
    ask(&mut c, s(1), 2, "b", "198.18.0.8");
    c.drain_outputs();
    c.handle(s(1) + JOIN_HOLD - ms(1), Input::Tick);
    assert!(answers(&c.drain_outputs()).is_empty());
    c.handle(s(1) + JOIN_HOLD, Input::Tick);
    let mut got = answers(&c.drain_outputs());
    got.sort_by_key(|(t, _)| *t);
    let again = JoinResponse::Wait {
        position: 0,
        retry_after: Duration::ZERO,
        reason: WaitReason::Queued,
    };
    assert_eq!(got, [(1, again.clone()), (2, again)]);
}

#[test]
fn a_newer_request_supersedes_the_held_one() {
    let mut c = active();
    ask(&mut c, s(1), 1, "a", "198.18.0.7");
    c.drain_outputs();
    ask(&mut c, s(1) + ms(500), 2, "a", "198.18.0.7");
    let got = answers(&c.drain_outputs());
    assert!(
        matches!(&got[..], [(1, JoinResponse::Wait { retry_after, .. })] if retry_after.is_zero()),
        "{got:?}"
    );
    assert_eq!(c.status().held, 1);
    assert_eq!(c.next_deadline(), Some(s(1) + ms(500) + JOIN_HOLD));
}

#[test]
fn a_node_that_is_not_the_entry_point_answers_at_once_and_releases_what_it_held() {
    let mut c = coordinator(config());
    c.handle(s(0), Input::Active(false));
    ask(&mut c, s(1), 1, "a", "198.18.0.7");
    let not_entry = JoinResponse::Wait {
        position: 0,
        retry_after: NOT_ENTRY_RETRY,
        reason: WaitReason::NotEntry,
    };
    let out = c.drain_outputs();
    assert_eq!(answers(&out), [(1, not_entry.clone())]);
    assert!(add_node_token(&out).is_none(), "nothing is started");
    c.handle(s(2), Input::Active(true));
    ask(&mut c, s(2), 2, "a", "198.18.0.7");
    ask(&mut c, s(2), 3, "b", "198.18.0.8");
    c.drain_outputs();
    assert_eq!(c.status().held, 2);
    c.handle(s(3), Input::Active(false));
    let mut got = answers(&c.drain_outputs());
    got.sort_by_key(|(t, _)| *t);
    assert_eq!(got, [(2, not_entry.clone()), (3, not_entry)]);
    assert_eq!(c.status().held, 0);
}

#[test]
fn facts_are_asked_for_every_200_ms_while_granted_and_faster_after_the_report() {
    let mut c = active();
    ask(&mut c, s(1), 1, "a", "198.18.0.7");
    c.handle(
        s(1),
        Input::AddNodeDone {
            follower: "a".into(),
            urls: urls(),
        },
    );
    assert!(c.drain_outputs().contains(&Output::RefreshFacts));
    let alone = || facts(vec![voter("entry", "198.18.0.1", MemberState::Up)]);
    // Granted: the next look 200 ms after the last facts arrived.
    c.handle(s(1) + ms(50), Input::Facts(alone()));
    assert_eq!(c.next_deadline(), Some(s(1) + ms(50) + SERVING_REFRESH));
    c.handle(s(1) + ms(250), Input::Tick);
    assert_eq!(c.drain_outputs(), [Output::RefreshFacts]);
    // Reported: at once, then 20, 40, 80, 160, 200 ms after each arrival.
    let mut now = s(2);
    c.handle(
        now,
        Input::Report {
            follower: "a".into(),
            outcome: Ok(()),
        },
    );
    assert_eq!(c.drain_outputs(), [Output::RefreshFacts]);
    let mut pauses = Vec::new();
    for _ in 0..6 {
        now += ms(5);
        c.handle(now, Input::Facts(alone()));
        let due = c.next_deadline().expect("next look");
        pauses.push((due - now).as_millis());
        now = due;
        c.handle(now, Input::Tick);
        assert_eq!(c.drain_outputs(), [Output::RefreshFacts]);
    }
    assert_eq!(pauses, [20, 40, 80, 160, 200, 200]);
}

#[test]
fn a_coordinator_that_steps_down_ends_its_join_and_starts_nothing_more() {
    let mut c = active();
    ask(&mut c, s(1), 1, "a", "198.18.0.7");
    ask(&mut c, s(1), 2, "b", "198.18.0.8");
    c.handle(
        s(1),
        Input::AddNodeDone {
            follower: "a".into(),
            urls: urls(),
        },
    );
    let out = c.drain_outputs();
    assert!(
        out.iter().any(|o| matches!(o, Output::Granted { .. })),
        "{out:?}"
    );
    c.handle(s(2), Input::Active(false));
    let out = c.drain_outputs();
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::JoinFailed {
                reason: crate::formation::entry_msg::JoinFailure::NotEntry,
                ..
            }
        )),
        "{out:?}"
    );
    assert_eq!(c.status().serving, None);
    assert!(c.status().queued.is_empty());
    // Its clock goes on, its queue is gone: no add-node, no grant.
    c.handle(s(60), Input::Tick);
    c.handle(
        s(61),
        Input::LeaveRequested {
            name: "host-z".into(),
        },
    );
    let out = c.drain_outputs();
    assert!(
        !out.iter().any(|o| matches!(
            o,
            Output::AddNode { .. } | Output::Granted { .. } | Output::RemoveNode { .. }
        )),
        "{out:?}"
    );
}
