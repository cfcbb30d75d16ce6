//! Table-driven tests of the entry-point rules, one row per rule and edge.

use std::time::Duration;

use super::{Decision, NoCandidate, Reason, choose_entry, clusters};
use crate::election::view::{Liveness, MemberView};

/// A member in a compact notation: `id`, priority, cluster id ("" = none), cluster size,
/// control plane, entry term.
fn m(
    id: &str,
    priority: u32,
    cluster: &str,
    size: u32,
    cp: bool,
    entry: Option<u64>,
) -> MemberView {
    MemberView {
        id: id.into(),
        name: id.into(),
        liveness: Liveness::Alive,
        priority,
        cluster_id: (!cluster.is_empty()).then(|| cluster.to_owned()),
        cluster_size: size,
        control_plane: cp,
        microk8s_ready: !cluster.is_empty(),
        has_default_route: true,
        version: Some("1.32".into()),
        entry_term: entry,
        followed: None,
    }
}

/// A standalone, eligible node.
fn solo(id: &str, priority: u32) -> MemberView {
    m(id, priority, &format!("ca-{id}"), 1, true, None)
}

fn dead(mut v: MemberView) -> MemberView {
    v.liveness = Liveness::Dead {
        since: Duration::from_secs(1),
    };
    v
}

fn with(mut v: MemberView, f: impl FnOnce(&mut MemberView)) -> MemberView {
    f(&mut v);
    v
}

fn chosen(node: &str, cluster: Option<&str>, reason: Reason) -> Decision {
    Decision::Chosen {
        node: node.into(),
        cluster_id: cluster.map(str::to_owned),
        reason,
    }
}

