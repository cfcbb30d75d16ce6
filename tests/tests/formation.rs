//! Hands-free cluster formation across real network stacks: every host runs the microk8s
//! simulator's daemon and a real `muster agent` in its own network namespace; the agents find
//! each other, elect one entry point and join every node with `microk8s join` over the
//! network. Failures are real: SIGKILLed hosts, duplicate hostnames, silent join failures,
//! packet loss.
//!
//! Timeouts are safety nets for a hung run; the formation time is measured by the benchmark.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use muster_lab::{Host, Lab, Need, require, require_needs, wait_until};
use muster_tests::{SimHost, SimNode, SimNodeOptions};
use serde_json::Value;

const SAFETY: Duration = Duration::from_secs(150);

type Node = SimNode;

struct Opts<'a> {
    cluster: &'a str,
    name: Option<&'a str>,
    sim_env: &'a [(&'a str, &'a str)],
    config: &'a str,
}

fn start_node(host: &Host, o: &Opts<'_>) -> Node {
    let options = SimNodeOptions {
        cluster: o.cluster.to_owned(),
        name: o.name.map(str::to_owned),
        sim_env: o
            .sim_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        config: o.config.to_owned(),
        log_level: "info".to_owned(),
    };
    let mut node = host
        .start_sim_node(&options)
        .expect("simulated machine starts");
    node.agent.wait_ready(SAFETY).expect("agent answers");
    node
}

