//! Scripted tests of the follower's join state machine.

use std::time::Duration;

use super::{FailReason, FollowerJoin, FollowerView, Input, Output, Phase};
use crate::election::MemberView;
use crate::formation::config::FormationConfig;
use crate::formation::entry_msg::{Blocked, EntryRefusal, JoinResponse, WaitReason};
use crate::formation::outcome::{Failure, FailureKind};
use crate::formation::policy::JoinRole;
use crate::formation::refusal::Refusal;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn member(id: &str, cluster: &str, size: u32) -> MemberView {
    MemberView {
        id: id.into(),
        name: id.into(),
        cluster_id: Some(cluster.into()),
        cluster_size: size,
        control_plane: true,
        microk8s_ready: true,
        has_default_route: true,
        version: Some("1.32".into()),
        ..MemberView::default()
    }
}

fn view(local: &MemberView, entry: Option<&MemberView>) -> Input {
    let mut members = vec![local.clone()];
    members.extend(entry.cloned());
    Input::View(Box::new(FollowerView {
        local: local.clone(),
        entry: entry.cloned(),
        members,
    }))
}

/// The outputs without phase reports.
fn actions(out: Vec<Output>) -> Vec<Output> {
    out.into_iter()
        .filter(|o| !matches!(o, Output::Phase(_)))
        .collect()
}

fn follower() -> FollowerJoin {
    FollowerJoin::new(FormationConfig::default(), 3, Duration::ZERO).expect("valid")
}

fn grant(role: JoinRole) -> Input {
    Input::Response {
        from: "e".into(),
        response: JoinResponse::Granted {
            url: "198.18.0.1:25000/t/c".into(),
            role,
        },
    }
}

/// A follower that has been granted a join and is running `microk8s join`.
fn joining() -> FollowerJoin {
    let mut f = follower();
    f.handle(
        s(0),
        view(&member("l", "ca-l", 1), Some(&member("e", "X", 1))),
    );
    f.handle(s(1), Input::Ready(Ok(())));
    f.handle(s(2), grant(JoinRole::ControlPlane));
    f.drain_outputs();
    f
}

#[test]
fn happy_path_waits_ready_requests_joins_verifies_and_reports() {
    let mut f = follower();
    f.handle(
        s(0),
        view(&member("l", "ca-l", 1), Some(&member("e", "X", 1))),
    );
    assert_eq!(actions(f.drain_outputs()), [Output::WaitReady]);
    assert_eq!(f.phase(), &Phase::WaitingReady);
    f.handle(s(1), Input::Ready(Ok(())));
    assert_eq!(
        actions(f.drain_outputs()),
        [Output::RequestJoin { entry: "e".into() }]
    );
    f.handle(s(2), grant(JoinRole::Worker));
    assert_eq!(
        actions(f.drain_outputs()),
        [Output::Join {
            url: "198.18.0.1:25000/t/c".into(),
            role: JoinRole::Worker
        }]
    );
    f.handle(s(60), Input::JoinFinished(Ok(())));
    let out = actions(f.drain_outputs());
    assert!(
        matches!(&out[0], Output::Report { entry, outcome: Ok(()) } if entry == "e"),
        "the entry point hears of the join before verification: {out:?}"
    );
    assert_eq!(
        out[1],
        Output::CheckJoined {
            entry: "e".into(),
            role: JoinRole::Worker
        }
    );
    f.handle(s(60), Input::Checked(Ok(())));
    assert_eq!(f.drain_outputs(), [Output::Phase(Phase::Joined)]);
}

#[test]
fn the_entry_point_itself_and_a_node_without_entry_do_nothing() {
    let mut f = follower();
    let e = member("e", "X", 1);
    f.handle(s(0), view(&e, Some(&e)));
    f.handle(s(1), view(&member("l", "ca-l", 1), None));
    assert!(f.drain_outputs().is_empty());
    assert_eq!(f.phase(), &Phase::Idle);
}

#[test]
fn a_member_of_the_entry_points_cluster_is_joined_already() {
    let mut f = follower();
    f.handle(s(0), view(&member("l", "X", 3), Some(&member("e", "X", 3))));
    assert_eq!(f.drain_outputs(), [Output::Phase(Phase::Joined)]);
}

