//! Scripted tests of stepping down, following, takeover and conflict reports.

use super::*;
use crate::election::machine::Election;
use crate::election::msg::{Input, Output, Role, StepDown};
use crate::election::view::{Liveness, MemberView};

fn entry_a() -> (Election, Vec<MemberView>) {
    let (mut a, view) = candidate_a();
    a.handle(
        ms(2100),
        Input::ClaimReply {
            from: "b".into(),
            reply: grant(1),
        },
    );
    a.drain_outputs();
    let mut announced = view.clone();
    announced[0] = entry(solo("a"), 1);
    a.handle(ms(2200), Input::ViewChanged(announced.clone()));
    assert!(a.drain_outputs().is_empty());
    (a, announced)
}

#[test]
fn entry_steps_down_when_it_loses_sight_of_a_majority() {
    let (mut a, mut view) = entry_a();
    view[1] = dead_at(solo("b"), 3000);
    view[2] = dead_at(solo("c"), 3000);
    a.handle(ms(3000), Input::ViewChanged(view));
    assert_eq!(
        events(a.drain_outputs()),
        [Output::SteppedDown {
            term: 1,
            reason: StepDown::QuorumLost {
                up: 1,
                electorate: 3
            }
        }]
    );
}

#[test]
fn entry_steps_down_when_a_higher_term_is_announced() {
    let (mut a, mut view) = entry_a();
    view[2] = entry(solo("c"), 2);
    a.handle(ms(3000), Input::ViewChanged(view));
    let out = events(a.drain_outputs());
    assert_eq!(
        out[0],
        Output::SteppedDown {
            term: 1,
            reason: StepDown::HigherTerm {
                entry: "c".into(),
                term: 2
            }
        }
    );
    assert_eq!(
        out[1],
        Output::Following {
            entry: "c".into(),
            term: 2
        }
    );
}

#[test]
fn entry_steps_down_when_it_acknowledges_a_higher_term() {
    let (mut a, view) = entry_a();
    // a sees itself without its microk8s: the rules now choose b, and b claims term 2.
    let mut v = view.clone();
    v[0].microk8s_ready = false;
    v[0].entry_term = None;
    a.handle(ms(3000), Input::ViewChanged(v.clone()));
    a.drain_outputs();
    a.handle(
        ms(3010),
        Input::Claim {
            from: "b".into(),
            claim: claim_for(&v, 2),
        },
    );
    let out = a.drain_outputs();
    assert!(out.contains(&Output::SteppedDown {
        term: 1,
        reason: StepDown::Superseded {
            claimant: "b".into(),
            term: 2
        }
    }));
    assert_eq!(reply_to(&out), Some(grant(2)));
}

#[test]
fn entry_steps_down_after_settling_when_the_rules_choose_another() {
    let (mut a, mut view) = entry_a();
    // A two-node cluster appears; a is not part of it.
    view.push(clustered(solo("d"), "X", 2, true));
    view.push(clustered(solo("e"), "X", 2, true));
    a.handle(ms(3000), Input::ViewChanged(view));
    assert!(a.drain_outputs().is_empty());
    a.handle(ms(5000), Input::Tick);
    assert_eq!(
        events(a.drain_outputs()),
        [Output::SteppedDown {
            term: 1,
            reason: StepDown::RulesChoose {
                choice: Some("d".into())
            }
        }]
    );
}

#[test]
fn follower_follows_the_highest_announced_term_and_never_goes_back() {
    let mut b = node("b");
    b.handle(
        ms(0),
        Input::ViewChanged(vec![entry(solo("a"), 3), solo("b"), solo("c")]),
    );
    assert_eq!(
        events(b.drain_outputs()),
        [Output::Following {
            entry: "a".into(),
            term: 3
        }]
    );
    b.handle(
        ms(10),
        Input::ViewChanged(vec![entry(solo("a"), 3), solo("b"), entry(solo("c"), 5)]),
    );
    assert_eq!(
        events(b.drain_outputs()),
        [
            Output::Unfollowed {
                entry: "a".into(),
                term: 3
            },
            Output::Following {
                entry: "c".into(),
                term: 5
            }
        ]
    );
    // c withdraws; a still announces term 3, which is below what we followed.
    b.handle(
        ms(20),
        Input::ViewChanged(vec![entry(solo("a"), 3), solo("b"), solo("c")]),
    );
    assert_eq!(
        events(b.drain_outputs()),
        [Output::Unfollowed {
            entry: "c".into(),
            term: 5
        }]
    );
    assert_eq!(b.following(), None);
    // c flaps back with the same term: following it again is the same entry, same term.
    b.handle(
        ms(30),
        Input::ViewChanged(vec![entry(solo("a"), 3), solo("b"), entry(solo("c"), 5)]),
    );
    assert_eq!(
        events(b.drain_outputs()),
        [Output::Following {
            entry: "c".into(),
            term: 5
        }]
    );
}

