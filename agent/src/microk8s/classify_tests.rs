//! Classification tests: each fixture with the exit code microk8s gives it.

use super::*;
use crate::microk8s::contract::Readiness;
use crate::microk8s::fixture;

const T: &str = "3f2c1a9e8d7b6c5a4f3e2d1c0b9a8f7e";

fn out(code: i32, stdout: &str, stderr: &str) -> Output {
    Output {
        code: Some(code),
        stdout: fixture_or(stdout),
        stderr: fixture_or(stderr),
    }
}

/// Names ending in `.txt`/`.json` are fixtures, anything else literal text.
fn fixture_or(s: &str) -> String {
    if s.ends_with(".txt") || s.ends_with(".json") {
        fixture(s)
    } else {
        s.to_owned()
    }
}

fn cmd() -> CommandLine {
    CommandLine::new("/snap/bin/microk8s", ["join", "10.0.0.1:25000/<redacted>"])
}

fn cx(c: &CommandLine) -> Context<'_> {
    Context {
        command: c,
        secrets: &[T],
    }
}

#[test]
fn join_failures_by_fixture() {
    use JoinRejection as R;
    let rejected = |reason, status: Option<u16>| move |f: &JoinFailure| matches!(f, JoinFailure::Rejected { reason: r, status: s, .. } if *r == reason && *s == status);
    type Check = Box<dyn Fn(&JoinFailure) -> bool>;
    let cases: Vec<(i32, &str, &str, Check)> = vec![
        (
            6,
            "join-invalid-token.txt",
            "",
            Box::new(rejected(R::InvalidToken, Some(500))),
        ),
        (
            6,
            "join-not-ha.txt",
            "",
            Box::new(rejected(R::NotHa, Some(501))),
        ),
        (
            6,
            "join-port-mismatch.txt",
            "",
            Box::new(rejected(R::PortMismatch, Some(502))),
        ),
        (
            6,
            "join-same-ip.txt",
            "",
            Box::new(rejected(R::SameIp, Some(503))),
        ),
        (
            6,
            "join-hostname.txt",
            "",
            Box::new(rejected(R::HostnameNotResolving, Some(400))),
        ),
        (
            6,
            "join-already-known.txt",
            "",
            Box::new(rejected(R::AlreadyKnown, Some(500))),
        ),
        (
            6,
            "join-already-known-1.23.txt",
            "",
            Box::new(rejected(R::AlreadyKnown, Some(504))),
        ),
        (
            6,
            "join-bind-address.txt",
            "",
            Box::new(rejected(R::BindAddressNotFound, Some(500))),
        ),
        (
            6,
            "join-x509.txt",
            "",
            Box::new(rejected(R::X509Required, Some(500))),
        ),
        (
            1,
            "join-1.19-invalid-token.txt",
            "",
            Box::new(rejected(R::InvalidToken, Some(500))),
        ),
        (
            4,
            "join-fingerprint.txt",
            "",
            Box::new(
                |f| matches!(f, JoinFailure::Fingerprint { detail } if detail.contains("Could not verify")),
            ),
        ),
        (
            1,
            "join-invalid-connection.txt",
            "",
            Box::new(|f| {
                *f == JoinFailure::InvalidConnection {
                    reason: "Cluster token size should be at least 32 bytes".into(),
                }
            }),
        ),
        (
            1,
            "join-invalid-ip.txt",
            "",
            Box::new(|f| matches!(f, JoinFailure::InvalidConnection { .. })),
        ),
        (
            1,
            "join-unreachable.txt",
            "join-unreachable.stderr.txt",
            Box::new(
                |f| matches!(f, JoinFailure::Unreachable { detail } if detail.starts_with("ConnectionRefusedError")),
            ),
        ),
        (
            1,
            "join-1.19-unreachable.txt",
            "",
            Box::new(|f| matches!(f, JoinFailure::Unreachable { .. })),
        ),
        (
            5,
            "join-connect-failed.txt",
            "",
            Box::new(
                |f| matches!(f, JoinFailure::Unreachable { detail } if detail.contains("No route")),
            ),
        ),
        (
            1,
            "join-worker-unsupported.txt",
            "",
            Box::new(|f| *f == JoinFailure::WorkerNotSupported),
        ),
        (
            1,
            "join-low-memory.txt",
            "",
            Box::new(|f| *f == JoinFailure::LowMemory),
        ),
        (
            1,
            "",
            "Traceback (most recent call last):\n  File x\nKeyError: 'ca'",
            Box::new(|f| *f == JoinFailure::Other),
        ),
    ];
    let c = cmd();
    for (code, stdout, stderr, check) in cases {
        match join(cx(&c), &out(code, stdout, stderr)) {
            Err(Microk8sError::Join {
                code: got,
                failure,
                excerpt,
                ..
            }) => {
                assert_eq!(got, Some(code), "{stdout}");
                assert!(check(&failure), "{stdout}: {failure:?}");
                assert!(
                    !excerpt.contains(T),
                    "{stdout}: token leaked into {excerpt}"
                );
            }
            other => panic!("{stdout}: {other:?}"),
        }
    }
}

