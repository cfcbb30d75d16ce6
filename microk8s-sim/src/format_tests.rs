//! Golden tests of the byte-exact texts (fixtures in `microk8s-sim/tests/fixtures/sim/`).

use super::*;

const T: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const C: &str = "a1b2c3d4e5f6";

fn ips() -> Vec<String> {
    vec!["10.0.0.1".to_owned(), "172.17.0.1".to_owned()]
}

#[test]
fn add_node_pretty_matches_golden() {
    assert_eq!(
        add_node("pretty", T, C, "10.0.0.1", &ips(), true),
        include_str!("../tests/fixtures/sim/add_node_pretty.txt")
    );
}

#[test]
fn add_node_pretty_without_ha_lock_drops_the_worker_hint() {
    let out = add_node("pretty", T, C, "10.0.0.1", &ips(), false);
    assert!(!out.contains("--worker"));
    assert!(out.starts_with(&format!(
        "From the node you wish to join to this cluster, run the following:\nmicrok8s join 10.0.0.1:25000/{T}/{C}\n\nIf the node"
    )));
}

#[test]
fn add_node_short_does_not_repeat_the_default_ip() {
    assert_eq!(
        add_node("short", T, C, "10.0.0.1", &ips(), true),
        include_str!("../tests/fixtures/sim/add_node_short.txt")
    );
}

#[test]
fn add_node_json_and_yaml_match_golden() {
    assert_eq!(
        add_node("json", T, C, "10.0.0.1", &ips(), true),
        include_str!("../tests/fixtures/sim/add_node_json.txt")
    );
    assert_eq!(
        add_node("yaml", T, C, "10.0.0.1", &ips(), true),
        include_str!("../tests/fixtures/sim/add_node_yaml.txt")
    );
}

#[test]
fn add_node_token_and_token_check() {
    assert_eq!(
        add_node("token", T, C, "10.0.0.1", &ips(), true),
        format!("{T}\n")
    );
    assert_eq!(
        add_node("token-check", T, C, "10.0.0.1", &ips(), true),
        format!("{T}/{C}\n")
    );
}

fn view(ready: bool, members: &[(&str, Role)]) -> StatusView {
    StatusView {
        ready,
        ha_enabled: true,
        members: members.iter().map(|(a, r)| ((*a).to_owned(), *r)).collect(),
    }
}

#[test]
fn status_pretty_matches_golden_with_standby() {
    let v = view(
        true,
        &[
            ("10.0.0.1:19001", Role::Voter),
            ("10.0.0.2:19001", Role::Voter),
            ("10.0.0.3:19001", Role::Voter),
            ("10.0.0.4:19001", Role::Standby),
            ("10.0.0.5:19001", Role::Spare),
        ],
    );
    assert_eq!(
        status("pretty", &v),
        include_str!("../tests/fixtures/sim/status_pretty_ha.txt")
    );
}

#[test]
fn status_high_availability_is_yes_only_with_three_voters() {
    let two = view(
        true,
        &[
            ("10.0.0.1:19001", Role::Voter),
            ("10.0.0.2:19001", Role::Voter),
        ],
    );
    let head = "microk8s is running\nhigh-availability: no\n  datastore master nodes: 10.0.0.1:19001 10.0.0.2:19001\n  datastore standby nodes: none\naddons:\n";
    assert!(status("pretty", &two).starts_with(head));
    let single = view(true, &[("127.0.0.1:19001", Role::Voter)]);
    assert!(status("pretty", &single).contains("  datastore master nodes: 127.0.0.1:19001\n"));
    let sick = view(true, &[]);
    assert!(status("pretty", &sick).contains(
        "high-availability: no\n  datastore master nodes: none\n  datastore standby nodes: none\n"
    ));
}

#[test]
fn status_not_ready_is_one_line_in_pretty_and_short() {
    let v = view(false, &[("127.0.0.1:19001", Role::Voter)]);
    let line = "microk8s is not running. Use microk8s inspect for a deeper inspection.\n";
    assert_eq!(status("pretty", &v), line);
    assert_eq!(status("short", &v), line);
}

#[test]
fn status_yaml_not_ready_keeps_the_ha_block() {
    let v = view(
        false,
        &[
            ("10.0.0.1:19001", Role::Voter),
            ("10.0.0.2:19001", Role::Voter),
        ],
    );
    assert_eq!(
        status("yaml", &v),
        include_str!("../tests/fixtures/sim/status_yaml_not_ready.txt")
    );
}

