//! Scripted tests of the election state machine: inputs in, the exact outputs asserted.

use std::time::Duration;

use super::Election;
use crate::election::claim::{Claim, ClaimReply, HardState, Refusal};
use crate::election::config::ElectionConfig;
use crate::election::msg::{ClaimFailure, Input, Output, Role};
use crate::election::view::{Electorate, Liveness, MemberView, Term};

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(super) fn config() -> ElectionConfig {
    ElectionConfig {
        settle: ms(2000),
        discovery: ms(0),
        claim_timeout: ms(1500),
        claim_retry: ms(1000),
        claim_retry_max: ms(8000),
        forget_dead_after: Some(ms(600_000)),
    }
}

pub(super) fn node(id: &str) -> Election {
    Election::new(id.into(), config(), 7, Duration::ZERO).expect("valid config")
}

/// A standalone, eligible member with priority 100.
pub(super) fn solo(id: &str) -> MemberView {
    MemberView {
        id: id.into(),
        name: id.into(),
        priority: 100,
        cluster_id: Some(format!("ca-{id}")),
        cluster_size: 1,
        control_plane: true,
        microk8s_ready: true,
        has_default_route: true,
        ..MemberView::default()
    }
}

pub(super) fn dead_at(mut v: MemberView, since: u64) -> MemberView {
    v.liveness = Liveness::Dead { since: ms(since) };
    v
}

pub(super) fn entry(mut v: MemberView, term: Term) -> MemberView {
    v.entry_term = Some(term);
    v
}

pub(super) fn clustered(mut v: MemberView, cluster: &str, size: u32, cp: bool) -> MemberView {
    v.cluster_id = Some(cluster.into());
    v.cluster_size = size;
    v.control_plane = cp;
    v
}

pub(super) fn claims_sent(out: &[Output]) -> Vec<(String, Term)> {
    out.iter()
        .filter_map(|o| match o {
            Output::SendClaim { to, claim } => Some((to.clone(), claim.term)),
            _ => None,
        })
        .collect()
}

pub(super) fn reply_to(out: &[Output]) -> Option<ClaimReply> {
    out.iter().find_map(|o| match o {
        Output::SendClaimReply { reply, .. } => Some(reply.clone()),
        _ => None,
    })
}

/// The outputs without [`Output::Announce`], which `announcements_follow_role_and_floor`
/// checks on its own.
pub(super) fn events(out: Vec<Output>) -> Vec<Output> {
    out.into_iter()
        .filter(|o| !matches!(o, Output::Announce { .. }))
        .collect()
}

pub(super) fn grant(term: Term) -> ClaimReply {
    ClaimReply {
        term,
        granted: true,
        seen_term: term,
        refusal: None,
    }
}

pub(super) fn claim_for(view: &[MemberView], term: Term) -> Claim {
    let e = Electorate::of(view, Duration::ZERO, None);
    Claim {
        term,
        electorate_digest: e.digest(),
        electorate_size: e.len() as u32,
    }
}

/// Node `a` in a settled three-node view, having just claimed term 1.
pub(super) fn candidate_a() -> (Election, Vec<MemberView>) {
    let view = vec![solo("a"), solo("b"), solo("c")];
    let mut a = node("a");
    a.handle(ms(0), Input::ViewChanged(view.clone()));
    a.handle(ms(2000), Input::Tick);
    a.drain_outputs();
    assert_eq!(a.role(), Role::Candidate { term: 1 });
    (a, view)
}

#[test]
pub(super) fn claims_only_after_the_view_has_been_stable_for_the_settle_window() {
    let mut a = node("a");
    a.handle(
        ms(0),
        Input::ViewChanged(vec![solo("a"), solo("b"), solo("c")]),
    );
    a.handle(ms(1999), Input::Tick);
    assert!(claims_sent(&a.drain_outputs()).is_empty());
    assert_eq!(a.next_deadline(), Some(ms(2000)));
    a.handle(ms(2000), Input::Tick);
    let out = a.drain_outputs();
    assert_eq!(
        out[0],
        Output::Persist(HardState {
            voted_term: 1,
            voted_for: Some("a".into())
        })
    );
    assert_eq!(claims_sent(&out), [("b".into(), 1), ("c".into(), 1)]);
}

#[test]
fn no_claim_before_discovery_had_its_time_however_quiet_the_view() {
    let mut cfg = config();
    cfg.settle = ms(500);
    cfg.discovery = ms(1500);
    // Started at 10 s: only knows itself and one peer, quiet since.
    let mut a = Election::new("a".into(), cfg, 7, ms(10_000)).expect("valid config");
    a.handle(ms(10_000), Input::ViewChanged(vec![solo("a"), solo("b")]));
    a.handle(ms(10_500), Input::Tick);
    assert!(
        claims_sent(&a.drain_outputs()).is_empty(),
        "settled, but too early"
    );
    assert_eq!(a.next_deadline(), Some(ms(11_500)));
    a.handle(ms(11_500), Input::Tick);
    assert_eq!(claims_sent(&a.drain_outputs()), [("b".into(), 1)]);
}