#[test]
fn queued_follower_polls_again_after_retry_after() {
    let mut f = follower();
    f.handle(
        s(0),
        view(&member("l", "ca-l", 1), Some(&member("e", "X", 1))),
    );
    f.handle(s(1), Input::Ready(Ok(())));
    f.drain_outputs();
    let wait = JoinResponse::Wait {
        position: 2,
        retry_after: s(2),
        reason: WaitReason::Blocked(Blocked::NoFacts),
    };
    f.handle(
        s(1),
        Input::Response {
            from: "e".into(),
            response: wait,
        },
    );
    assert!(matches!(f.phase(), Phase::Queued { position: 2, .. }));
    assert_eq!(f.next_deadline(), Some(s(3)));
    f.handle(s(2), Input::Tick);
    assert!(actions(f.drain_outputs()).is_empty());
    f.handle(s(3), Input::Tick);
    assert_eq!(
        actions(f.drain_outputs()),
        [Output::RequestJoin { entry: "e".into() }]
    );
}

#[test]
fn answers_from_another_entry_point_are_ignored_and_a_new_entry_restarts_the_request() {
    let mut f = follower();
    let l = member("l", "ca-l", 1);
    f.handle(s(0), view(&l, Some(&member("e", "X", 1))));
    f.handle(s(1), Input::Ready(Ok(())));
    f.drain_outputs();
    f.handle(
        s(2),
        Input::Response {
            from: "old".into(),
            response: JoinResponse::Granted {
                url: "u".into(),
                role: JoinRole::Worker,
            },
        },
    );
    assert!(actions(f.drain_outputs()).is_empty());
    f.handle(s(3), view(&l, Some(&member("e2", "Y", 1))));
    assert_eq!(actions(f.drain_outputs()), [Output::WaitReady]);
}

#[test]
fn failures_back_off_exponentially_with_jitter_and_count_attempts() {
    let mut f = joining();
    f.handle(
        s(100),
        Input::JoinFinished(Err(Failure::new(FailureKind::Other, "exit 6"))),
    );
    let out = f.drain_outputs();
    assert!(
        matches!(&out[0], Output::Report { outcome: Err(f), .. } if f.detail == "exit 6"),
        "{out:?}"
    );
    let Phase::Failed {
        attempt: 1,
        retry_at,
        reason: FailReason::JoinFailed(_),
    } = f.phase().clone()
    else {
        panic!("expected failure: {:?}", f.phase());
    };
    assert!(
        retry_at >= s(100) + Duration::from_millis(2500) && retry_at <= s(105),
        "{retry_at:?}"
    );
    assert_eq!(f.next_deadline(), Some(retry_at));
    f.handle(retry_at, Input::Tick);
    assert_eq!(actions(f.drain_outputs()), [Output::WaitReady]);
    f.handle(
        retry_at,
        Input::Ready(Err(Failure::new(FailureKind::Other, "not running"))),
    );
    let Phase::Failed {
        attempt: 2,
        retry_at: second,
        ..
    } = f.phase().clone()
    else {
        panic!("expected failure: {:?}", f.phase());
    };
    assert!(
        second >= retry_at + s(5) && second <= retry_at + s(10),
        "{second:?}"
    );
    assert_eq!(f.attempt(), 2);
}

fn not_yet(detail: &str) -> Input {
    Input::Checked(Err(Failure::new(FailureKind::NotYetJoined, detail)))
}

#[test]
fn verification_checks_at_once_then_after_pauses_that_double_up_to_200_ms() {
    let mut f = joining();
    f.handle(s(60), Input::JoinFinished(Ok(())));
    let out = actions(f.drain_outputs());
    assert!(matches!(out[1], Output::CheckJoined { .. }), "{out:?}");
    // One check at a time: nothing is due while it runs.
    assert_eq!(f.next_deadline(), None);
    let mut now = s(60);
    let mut pauses = Vec::new();
    for _ in 0..6 {
        f.handle(now, not_yet("not Ready yet"));
        let due = f.next_deadline().expect("next check scheduled");
        pauses.push((due - now).as_millis());
        assert!(f.drain_outputs().is_empty(), "no check before it is due");
        now = due;
        f.handle(now, Input::Tick);
        assert!(matches!(
            actions(f.drain_outputs())[..],
            [Output::CheckJoined { .. }]
        ));
    }
    assert_eq!(pauses, [20, 40, 80, 160, 200, 200]);
    f.handle(now, Input::Checked(Ok(())));
    assert_eq!(f.drain_outputs(), [Output::Phase(Phase::Joined)]);
    assert_eq!(f.attempt(), 0);
}