#[test]
fn status_yaml_ready_lists_spares_and_addons() {
    let v = view(
        true,
        &[
            ("10.0.0.1:19001", Role::Voter),
            ("10.0.0.7:19001", Role::Spare),
        ],
    );
    let out = status("yaml", &v);
    assert!(out.starts_with("microk8s:\n  running: True\nhigh-availability:\n  enabled: True\n  nodes:\n    - address: 10.0.0.1:19001\n      role: voter\n    - address: 10.0.0.7:19001\n      role: spare\naddons:\n  - name: dns\n    repository: core\n    description: CoreDNS\n    version: 1.10.1\n    status: enabled\n"));
    assert!(out.ends_with("  - name: storage\n    repository: core\n    description: Alias to hostpath-storage add-on, deprecated\n    version: 1.1.0\n    status: disabled\n"));
}

#[test]
fn status_short_lists_repo_prefixed_addons() {
    let v = view(true, &[("127.0.0.1:19001", Role::Voter)]);
    let out = status("short", &v);
    assert!(out.starts_with(
        "microk8s is running\naddons:\ncore/dns: enabled\ncore/ha-cluster: enabled\n"
    ));
    assert!(out.ends_with("core/storage: disabled\n"));
}

#[test]
fn config_replaces_loopback_and_adds_the_wrappers_empty_line() {
    let stored = crate::state_dir::client_config("00112233445566778899aabbccddeeff");
    assert_eq!(
        config(&stored, "10.0.0.1", false),
        include_str!("../tests/fixtures/sim/config.txt")
    );
    assert!(config(&stored, "10.0.0.1", true).contains("server: http://127.0.0.1:16443\n"));
}

#[test]
fn join_and_removal_messages_are_verbatim() {
    assert_eq!(
        invalid_connection("Invalid master IP"),
        "Invalid connection: Invalid master IP\n"
    );
    assert_eq!(
        fingerprint_mismatch("10.0.0.1"),
        "Joining cluster failed. Could not verify the identity of 10.0.0.1. Use '--skip-verify' to skip server certificate check.\n"
    );
    assert_eq!(
        connection_failed(Some("Invalid token"), 500),
        "Connection failed. Invalid token (500).\n"
    );
    assert_eq!(connection_failed(None, 502), "Connection failed. (502).\n");
    assert_eq!(
        removal_failed_registered("n2"),
        "Removal failed. Node n2 is registered with dqlite. Please, run first 'microk8s leave' on the departing node. \nIf the node is not available anymore and will never attempt to join the cluster in the future use the '--force' flag \nto unregister the node while removing it.\n"
    );
    assert_eq!(
        contacting_node_failed("10.0.0.1:19001", "10.0.0.2:19001"),
        format!(
            "Contacting node 10.0.0.1:19001 failed. Error:\nCalledProcessError(1, ['/snap/microk8s/{SNAP_REVISION}/bin/dqlite', '-s', 'file:///var/snap/microk8s/{SNAP_REVISION}/var/kubernetes/backend/cluster.yaml', '-c', '/var/snap/microk8s/{SNAP_REVISION}/var/kubernetes/backend/cluster.crt', '-k', '/var/snap/microk8s/{SNAP_REVISION}/var/kubernetes/backend/cluster.key', '-f', 'json', 'k8s', '.remove 10.0.0.2:19001'])\n"
        )
    );
}

#[test]
fn connect_errors_map_to_python_exceptions() {
    let e = std::io::Error::from_raw_os_error(111);
    assert_eq!(
        python_os_error(&e),
        "ConnectionRefusedError: [Errno 111] Connection refused"
    );
    let e = std::io::Error::from_raw_os_error(113);
    assert_eq!(python_os_error(&e), "OSError: [Errno 113] No route to host");
    let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "timer");
    assert_eq!(
        python_os_error(&e),
        "TimeoutError: [Errno 110] Connection timed out"
    );
    let tb = connect_traceback("ConnectionRefusedError: [Errno 111] Connection refused");
    assert!(tb.starts_with("Traceback (most recent call last):\n"));
    assert!(tb.ends_with(
        "    sock.connect(sa)\nConnectionRefusedError: [Errno 111] Connection refused\n"
    ));
}

#[test]
fn json_strings_escape_like_python() {
    assert_eq!(json_str("a\"b"), "\"a\\\"b\"");
    assert_eq!(json_str("é"), "\"\\u00e9\"");
}