#[test]
pub(super) fn a_view_change_restarts_the_settle_window() {
    let mut a = node("a");
    a.handle(ms(0), Input::ViewChanged(vec![solo("a"), solo("b")]));
    a.handle(
        ms(1500),
        Input::ViewChanged(vec![solo("a"), solo("b"), solo("c")]),
    );
    a.handle(ms(2500), Input::Tick);
    assert!(claims_sent(&a.drain_outputs()).is_empty());
    a.handle(ms(3500), Input::Tick);
    assert_eq!(claims_sent(&a.drain_outputs()).len(), 2);
}

#[test]
pub(super) fn only_the_node_the_rules_choose_claims() {
    let mut b = node("b");
    b.handle(
        ms(0),
        Input::ViewChanged(vec![solo("a"), solo("b"), solo("c")]),
    );
    b.handle(ms(5000), Input::Tick);
    assert!(claims_sent(&b.drain_outputs()).is_empty());
    assert_eq!(b.role(), Role::Follower);
}

#[test]
pub(super) fn majority_of_acknowledgements_confirms_the_claim() {
    let (mut a, _) = candidate_a();
    a.handle(
        ms(2100),
        Input::ClaimReply {
            from: "b".into(),
            reply: grant(1),
        },
    );
    assert_eq!(events(a.drain_outputs()), [Output::BecameEntry { term: 1 }]);
    assert_eq!(a.role(), Role::Entry { term: 1 });
}

#[test]
pub(super) fn acknowledgements_from_outside_the_electorate_do_not_count() {
    let (mut a, _) = candidate_a();
    a.handle(
        ms(2100),
        Input::ClaimReply {
            from: "zz".into(),
            reply: grant(1),
        },
    );
    a.handle(
        ms(2100),
        Input::ClaimReply {
            from: "a".into(),
            reply: grant(1),
        },
    );
    assert_eq!(a.role(), Role::Candidate { term: 1 });
}

#[test]
pub(super) fn a_single_node_confirms_itself() {
    let mut a = node("a");
    a.handle(ms(0), Input::ViewChanged(vec![solo("a")]));
    a.handle(ms(2000), Input::Tick);
    let out = a.drain_outputs();
    assert!(out.contains(&Output::BecameEntry { term: 1 }), "{out:?}");
}

#[test]
pub(super) fn minority_side_never_claims() {
    let mut a = node("a");
    let view = vec![solo("a"), dead_at(solo("b"), 0), dead_at(solo("c"), 0)];
    a.handle(ms(0), Input::ViewChanged(view));
    a.handle(ms(60_000), Input::Tick);
    assert!(a.drain_outputs().is_empty());
    assert!(a.decision().chooses("a"));
    assert!(!a.electorate().has_quorum());
}

#[test]
pub(super) fn forgotten_dead_members_give_the_survivors_a_majority_again() {
    let mut a = node("a");
    let view = vec![solo("a"), dead_at(solo("b"), 0), dead_at(solo("c"), 0)];
    a.handle(ms(0), Input::ViewChanged(view));
    assert_eq!(a.next_deadline(), Some(ms(2000)));
    a.handle(ms(2000), Input::Tick);
    assert_eq!(a.next_deadline(), Some(ms(600_000)));
    a.handle(ms(600_000), Input::Tick);
    // Forgetting changed the electorate, so the view must settle again.
    assert!(a.drain_outputs().is_empty());
    a.handle(ms(602_000), Input::Tick);
    assert!(a.drain_outputs().contains(&Output::BecameEntry { term: 1 }));
}

#[test]
pub(super) fn voter_grants_the_node_its_rules_choose_and_persists_before_replying() {
    let view = vec![solo("a"), solo("b"), solo("c")];
    let mut b = node("b");
    b.handle(ms(0), Input::ViewChanged(view.clone()));
    b.handle(
        ms(10),
        Input::Claim {
            from: "a".into(),
            claim: claim_for(&view, 1),
        },
    );
    let out = b.drain_outputs();
    assert_eq!(
        out[0],
        Output::Persist(HardState {
            voted_term: 1,
            voted_for: Some("a".into())
        })
    );
    assert_eq!(reply_to(&out), Some(grant(1)));
}

#[test]
pub(super) fn voter_acknowledges_one_claimant_per_term() {
    let view = vec![solo("a"), solo("b"), solo("c")];
    let mut b = node("b");
    b.handle(ms(0), Input::ViewChanged(view.clone()));
    b.handle(
        ms(10),
        Input::Claim {
            from: "a".into(),
            claim: claim_for(&view, 1),
        },
    );
    b.drain_outputs();
    b.handle(
        ms(20),
        Input::Claim {
            from: "c".into(),
            claim: claim_for(&view, 1),
        },
    );
    let reply = reply_to(&b.drain_outputs()).expect("a reply");
    assert!(!reply.granted);
    assert_eq!(
        reply.refusal,
        Some(Refusal::AlreadyVoted {
            voted_for: "a".into()
        })
    );
    // The same claimant asking again gets the same answer, with nothing new to persist.
    b.handle(
        ms(30),
        Input::Claim {
            from: "a".into(),
            claim: claim_for(&view, 1),
        },
    );
    assert_eq!(b.drain_outputs().len(), 1);
}

