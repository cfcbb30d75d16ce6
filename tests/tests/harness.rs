//! Self-tests of the multi-host harness: labs reach, multicast crosses the bridge, faults cut
//! what they should, partitions split and heal, and teardown leaves nothing behind, also
//! when a test panics.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use muster_lab::names::{self, base36, link_exists, list_netns};
use muster_lab::{Host, Lab, Need, Signal, decide, require, require_needs, wait_until};
use muster_tests::{AvahiHost, SerfHost};

const PROBE: &str = env!("CARGO_BIN_EXE_muster-netprobe");
const PATIENCE: Duration = Duration::from_secs(20);
/// Serf's mDNS discovery re-polls every 60 s.
const SERF_PATIENCE: Duration = Duration::from_secs(150);
const POLL: Duration = Duration::from_millis(100);

fn ping_works(from: &Host, to: &Host) -> bool {
    from.ping(to.ip()).expect("ping runs")
}

fn wait_ping(from: &Host, to: &Host) {
    let what = format!("{} to answer ping from {}", to.name(), from.name());
    wait_until(&what, PATIENCE, POLL, || {
        if ping_works(from, to) {
            Ok(())
        } else {
            Err("no answer")
        }
    })
    .expect("ping succeeds eventually");
}

/// Whether a multicast datagram sent by `from` reaches `to` (receiver joined on `to`'s eth0).
fn multicast_arrives(from: &Host, to: &Host, port: u16) -> bool {
    let group = format!("239.1.2.3:{port}");
    let mut receiver = to
        .spawn(
            "mcast-recv",
            PROBE,
            &["mcast-recv", &group, &to.ip().to_string(), "4000"],
        )
        .expect("receiver starts");
    // Repeated sends cover the time the receiver takes to join.
    from.run(
        PROBE,
        &[
            "mcast-send",
            &group,
            &from.ip().to_string(),
            "hello-lab",
            "25",
            "100",
        ],
    )
    .expect("sender runs");
    let status = receiver
        .wait_timeout(Duration::from_secs(10))
        .expect("receiver can be waited for")
        .expect("receiver exits by its own timeout");
    status.success() && receiver.log().contains("hello-lab")
}

fn assert_gone(netns: &[String], links: &[String]) {
    let existing = list_netns().expect("ip netns list runs");
    for ns in netns {
        assert!(!existing.contains(ns), "namespace {ns} still exists");
    }
    for link in links {
        assert!(!link_exists(link), "interface {link} still exists");
    }
}

fn lab_objects(lab: &Lab) -> (Vec<String>, Vec<String>) {
    let netns = lab.hosts().iter().map(|h| h.netns().to_owned()).collect();
    let mut links: Vec<String> = lab.hosts().iter().map(|h| h.veth().to_owned()).collect();
    links.push(lab.bridge().to_owned());
    links.push(lab.partition_bridge().to_owned());
    (netns, links)
}

#[test]
fn hosts_reach_each_other_and_teardown_leaves_nothing() {
    let Some(_caps) = require(
        "hosts_reach_each_other_and_teardown_leaves_nothing",
        &["ping"],
    ) else {
        return;
    };
    let lab = Lab::new(3).expect("lab builds");
    let (netns, links) = lab_objects(&lab);
    let (h1, h3) = (lab.host(1), lab.host(3));
    assert_eq!(h1.name(), "h1");
    let (net, prefix) = lab.subnet();
    assert_eq!((net.octets()[0], prefix), (198, 24));
    assert!(
        (18..=19).contains(&net.octets()[1]),
        "{net} is outside 198.18.0.0/15"
    );
    assert_eq!(h3.ip().octets()[..3], net.octets()[..3]);
    assert_eq!(h3.ip().octets()[3], 3);
    let before = h1.bytes_sent().expect("counter readable");
    wait_ping(h1, h3);
    assert!(h1.bytes_sent().expect("counter readable") > before);
    let routes = h1.run("ip", &["route", "show"]).expect("ip route runs");
    assert!(String::from_utf8_lossy(&routes.stdout).contains("224.0.0.0/4 dev eth0"));
    lab.teardown().expect("teardown succeeds");
    assert_gone(&netns, &links);
}

#[test]
fn multicast_crosses_the_bridge() {
    let Some(_caps) = require("multicast_crosses_the_bridge", &[]) else {
        return;
    };
    let lab = Lab::new(3).expect("lab builds");
    assert!(multicast_arrives(lab.host(1), lab.host(3), 45353));
}

