//! `muster demo` end to end: the real binary forms (or tries to form) a 3-node cluster with
//! the simulator, reports it as one JSON document, and leaves nothing behind: no namespace,
//! bridge, veth, process or directory of its own, also after Ctrl-C.
//!
//! As root the demo uses network namespaces; otherwise loopback processes, and the namespace
//! checks are vacuous.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_muster");

/// The demo's `--timeout`: generous enough for a loaded 2-core machine.
const TIMEOUT: &str = "120s";

/// `n` in base 36, as the lab names kernel objects after the owning pid.
fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The tag a demo puts in the names of what it creates: its pid in base 36, read back from
/// the cluster name (`demo-<tag>`) of its JSON document when it has one (a demo re-executed
/// in a user namespace has another pid than the one the test started).
fn tag_of(pid: u32, doc: Option<&serde_json::Value>) -> String {
    doc.and_then(|d| d["cluster"].as_str())
        .and_then(|c| c.strip_prefix("demo-"))
        .map_or_else(|| base36(u64::from(pid)), str::to_owned)
}

/// What a finished demo left behind: namespaces, links, processes, directories whose names
/// carry its tag (see [`tag_of`]).
fn leftovers(tag: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        found.extend(
            text(&out.stdout)
                .lines()
                .filter(|l| l.starts_with(&format!("mst-{tag}-")))
                .map(|l| format!("namespace {l}")),
        );
    }
    if let Ok(out) = Command::new("ip").args(["-o", "link"]).output() {
        found.extend(
            text(&out.stdout)
                .lines()
                .filter_map(|l| l.split(": ").nth(1))
                .filter(|name| {
                    ["mstb", "mstp", "mstv"]
                        .iter()
                        .any(|k| name.starts_with(&format!("{k}{tag}-")))
                })
                .map(|name| format!("link {name}")),
        );
    }
    let markers = [
        format!("demo-{tag}"),
        format!("muster-lab-{tag}-"),
        format!("muster-demo-{tag}-"),
    ];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = text(&cmdline).replace('\0', " ");
        if markers.iter().any(|m| cmdline.contains(m.as_str())) {
            found.push(format!("process {cmdline}"));
        }
    }
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if markers[1..].iter().any(|m| name.starts_with(m.as_str())) {
            found.push(format!("directory {name}"));
        }
    }
    found
}

/// Runs the demo to its end (its own `--timeout` bounds it) and returns its output and pid.
fn run_demo(args: &[&str]) -> (Output, u32) {
    let child = Command::new(BIN)
        .arg("demo")
        .args(args)
        .env_remove("MUSTER_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("muster demo starts");
    let pid = child.id();
    (child.wait_with_output().expect("muster demo ends"), pid)
}

#[test]
fn three_node_demo_reports_discovery_and_its_verdict_and_cleans_up() {
    let (out, pid) = run_demo(&["--nodes", "3", "--json", "--timeout", TIMEOUT]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(doc["discovered"], 3, "{doc:#}\n{stderr}");
    assert!(stderr.contains("discovered 3/3"), "{stderr}");
    let nodes = doc["nodes"].as_array().expect("nodes array");
    assert_eq!(nodes.len(), 3, "{doc:#}");
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node["name"], format!("h{}", i + 1));
        for key in ["role", "joined", "verified", "entry_point", "ha"] {
            assert!(node.get(key).is_some(), "node lacks {key}: {node}");
        }
        assert_eq!(node["members_alive"], 3, "{node}");
    }
    assert!(doc["elapsed_ms"].as_u64().is_some(), "{doc:#}");

    assert!(out.status.success(), "the demo failed:\n{stderr}");
    assert_eq!(doc["formed"], true, "{doc:#}");
    let entry = doc["entry_point"].as_str().expect("an entry point");
    for node in nodes {
        assert_eq!(node["entry_point"], entry, "{node}");
        assert_eq!(node["joined"], true, "{node}");
        assert_eq!(node["verified"], true, "{node}");
    }
    let left = leftovers(&tag_of(pid, Some(&doc)));
    assert!(left.is_empty(), "the demo left behind: {left:#?}");
}

#[test]
fn a_cluster_that_cannot_form_in_time_fails_and_says_why() {
    // Joins take 3 s each at `fast`: a 3-node cluster cannot form within 3 s.
    let (out, pid) = run_demo(&["--nodes", "3", "--json", "--timeout", "3s"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cluster did not form within 3s: "),
        "the failure must say what is missing:\n{stderr}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["formed"], false, "{doc:#}");
    let missing = doc["missing"].as_array().expect("missing");
    assert!(!missing.is_empty(), "{doc:#}");
    for reason in missing {
        let reason = reason.as_str().expect("text");
        assert!(stderr.contains(reason), "{reason:?} not in {stderr}");
    }
    let left = leftovers(&tag_of(pid, Some(&doc)));
    assert!(left.is_empty(), "the demo left behind: {left:#?}");
}

#[test]
fn without_root_the_demo_runs_in_a_private_user_namespace() {
    // `--mode userns` is what `auto` picks without root; as root it works the same way.
    let (out, pid) = run_demo(&[
        "--nodes",
        "2",
        "--json",
        "--mode",
        "userns",
        "--timeout",
        TIMEOUT,
    ]);
    let stderr = text(&out.stderr);
    if stderr.contains("is not possible here") {
        // The one skip policy: a loud SKIPPED here, a failure in CI.
        let missing = [format!("user namespaces ({})", stderr.trim())];
        let decision = muster_lab::decide(
            "demo_in_a_user_namespace",
            &missing,
            muster_lab::caps::in_ci(),
        );
        assert!(muster_lab::caps::enforce(decision).is_none());
        return;
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}):\n{stderr}"));
    assert_eq!(doc["mode"], "userns", "{doc:#}");
    assert_eq!(doc["discovered"], 2, "{doc:#}\n{stderr}");
    assert_eq!(doc["formed"], true, "{doc:#}\n{stderr}");
    assert!(out.status.success(), "{stderr}");
    let tag = tag_of(pid, Some(&doc));
    assert_ne!(
        tag,
        base36(u64::from(pid)),
        "the demo ran again inside the namespace"
    );
    let left = leftovers(&tag);
    assert!(left.is_empty(), "the demo left behind: {left:#?}");
}

#[test]
fn ctrl_c_stops_the_demo_and_cleans_up() {
    let child = Command::new(BIN)
        .args(["demo", "--nodes", "2", "--timeout", "120s"])
        .env_remove("MUSTER_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("muster demo starts");
    let pid = child.id();
    // Long enough for the hosts and agents to be up; the demo must clean up from any point.
    std::thread::sleep(Duration::from_secs(3));
    let sent = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let started = Instant::now();
    let out = child.wait_with_output().expect("the demo ends");
    let stderr = text(&out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cleanup took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let left = leftovers(&tag_of(pid, None));
    assert!(left.is_empty(), "the demo left behind: {left:#?}");
}

#[test]
fn node_count_out_of_range_is_a_usage_error() {
    for bad in ["0", "51"] {
        let out = Command::new(BIN)
            .args(["demo", "--nodes", bad])
            .output()
            .expect("muster runs");
        assert_eq!(out.status.code(), Some(2), "--nodes {bad}");
        assert!(text(&out.stderr).contains("--nodes"), "--nodes {bad}");
    }
}
