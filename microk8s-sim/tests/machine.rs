//! The recipe of a simulated machine against the built binary: `link` makes a `microk8s` that
//! finds its host through the state file alone, `wait` fails with exit 1 and a message naming
//! the socket while nothing serves, and answers once `serve` runs. On loopback (127.0.70.10),
//! so no privileges are needed.

use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use microk8s_sim::machine::{Machine, MachineError};

const BIN: &str = env!("CARGO_BIN_EXE_microk8s-sim");

/// Kills the daemon when the test ends, also on failure.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn machine(dir: &std::path::Path) -> Machine {
    let ip: IpAddr = "127.0.70.10".parse().expect("ip");
    Machine::in_dir(BIN, dir, "Loop-1", ip)
}

#[test]
fn wait_times_out_with_exit_1_naming_the_socket_when_nothing_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = machine(dir.path());
    let out = m
        .wait_command(Duration::from_millis(100))
        .output()
        .expect("wait runs");
    assert_eq!(out.status.code(), Some(1));
    let socket = m.state_dir.join("sim.sock");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&socket.display().to_string()), "{err}");
    match m.wait(Duration::from_millis(100)) {
        Err(MachineError::Failed { stderr, .. }) => {
            assert!(stderr.contains("no simulated host answers"), "{stderr}");
        }
        other => panic!("expected a failed wait, got {other:?}"),
    }
}

#[test]
fn linked_machine_serves_and_answers_through_its_state_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = machine(dir.path());
    let microk8s = m.link().expect("link");
    assert_eq!(microk8s, dir.path().join("bin/microk8s"));
    assert_eq!(
        std::fs::read_link(&microk8s).expect("a symlink"),
        std::path::Path::new(BIN)
    );
    assert_eq!(
        std::fs::read_to_string(m.state_file()).expect("state file"),
        m.state_dir.display().to_string()
    );

    let started = Instant::now();
    let _daemon = Daemon(
        m.serve_command()
            .env("MUSTER_SIM_JOIN_LATENCY", "zero")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts"),
    );
    m.wait(Duration::from_secs(20)).expect("the daemon answers");
    assert!(started.elapsed() < Duration::from_secs(20));

    // No MUSTER_SIM_STATE: the link finds its host through the state file.
    let out = Command::new(&microk8s)
        .arg("status")
        .env_remove("MUSTER_SIM_STATE")
        .output()
        .expect("microk8s status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("microk8s is running\n"), "{text}");
    let out = Command::new(&microk8s)
        .args(["kubectl", "get", "nodes"])
        .env_remove("MUSTER_SIM_STATE")
        .output()
        .expect("microk8s kubectl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("loop-1 ")),
        "the hostname names the node: {text}"
    );
}