#[test]
fn an_unverified_join_is_reset_with_leave_then_reported_and_retried() {
    let mut f = joining();
    f.handle(s(60), Input::JoinFinished(Ok(())));
    f.drain_outputs();
    // The join printed success and exited 0 but never completes (the silent failure).
    let mut now = s(60);
    loop {
        f.handle(
            now,
            not_yet("host-l is not listed Ready by the entry point yet"),
        );
        let out = actions(f.drain_outputs());
        if out.contains(&Output::Reset) {
            break;
        }
        now = f.next_deadline().expect("a check or the deadline is due");
        f.handle(now, Input::Tick);
        let out = actions(f.drain_outputs());
        if out.contains(&Output::Reset) {
            break;
        }
    }
    // verify_timeout after the join exited (the default, 5 min), not before.
    assert!(now >= s(60 + 300), "{now:?}");
    assert!(matches!(f.phase(), Phase::Resetting { entry } if entry == "e"));
    assert!(f.phase().is_joining());
    assert_eq!(f.next_deadline(), None, "waits for the reset to finish");
    f.handle(now, Input::ResetDone(Ok(())));
    let out = actions(f.drain_outputs());
    let Some(Output::Report {
        entry,
        outcome: Err(failure),
    }) = out.first()
    else {
        panic!("the failure is reported to the entry point: {out:?}");
    };
    assert_eq!(entry, "e");
    assert_eq!(failure.kind, FailureKind::NotYetJoined);
    assert!(
        failure
            .detail
            .starts_with("not verified within 5m: host-l is not listed Ready")
            && failure
                .detail
                .ends_with("microk8s reset with `microk8s leave`"),
        "{}",
        failure.detail
    );
    assert!(matches!(
        f.phase(),
        Phase::Failed {
            attempt: 1,
            reason: FailReason::NotVerified(_),
            ..
        }
    ));
}

#[test]
fn a_failed_reset_is_named_in_the_report() {
    let mut f = joining();
    f.handle(s(60), Input::JoinFinished(Ok(())));
    f.drain_outputs();
    f.handle(s(400), not_yet("not Ready"));
    assert!(actions(f.drain_outputs()).contains(&Output::Reset));
    f.handle(
        s(401),
        Input::ResetDone(Err(Failure::new(FailureKind::NoQuorum, "exit 2"))),
    );
    let out = actions(f.drain_outputs());
    assert!(
        matches!(&out[0], Output::Report { outcome: Err(e), .. }
            if e.detail.ends_with("`microk8s leave` to reset it failed: exit 2")),
        "{out:?}"
    );
}

#[test]
fn leaving_while_verifying_stops_the_checks() {
    let mut f = joining();
    f.handle(s(60), Input::JoinFinished(Ok(())));
    f.drain_outputs();
    f.handle(s(61), Input::Leave);
    assert_eq!(f.phase(), &Phase::Left);
    f.handle(s(62), not_yet("late answer"));
    assert_eq!(f.next_deadline(), None);
    assert!(actions(f.drain_outputs()).is_empty());
}