#[test]
fn link_cut_stops_traffic_and_restore_resumes_it() {
    let Some(_caps) = require("link_cut_stops_traffic_and_restore_resumes_it", &["ping"]) else {
        return;
    };
    let lab = Lab::new(3).expect("lab builds");
    let (h1, h3) = (lab.host(1), lab.host(3));
    wait_ping(h1, h3);
    h3.link_down().expect("link goes down");
    assert!(!ping_works(h1, h3), "h3 answered with its link down");
    h3.link_up().expect("link comes back");
    wait_ping(h1, h3);
}

#[test]
fn packet_loss_drops_packets_until_cleared() {
    let needs = [Need::Tool("ping"), Need::PacketLoss];
    let Some(_caps) = require_needs("packet_loss_drops_packets_until_cleared", &needs) else {
        return;
    };
    let lab = Lab::new(2).expect("lab builds");
    let (h1, h2) = (lab.host(1), lab.host(2));
    wait_ping(h1, h2);
    h1.set_loss(100.0).expect("loss applies");
    assert!(!ping_works(h1, h2), "ping passed 100% loss");
    let before = h1.bytes_sent().expect("counter");
    let _ = h1.run_unchecked(
        "ping",
        &["-c", "20", "-i", "0.01", "-W", "1", &h2.ip().to_string()],
    );
    assert_eq!(
        h1.bytes_sent().expect("counter"),
        before,
        "packets left h1 despite 100% loss"
    );
    h1.set_loss(0.0).expect("loss is replaced");
    wait_ping(h1, h2);
    h1.set_loss(50.0).expect("partial loss");
    let out = h1
        .run_unchecked(
            "ping",
            &[
                "-c",
                "200",
                "-i",
                "0.005",
                "-W",
                "1",
                "-q",
                &h2.ip().to_string(),
            ],
        )
        .expect("ping runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let received: u32 = text
        .split(',')
        .find_map(|part| {
            part.trim()
                .strip_suffix(" received")
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("no ping summary in {text}"));
    // Each echo crosses h1's egress once: about half must get through, and not all.
    assert!(
        (40..=160).contains(&received),
        "{received} of 200 echoes passed 50% loss: {text}"
    );
    h1.clear_loss().expect("loss clears");
    h1.clear_loss().expect("clearing twice is fine");
    wait_ping(h1, h2);
}

#[test]
fn partition_splits_the_hosts_and_heal_joins_them() {
    let Some(_caps) = require("partition_splits_the_hosts_and_heal_joins_them", &["ping"]) else {
        return;
    };
    let lab = Lab::new(4).expect("lab builds");
    let h = |n| lab.host(n);
    wait_ping(h(1), h(4));
    lab.partition(&[1, 2]).expect("partition applies");
    assert!(h(1).is_partitioned() && !h(3).is_partitioned());
    wait_ping(h(1), h(2));
    wait_ping(h(3), h(4));
    assert!(!ping_works(h(1), h(3)), "h3 answered across the partition");
    assert!(!ping_works(h(4), h(2)), "h2 answered across the partition");
    assert!(
        !multicast_arrives(h(3), h(1), 45354),
        "multicast crossed the partition"
    );
    lab.heal().expect("heal applies");
    assert!(!h(1).is_partitioned());
    wait_ping(h(1), h(3));
    wait_ping(h(4), h(2));
}

#[test]
fn children_in_a_host_die_with_their_guard() {
    let Some(_caps) = require("children_in_a_host_die_with_their_guard", &[]) else {
        return;
    };
    let lab = Lab::new(1).expect("lab builds");
    let h1 = lab.host(1);
    let sleeper = h1
        .spawn("sleeper", "sleep", &["600"])
        .expect("sleep starts");
    let pid = sleeper.pid();
    assert!(
        h1.pids().contains(&pid),
        "pid {pid} is not inside {}",
        h1.netns()
    );
    assert!(sleeper.rss_kib().expect("rss readable") > 0);
    drop(sleeper);
    assert!(!names::pid_alive(pid), "pid {pid} survived its guard");

    let mut trapper = h1
        .spawn(
            "trapper",
            "sh",
            &["-c", "trap 'exit 9' TERM; while :; do sleep 0.05; done"],
        )
        .expect("sh starts");
    std::thread::sleep(Duration::from_millis(200));
    trapper.signal(Signal::Term).expect("signal sent");
    let status = trapper
        .wait_timeout(PATIENCE)
        .expect("waits")
        .expect("exits");
    assert_eq!(status.code(), Some(9));
}

#[test]
fn panicking_test_still_tears_its_lab_down() {
    let Some(_caps) = require("panicking_test_still_tears_its_lab_down", &[]) else {
        return;
    };
    let mut objects = None;
    let mut daemon_pid = None;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::new(2).expect("lab builds");
        objects = Some(lab_objects(&lab));
        // A process that escaped its guard: the namespace's own sweep must kill it.
        let mut escaped = lab.host(2).command("sleep");
        escaped.arg("600");
        let child = escaped.spawn().expect("sleep starts");
        daemon_pid = Some(child.id());
        std::mem::forget(child);
        panic!("simulated test failure");
    }));
    assert!(outcome.is_err());
    let (netns, links) = objects.expect("lab was built");
    assert_gone(&netns, &links);
    let pid = daemon_pid.expect("child was started");
    // Unreaped, it stays a zombie, which pid_alive counts as gone.
    assert!(!names::pid_alive(pid), "pid {pid} survived the lab");
}

