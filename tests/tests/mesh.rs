//! Discovery and the gossip mesh across real network stacks: every agent runs in its own
//! network namespace on one bridge, finds the others over mDNS and meshes over gRPC. Failures
//! are real too: SIGKILL, a cut link, a partition, random packet loss (nftables; the kernels
//! here have no netem).
//!
//! Timeouts here are safety nets for a hung run, not performance assertions: the speed of
//! convergence and detection is measured by the mesh benchmark (`muster-bench mesh`).

use std::collections::BTreeMap;
use std::time::Duration;

use muster_lab::{Lab, Need, require, require_needs, wait_until};
use muster_tests::{Agent, AgentHost, AgentOptions, AvahiHost, MemberStatus, wait_all_alive};

/// Generous bound for convergence and detection on a loaded 2-core CI machine.
const SAFETY: Duration = Duration::from_secs(60);

fn cluster_name(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

fn start_all(lab: &Lab, options: &AgentOptions) -> Vec<Agent> {
    let mut agents: Vec<Agent> = lab
        .hosts()
        .iter()
        .map(|h| h.start_agent(options).expect("agent starts"))
        .collect();
    for a in &mut agents {
        a.wait_ready(SAFETY).expect("agent answers its socket");
    }
    agents
}

fn names(lab: &Lab, which: impl Fn(usize) -> bool) -> Vec<String> {
    lab.hosts()
        .iter()
        .enumerate()
        .filter(|(i, _)| which(i + 1))
        .map(|(_, h)| h.name().to_owned())
        .collect()
}

fn wait_alive(agents: &[&Agent], expected: &[String]) {
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    if let Err(e) = wait_all_alive(agents, &expected, SAFETY) {
        for a in agents {
            eprintln!("--- {} log tail:\n{}", a.host(), a.log_tail(30));
        }
        panic!("{e}");
    }
}

/// Waits until every agent in `observers` reports `node` with `status`.
fn wait_status(observers: &[&Agent], node: &str, status: MemberStatus) {
    let what = format!("every observer to report {node} as {status:?}");
    wait_until(&what, SAFETY, Duration::from_millis(200), || {
        let seen: BTreeMap<String, Option<MemberStatus>> = observers
            .iter()
            .map(|a| {
                let s = a
                    .members()
                    .ok()
                    .and_then(|ms| ms.into_iter().find(|m| m.name == node).map(|m| m.status));
                (a.host().to_owned(), s)
            })
            .collect();
        if seen.values().all(|s| *s == Some(status)) {
            Ok(())
        } else {
            Err(seen)
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

fn dead_events(agent: &Agent) -> Vec<String> {
    agent
        .log()
        .lines()
        .filter(|l| l.contains("event=member_dead"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn three_hosts_converge() {
    let Some(_caps) = require("three_hosts_converge", &[]) else {
        return;
    };
    let lab = Lab::new(3).expect("lab");
    let agents = start_all(&lab, &AgentOptions::new(&cluster_name("conv3")));
    let refs: Vec<&Agent> = agents.iter().collect();
    wait_alive(&refs, &names(&lab, |_| true));
    // Metadata travels with membership: every member carries its resources and version.
    for m in agents[0].members().expect("members") {
        assert!(
            m.extra["resources"]["cpus"].as_u64().unwrap_or(0) >= 1,
            "{m:?}"
        );
        assert_eq!(m.extra["version"], env!("CARGO_PKG_VERSION"), "{m:?}");
        assert!(m.addr.starts_with("198.1"), "{m:?}");
    }
}

#[test]
fn twenty_hosts_converge() {
    let Some(_caps) = require("twenty_hosts_converge", &[]) else {
        return;
    };
    let lab = Lab::new(20).expect("lab");
    let agents = start_all(&lab, &AgentOptions::new(&cluster_name("conv20")));
    let refs: Vec<&Agent> = agents.iter().collect();
    wait_alive(&refs, &names(&lab, |_| true));
}

#[test]
fn killed_agent_and_cut_link_are_declared_dead_by_every_survivor() {
    let Some(_caps) = require("killed_and_cut_are_dead", &[]) else {
        return;
    };
    let lab = Lab::new(5).expect("lab");
    let mut agents = start_all(&lab, &AgentOptions::new(&cluster_name("fail")));
    let all = names(&lab, |_| true);
    wait_alive(&agents.iter().collect::<Vec<_>>(), &all);

    agents[4].kill().expect("SIGKILL h5");
    lab.host(4).link_down().expect("cut h4's link");
    let survivors: Vec<&Agent> = agents[..3].iter().collect();
    wait_status(&survivors, lab.host(5).name(), MemberStatus::Dead);
    wait_status(&survivors, lab.host(4).name(), MemberStatus::Dead);
    // Nobody alive was declared dead on the way.
    for a in &survivors {
        for line in dead_events(a) {
            assert!(
                line.contains(&format!("peer={}", lab.host(4).name()))
                    || line.contains(&format!("peer={}", lab.host(5).name())),
                "{}: false death: {line}",
                a.host()
            );
        }
    }
}

#[test]
fn graceful_stop_shows_left() {
    let Some(_caps) = require("graceful_stop_shows_left", &[]) else {
        return;
    };
    let lab = Lab::new(3).expect("lab");
    let mut agents = start_all(&lab, &AgentOptions::new(&cluster_name("left")));
    wait_alive(&agents.iter().collect::<Vec<_>>(), &names(&lab, |_| true));
    let (status, in_time) = agents[2].stop(Duration::from_secs(15)).expect("SIGTERM h3");
    assert!(
        status.success() && in_time,
        "h3 exited with {status} (within the drain deadline: {in_time})"
    );
    let rest: Vec<&Agent> = agents[..2].iter().collect();
    wait_status(&rest, lab.host(3).name(), MemberStatus::Left);
    for a in &rest {
        assert!(
            dead_events(a).is_empty(),
            "{}: a graceful leave is not a death",
            a.host()
        );
    }
}

#[test]
fn partition_heals_into_one_membership() {
    let Some(_caps) = require("partition_heals", &[]) else {
        return;
    };
    let lab = Lab::new(6).expect("lab");
    let agents = start_all(&lab, &AgentOptions::new(&cluster_name("split")));
    let all = names(&lab, |_| true);
    wait_alive(&agents.iter().collect::<Vec<_>>(), &all);

    lab.partition(&[1, 2, 3]).expect("partition");
    let left: Vec<&Agent> = agents[..3].iter().collect();
    let right: Vec<&Agent> = agents[3..].iter().collect();
    wait_alive(&left, &names(&lab, |i| i <= 3));
    wait_alive(&right, &names(&lab, |i| i > 3));

    lab.heal().expect("heal");
    wait_alive(&agents.iter().collect::<Vec<_>>(), &all);
}

#[test]
fn five_percent_loss_produces_no_false_death() {
    let Some(_caps) = require_needs("loss_no_false_death", &[Need::PacketLoss]) else {
        return;
    };
    let lab = Lab::new(8).expect("lab");
    let agents = start_all(&lab, &AgentOptions::new(&cluster_name("loss")));
    let all = names(&lab, |_| true);
    wait_alive(&agents.iter().collect::<Vec<_>>(), &all);
    for h in lab.hosts() {
        h.set_loss(5.0).expect("5% loss");
    }
    // Enough probe rounds for thousands of messages to cross the lossy links.
    std::thread::sleep(Duration::from_secs(30));
    for a in &agents {
        assert!(
            dead_events(a).is_empty(),
            "{}: false deaths: {:?}",
            a.host(),
            dead_events(a)
        );
        let dead = a.members_with(MemberStatus::Dead).expect("members");
        assert!(dead.is_empty(), "{} sees dead members {dead:?}", a.host());
    }
    wait_alive(&agents.iter().collect::<Vec<_>>(), &all);
}

#[test]
fn clusters_with_different_names_stay_apart() {
    let Some(_caps) = require("clusters_stay_apart", &[]) else {
        return;
    };
    let lab = Lab::new(4).expect("lab");
    let a = AgentOptions::new(&cluster_name("alpha"));
    let b = AgentOptions::new(&cluster_name("beta"));
    let mut agents = Vec::new();
    for (i, h) in lab.hosts().iter().enumerate() {
        agents.push(
            h.start_agent(if i % 2 == 0 { &a } else { &b })
                .expect("starts"),
        );
    }
    for ag in &mut agents {
        ag.wait_ready(SAFETY).expect("ready");
    }
    let alpha: Vec<&Agent> = agents.iter().step_by(2).collect();
    let beta: Vec<&Agent> = agents.iter().skip(1).step_by(2).collect();
    wait_alive(&alpha, &names(&lab, |i| i % 2 == 1));
    wait_alive(&beta, &names(&lab, |i| i % 2 == 0));
    // Give a stray cross-cluster contact time to show up, then check it never did.
    std::thread::sleep(Duration::from_secs(3));
    for ag in &agents {
        let seen = ag.members().expect("members");
        assert_eq!(seen.len(), 2, "{} sees {seen:?}", ag.host());
    }
}

#[test]
fn avahi_browse_sees_every_agent_with_its_txt_record() {
    let Some(_caps) = require(
        "avahi_sees_agents",
        &["avahi-daemon", "avahi-browse", "dbus-daemon"],
    ) else {
        return;
    };
    let lab = Lab::new(4).expect("lab");
    let cluster = cluster_name("avahi");
    let options = AgentOptions::new(&cluster);
    let mut agents: Vec<Agent> = lab.hosts()[..3]
        .iter()
        .map(|h| h.start_agent(&options).expect("starts"))
        .collect();
    for a in &mut agents {
        a.wait_ready(SAFETY).expect("ready");
    }
    let ids: BTreeMap<String, String> = agents
        .iter()
        .map(|a| {
            let status = a.cli(&["status", "--json"]).expect("status");
            let v: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
            (
                a.node_name().to_owned(),
                v["node"]["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    let observer = lab.host(4).start_avahi().expect("avahi-daemon in h4");
    let services = wait_until(
        "avahi-browse to resolve all three agents",
        SAFETY,
        Duration::from_millis(500),
        || {
            let found: Vec<_> = observer
                .browse("_muster._tcp")
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|s| s.protocol == "IPv4")
                .collect();
            let names: std::collections::BTreeSet<_> =
                found.iter().map(|s| s.txt.get("name").cloned()).collect();
            if names.len() >= 3 {
                Ok(found)
            } else {
                Err(format!("{found:?}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for a in &agents {
        let s = services
            .iter()
            .find(|s| s.txt.get("name").map(String::as_str) == Some(a.node_name()))
            .unwrap_or_else(|| panic!("no record for {}: {services:?}", a.node_name()));
        assert_eq!(s.service_type, "_muster._tcp");
        assert_eq!(s.port, 7440, "{s:?}");
        assert_eq!(s.address, a.ip().to_string(), "{s:?}");
        assert_eq!(s.txt.get("cluster"), Some(&cluster), "{s:?}");
        assert_eq!(s.txt.get("id"), ids.get(a.node_name()), "{s:?}");
        assert_eq!(s.txt.get("proto").map(String::as_str), Some("1"), "{s:?}");
        assert!(
            s.txt
                .keys()
                .all(|k| ["cluster", "id", "name", "proto"].contains(&k.as_str())),
            "{s:?}"
        );
    }
}