#[test]
fn entry_rules_table() {
    let cases: Vec<(&str, Vec<MemberView>, Decision)> = vec![
        (
            "fresh start: lowest priority wins",
            vec![solo("a", 100), solo("b", 10), solo("c", 50)],
            chosen("b", None, Reason::LowestPriority),
        ),
        (
            "fresh start: equal priority, lowest id wins",
            vec![solo("c", 100), solo("a", 100), solo("b", 100)],
            chosen("a", None, Reason::LowestPriority),
        ),
        (
            "fresh start: no default route is not eligible",
            vec![
                with(solo("a", 1), |v| v.has_default_route = false),
                solo("b", 9),
            ],
            chosen("b", None, Reason::LowestPriority),
        ),
        (
            "fresh start: microk8s not ready is not eligible",
            vec![
                with(solo("a", 1), |v| v.microk8s_ready = false),
                solo("b", 9),
            ],
            chosen("b", None, Reason::LowestPriority),
        ),
        (
            "fresh start: microk8s absent is not eligible",
            vec![m("a", 1, "", 0, false, None), solo("b", 9)],
            chosen("b", None, Reason::LowestPriority),
        ),
        (
            "fresh start: dead nodes are never chosen",
            vec![dead(solo("a", 1)), solo("b", 9)],
            chosen("b", None, Reason::LowestPriority),
        ),
        (
            "fresh start: suspect nodes still count",
            vec![
                with(solo("a", 1), |v| v.liveness = Liveness::Suspect),
                solo("b", 9),
            ],
            chosen("a", None, Reason::LowestPriority),
        ),
        (
            "fresh start: nobody eligible",
            vec![with(solo("a", 1), |v| v.has_default_route = false)],
            Decision::None(NoCandidate::NoEligibleMember),
        ),
        (
            "fresh start: announced entry keeps its role over a lower id",
            vec![
                solo("a", 100),
                with(solo("b", 100), |v| v.entry_term = Some(3)),
            ],
            chosen("b", None, Reason::KeepsEntry),
        ),
        (
            "fresh start: announced entry that died is replaced",
            vec![
                solo("a", 100),
                dead(with(solo("b", 100), |v| v.entry_term = Some(3))),
            ],
            chosen("a", None, Reason::LowestPriority),
        ),
        (
            "fresh start: of two announced entries the higher term wins",
            vec![
                with(solo("a", 1), |v| v.entry_term = Some(2)),
                with(solo("b", 9), |v| v.entry_term = Some(5)),
            ],
            chosen("b", None, Reason::KeepsEntry),
        ),
        (
            "existing cluster keeps its entry point over a lower-priority outsider",
            vec![
                solo("a", 1),
                m("b", 100, "X", 3, true, None),
                m("c", 100, "X", 3, true, Some(4)),
                m("d", 100, "X", 3, false, None),
            ],
            chosen("c", Some("X"), Reason::KeepsClusterEntry),
        ),
        (
            "entry of a cluster died: lowest control plane of the same cluster takes over",
            vec![
                solo("a", 1),
                m("b", 50, "X", 4, false, None),
                m("c", 100, "X", 4, true, None),
                m("d", 90, "X", 4, true, None),
                dead(m("e", 1, "X", 4, true, Some(4))),
            ],
            chosen("d", Some("X"), Reason::ClusterControlPlane),
        ),
        (
            "a worker of the cluster never becomes its entry point",
            vec![
                solo("a", 1),
                m("w", 1, "X", 3, false, None),
                dead(m("c", 100, "X", 3, true, Some(2))),
                dead(m("d", 100, "X", 3, true, None)),
            ],
            Decision::None(NoCandidate::NoLiveControlPlane {
                cluster_id: "X".into(),
            }),
        ),
        (
            "a worker announcing an entry term is ignored under rule 1",
            vec![
                m("w", 1, "X", 2, false, Some(9)),
                m("c", 100, "X", 2, true, None),
            ],
            chosen("c", Some("X"), Reason::ClusterControlPlane),
        ),
        (
            "a not-ready control plane is not chosen fresh",
            vec![
                with(m("b", 1, "X", 2, true, None), |v| v.microk8s_ready = false),
                m("c", 100, "X", 2, true, None),
            ],
            chosen("c", Some("X"), Reason::ClusterControlPlane),
        ),
        (
            "largest cluster wins over an older entry of a smaller one",
            vec![
                m("a", 1, "S", 2, true, Some(7)),
                m("b", 1, "S", 2, true, None),
                m("c", 100, "L", 3, true, None),
                m("d", 100, "L", 3, true, Some(2)),
                m("e", 100, "L", 3, true, None),
            ],
            chosen("d", Some("L"), Reason::KeepsClusterEntry),
        ),
        (
            "equal cluster sizes: smaller cluster id wins",
            vec![
                m("a", 100, "B", 2, true, None),
                m("b", 100, "B", 2, true, None),
                m("c", 100, "A", 2, true, None),
                m("d", 100, "A", 2, true, None),
            ],
            chosen("c", Some("A"), Reason::ClusterControlPlane),
        ),
        (
            "cluster size is the largest any up member reports",
            vec![
                m("a", 1, "S", 2, true, None),
                m("b", 1, "S", 2, true, None),
                m("c", 100, "L", 5, true, None),
            ],
            chosen("c", Some("L"), Reason::ClusterControlPlane),
        ),
        (
            "cluster size counts up members when reports are stale",
            vec![
                m("a", 1, "S", 1, true, None),
                m("b", 1, "S", 1, true, None),
                solo("c", 0),
            ],
            chosen("a", Some("S"), Reason::ClusterControlPlane),
        ),
        (
            "a cluster whose only up member reports size one is not multi-node",
            vec![m("a", 1, "S", 1, true, None), solo("b", 0)],
            chosen("b", None, Reason::LowestPriority),
        ),
    ];
    for (name, view, want) in cases {
        assert_eq!(choose_entry(&view), want, "case: {name}");
    }
}

#[test]
fn clusters_lists_multi_node_clusters_largest_first() {
    let view = vec![
        m("a", 1, "S", 2, true, None),
        m("b", 1, "S", 2, false, None),
        m("c", 1, "L", 3, true, None),
        dead(m("d", 1, "D", 5, true, None)),
        solo("e", 1),
    ];
    let got = clusters(&view);
    let ids: Vec<(&str, u32, usize)> = got
        .iter()
        .map(|c| (c.cluster_id.as_str(), c.size, c.members.len()))
        .collect();
    assert_eq!(ids, [("L", 3, 1), ("S", 2, 2)]);
    assert_eq!(got[1].members, ["a", "b"]);
}
