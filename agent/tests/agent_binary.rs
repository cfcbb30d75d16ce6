//! The real `muster` binary end to end on loopback: the agent binds a temp socket and a free
//! port, answers the CLI (`--json`) and gRPC health, refuses bad config with exit 64, stops
//! cleanly on SIGTERM; the CLI without an agent says so in one line and exits 1.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_muster");

/// A running agent, killed if the test fails before stopping it.
struct Agent {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Agent {
    fn start(extra: &[&str]) -> Agent {
        // A cluster of its own per agent: agents of parallel tests must not mesh over lo.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cluster = format!("itest-{}-{n}", std::process::id());
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("muster.toml");
        std::fs::write(&config, "socket_group = \"\"\nshutdown_timeout = \"5s\"\n")
            .expect("config");
        let child = Command::new(BIN)
            .arg("agent")
            .arg("--config")
            .arg(&config)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--node-name",
                "test-node",
                "--cluster",
                &cluster,
            ])
            .arg("--socket")
            .arg(dir.path().join("muster.sock"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn agent");
        let agent = Agent {
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if agent.cli(&["status", "--json"]).status.success() {
                return agent;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("agent did not answer on {:?} within 30 s", agent.socket());
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("muster.sock")
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .output()
            .expect("run cli")
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json output")
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for exit (up to `limit`, a safety net for a hung agent) and returns status + stderr.
    fn wait(&mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    use std::io::Read;
                    let _ = s.read_to_string(&mut err);
                }
                return (status, err);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("agent still running {limit:?} after the stop signal");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn status_and_members_report_this_node_with_real_resources() {
    let mut agent = Agent::start(&[]);
    let status = agent.json(&["status", "--json"]);
    assert!(
        status["cluster"]
            .as_str()
            .expect("cluster")
            .starts_with("itest-")
    );
    assert_eq!(status["node"]["name"], "test-node");
    assert_eq!(status["node"]["status"], "alive");
    assert_eq!(status["node"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["members_total"], 1);
    let cpus = status["node"]["resources"]["cpus"].as_u64().expect("cpus");
    let expected_cpus = std::thread::available_parallelism().expect("cpus").get() as u64;
    assert_eq!(cpus, expected_cpus);
    let total = status["node"]["resources"]["memory_total_bytes"]
        .as_u64()
        .expect("mem");
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("MemTotal");
    assert_eq!(total, kib * 1024);

    let members = agent.json(&["members", "--json"]);
    let list = members["members"].as_array().expect("members array");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "test-node");
    assert_eq!(list[0]["status"], "alive");
    assert!(
        list[0]["addr"]
            .as_str()
            .expect("addr")
            .starts_with("127.0.0.1:")
    );
    assert_eq!(list[0]["id"], status["node"]["id"]);

    let table = agent.cli(&["members"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.contains("test-node*"), "{text}");

    agent.signal(libc::SIGTERM);
    let (status, stderr) = agent.wait(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("event=agent_stopped"), "{stderr}");
    assert!(!agent.socket().exists(), "socket removed on exit");
}

#[test]
fn health_is_serving_over_tcp() {
    let agent = Agent::start(&[]);
    let status = agent.json(&["status", "--json"]);
    let tcp = status["listen"][0].as_str().expect("tcp addr").to_owned();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let serving = rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{tcp}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let mut out = Vec::new();
        for service in ["", "muster.v1.Agent"] {
            let resp = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await
                .expect("health check")
                .into_inner();
            out.push(resp.status);
        }
        out
    });
    let serving_code = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(serving, vec![serving_code, serving_code]);
}

#[test]
fn sigint_also_drains_and_exits_zero() {
    let mut agent = Agent::start(&[]);
    agent.signal(libc::SIGINT);
    let (status, stderr) = agent.wait(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopping (SIGINT)"), "{stderr}");
}

#[test]
fn leave_stops_the_agent() {
    let mut agent = Agent::start(&[]);
    let out = agent.cli(&["leave"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("leaving"));
    let (status, _) = agent.wait(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn kubeconfig_is_refused_over_tcp_and_reports_missing_microk8s_locally() {
    let agent = Agent::start(&["--microk8s", "/nonexistent/microk8s"]);
    let local = agent.cli(&["kubeconfig"]);
    assert_eq!(local.status.code(), Some(1));
    let err = String::from_utf8_lossy(&local.stderr);
    assert!(err.contains("/nonexistent/microk8s"), "{err}");
    let tcp = agent.json(&["status", "--json"])["listen"][0]
        .as_str()
        .expect("tcp")
        .to_owned();
    let remote = Command::new(BIN)
        .args(["kubeconfig", "--addr", &tcp])
        .output()
        .expect("cli");
    assert_eq!(remote.status.code(), Some(1));
    let err = String::from_utf8_lossy(&remote.stderr);
    assert!(err.contains("local socket only"), "{err}");
}

#[test]
fn second_agent_on_the_same_socket_is_refused() {
    let agent = Agent::start(&[]);
    let out = Command::new(BIN)
        .args(["agent", "--listen", "127.0.0.1:0"])
        .arg("--socket")
        .arg(agent.socket())
        .arg("--data-dir")
        .arg(agent.dir.path().join("data2"))
        .output()
        .expect("second agent");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already listening"), "{err}");
}

fn run_agent_with_config(text: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, text).expect("write");
    Command::new(BIN)
        .arg("agent")
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(dir.path().join("never.sock"))
        .output()
        .expect("run")
}

#[test]
fn bad_config_exits_64_naming_file_and_field_and_binds_nothing() {
    for (text, field) in [
        ("listen = \"127.0.0.1:99999\"\n", "listen"),
        ("cluster = \"UPPER\"\n", "cluster"),
        ("mystery = 1\n", "mystery"),
    ] {
        let out = run_agent_with_config(text);
        assert_eq!(out.status.code(), Some(64), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml"), "{text}: {err}");
        assert!(err.contains(field), "{text}: {err}");
        assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    }
    let missing = Command::new(BIN)
        .args(["agent", "--config", "/nonexistent/muster.toml"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(64));
}

#[test]
fn cli_without_agent_says_so_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let absent = dir.path().join("absent.sock");
    for cmd in [
        "status",
        "members",
        "worker-spec",
        "kubeconfig",
        "leave",
        "events",
    ] {
        let out = Command::new(BIN)
            .arg(cmd)
            .arg("--socket")
            .arg(&absent)
            .output()
            .expect("cli");
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{cmd}: {err}");
        assert!(err.contains("is the agent running?"), "{cmd}: {err}");
        assert!(!err.contains("panicked"), "{cmd}: {err}");
    }
    // A socket file nobody listens on: refused, not a hang or a panic.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let out = Command::new(BIN)
        .args(["status", "--socket"])
        .arg(&stale)
        .output()
        .expect("cli");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "{err}");
    // A TCP port with nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let out = Command::new(BIN)
        .args(["members", "--addr", &format!("127.0.0.1:{port}")])
        .output()
        .expect("cli");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the agent running?"));
}

#[test]
fn events_stream_follows_the_agent() {
    let agent = Agent::start(&[]);
    use std::io::{BufRead, BufReader, Read};
    let mut follower = Command::new(BIN)
        .args(["events", "--json", "--socket"])
        .arg(agent.socket())
        .stdout(Stdio::piped())
        .spawn()
        .expect("events");
    // The first line confirms the subscription; only then cause an event.
    let mut stdout = BufReader::new(follower.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first event");
    let first: Value = serde_json::from_str(&first).expect("json line");
    assert_eq!(first["event"], "watch_started", "{first}");
    assert_eq!(first["node"], "test-node", "{first}");
    assert!(agent.cli(&["leave"]).status.success());
    let mut text = String::new();
    stdout.read_to_string(&mut text).expect("events output");
    assert!(follower.wait().expect("events exits").success());
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(
        events.iter().any(|e| e["event"] == "leave_requested"),
        "{text}"
    );
}

#[test]
fn systemd_readiness_status_and_watchdog_are_notified() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("tempdir");
    let notify_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let config = dir.path().join("muster.toml");
    std::fs::write(&config, "socket_group = \"\"\n").expect("config");
    // As systemd does: WATCHDOG_PID names the service's own pid (the shell execs the agent,
    // so `$$` is the agent's pid).
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(BIN)
        .arg("agent")
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--node-name", "notified"])
        .arg("--cluster")
        .arg(format!("notify-{}", std::process::id()))
        .arg("--socket")
        .arg(dir.path().join("m.sock"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !(seen.iter().any(|m: &String| m.contains("READY=1"))
        && seen.iter().any(|m| m.contains("WATCHDOG=1")))
    {
        match sock.recv(&mut buf) {
            Ok(n) => seen.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) => {
                let _ = child.kill();
                panic!("no READY=1 and WATCHDOG=1 from the agent ({e}); got {seen:?}");
            }
        }
    }
    let ready = seen.iter().find(|m| m.contains("READY=1")).expect("ready");
    assert!(
        ready.contains("STATUS="),
        "READY comes with a status line: {ready}"
    );
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    // STOPPING=1 is sent on the way out.
    let mut stopping = false;
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    while let Ok(n) = sock.recv(&mut buf) {
        stopping |= String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
    }
    assert!(stopping, "STOPPING=1 after SIGTERM; saw {seen:?}");
}
