//! Tests of the argparse / click emulation and of join's connection validation.

use super::*;

fn v(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

const T: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[test]
fn add_node_accepts_short_long_inline_and_prefix_forms() {
    let a = add_node(&v(&["-l", "60", "--token", T, "--format=json"])).expect("ok");
    assert_eq!(
        a,
        AddNodeArgs {
            ttl: 60,
            token: Some(T.into()),
            format: "json".into()
        }
    );
    let a = add_node(&v(&["--token-ttl", "-1", "--form", "short"])).expect("ok");
    assert_eq!((a.ttl, a.format.as_str()), (-1, "short"));
    assert_eq!(add_node(&v(&["-l30"])).expect("ok").ttl, 30);
}

#[test]
fn add_node_errors_are_argparse_texts_with_exit_2() {
    let e = add_node(&v(&["--format", "xml"])).expect_err("bad choice");
    assert_eq!(e.code, 2);
    assert!(
        e.stderr
            .starts_with("usage: microk8s add-node [-h] [--token-ttl TOKEN_TTL] [--token TOKEN]\n")
    );
    assert!(e.stderr.ends_with("microk8s add-node: error: argument --format: invalid choice: 'xml' (choose from 'pretty', 'short', 'token', 'token-check', 'json', 'yaml')\n"));
    let e = add_node(&v(&["-l", "soon"])).expect_err("bad int");
    assert!(
        e.stderr
            .ends_with("error: argument --token-ttl/-l: invalid int value: 'soon'\n")
    );
    let e = add_node(&v(&["--tok", "x"])).expect_err("ambiguous");
    assert!(
        e.stderr
            .ends_with("error: ambiguous option: --tok could match --token-ttl, --token\n")
    );
    let e = add_node(&v(&["stray"])).expect_err("extra");
    assert!(e.stderr.ends_with("error: unrecognized arguments: stray\n"));
    let e = add_node(&v(&["--token"])).expect_err("missing");
    assert!(
        e.stderr
            .ends_with("error: argument --token/-t: expected one argument\n")
    );
}

#[test]
fn status_parses_wait_ready_timeout_and_formats() {
    let s = status(&v(&["--wait-ready", "--timeout", "30", "--format", "yaml"])).expect("ok");
    assert_eq!(
        s,
        StatusArgs {
            format: "yaml".into(),
            wait_ready: true,
            timeout: 30,
            addon: None
        }
    );
    assert_eq!(status(&v(&["--yaml"])).expect("ok").format, "short-yaml");
    assert_eq!(status(&v(&["-w", "-t", "5"])).expect("ok").timeout, 5);
    assert_eq!(
        status(&v(&["--format", "json"])).expect_err("choice").code,
        2
    );
}

#[test]
fn join_validation_messages_and_exit_1() {
    let cases = [
        (
            "10.0.0.1:25000",
            "Expected format: <master_IP>:<master_PORT>/<token>[/<fingerprint>]",
        ),
        (
            "10.0.0.1/a/b/c",
            "Expected format: <master_IP>:<master_PORT>/<token>[/<fingerprint>]",
        ),
        (
            "fe80::1:25000/x",
            "Expected format: <master_IP>:<master_PORT>/<token>[/<fingerprint>]",
        ),
        ("node1:25000/x", "Invalid master IP"),
        ("10.0.0.1:port/x", "Master PORT not a number"),
        ("10.0.0.1:70000/x", "Master PORT not in range 1:65535"),
        ("10.0.0.1:0/x", "Master PORT not in range 1:65535"),
        (
            "10.0.0.1:25000/short",
            "Cluster token size should be at least 32 bytes",
        ),
    ];
    for (conn, reason) in cases {
        let e = join(&v(&[conn])).expect_err(conn);
        assert_eq!(e.code, 1, "{conn}");
        assert_eq!(
            e.stdout,
            format!("Invalid connection: {reason}\n"),
            "{conn}"
        );
    }
    let e = join(&v(&[&format!("10.0.0.1:25000/{T}/abc")])).expect_err("fp");
    assert_eq!(
        e.stdout,
        "Invalid connection: Fingerprint should be at least 12 bytes\n"
    );
}

#[test]
fn join_parses_flags_anywhere() {
    let j = join(&v(&[
        "--worker",
        &format!("10.0.0.1:25000/{T}/a1b2c3d4e5f6"),
        "--skip-verify",
    ]))
    .expect("ok");
    assert!(j.worker && !j.verify);
    assert_eq!(j.fingerprint.as_deref(), Some("a1b2c3d4e5f6"));
    assert_eq!((j.ip.to_string(), j.port), ("10.0.0.1".to_owned(), 25000));
    let j = join(&v(&[&format!("10.0.0.1:25000/{T}")])).expect("ok");
    assert!(!j.worker && j.verify && j.fingerprint.is_none());
}

#[test]
fn join_usage_errors_are_click_texts() {
    let e = join(&[]).expect_err("missing");
    assert_eq!(
        e.stderr,
        "Usage: microk8s join [OPTIONS] CONNECTION\nTry 'microk8s join -h' for help.\n\nError: Missing argument 'CONNECTION'.\n"
    );
    assert_eq!(e.code, 2);
    let e = join(&v(&["a", "b"])).expect_err("extra");
    assert!(
        e.stderr
            .ends_with("Error: Got unexpected extra argument (b)\n")
    );
}

#[test]
fn remove_node_force_must_follow_the_name() {
    assert_eq!(
        remove_node(&v(&["n2", "--force"]), true).expect("ok"),
        ("n2".into(), true)
    );
    assert_eq!(
        remove_node(&v(&["n2"]), true).expect("ok"),
        ("n2".into(), false)
    );
    let e = remove_node(&v(&["--force", "n2"]), true).expect_err("position");
    assert_eq!(
        (e.stdout.as_str(), e.code),
        (
            "Please provide the node and the optional --force flag.\n",
            1
        )
    );
    let e = remove_node(&[], true).expect_err("none");
    assert_eq!(e.stdout, "Please provide the node you want to remove.\n");
    let e = remove_node(&v(&["--force"]), true).expect_err("click");
    assert_eq!(
        e.stderr,
        "Usage: microk8s remove-node [OPTIONS] NODE\nTry 'microk8s remove-node --help' for help.\n\nError: Missing argument 'NODE'.\n"
    );
}

#[test]
fn leave_takes_no_arguments() {
    assert!(leave(&[]).is_ok());
    let e = leave(&v(&["now"])).expect_err("extra");
    assert!(
        e.stderr
            .ends_with("Error: Got unexpected extra argument (now)\n")
    );
}