#[test]
fn entry_refusal_backs_off_and_already_member_counts_only_once_the_view_agrees() {
    let mut f = follower();
    f.handle(
        s(0),
        view(&member("l", "ca-l", 1), Some(&member("e", "X", 1))),
    );
    f.handle(s(1), Input::Ready(Ok(())));
    let refused = JoinResponse::Refused(EntryRefusal::NameTaken { name: "l".into() });
    f.handle(
        s(2),
        Input::Response {
            from: "e".into(),
            response: refused,
        },
    );
    assert!(matches!(
        f.phase(),
        Phase::Failed {
            reason: FailReason::EntryRefused(_),
            ..
        }
    ));
    let mut g = follower();
    g.handle(
        s(0),
        view(&member("l", "ca-l", 1), Some(&member("e", "X", 1))),
    );
    g.handle(s(1), Input::Ready(Ok(())));
    g.handle(
        s(2),
        Input::Response {
            from: "e".into(),
            response: JoinResponse::Refused(EntryRefusal::AlreadyMember),
        },
    );
    // The entry point's facts may predate this node's reset (found by the workflow
    // simulation, seeds 33 and 42): its own view says it is outside the entry's cluster, so it
    // backs off and asks again rather than believe it joined.
    assert!(
        matches!(
            g.phase(),
            Phase::Failed {
                reason: FailReason::EntryRefused(EntryRefusal::AlreadyMember),
                ..
            }
        ),
        "{:?}",
        g.phase()
    );
    // Once the view shows it in the entry's cluster, it is joined.
    let mut h = follower();
    h.handle(s(0), view(&member("l", "X", 2), Some(&member("e", "X", 2))));
    assert_eq!(h.phase(), &Phase::Joined);
    let mut k = follower();
    k.handle(
        s(0),
        view(&member("l", "ca-l", 1), Some(&member("e", "X", 1))),
    );
    k.handle(s(1), Input::Ready(Ok(())));
    k.handle(s(2), view(&member("l", "X", 2), Some(&member("e", "X", 2))));
    k.handle(
        s(2),
        Input::Response {
            from: "e".into(),
            response: JoinResponse::Refused(EntryRefusal::AlreadyMember),
        },
    );
    assert_eq!(k.phase(), &Phase::Joined);
}

#[test]
fn refusals_are_reported_once_and_cleared_when_fixed() {
    let mut f = follower();
    let entry = member("e", "X", 1);
    let mut l = member("l", "ca-l", 1);
    l.has_default_route = false;
    f.handle(s(0), view(&l, Some(&entry)));
    assert_eq!(
        f.drain_outputs(),
        [
            Output::Refused(vec![Refusal::NoDefaultRoute]),
            Output::Phase(Phase::Refused)
        ]
    );
    f.handle(s(1), view(&l, Some(&entry)));
    assert!(f.drain_outputs().is_empty(), "said once");
    l.has_default_route = true;
    f.handle(s(2), view(&l, Some(&entry)));
    assert_eq!(
        f.drain_outputs(),
        [
            Output::RefusalCleared,
            Output::WaitReady,
            Output::Phase(Phase::WaitingReady)
        ]
    );
}

#[test]
fn a_node_of_another_cluster_is_never_moved_unless_allowed() {
    let entry = member("e", "X", 3);
    let l = member("l", "Y", 2);
    let mut f = follower();
    f.handle(s(0), view(&l, Some(&entry)));
    assert!(
        matches!(&f.drain_outputs()[0], Output::Refused(r) if matches!(r[..], [Refusal::InAnotherCluster { .. }]))
    );
    let cfg = FormationConfig {
        move_from_other_cluster: true,
        ..FormationConfig::default()
    };
    let mut g = FollowerJoin::new(cfg, 3, Duration::ZERO).expect("valid");
    g.handle(s(0), view(&l, Some(&entry)));
    assert_eq!(actions(g.drain_outputs()), [Output::LeaveOtherCluster]);
    g.handle(s(60), Input::LeftOther(Ok(())));
    // The view still shows the old cluster: wait instead of leaving again.
    g.handle(s(61), view(&l, Some(&entry)));
    assert!(actions(g.drain_outputs()).is_empty());
    g.handle(s(62), view(&member("l", "ca-l", 1), Some(&entry)));
    assert_eq!(actions(g.drain_outputs()), [Output::WaitReady]);
}

#[test]
fn leave_stops_everything_for_good() {
    let mut f = joining();
    f.handle(s(3), Input::Leave);
    f.handle(s(60), Input::JoinFinished(Ok(())));
    f.handle(
        s(61),
        view(&member("l", "ca-l", 1), Some(&member("e", "X", 1))),
    );
    assert_eq!(f.drain_outputs(), [Output::Phase(Phase::Left)]);
}

#[test]
fn a_joined_node_that_drops_out_of_the_cluster_joins_again() {
    let mut f = follower();
    let entry = member("e", "X", 3);
    f.handle(s(0), view(&member("l", "X", 3), Some(&entry)));
    f.drain_outputs();
    f.handle(s(10), view(&member("l", "ca-l", 1), Some(&entry)));
    assert_eq!(actions(f.drain_outputs()), [Output::WaitReady]);
    assert!(f.phase().is_joining());
}