#[test]
fn sweep_removes_leftovers_of_dead_runs_only() {
    let Some(_caps) = require("sweep_removes_leftovers_of_dead_runs_only", &[]) else {
        return;
    };
    let live = Lab::new(1).expect("lab builds");
    let mut finished = Command::new("true").spawn().expect("true starts");
    let dead_pid = finished.id();
    finished.wait().expect("true exits");
    let tag = format!("{}-{}", base36(u64::from(dead_pid)), base36(7));
    let netns = format!("mst-{tag}-h1");
    let bridge = format!("mstb{tag}");
    let veth = format!("mstv{tag}");
    let ip = |args: &[&str]| {
        let status = Command::new("ip").args(args).status().expect("ip runs");
        assert!(status.success(), "ip {args:?} failed");
    };
    let dir = std::env::temp_dir().join(format!("muster-lab-{tag}-crashed"));
    std::fs::create_dir_all(dir.join("h1")).expect("fake lab directory");
    ip(&["netns", "add", &netns]);
    ip(&["link", "add", "name", &bridge, "type", "bridge"]);
    ip(&[
        "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
    ]);
    ip(&["link", "set", &veth, "master", &bridge]);

    // Another test process may sweep them first; either way they must be gone afterwards.
    let report = muster_lab::sweep().expect("sweep runs");
    let listed = list_netns().expect("listable");
    assert!(
        report.netns.contains(&netns) || !listed.contains(&netns),
        "{report:?}"
    );
    assert!(
        report.links.contains(&bridge) || !link_exists(&bridge),
        "{report:?}"
    );
    assert_gone(&[netns], &[bridge, veth]);
    assert!(!dir.exists() || std::env::var_os(muster_lab::KEEP_DIR_ENV).is_some());
    // The live lab of this process is untouched.
    assert!(
        list_netns()
            .expect("listable")
            .contains(&live.host(1).netns().to_owned())
    );
    assert!(link_exists(live.bridge()));
}

#[test]
#[should_panic(expected = "CI=true")]
fn missing_capability_in_ci_is_a_failure() {
    muster_lab::caps::enforce(decide(
        "some_test",
        &["program `tc` not on PATH".into()],
        true,
    ));
}

#[test]
fn missing_capability_outside_ci_is_a_loud_skip() {
    let decision = decide("some_test", &["root (running as uid 1000)".into()], false);
    assert!(muster_lab::caps::enforce(decision).is_none());
}

#[test]
fn lab_directory_is_removed_with_the_lab() {
    let Some(_caps) = require("lab_directory_is_removed_with_the_lab", &[]) else {
        return;
    };
    let lab = Lab::new(1).expect("lab builds");
    let dir = lab.dir().to_owned();
    assert!(Path::new(&dir).join("h1").is_dir());
    drop(lab);
    assert!(!dir.exists() || std::env::var_os(muster_lab::KEEP_DIR_ENV).is_some());
}

#[test]
fn avahi_observer_sees_a_published_service_with_its_txt() {
    let tools = [
        "avahi-daemon",
        "avahi-browse",
        "avahi-publish",
        "dbus-daemon",
    ];
    let Some(_caps) = require(
        "avahi_observer_sees_a_published_service_with_its_txt",
        &tools,
    ) else {
        return;
    };
    let lab = Lab::new(2).expect("lab builds");
    let observer = lab.host(2);
    let avahi = observer.start_avahi().expect("avahi-daemon starts");
    let _service = avahi
        .publish(
            "muster h.1",
            "_muster._tcp",
            7440,
            &["cluster=lab", "id=abc;def"],
        )
        .expect("avahi-publish starts");
    let found = wait_until("the published service", PATIENCE, POLL, || {
        let services = avahi.browse("_muster._tcp").map_err(|e| e.to_string())?;
        match services.iter().find(|s| s.name == "muster h.1") {
            Some(service) => Ok(service.clone()),
            None => Err(format!("{services:?}")),
        }
    })
    .expect("avahi-browse lists the service");
    assert_eq!(found.interface, "eth0");
    assert_eq!(found.protocol, "IPv4");
    assert_eq!(found.port, 7440);
    assert_eq!(found.address, observer.ip().to_string());
    assert_eq!(found.txt["cluster"], "lab");
    assert_eq!(found.txt["id"], "abc;def");
}