#[test]
fn join_success_and_signal() {
    let c = cmd();
    let ok = join(cx(&c), &out(0, "join-success-1.29.txt", "")).expect("success");
    assert!(ok.confirmed);
    let killed = Output {
        code: None,
        stdout: String::new(),
        stderr: String::new(),
    };
    assert!(matches!(
        join(cx(&c), &killed),
        Err(Microk8sError::Join {
            code: None,
            failure: JoinFailure::Other,
            ..
        })
    ));
    let denied = join(cx(&c), &out(1, "status-no-permission.txt", ""));
    assert!(matches!(
        denied,
        Err(Microk8sError::PermissionDenied { .. })
    ));
}

#[test]
fn leave_failures_by_fixture() {
    let cases = [
        (3, "leave-only-voter.txt", LeaveFailure::OnlyVoter),
        (2, "leave-no-quorum.txt", LeaveFailure::NoQuorum),
        (1, "leave-not-clustered.txt", LeaveFailure::NotClustered),
        (
            2,
            "leave-worker-not-clustering.txt",
            LeaveFailure::NotClustered,
        ),
        (1, "something odd", LeaveFailure::Other),
    ];
    let c = CommandLine::new("microk8s", ["leave"]);
    for (code, stdout, want) in cases {
        match leave(cx(&c), &out(code, stdout, "")) {
            Err(Microk8sError::Leave { failure, .. }) => assert_eq!(failure, want, "{stdout}"),
            other => panic!("{stdout}: {other:?}"),
        }
    }
    assert!(leave(cx(&c), &out(0, "leave-success.txt", "")).is_ok());
    assert!(leave(cx(&c), &out(0, "leave-worker-success.txt", "")).is_ok());
    assert!(matches!(
        leave(cx(&c), &out(1, "", "add-node-stopped.stderr.txt")),
        Err(Microk8sError::Stopped { .. })
    ));
}

#[test]
fn remove_node_outcomes_and_failures() {
    let c = CommandLine::new("microk8s", ["remove-node", "node-x"]);
    let absent = |checked, purged| RemoveOutcome::NotInKubernetes {
        dqlite_checked: checked,
        purged_from_dqlite: purged,
    };
    let ok_cases = [
        (0, "remove-node-success.txt", "", RemoveOutcome::Removed),
        (
            1,
            "remove-node-not-found.txt",
            "remove-node-not-found.stderr.txt",
            absent(false, false),
        ),
        (1, "remove-node-force-absent.txt", "", absent(true, false)),
        (1, "remove-node-ghost-purged.txt", "", absent(true, true)),
        (1, "Node node-x does not exist.", "", absent(false, false)),
    ];
    for (code, stdout, stderr, want) in ok_cases {
        assert_eq!(
            remove_node(cx(&c), &out(code, stdout, stderr)).ok(),
            Some(want),
            "{stdout}"
        );
    }
    let err_cases = [
        (
            "remove-node-registered.txt",
            RemoveFailure::RegisteredWithDqlite,
        ),
        ("remove-node-not-part.txt", RemoveFailure::NotPartOfCluster),
        (
            "remove-node-1.19-no-ip.txt",
            RemoveFailure::NotPartOfCluster,
        ),
        (
            "remove-node-contact-failed.txt",
            RemoveFailure::ContactFailed,
        ),
        (
            "Please provide the node you want to remove.",
            RemoveFailure::Other,
        ),
    ];
    for (stdout, want) in err_cases {
        match remove_node(cx(&c), &out(1, stdout, "")) {
            Err(Microk8sError::RemoveNode { failure, .. }) => assert_eq!(failure, want, "{stdout}"),
            other => panic!("{stdout}: {other:?}"),
        }
    }
    let worker = remove_node(cx(&c), &out(1, "remove-node-worker.txt", ""));
    assert!(
        matches!(worker, Err(Microk8sError::WorkerNode { .. })),
        "{worker:?}"
    );
}