#[test]
fn a_join_is_checked_with_the_entry_point_followed_now() {
    let mut f = joining();
    f.handle(s(60), Input::JoinFinished(Ok(())));
    let out = actions(f.drain_outputs());
    assert!(
        matches!(&out[1], Output::CheckJoined { entry, .. } if entry == "e"),
        "{out:?}"
    );
    // The entry point that granted the join dies before it saw this node; another control
    // plane of its cluster takes over (found by the workflow simulation, seeds 22 and 31).
    f.handle(
        s(60),
        not_yet("host-l is not listed Ready by the entry point yet"),
    );
    f.handle(
        s(61),
        view(&member("l", "ca-l", 1), Some(&member("e2", "X", 2))),
    );
    // The check that was due runs now, with the new entry point.
    let out = actions(f.drain_outputs());
    assert!(
        matches!(&out[..], [Output::CheckJoined { entry, .. }] if entry == "e2"),
        "checked with the new entry point: {out:?}"
    );
    f.handle(s(61), Input::Checked(Ok(())));
    assert_eq!(f.phase(), &Phase::Joined);
}

#[test]
fn no_reset_while_nobody_of_the_cluster_joined_can_judge_the_join() {
    let mut f = joining();
    f.handle(s(60), Input::JoinFinished(Ok(())));
    f.drain_outputs();
    // The entry point is cut off (a partition) and declared dead before it saw this node: the
    // node may be a member cut off from its cluster (found by the workflow simulation).
    let mut e = member("e", "X", 2);
    e.liveness = crate::election::Liveness::Dead { since: s(61) };
    f.handle(
        s(61),
        not_yet("host-l is not listed Ready by the entry point yet"),
    );
    f.handle(s(61), view(&member("l", "ca-l", 1), Some(&e)));
    // An entry point of another cluster cannot judge it either.
    f.handle(
        s(200),
        view(&member("l", "ca-l", 1), Some(&member("o", "Y", 5))),
    );
    let mut now = s(61);
    while now < s(60 + 900) {
        let out = actions(f.drain_outputs());
        assert!(!out.contains(&Output::Reset), "reset at {now:?}: {out:?}");
        if out.iter().any(|o| matches!(o, Output::CheckJoined { .. })) {
            f.handle(now, not_yet("not listed Ready by the entry point"));
        }
        now = f.next_deadline().expect("still checking");
        f.handle(now, Input::Tick);
    }
    assert!(
        matches!(f.phase(), Phase::Verifying { .. }),
        "{:?}",
        f.phase()
    );
    // A live entry point of the cluster joined can judge again: it denies, and the node resets.
    f.handle(
        now,
        view(&member("l", "ca-l", 1), Some(&member("e2", "X", 2))),
    );
    let deadline = now + FormationConfig::default().verify_timeout;
    while now <= deadline {
        let out = actions(f.drain_outputs());
        if out.contains(&Output::Reset) {
            return;
        }
        if out.iter().any(|o| matches!(o, Output::CheckJoined { .. })) {
            f.handle(now, not_yet("not listed Ready by the entry point"));
        }
        now = f.next_deadline().expect("still checking");
        f.handle(now, Input::Tick);
    }
    panic!("no reset although a live entry point of the cluster denies the join");
}

#[test]
fn a_control_plane_in_the_datastore_is_never_reset() {
    let mut f = joining();
    f.handle(s(60), Input::JoinFinished(Ok(())));
    f.drain_outputs();
    let mut now = s(60);
    while now < s(60 + 900) {
        let out = actions(f.drain_outputs());
        assert!(!out.contains(&Output::Reset), "reset at {now:?}: {out:?}");
        if out.iter().any(|o| matches!(o, Output::CheckJoined { .. })) || now == s(60) {
            f.handle(
                now,
                Input::Checked(Err(Failure::new(
                    FailureKind::NotReadyMember,
                    "node host-l is listed but NotReady",
                ))),
            );
        }
        now = f.next_deadline().expect("still checking");
        f.handle(now, Input::Tick);
    }
    assert!(
        matches!(f.phase(), Phase::Verifying { .. }),
        "{:?}",
        f.phase()
    );
}
