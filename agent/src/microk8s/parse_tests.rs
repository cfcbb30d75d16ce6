//! Table-driven parser tests over `tests/fixtures/microk8s/`: the fixtures are the contract the
//! simulator's output must also satisfy.

use super::*;
use crate::microk8s::fixture;

const T: &str = "3f2c1a9e8d7b6c5a4f3e2d1c0b9a8f7e";
const C: &str = "a1b2c3d4e5f6";

fn addresses(s: &ClusterStatus) -> Vec<(&str, DqliteRole)> {
    s.datastore
        .iter()
        .map(|m| (m.address.as_str(), m.role))
        .collect()
}

#[test]
fn status_formats_running() {
    use DqliteRole::{Spare, Standby, Voter};
    type Case = (
        &'static str,
        bool,
        &'static [(&'static str, DqliteRole)],
        &'static [&'static str],
    );
    let cases: &[Case] = &[
        (
            "status-pretty-ha.txt",
            true,
            &[
                ("10.0.0.1:19001", Voter),
                ("10.0.0.2:19001", Voter),
                ("10.0.0.3:19001", Voter),
                ("10.0.0.4:19001", Standby),
            ],
            &["dns", "ha-cluster", "helm"],
        ),
        (
            "status-pretty-two.txt",
            false,
            &[("10.0.0.1:19001", Voter), ("10.0.0.2:19001", Voter)],
            &["dns", "ha-cluster"],
        ),
        (
            "status-pretty-single.txt",
            false,
            &[("127.0.0.1:19001", Voter)],
            &["dns", "ha-cluster"],
        ),
        ("status-pretty-none.txt", false, &[], &["ha-cluster"]),
        ("status-pretty-etcd.txt", false, &[], &["dns"]),
        (
            "status-pretty-1.19.txt",
            false,
            &[("10.0.0.1:19001", Voter), ("10.0.0.2:19001", Voter)],
            &["dns", "ha-cluster"],
        ),
        ("status-short.txt", false, &[], &["dns", "ha-cluster"]),
        (
            "status-yaml-ha.txt",
            true,
            &[
                ("10.0.0.1:19001", Voter),
                ("10.0.0.2:19001", Voter),
                ("10.0.0.3:19001", Voter),
                ("10.0.0.4:19001", Standby),
                ("10.0.0.7:19001", Spare),
            ],
            &["dns", "ha-cluster"],
        ),
        (
            "status-yaml-single.txt",
            false,
            &[("127.0.0.1:19001", Voter)],
            &[],
        ),
        (
            "status-yaml-1.19.txt",
            false,
            &[("10.0.0.1:19001", Voter), ("10.0.0.2:19001", Voter)],
            &["dns", "ha-cluster"],
        ),
        ("status-yaml-no-ha.txt", false, &[], &["dns"]),
    ];
    for (file, ha, datastore, addons) in cases {
        let status = parse_status(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let Status::Running(s) = status else {
            panic!("{file}: {status:?}")
        };
        assert_eq!(s.high_availability, *ha, "{file}");
        assert_eq!(addresses(&s), *datastore, "{file}");
        assert_eq!(s.addons_enabled, *addons, "{file}");
    }
    let etcd = parse_status(&fixture("status-pretty-etcd.txt")).expect("parses");
    assert_eq!(
        etcd.running().map(|s| s.etcd_endpoints.clone()),
        Some(vec!["10.0.0.1:12379".to_owned()])
    );
}