#[test]
fn takeover_waits_until_the_entry_point_is_confirmed_dead() {
    let cp = |id| clustered(solo(id), "X", 3, true);
    let mut b = node("b");
    let mut view = vec![entry(cp("a"), 4), cp("b"), cp("c")];
    view[0].liveness = Liveness::Suspect;
    b.handle(ms(0), Input::ViewChanged(view.clone()));
    b.handle(ms(10_000), Input::Tick);
    assert_eq!(
        events(b.drain_outputs()),
        [Output::Following {
            entry: "a".into(),
            term: 4
        }]
    );
    view[0].liveness = Liveness::Dead { since: ms(10_000) };
    b.handle(ms(10_000), Input::ViewChanged(view));
    assert_eq!(
        events(b.drain_outputs()),
        [Output::Unfollowed {
            entry: "a".into(),
            term: 4
        }]
    );
    b.handle(ms(12_000), Input::Tick);
    assert_eq!(claims_sent(&b.drain_outputs()), [("c".into(), 5)]);
}

#[test]
fn a_worker_of_the_cluster_never_claims() {
    let mut w = node("w");
    let view = vec![
        dead_at(entry(clustered(solo("a"), "X", 3, true), 4), 0),
        clustered(solo("w"), "X", 3, false),
        clustered(solo("c"), "X", 3, false),
    ];
    w.handle(ms(0), Input::ViewChanged(view));
    w.handle(ms(60_000), Input::Tick);
    assert!(claims_sent(&w.drain_outputs()).is_empty());
}

#[test]
fn conflict_between_clusters_is_reported_once_and_cleared() {
    let mut a = node("a");
    let two = vec![
        clustered(solo("a"), "X", 3, true),
        clustered(solo("b"), "X", 3, true),
        clustered(solo("c"), "Y", 2, true),
        clustered(solo("d"), "Y", 2, true),
    ];
    a.handle(ms(0), Input::ViewChanged(two.clone()));
    let out = a.drain_outputs();
    let Some(Output::Conflict(c)) = out.first() else {
        panic!("expected a conflict first: {out:?}");
    };
    let ids: Vec<&str> = c.clusters.iter().map(|c| c.cluster_id.as_str()).collect();
    assert_eq!(ids, ["X", "Y"]);
    a.handle(ms(10), Input::ViewChanged(two.clone()));
    assert!(a.drain_outputs().is_empty());
    assert!(a.status().conflict.is_some());
    a.handle(ms(20), Input::ViewChanged(two[..2].to_vec()));
    assert_eq!(events(a.drain_outputs()), [Output::ConflictCleared]);
}

#[test]
fn status_reports_role_decision_and_electorate() {
    let (a, _) = entry_a();
    let s = a.status();
    assert_eq!(s.role, Role::Entry { term: 1 });
    assert!(s.decision.chooses("a"));
    assert_eq!((s.electorate, s.up, s.seen_term), (3, 3, 1));
}

#[test]
fn announcements_follow_role_and_floor() {
    let (mut a, _) = candidate_a();
    a.handle(
        ms(2100),
        Input::ClaimReply {
            from: "b".into(),
            reply: grant(1),
        },
    );
    assert_eq!(
        a.drain_outputs(),
        [
            Output::BecameEntry { term: 1 },
            Output::Announce {
                entry_term: Some(1),
                followed: None
            }
        ]
    );
    let mut b = node("b");
    b.handle(
        ms(0),
        Input::ViewChanged(vec![entry(solo("a"), 3), solo("b")]),
    );
    assert_eq!(
        b.drain_outputs(),
        [
            Output::Following {
                entry: "a".into(),
                term: 3
            },
            Output::Announce {
                entry_term: None,
                followed: Some(("a".into(), 3))
            }
        ]
    );
    // Losing the entry point keeps the floor: nothing new to announce.
    b.handle(ms(10), Input::ViewChanged(vec![solo("a"), solo("b")]));
    assert_eq!(
        b.drain_outputs(),
        [Output::Unfollowed {
            entry: "a".into(),
            term: 3
        }]
    );
}

#[test]
fn entry_steps_down_when_its_term_was_followed_under_another_name() {
    // Two electorates that never knew each other both confirmed term 1; c followed d.
    let (mut a, mut view) = entry_a();
    view[2].followed = Some(("d".into(), 1));
    a.handle(ms(3000), Input::ViewChanged(view));
    let out = a.drain_outputs();
    assert_eq!(
        out[0],
        Output::SteppedDown {
            term: 1,
            reason: StepDown::HigherTerm {
                entry: "d".into(),
                term: 1
            }
        }
    );
    // The rules still choose a, so once its view has settled it claims a term above the
    // collision (the view last changed when a's own announcement arrived, at 2.2 s).
    assert!(claims_sent(&out).is_empty());
    a.handle(ms(4200), Input::Tick);
    assert_eq!(
        claims_sent(&a.drain_outputs()),
        [("b".into(), 2), ("c".into(), 2)]
    );
}
