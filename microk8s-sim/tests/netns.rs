//! The simulator across network namespaces: three simulated hosts, each a `microk8s-sim serve`
//! process in its own host of a [`muster_lab::Lab`] (one bridge, 198.18.B.0/24), driven
//! through each host's `microk8s` link. Host A's add-node token lets host B join over the
//! network; a consumed token, a wrong fingerprint and unreachable entries fail with the real
//! messages and codes.
//!
//! Needs root and iproute2: [`muster_lab::require`] skips loudly without them and fails with
//! `CI=true`. The lab removes everything on drop, also on failure.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use microk8s_sim::machine::Machine;
use muster_lab::{ChildGuard, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_microk8s-sim");

/// A lab whose hosts each run one simulated machine.
struct Net {
    // Field order is drop order: the daemons before the lab that holds their namespaces.
    daemons: Vec<Option<ChildGuard>>,
    machines: Vec<Machine>,
    lab: Lab,
}

impl Net {
    fn new(hosts: usize) -> Self {
        let lab = Lab::builder()
            .hosts(hosts)
            .ipv6(false)
            .build()
            .expect("lab builds");
        let machines: Vec<Machine> = lab
            .hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let m = Machine::in_dir(
                    BIN,
                    &h.dir().join("mk8s"),
                    format!("Host-{i}"),
                    IpAddr::V4(h.ip()),
                );
                m.link().expect("microk8s-sim link");
                m
            })
            .collect();
        let mut net = Self {
            daemons: Vec::new(),
            machines,
            lab,
        };
        for i in 0..hosts {
            net.start(i);
        }
        net
    }

    fn ip(&self, i: usize) -> String {
        self.lab.hosts()[i].ip().to_string()
    }

    /// The first three octets of the lab's network, e.g. `198.18.4`.
    fn subnet(&self) -> String {
        let (net, _) = self.lab.subnet();
        let [a, b, c, _] = net.octets();
        format!("{a}.{b}.{c}")
    }

    fn start(&mut self, i: usize) {
        let host = &self.lab.hosts()[i];
        let machine = &self.machines[i];
        let mut cmd = host.command(&machine.exe);
        cmd.args(machine.serve_args())
            .env("MUSTER_SIM_JOIN_LATENCY", "zero")
            .env("MUSTER_SIM_HEARTBEAT_MS", "200")
            .env("MUSTER_SIM_NOT_READY_AFTER_MS", "2000")
            .env("MUSTER_SIM_CONNECT_TIMEOUT_MS", "8000");
        let daemon = host.spawn_command("sim", cmd).expect("spawn daemon");
        if self.daemons.len() <= i {
            self.daemons.resize_with(i + 1, || None);
        }
        self.daemons[i] = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(10);
        if let Err(e) = machine.wait(Duration::from_secs(10)) {
            let log = self.daemons[i].as_ref().map(|d| d.log_tail(20));
            panic!("host {i} did not come up: {e}\n{}", log.unwrap_or_default());
        }
        while self.microk8s(i, &["status"]).2 != 0 {
            assert!(Instant::now() < deadline, "host {i} did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops host `i`'s daemon (`ip netns exec` execs it, so the child is the daemon).
    fn stop(&mut self, i: usize) {
        if let Some(mut daemon) = self.daemons.get_mut(i).and_then(Option::take) {
            daemon.kill().expect("kill the daemon");
        }
    }

    /// Runs host `i`'s `microk8s` inside host `i`. No `MUSTER_SIM_STATE`: the link finds its
    /// host through the state file `microk8s-sim link` wrote, as a real `microk8s` needs no
    /// environment.
    fn microk8s(&self, i: usize, args: &[&str]) -> (String, String, i32) {
        let out = self.lab.hosts()[i]
            .command(self.machines[i].microk8s())
            .args(args)
            .env_remove("MUSTER_SIM_STATE")
            .output()
            .expect("run microk8s");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }
}

fn wait(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_hosts_in_namespaces_join_over_the_network() {
    let Some(_caps) = muster_lab::require("three_hosts_in_namespaces_join_over_the_network", &[])
    else {
        return;
    };
    let mut net = Net::new(3);
    let a = net.ip(0);
    let (tc, _, code) = net.microk8s(0, &["add-node", "--format", "token-check"]);
    assert_eq!(code, 0);
    let tc = tc.trim().to_owned();
    let conn = format!("{a}:25000/{tc}");

    let (out, err, code) = net.microk8s(1, &["join", &conn]);
    assert_eq!(
        (out.as_str(), code),
        (format!("Contacting cluster at {a}\nWaiting for this node to finish joining the cluster.  \nSuccessfully joined the cluster.\n").as_str(), 0),
        "{err}"
    );
    wait(10, "host-1 Ready on host-0", || {
        let (t, _, _) = net.microk8s(0, &["kubectl", "get", "nodes"]);
        t.lines()
            .any(|l| l.starts_with("host-1 ") && l.split_whitespace().nth(1) == Some("Ready"))
    });
    let (status, _, _) = net.microk8s(0, &["status"]);
    assert!(
        status.contains(&format!(
            "  datastore master nodes: {a}:19001 {}:19001\n",
            net.ip(1)
        )),
        "{status}"
    );

    // The token was single-use.
    let (out, _, code) = net.microk8s(2, &["join", &conn]);
    assert_eq!(
        (out.as_str(), code),
        (
            format!("Contacting cluster at {a}\nConnection failed. Invalid token (500).\n")
                .as_str(),
            6
        )
    );

    // A wrong fingerprint is refused before the token is looked at.
    let fresh = net
        .microk8s(0, &["add-node", "--format", "token"])
        .0
        .trim()
        .to_owned();
    let (out, _, code) = net.microk8s(2, &["join", &format!("{a}:25000/{fresh}/0123456789ab")]);
    assert_eq!(
        (out.as_str(), code),
        (format!("Contacting cluster at {a}\nJoining cluster failed. Could not verify the identity of {a}. Use '--skip-verify' to skip server certificate check.\n").as_str(), 4)
    );

    // No host at that address: the connect fails and Python's traceback is all there is.
    let subnet = net.subnet();
    let (out, err, code) = net.microk8s(2, &["join", &format!("{subnet}.99:25000/{fresh}")]);
    assert_eq!(
        (out.as_str(), code),
        (format!("Contacting cluster at {subnet}.99\n").as_str(), 1)
    );
    assert!(
        err.starts_with("Traceback (most recent call last):\n"),
        "{err}"
    );
    assert!(
        err.ends_with("OSError: [Errno 113] No route to host\n")
            || err.ends_with("TimeoutError: [Errno 110] Connection timed out\n"),
        "{err}"
    );

    // Host A goes down: its address refuses connections.
    net.stop(0);
    let (out, err, code) = net.microk8s(2, &["join", &format!("{a}:25000/{fresh}")]);
    assert_eq!(
        (out.as_str(), code),
        (format!("Contacting cluster at {a}\n").as_str(), 1)
    );
    assert!(
        err.ends_with("ConnectionRefusedError: [Errno 111] Connection refused\n"),
        "{err}"
    );
    // B, left with one of two voters, has lost quorum: no datastore leader to list.
    wait(10, "B sees no quorum", || {
        net.microk8s(1, &["status"])
            .0
            .contains("  datastore master nodes: none\n")
    });
}