#[test]
fn serf_agents_in_two_hosts_meet() {
    let Some(_caps) = require("serf_agents_in_two_hosts_meet", &["serf"]) else {
        return;
    };
    let lab = Lab::new(2).expect("lab builds");
    let mut first = lab.host(1).start_serf("lab", &[]).expect("serf starts");
    first.wait_ready(PATIENCE).expect("serf answers");
    let join = format!(
        "-join={}:{}",
        lab.host(1).ip(),
        muster_tests::serf::SERF_PORT
    );
    let mut second = lab
        .host(2)
        .start_serf("lab", &[&join])
        .expect("serf starts");
    second.wait_ready(PATIENCE).expect("serf answers");
    let members = wait_until("h1 to see h1 and h2 alive", SERF_PATIENCE, POLL, || {
        let members = first.members().map_err(|e| e.to_string())?;
        let alive = members.iter().filter(|m| m.status == "alive").count();
        if alive == 2 {
            Ok(members)
        } else {
            Err(format!("{members:?}"))
        }
    })
    .expect("serf converges");
    let h2 = members.iter().find(|m| m.name == "h2").expect("h2 listed");
    assert_eq!(h2.addr, format!("{}:7946", lab.host(2).ip()));
    assert!(second.rss_kib().expect("rss readable") > 0);
}

/// Stands in for `muster` (which the harness must not depend on to test itself): `agent`
/// writes its node name and listen address into the socket path and removes it on SIGTERM;
/// `members` reports that one member.
const FAKE_MUSTER: &str = r#"#!/bin/sh
cmd=$1; shift
sock=""; listen=""; name=""; config=""
while [ $# -gt 0 ]; do
  case "$1" in
    --socket) sock=$2; shift;;
    --listen) listen=$2; shift;;
    --node-name) name=$2; shift;;
    --config) config=$2; shift;;
  esac
  shift
done
case $cmd in
  agent)
    grep -q 'interfaces = \["eth0"\]' "$config" || { echo "bad config" >&2; exit 64; }
    echo "$name $listen" > "$sock"
    trap 'rm -f "$sock"; exit 0' TERM
    while :; do sleep 0.05; done;;
  members)
    [ -f "$sock" ] || { echo "error: no agent listening on $sock" >&2; exit 1; }
    read n l < "$sock"
    printf '{"members":[{"name":"%s","addr":"%s","status":"alive","incarnation":0}]}\n' "$n" "$l";;
esac
"#;

#[test]
fn agent_helpers_start_query_and_stop_an_agent() {
    use muster_tests::{AgentHost, AgentOptions, MemberStatus, wait_all_alive};
    use std::os::unix::fs::PermissionsExt;

    let Some(_caps) = require("agent_helpers_start_query_and_stop_an_agent", &[]) else {
        return;
    };
    let lab = Lab::new(2).expect("lab builds");
    let fake = lab.dir().join("fake-muster");
    std::fs::write(&fake, FAKE_MUSTER).expect("fake written");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut options = AgentOptions::new("lab");
    options.binary = Some(fake);

    let mut agents: Vec<_> = lab
        .hosts()
        .iter()
        .map(|h| h.start_agent(&options).expect("agent starts"))
        .collect();
    for agent in &mut agents {
        agent.wait_ready(PATIENCE).expect("agent answers");
        let host = lab.hosts().iter().find(|h| h.name() == agent.host());
        let pids = host.expect("agent's host is in the lab").pids();
        assert!(pids.contains(&agent.pid()), "agent is not inside its host");
    }
    let h2 = &agents[1];
    let members = h2.members().expect("members parse");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, "h2");
    assert_eq!(members[0].addr, format!("{}:7440", lab.host(2).ip()));
    assert_eq!(
        h2.members_with(MemberStatus::Alive).expect("members"),
        ["h2"]
    );
    assert!(h2.data_dir().is_dir());

    // Each fake sees only itself, so the group never converges: the error shows each view.
    let refs: Vec<_> = agents.iter().collect();
    let err = wait_all_alive(&refs, &["h1", "h2"], Duration::from_millis(300))
        .expect_err("fakes never converge");
    let text = err.to_string();
    let logs: String = agents.iter().map(|a| a.log_tail(20)).collect();
    assert!(
        text.contains("[\"h1\"]") && text.contains("[\"h2\"]"),
        "{text}\n{logs}"
    );

    let (status, graceful) = agents[0].stop(PATIENCE).expect("agent stops");
    assert!(graceful && status.success(), "{status}");
    let err = agents[0].members().expect_err("no agent after stop");
    assert!(err.to_string().contains("no agent listening"), "{err}");
}
