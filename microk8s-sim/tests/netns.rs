//! The simulator across network namespaces: three simulated hosts, each a `microk8s-sim serve`
//! process in its own namespace on a private bridge (198.19.N.0/24), driven through the
//! `microk8s` symlink. Host A's add-node token lets host B join over the network; a consumed
//! token, a wrong fingerprint and unreachable entries fail with the real messages and codes.
//! Needs root and iproute2; skipped otherwise. Everything is removed on drop, also on failure.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_microk8s-sim");

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Net {
    tag: String,
    subnet: String,
    namespaces: Vec<String>,
    children: Vec<Option<Child>>,
    dirs: Vec<PathBuf>,
    link_dir: tempfile::TempDir,
    _state: tempfile::TempDir,
}

impl Net {
    fn new(hosts: usize) -> Option<Self> {
        // Only root can create namespaces.
        let root = Command::new("id").arg("-u").output().ok()?.stdout == b"0\n";
        if !root || !sh(&["ip", "-V"]) {
            return None;
        }
        let pid = std::process::id();
        let tag = format!("ms{}", pid % 100_000);
        let subnet = format!("198.19.{}", 20 + pid % 200);
        let state = tempfile::tempdir().ok()?;
        let link_dir = tempfile::tempdir().ok()?;
        let mut net = Self {
            tag: tag.clone(),
            subnet: subnet.clone(),
            namespaces: Vec::new(),
            children: Vec::new(),
            dirs: Vec::new(),
            link_dir,
            _state: state,
        };
        assert!(
            sh(&["ip", "link", "add", &format!("{tag}br"), "type", "bridge"]),
            "bridge"
        );
        assert!(sh(&["ip", "link", "set", &format!("{tag}br"), "up"]));
        for i in 0..hosts {
            let ns = format!("{tag}h{i}");
            let veth = format!("{tag}v{i}");
            assert!(sh(&["ip", "netns", "add", &ns]), "netns {ns}");
            net.namespaces.push(ns.clone());
            assert!(sh(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns
            ]));
            assert!(sh(&[
                "ip",
                "link",
                "set",
                &veth,
                "master",
                &format!("{tag}br"),
                "up"
            ]));
            assert!(sh(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{subnet}.{}/24", i + 1),
                "dev",
                "eth0"
            ]));
            assert!(sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]));
            assert!(sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]));
            let dir = net._state.path().join(format!("host{i}"));
            let ok = Command::new(BIN)
                .args(["init", "--state-dir"])
                .arg(&dir)
                .args([
                    "--hostname",
                    &format!("Host-{i}"),
                    "--ip",
                    &format!("{subnet}.{}", i + 1),
                ])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "sim init");
            net.dirs.push(dir);
        }
        assert!(
            Command::new(BIN)
                .args(["link", "--dir"])
                .arg(net.link_dir.path())
                .status()
                .is_ok_and(|s| s.success())
        );
        for i in 0..hosts {
            net.start(i);
        }
        Some(net)
    }

    fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, i + 1)
    }

    fn start(&mut self, i: usize) {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.namespaces[i],
                BIN,
                "serve",
                "--state-dir",
            ])
            .arg(&self.dirs[i])
            .env("MUSTER_SIM_JOIN_LATENCY", "zero")
            .env("MUSTER_SIM_HEARTBEAT_MS", "200")
            .env("MUSTER_SIM_NOT_READY_AFTER_MS", "2000")
            .env("MUSTER_SIM_CONNECT_TIMEOUT_MS", "8000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn daemon");
        if self.children.len() <= i {
            self.children.resize_with(i + 1, || None);
        }
        self.children[i] = Some(child);
        let sock = self.dirs[i].join("sim.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() || self.microk8s(i, &["status"]).2 != 0 {
            assert!(Instant::now() < deadline, "host {i} did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops host `i`'s daemon (`ip netns exec` execs it, so the child is the daemon).
    fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.children.get_mut(i).and_then(Option::take) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn microk8s(&self, i: usize, args: &[&str]) -> (String, String, i32) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.namespaces[i]])
            .arg(self.link_dir.path().join("microk8s"))
            .args(args)
            .env("MUSTER_SIM_STATE", &self.dirs[i])
            .output()
            .expect("run microk8s");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in self.children.iter_mut().filter_map(Option::as_mut) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (i, ns) in self.namespaces.iter().enumerate() {
            let _ = sh(&["ip", "netns", "del", ns]);
            let _ = sh(&["ip", "link", "del", &format!("{}v{i}", self.tag)]);
        }
        let _ = sh(&["ip", "link", "del", &format!("{}br", self.tag)]);
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
    let Some(mut net) = Net::new(3) else {
        eprintln!("skipped: needs root and iproute2");
        return;
    };
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
    let (out, err, code) = net.microk8s(2, &["join", &format!("{}.99:25000/{fresh}", net.subnet)]);
    assert_eq!(
        (out.as_str(), code),
        (
            format!("Contacting cluster at {}.99\n", net.subnet).as_str(),
            1
        )
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