#[test]
fn status_not_running_stopped_and_worker() {
    let not_ready = parse_status(&fixture("status-not-running.txt")).expect("parses");
    assert_eq!(not_ready, Status::NotReady { datastore: vec![] });
    match parse_status(&fixture("status-yaml-not-running.txt")).expect("parses") {
        Status::NotReady { datastore } => assert_eq!(datastore.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_status(&fixture("status-stopped.txt")),
        Ok(Status::Stopped)
    );
    assert_eq!(
        parse_status(&fixture("status-worker.txt")),
        Ok(Status::Worker)
    );
    let warned = format!("WARNING: something\n\n{}", fixture("status-pretty-two.txt"));
    assert!(matches!(parse_status(&warned), Ok(Status::Running(_))));
}

#[test]
fn status_rejects_unknown_output() {
    for bad in [
        "",
        "\n",
        "Insufficient permissions to access MicroK8s.",
        "microk8s:\n  other: 1\n",
    ] {
        assert!(parse_status(bad).is_err(), "{bad:?}");
    }
    let bad_role = "microk8s:\n  running: True\nhigh-availability:\n  nodes:\n    - address: 1.2.3.4:19001\n      role: boss\n";
    assert!(parse_status(bad_role).is_err());
}

#[test]
fn add_node_formats() {
    let v4 = ["10.0.0.1", "172.17.0.1"];
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        (
            "add-node-json.txt",
            &["10.0.0.1", "172.17.0.1", "2001:db8::10"],
            Some(C),
        ),
        ("add-node-yaml.txt", &v4, Some(C)),
        (
            "add-node-pretty-1.28.txt",
            &["10.0.0.1", "172.17.0.1", "2001:db8::10"],
            Some(C),
        ),
        (
            "add-node-short.txt",
            &["10.0.0.1", "172.17.0.1", "2001:db8::10"],
            Some(C),
        ),
        ("add-node-pretty-1.19.txt", &v4, None),
        ("add-node-token-check.txt", &[], Some(C)),
        ("add-node-token.txt", &[], None),
    ];
    for (file, hosts, fingerprint) in cases {
        let out = parse_add_node(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(out.token.expose(), T, "{file}");
        assert_eq!(out.fingerprint.as_deref(), *fingerprint, "{file}");
        let got: Vec<&str> = out.urls.iter().map(JoinUrl::host).collect();
        assert_eq!(got, *hosts, "{file}");
        assert!(out.urls.iter().all(|u| u.port() == 25000), "{file}");
    }
    let json = parse_add_node(&fixture("add-node-json.txt")).expect("parses");
    let url = json
        .url_for("172.17.0.1".parse().expect("ip"))
        .expect("present");
    assert_eq!(url.expose(), format!("172.17.0.1:25000/{T}/{C}"));
}

#[test]
fn add_node_rejects_garbage_and_mixed_tokens() {
    for file in ["add-node-worker.txt", "add-node-short-token.txt"] {
        assert!(parse_add_node(&fixture(file)).is_err(), "{file}");
    }
    let mixed = format!(
        "microk8s join 10.0.0.1:25000/{T}\nmicrok8s join 10.0.0.2:25000/{}\n",
        "b".repeat(32)
    );
    assert!(parse_add_node(&mixed).is_err());
    assert!(parse_add_node("{\"token\": 1}").is_err());
    assert!(parse_add_node("").is_err());
}

#[test]
fn nodes_json_current_format() {
    let nodes = parse_nodes(&fixture("nodes.json")).expect("parses");
    let summary: Vec<_> = nodes
        .iter()
        .map(|n| {
            (
                n.name.as_str(),
                n.readiness,
                n.internal_ip.map(|i| i.to_string()),
                n.role,
                n.unschedulable,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "node-a",
                Readiness::Ready,
                Some("10.0.0.1".into()),
                Some(Role::ControlPlane),
                false
            ),
            (
                "node-b",
                Readiness::Ready,
                Some("10.0.0.2".into()),
                Some(Role::Worker),
                true
            ),
            (
                "node-c",
                Readiness::Unknown,
                Some("10.0.0.3".into()),
                Some(Role::ControlPlane),
                false
            ),
            (
                "node-d",
                Readiness::NotReady,
                Some("10.0.0.4".into()),
                Some(Role::ControlPlane),
                false
            ),
        ]
    );
    assert!(
        nodes
            .iter()
            .all(|n| n.kubelet_version.as_deref() == Some("v1.32.3"))
    );
}

#[test]
fn nodes_json_1_19_and_edge_cases() {
    let nodes = parse_nodes(&fixture("nodes-1.19.json")).expect("parses");
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].role, None);
    assert_eq!(
        nodes[0].kubelet_version.as_deref(),
        Some("v1.19.0-34+ff9309c628eb68")
    );
    assert_eq!(
        (nodes[1].readiness, nodes[1].internal_ip),
        (Readiness::Unknown, None)
    );
    assert_eq!(parse_nodes(&fixture("nodes-empty.json")), Ok(vec![]));
    let single = r#"{"kind":"Node","metadata":{"name":"x"},"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#;
    assert_eq!(
        parse_nodes(single).map(|n| n[0].readiness),
        Ok(Readiness::Ready)
    );
    assert!(parse_nodes(&fixture("nodes-worker.txt")).is_err());
    assert!(parse_nodes(r#"{"kind":"Pod"}"#).is_err());
}

#[test]
fn join_success_outputs() {
    let cases: &[(&str, bool, usize)] = &[
        ("join-success-1.29.txt", true, 0),
        ("join-success-1.28.txt", false, 0),
        ("join-success-warnings.txt", true, 2),
        ("join-worker-success.txt", true, 0),
    ];
    for (file, confirmed, warnings) in cases {
        let o = parse_join_success(&fixture(file));
        assert_eq!(o.confirmed, *confirmed, "{file}");
        assert_eq!(o.contacted.as_deref(), Some("10.0.0.1"), "{file}");
        assert_eq!(o.warnings.len(), *warnings, "{file}");
    }
}

#[test]
fn kubeconfig_both_auth_kinds() {
    let x509 = parse_kubeconfig(&fixture("config-x509.txt")).expect("parses");
    assert_eq!(x509.server(), Some("https://10.0.0.1:16443"));
    let token = parse_kubeconfig(&fixture("config-token-1.19.txt")).expect("parses");
    assert_eq!(token.server(), Some("https://192.168.1.21:16443"));
    let e = parse_kubeconfig(&fixture("config-worker.txt")).expect_err("not a kubeconfig");
    assert!(
        !e.to_string().contains("master"),
        "must not quote the output: {e}"
    );
}

#[test]
fn version_line() {
    let v = parse_version(&fixture("version.txt")).expect("parses");
    assert_eq!(
        (v.major, v.minor, v.patch, v.revision.as_deref()),
        (1, 32, Some(3), Some("7964"))
    );
    assert!(parse_version(&fixture("version-unknown.txt")).is_err());
}