#[test]
pub(super) fn voter_refuses_a_claimant_its_rules_do_not_choose() {
    let view = vec![solo("a"), solo("b"), solo("c")];
    let mut a = node("a");
    a.handle(ms(0), Input::ViewChanged(view.clone()));
    a.handle(
        ms(10),
        Input::Claim {
            from: "c".into(),
            claim: claim_for(&view, 3),
        },
    );
    let reply = reply_to(&a.drain_outputs()).expect("a reply");
    assert_eq!(
        reply.refusal,
        Some(Refusal::NotOurChoice {
            choice: Some("a".into())
        })
    );
    assert_eq!(reply.seen_term, 3);
}

#[test]
pub(super) fn voter_refuses_a_claimant_that_counts_other_voters() {
    let view = vec![solo("a"), solo("b"), solo("c")];
    let mut b = node("b");
    b.handle(ms(0), Input::ViewChanged(view.clone()));
    let smaller = claim_for(&view[..2], 1);
    b.handle(
        ms(10),
        Input::Claim {
            from: "a".into(),
            claim: smaller,
        },
    );
    let reply = reply_to(&b.drain_outputs()).expect("a reply");
    assert_eq!(
        reply.refusal,
        Some(Refusal::ElectorateMismatch { theirs: 2, ours: 3 })
    );
}

#[test]
pub(super) fn restored_hard_state_keeps_a_restarted_voter_from_voting_twice() {
    let view = vec![solo("a"), solo("b"), solo("c")];
    let hard = HardState {
        voted_term: 4,
        voted_for: Some("c".into()),
    };
    let mut b = node("b").with_hard_state(hard);
    b.handle(ms(0), Input::ViewChanged(view.clone()));
    b.handle(
        ms(10),
        Input::Claim {
            from: "a".into(),
            claim: claim_for(&view, 4),
        },
    );
    let reply = reply_to(&b.drain_outputs()).expect("a reply");
    assert!(!reply.granted);
}

#[test]
pub(super) fn claim_timeout_backs_off_and_retries_with_a_higher_term() {
    let (mut a, _) = candidate_a();
    a.handle(ms(3500), Input::Tick);
    let out = a.drain_outputs();
    assert!(matches!(
        out[0],
        Output::ClaimFailed {
            term: 1,
            reason: ClaimFailure::Timeout { acks: 1, needed: 2 }
        }
    ));
    let retry_at = a.next_deadline().expect("retry timer");
    assert!(retry_at >= ms(4000) && retry_at <= ms(4500), "{retry_at:?}");
    a.handle(retry_at, Input::Tick);
    assert_eq!(
        claims_sent(&a.drain_outputs()),
        [("b".into(), 2), ("c".into(), 2)]
    );
}

#[test]
pub(super) fn refusals_end_a_claim_as_soon_as_a_majority_is_out_of_reach() {
    let (mut a, _) = candidate_a();
    let no = |seen| ClaimReply {
        term: 1,
        granted: false,
        seen_term: seen,
        refusal: Some(Refusal::NotOurChoice {
            choice: Some("b".into()),
        }),
    };
    a.handle(
        ms(2100),
        Input::ClaimReply {
            from: "b".into(),
            reply: no(1),
        },
    );
    assert_eq!(a.role(), Role::Candidate { term: 1 });
    a.handle(ms(2100), Input::SendFailed { to: "c".into() });
    assert!(matches!(
        a.drain_outputs()[..],
        [Output::ClaimFailed {
            term: 1,
            reason: ClaimFailure::Refused { .. }
        }]
    ));
}

#[test]
pub(super) fn a_refusal_with_a_higher_term_supersedes_the_claim() {
    let (mut a, _) = candidate_a();
    let reply = ClaimReply {
        term: 1,
        granted: false,
        seen_term: 9,
        refusal: Some(Refusal::StaleTerm { voted_term: 9 }),
    };
    a.handle(
        ms(2100),
        Input::ClaimReply {
            from: "b".into(),
            reply,
        },
    );
    assert!(matches!(
        a.drain_outputs()[..],
        [Output::ClaimFailed {
            term: 1,
            reason: ClaimFailure::Superseded { term: 9 }
        }]
    ));
    let retry_at = a.next_deadline().expect("retry");
    a.handle(retry_at, Input::Tick);
    assert_eq!(claims_sent(&a.drain_outputs())[0].1, 10);
}

#[path = "machine_follow_tests.rs"]
mod follow;
