//! Tests of the pure progress logic: from rounds of status snapshots to the line and verdict.

use super::*;

fn snap(role: &str, alive: u32, entry: &str, verified: bool) -> NodeSnapshot {
    NodeSnapshot {
        role: Role::parse(role),
        members_alive: alive,
        entry_point: entry.to_owned(),
        verified,
        ha: false,
        size: 0,
        conflict: String::new(),
    }
}

fn round(snaps: Vec<Option<NodeSnapshot>>) -> Vec<Observed> {
    snaps
        .into_iter()
        .enumerate()
        .map(|(i, snapshot)| Observed {
            name: format!("h{}", i + 1),
            snapshot,
        })
        .collect()
}

#[test]
fn role_words_of_every_spelling_parse() {
    for word in ["entry point", "entry-point", "Entry_Point"] {
        assert_eq!(Role::parse(word), Role::EntryPoint, "{word}");
    }
    assert_eq!(Role::parse("control plane"), Role::ControlPlane);
    assert_eq!(Role::parse(""), Role::Unclustered);
    assert_eq!(Role::parse("observer"), Role::Other("observer".to_owned()));
    assert_eq!(Role::parse("control plane").as_str(), "control-plane");
}

#[test]
fn nothing_answering_yet() {
    let p = assess(&round(vec![None, None, None]));
    assert_eq!(p.answering, 0);
    assert_eq!(p.discovered, 0);
    assert_eq!(
        p.line(),
        "started 0/3 · discovered 0/3 · electing · joined 0/3 (verified 0)"
    );
    assert!(!p.formed());
    assert_eq!(
        p.missing(),
        ["agents not answering: h1, h2, h3", "no entry point elected"]
    );
}

#[test]
fn discovery_counts_what_every_node_sees() {
    let p = assess(&round(vec![
        Some(snap("unclustered", 3, "", false)),
        Some(snap("unclustered", 2, "", false)),
        Some(snap("unclustered", 3, "", false)),
    ]));
    assert_eq!(p.discovered, 2);
    assert!(
        p.line().starts_with("discovered 2/3 · electing"),
        "{}",
        p.line()
    );
    assert!(
        p.missing()[0].contains("discovery incomplete (h2 sees 2 of 3"),
        "{:?}",
        p.missing()
    );
}

#[test]
fn discovery_only_is_reported_as_missing_election_and_joins() {
    // Today's agents: everyone meets everyone, nobody is elected.
    let p = assess(&round(vec![Some(snap("unclustered", 3, "", false)); 3]));
    assert_eq!(p.discovered, 3);
    assert_eq!(
        p.line(),
        "discovered 3/3 · electing · joined 0/3 (verified 0)"
    );
    let failure = p.failure("20s");
    assert!(
        failure.starts_with("cluster did not form within 20s: no entry point elected"),
        "{failure}"
    );
    assert!(failure.contains("roles: 3 unclustered"), "{failure}");
    assert!(
        failure.contains("not joined: h1 (unclustered), h2 (unclustered), h3 (unclustered)"),
        "{failure}"
    );
}

#[test]
fn joins_progress_and_the_entry_point_counts_as_verified() {
    let p = assess(&round(vec![
        Some(snap("entry point", 3, "h1", false)),
        Some(snap("control plane", 3, "h1", true)),
        Some(snap("joining", 3, "h1", false)),
    ]));
    assert_eq!(p.entry_point(), Some("h1"));
    assert_eq!(
        p.line(),
        "discovered 3/3 · elected h1 · joined 2/3 (verified 2)"
    );
    assert_eq!(p.missing(), ["not joined: h3 (joining)"]);
}

#[test]
fn unverified_joins_keep_the_cluster_unformed() {
    let p = assess(&round(vec![
        Some(snap("entry-point", 2, "h1", false)),
        Some(snap("worker", 2, "h1", false)),
    ]));
    assert_eq!(p.joined, 2);
    assert_eq!(p.verified, 1);
    assert_eq!(p.missing(), ["joined but not verified: h2"]);
}

#[test]
fn a_formed_cluster() {
    let p = assess(&round(vec![
        Some(snap("entry point", 3, "h1", true)),
        Some(snap("control plane", 3, "h1", true)),
        Some(snap("control plane", 3, "h1", true)),
    ]));
    assert!(p.formed(), "{:?}", p.missing());
    assert_eq!(
        p.line(),
        "discovered 3/3 · elected h1 · joined 3/3 (verified 3) · formed"
    );
}

#[test]
fn a_single_node_forms_alone() {
    let p = assess(&round(vec![Some(snap("entry point", 1, "h1", false))]));
    assert!(p.formed(), "{:?}", p.missing());
}

#[test]
fn two_entry_points_are_a_disagreement() {
    let p = assess(&round(vec![
        Some(snap("entry point", 3, "h1", false)),
        Some(snap("entry point", 3, "h2", false)),
        Some(snap("unclustered", 3, "h1", false)),
    ]));
    assert!(matches!(p.election, Election::Disagree(_)));
    assert!(
        p.line().contains("entry points disagree: h1, h2"),
        "{}",
        p.line()
    );
    assert!(
        p.missing()
            .iter()
            .any(|m| m == "entry points disagree: h1 (followed by h1, h3) h2 (followed by h2)"),
        "{:?}",
        p.missing()
    );
    assert!(!p.formed());
}

#[test]
fn a_node_without_an_entry_point_is_named() {
    let p = assess(&round(vec![
        Some(snap("entry point", 2, "h1", false)),
        Some(snap("unclustered", 2, "", false)),
    ]));
    assert_eq!(p.entry_point(), Some("h1"));
    assert!(
        p.missing()
            .contains(&"not following entry point h1: h2".to_owned()),
        "{:?}",
        p.missing()
    );
}

#[test]
fn conflicts_keep_the_cluster_unformed() {
    let mut s = snap("entry point", 1, "h1", true);
    s.conflict = "two clusters: h1 and h9".to_owned();
    let p = assess(&round(vec![Some(s)]));
    assert!(!p.formed());
    assert_eq!(
        p.missing(),
        ["h1 reports a conflict: two clusters: h1 and h9"]
    );
}

#[test]
fn a_silent_node_blocks_formation_and_zeroes_discovery() {
    let p = assess(&round(vec![Some(snap("entry point", 2, "h1", true)), None]));
    assert_eq!(p.discovered, 0);
    assert!(p.line().starts_with("started 1/2 · "), "{}", p.line());
    assert_eq!(p.missing()[0], "agents not answering: h2");
}