fn status(node: &Node) -> Option<Value> {
    let out = node.agent.cli(&["status", "--json"]).ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// `microk8s kubectl get nodes -o json` on a node: name -> Ready.
fn kube_nodes(node: &Node) -> BTreeMap<String, bool> {
    let out = Command::new(node.microk8s())
        .args(["kubectl", "get", "nodes", "-o", "json"])
        .output()
        .expect("kubectl");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    let ready = i["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    });
                    (
                        i["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                        ready,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until exactly one entry point exists, every node reports itself verified, and the
/// entry point's Kubernetes lists every expected name Ready. Returns the entry's index.
fn wait_formed(nodes: &[&Node], names: &[String]) -> usize {
    let what = format!("one entry point and {names:?} all verified and Ready");
    let result = wait_until(&what, SAFETY, Duration::from_millis(500), || {
        let st: Vec<Option<Value>> = nodes.iter().map(|n| status(n)).collect();
        let summary: Vec<String> = st
            .iter()
            .map(|s| match s {
                Some(s) => format!(
                    "{}:{}:{}:{}",
                    s["node"]["name"].as_str().unwrap_or("?"),
                    s["role"].as_str().unwrap_or("?"),
                    s["cluster_state"]["entry_point"].as_str().unwrap_or(""),
                    s["cluster_state"]["verified"]
                ),
                None => "down".to_owned(),
            })
            .collect();
        let entries: Vec<usize> = st
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(|s| s["role"] == "entry-point"))
            .map(|(i, _)| i)
            .collect();
        if entries.len() != 1 {
            return Err(summary);
        }
        // Verified, and done verifying itself (a node's role reads `joining` until then).
        let all_verified = st.iter().all(|s| {
            s.as_ref()
                .is_some_and(|s| s["cluster_state"]["verified"] == true && s["role"] != "joining")
        });
        let listed = kube_nodes(nodes[entries[0]]);
        let all_ready =
            names.iter().all(|n| listed.get(n) == Some(&true)) && listed.len() == names.len();
        if all_verified && all_ready {
            Ok(entries[0])
        } else {
            Err(summary)
        }
    });
    match result {
        Ok(i) => i,
        Err(e) => {
            for n in nodes {
                eprintln!(
                    "--- {} agent log:\n{}",
                    n.agent.host(),
                    n.agent.log_tail(40)
                );
            }
            panic!("{e}");
        }
    }
}

fn cluster(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

fn defaults(cluster: &str) -> Opts<'_> {
    Opts {
        cluster,
        name: None,
        sim_env: &[("MUSTER_SIM_JOIN_LATENCY", "zero")],
        config: "[formation]\nverify_timeout = \"30s\"\n",
    }
}

#[test]
fn five_hosts_form_one_ha_cluster_with_one_entry_point() {
    let Some(_caps) = require("five_hosts_form_one_cluster", &[]) else {
        return;
    };
    let lab = Lab::new(5).expect("lab");
    let c = cluster("form5");
    let nodes: Vec<Node> = lab
        .hosts()
        .iter()
        .map(|h| start_node(h, &defaults(&c)))
        .collect();
    let names: Vec<String> = lab.hosts().iter().map(|h| h.name().to_owned()).collect();
    let refs: Vec<&Node> = nodes.iter().collect();
    let entry = wait_formed(&refs, &names);
    let s = status(&nodes[entry]).expect("entry status");
    assert_eq!(s["cluster_state"]["size"], 5, "{s}");
    assert_eq!(
        s["cluster_state"]["ha"], true,
        "three control planes make it HA: {s}"
    );
    assert_eq!(s["cluster_state"]["voters"], 3, "{s}");
    let roles: Vec<String> = refs
        .iter()
        .map(|n| {
            status(n)
                .map(|s| s["role"].as_str().unwrap_or("").to_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        roles.iter().filter(|r| *r == "entry-point").count(),
        1,
        "{roles:?}"
    );
    assert_eq!(
        roles.iter().filter(|r| *r == "control-plane").count(),
        2,
        "{roles:?}"
    );
    assert_eq!(
        roles.iter().filter(|r| *r == "worker").count(),
        2,
        "{roles:?}"
    );
    // Every node agrees on the entry point.
    let entry_name = lab.hosts()[entry].name();
    for n in &refs {
        assert_eq!(
            status(n).expect("status")["cluster_state"]["entry_point"],
            entry_name
        );
    }
}

#[test]
fn entry_point_killed_then_another_takes_over_and_a_sixth_host_joins() {
    let Some(_caps) = require("entry_takeover", &[]) else {
        return;
    };
    let lab = Lab::new(6).expect("lab");
    let c = cluster("takeover");
    // Dead voters are removed after a short while, so the new entry point can add nodes.
    let opts = Opts {
        config: "[formation]\nverify_timeout = \"30s\"\nremove_after = \"3s\"\n",
        ..defaults(&c)
    };
    let mut nodes: Vec<Node> = lab.hosts()[..5]
        .iter()
        .map(|h| start_node(h, &opts))
        .collect();
    let names: Vec<String> = lab.hosts()[..5]
        .iter()
        .map(|h| h.name().to_owned())
        .collect();
    let old = wait_formed(&nodes.iter().collect::<Vec<_>>(), &names);
    let dead_name = names[old].clone();
    // The whole machine dies: its agent and its microk8s.
    let mut gone = nodes.remove(old);
    gone.agent.kill().expect("kill agent");
    gone.sim.child.kill().expect("kill microk8s");
    let sixth = start_node(lab.host(6), &opts);
    nodes.push(sixth);
    let mut survivors: Vec<String> = names.iter().filter(|n| **n != dead_name).cloned().collect();
    survivors.push(lab.host(6).name().to_owned());
    let new = wait_formed(&nodes.iter().collect::<Vec<_>>(), &survivors);
    let s = status(&nodes[new]).expect("status");
    assert_ne!(s["node"]["name"], dead_name.as_str(), "{s}");
    assert!(
        !kube_nodes(&nodes[new]).contains_key(&dead_name),
        "the dead entry point was removed"
    );
}

#[test]
fn muster_leave_removes_the_node_from_kubernetes() {
    let Some(_caps) = require("leave_removes_node", &[]) else {
        return;
    };
    let lab = Lab::new(4).expect("lab");
    let c = cluster("leave");
    let mut nodes: Vec<Node> = lab
        .hosts()
        .iter()
        .map(|h| start_node(h, &defaults(&c)))
        .collect();
    let names: Vec<String> = lab.hosts().iter().map(|h| h.name().to_owned()).collect();
    let entry = wait_formed(&nodes.iter().collect::<Vec<_>>(), &names);
    let leaver = (entry + 1) % nodes.len();
    let out = nodes[leaver]
        .agent
        .cli(&["leave", "--timeout", "120s"])
        .expect("leave");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let leaver_name = names[leaver].clone();
    wait_until(
        "the leaver to disappear from kubectl get nodes",
        SAFETY,
        Duration::from_millis(500),
        || {
            let listed = kube_nodes(&nodes[entry]);
            if listed.contains_key(&leaver_name) {
                Err(listed)
            } else {
                Ok(())
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", nodes[entry].agent.log_tail(40)));
    let (status, _) = nodes[leaver]
        .agent
        .stop(Duration::from_secs(15))
        .expect("stopped");
    assert!(status.success());
}

#[test]
fn duplicate_hostname_is_refused_with_the_reason() {
    let Some(_caps) = require("duplicate_hostname_refused", &[]) else {
        return;
    };
    let lab = Lab::new(3).expect("lab");
    let c = cluster("dup");
    let a = start_node(lab.host(1), &defaults(&c));
    let b = start_node(lab.host(2), &defaults(&c));
    let twin = start_node(
        lab.host(3),
        &Opts {
            name: Some(lab.host(2).name()),
            ..defaults(&c)
        },
    );
    let dup = lab.host(2).name().to_owned();
    let reported = wait_until(
        "a duplicate-hostname warning",
        SAFETY,
        Duration::from_millis(500),
        || {
            let warnings: Vec<String> = [&a, &b, &twin]
                .iter()
                .filter_map(|n| status(n))
                .flat_map(|s| s["warnings"].as_array().cloned().unwrap_or_default())
                .filter_map(|w| w.as_str().map(str::to_owned))
                .collect();
            if warnings
                .iter()
                .any(|w| w.contains(&dup) && w.to_lowercase().contains("hostname"))
            {
                Ok(warnings)
            } else {
                Err(warnings)
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!reported.is_empty());
    let log = format!("{}{}", b.agent.log(), twin.agent.log());
    assert!(
        log.contains("event=join_refused"),
        "the journal says so too"
    );
    // The twin never ran a join that microk8s would break on (the first h2 may have joined
    // before the twin appeared; both must never be in the cluster).
    assert!(
        !twin.agent.log().contains("event=join_started"),
        "the duplicate ran microk8s join:\n{}",
        twin.agent.log_tail(30)
    );
    // (The twin may still be elected entry point of its own single-node cluster: an entry
    // point never runs `join`, so microk8s never sees two nodes of one name.)
}

#[test]
fn silent_join_failures_are_caught_and_retried() {
    let Some(_caps) = require("silent_failures_retried", &[]) else {
        return;
    };
    let lab = Lab::new(3).expect("lab");
    let c = cluster("silent");
    // Each host's first join "succeeds" (exit 0) but the node never becomes Ready.
    let opts = Opts {
        sim_env: &[
            ("MUSTER_SIM_JOIN_LATENCY", "zero"),
            ("MUSTER_SIM_SILENT_FAILURE", "1"),
        ],
        config: "[formation]\nverify_timeout = \"8s\"\njoin_retry = \"1s\"\n",
        ..defaults(&c)
    };
    let nodes: Vec<Node> = lab.hosts().iter().map(|h| start_node(h, &opts)).collect();
    let names: Vec<String> = lab.hosts().iter().map(|h| h.name().to_owned()).collect();
    wait_formed(&nodes.iter().collect::<Vec<_>>(), &names);
    let failures: usize = nodes
        .iter()
        .map(|n| {
            n.agent
                .log()
                .lines()
                .filter(|l| l.contains("event=join_failed"))
                .count()
        })
        .sum();
    assert!(
        failures >= 1,
        "a silent failure was caught and logged as join_failed"
    );
}

#[test]
fn five_percent_loss_still_forms_the_cluster() {
    let Some(_caps) = require_needs("loss_still_forms", &[Need::PacketLoss]) else {
        return;
    };
    let lab = Lab::new(4).expect("lab");
    for h in lab.hosts() {
        h.set_loss(5.0).expect("loss");
    }
    let c = cluster("lossy");
    let nodes: Vec<Node> = lab
        .hosts()
        .iter()
        .map(|h| start_node(h, &defaults(&c)))
        .collect();
    let names: Vec<String> = lab.hosts().iter().map(|h| h.name().to_owned()).collect();
    wait_formed(&nodes.iter().collect::<Vec<_>>(), &names);
}