#[test]
fn status_states_and_errors() {
    let c = CommandLine::new("microk8s", ["status", "--format", "yaml"]);
    assert_eq!(
        status(cx(&c), &out(0, "status-stopped.txt", "")).ok(),
        Some(Status::Stopped)
    );
    assert_eq!(
        status(cx(&c), &out(1, "", "status-stopped.txt")).ok(),
        Some(Status::Stopped)
    );
    assert_eq!(
        status(cx(&c), &out(0, "status-worker.txt", "")).ok(),
        Some(Status::Worker)
    );
    // 1.28+ exits 1 when not ready; the output still says what happened.
    assert!(matches!(
        status(cx(&c), &out(1, "status-yaml-not-running.txt", "")),
        Ok(Status::NotReady { .. })
    ));
    let denied = status(cx(&c), &out(1, "status-no-permission.txt", ""));
    assert!(
        matches!(denied, Err(Microk8sError::PermissionDenied { .. })),
        "{denied:?}"
    );
    assert!(matches!(
        status(cx(&c), &out(0, "garbage", "")),
        Err(Microk8sError::Unparseable { .. })
    ));
    assert!(matches!(
        status(cx(&c), &out(2, "", "usage: …")),
        Err(Microk8sError::Failed { code: Some(2), .. })
    ));
}

#[test]
fn add_node_checks_token_and_version_support() {
    let token = JoinToken::new(T).expect("valid");
    let c = CommandLine::new("microk8s", ["add-node", "--token", "<redacted>"]);
    let ok = add_node(cx(&c), &out(0, "add-node-json.txt", ""), &token).expect("parses");
    assert_eq!(ok.urls.len(), 3);
    let other = JoinToken::new("b".repeat(32)).expect("valid");
    let mismatch = add_node(cx(&c), &out(0, "add-node-json.txt", ""), &other);
    match mismatch {
        Err(Microk8sError::Unparseable {
            expected, excerpt, ..
        }) => {
            assert_eq!(expected, "the requested token");
            assert!(!excerpt.contains(T), "{excerpt}");
        }
        other => panic!("{other:?}"),
    }
    let token_only = add_node(cx(&c), &out(0, "add-node-token.txt", ""), &token);
    assert!(matches!(
        token_only,
        Err(Microk8sError::Unparseable {
            expected: "join addresses",
            ..
        })
    ));
    let old = add_node(
        cx(&c),
        &out(2, "", "add-node-old-format.stderr.txt"),
        &token,
    );
    assert!(
        matches!(old, Err(Microk8sError::Unsupported { .. })),
        "{old:?}"
    );
    // 1.23 knows --format but not json.
    let no_json = "microk8s add-node: error: argument --format: invalid choice: 'json'";
    let v123 = add_node(cx(&c), &out(2, "", no_json), &token);
    assert!(
        matches!(v123, Err(Microk8sError::Unsupported { .. })),
        "{v123:?}"
    );
    assert!(matches!(
        add_node(cx(&c), &out(1, "add-node-worker.txt", ""), &token),
        Err(Microk8sError::WorkerNode { .. })
    ));
    assert!(matches!(
        add_node(cx(&c), &out(1, "", "add-node-stopped.stderr.txt"), &token),
        Err(Microk8sError::Stopped { .. })
    ));
    let short = add_node(cx(&c), &out(1, "add-node-short-token.txt", ""), &token);
    assert!(matches!(
        short,
        Err(Microk8sError::Failed { code: Some(1), .. })
    ));
}

#[test]
fn nodes_config_and_version() {
    let c = CommandLine::new("microk8s", ["kubectl", "get", "nodes", "-o", "json"]);
    let n = nodes(cx(&c), &out(0, "nodes.json", "")).expect("parses");
    assert_eq!(n[0].readiness, Readiness::Ready);
    assert!(matches!(
        nodes(cx(&c), &out(0, "nodes-worker.txt", "")),
        Err(Microk8sError::WorkerNode { .. })
    ));
    assert!(matches!(
        nodes(cx(&c), &out(1, "", "nodes-refused.stderr.txt")),
        Err(Microk8sError::ApiUnavailable { .. })
    ));
    assert!(matches!(
        nodes(cx(&c), &out(0, "{", "")),
        Err(Microk8sError::Unparseable { .. })
    ));

    let k = kubeconfig(cx(&c), &out(0, "config-x509.txt", "")).expect("parses");
    assert!(k.expose().contains("client-key-data"));
    assert!(matches!(
        kubeconfig(cx(&c), &out(0, "config-worker.txt", "")),
        Err(Microk8sError::WorkerNode { .. })
    ));
    let bad = kubeconfig(cx(&c), &out(0, "token: SECRET-VALUE\nkey: x", ""))
        .expect_err("not a kubeconfig");
    assert!(!bad.to_string().contains("SECRET-VALUE"), "{bad}");

    assert_eq!(
        version(cx(&c), &out(0, "version.txt", ""))
            .ok()
            .flatten()
            .map(|v| v.minor),
        Some(32)
    );
    assert_eq!(
        version(cx(&c), &out(1, "version-unknown.txt", "")).ok(),
        Some(None)
    );
}
