//! `muster-bench mesh`: the gossip mesh against Serf.
//!
//! ```text
//! muster-bench mesh [--nodes N] [--no-serf] [--steady SECS] [--loss-secs SECS]
//!     muster and Serf side by side in the same kind of network-namespace lab: convergence
//!     from a simultaneous start, detection of a SIGKILLed and of a link-cut node, bytes sent
//!     per node per second in steady state, false deaths under 5% loss, RSS per agent; then
//!     the membership simulator's convergence in protocol periods at N = 100, 500, 1000.
//! ```
//! Times come from the agents' own log timestamps (muster: milliseconds; Serf: seconds), so
//! polling does not blur them. Needs root (network namespaces) and, for the Serf half, the
//! Debian package `serf`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use muster_lab::{Lab, Signal, require};
use muster_tests::{Agent, AgentHost, AgentOptions, SerfAgent, SerfHost};

/// Runs the mesh benchmark with the arguments after `mesh`.
pub fn run(args: &[String]) -> ExitCode {
    let mut nodes = 20usize;
    let mut serf = true;
    let mut steady = 30u64;
    let mut loss_secs = 30u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Option<u64> {
            let v = it.next().and_then(|v| v.parse().ok());
            if v.is_none() {
                eprintln!("muster-bench: {name} needs a number");
            }
            v
        };
        match a.as_str() {
            "--nodes" => match num("--nodes") {
                Some(n) if n >= 3 => nodes = n as usize,
                _ => return ExitCode::from(2),
            },
            "--steady" => match num("--steady") {
                Some(n) => steady = n,
                None => return ExitCode::from(2),
            },
            "--loss-secs" => match num("--loss-secs") {
                Some(n) => loss_secs = n,
                None => return ExitCode::from(2),
            },
            "--no-serf" => serf = false,
            other => {
                eprintln!("muster-bench: unknown argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    if require("muster-bench mesh", if serf { &["serf"] } else { &[] }).is_none() {
        eprintln!("muster-bench: this machine cannot run network-namespace labs (see above)");
        return ExitCode::FAILURE;
    }
    let plan = Plan {
        nodes,
        steady: Duration::from_secs(steady),
        loss: Duration::from_secs(loss_secs),
    };
    let muster = match run_muster(&plan) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("muster-bench: muster run failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let serf_figures = if serf {
        match run_serf(&plan) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("muster-bench: serf run failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    print_table(&plan, &muster, serf_figures.as_ref());
    print_simulator();
    ExitCode::SUCCESS
}

struct Plan {
    nodes: usize,
    steady: Duration,
    loss: Duration,
}

/// What one system scored.
#[derive(Debug, Default)]
struct Figures {
    converge: Option<Duration>,
    detect_kill: Option<Duration>,
    detect_cut: Option<Duration>,
    bytes_per_node_sec: f64,
    false_deaths: usize,
    rss_mib_mean: f64,
    rss_mib_max: f64,
    resolution: &'static str,
}

type BoxError = Box<dyn std::error::Error>;

/// Parses the leading RFC 3339 timestamp of a muster log line.
fn muster_time(line: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(line.split_whitespace().next()?).ok()
}

/// Parses Serf's `2026/11/25 08:30:01 [INFO] …` (local time = UTC on these hosts).
fn serf_time(line: &str) -> Option<SystemTime> {
    let mut words = line.split_whitespace();
    let date = words.next()?.replace('/', "-");
    let time = words.next()?;
    humantime::parse_rfc3339(&format!("{date}T{time}Z")).ok()
}

fn since(t0: SystemTime, t: SystemTime) -> Duration {
    t.duration_since(t0).unwrap_or_default()
}

/// The time by which every log had seen `event` for every name in `names` other than its own
/// host's (its first sighting of each); None while some log has not.
fn all_saw(
    logs: &[(String, String)],
    names: &[String],
    event: &str,
    parse_time: fn(&str) -> Option<SystemTime>,
    peer_of: fn(&str) -> Option<String>,
) -> Option<SystemTime> {
    let mut latest: Option<SystemTime> = None;
    for (own, log) in logs {
        let mut seen: BTreeMap<String, SystemTime> = BTreeMap::new();
        for line in log.lines().filter(|l| l.contains(event)) {
            if let (Some(t), Some(p)) = (parse_time(line), peer_of(line)) {
                seen.entry(p).or_insert(t);
            }
        }
        for n in names.iter().filter(|n| *n != own) {
            let t = *seen.get(n)?;
            latest = Some(latest.map_or(t, |l| l.max(t)));
        }
    }
    latest
}

fn muster_peer(line: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("peer="))
        .map(str::to_owned)
}

fn serf_peer(line: &str) -> Option<String> {
    // "... serf: EventMemberJoin: h3 198.18.0.3"
    let rest = line.split("EventMember").nth(1)?;
    rest.split_whitespace().nth(1).map(str::to_owned)
}

fn host_names(lab: &Lab, range: std::ops::Range<usize>) -> Vec<String> {
    lab.hosts()[range]
        .iter()
        .map(|h| h.name().to_owned())
        .collect()
}

fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

fn bytes_sent(lab: &Lab, hosts: std::ops::Range<usize>) -> Result<u64, BoxError> {
    let mut total = 0;
    for h in &lab.hosts()[hosts] {
        total += h.bytes_sent()?;
    }
    Ok(total)
}

/// Drops 5% of the packets each host sends (nftables: this kernel has no netem).
fn lossy(lab: &Lab, on: bool) -> Result<(), BoxError> {
    for h in lab.hosts() {
        if on {
            h.set_loss(5.0)?;
        } else {
            h.clear_loss()?;
        }
    }
    Ok(())
}

fn run_muster(plan: &Plan) -> Result<Figures, BoxError> {
    let n = plan.nodes;
    let lab = Lab::new(n)?;
    let mut options = AgentOptions::new(&format!("bench-{}", std::process::id()));
    options.log_level = Some("info".to_owned());
    let t0 = SystemTime::now();
    let mut agents: Vec<Agent> = Vec::new();
    for h in lab.hosts() {
        agents.push(h.start_agent(&options)?);
    }
    eprintln!("muster: {n} agents started");
    let logs = |agents: &[Agent]| {
        agents
            .iter()
            .map(|a| (a.node_name().to_owned(), a.log()))
            .collect::<Vec<_>>()
    };
    let all = host_names(&lab, 0..n);
    let converge = wait_for(Duration::from_secs(120), || {
        all_saw(
            &logs(&agents),
            &all,
            "event=member_joined",
            muster_time,
            muster_peer,
        )
    })
    .map(|t| since(t0, t));
    eprintln!("muster: converged after {converge:?}");
    let mut subject = Agents { agents };
    steady_loss_and_failures(&lab, plan, &mut subject, converge, "1 ms")
}

fn run_serf(plan: &Plan) -> Result<Figures, BoxError> {
    let n = plan.nodes;
    let lab = Lab::builder().hosts(n).ipv6(true).build()?;
    let name = format!("bench{}", std::process::id());
    let t0 = SystemTime::now();
    let mut agents: Vec<SerfAgent> = Vec::new();
    for h in lab.hosts() {
        agents.push(h.start_serf(&name, &[])?);
    }
    eprintln!("serf: {n} agents started (its mDNS re-polls every 60 s)");
    let logs = |agents: &[SerfAgent]| {
        agents
            .iter()
            .map(|a| (a.host().name().to_owned(), a.log()))
            .collect::<Vec<_>>()
    };
    let all = host_names(&lab, 0..n);
    let converge = wait_for(Duration::from_secs(180), || {
        let views: Vec<BTreeSet<String>> = agents
            .iter()
            .map(|a| {
                a.members()
                    .map(|ms| {
                        ms.into_iter()
                            .filter(|m| m.status == "alive")
                            .map(|m| m.name)
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        views
            .iter()
            .all(|v| v.len() == n)
            .then(|| {
                all_saw(
                    &logs(&agents),
                    &all,
                    "EventMemberJoin",
                    serf_time,
                    serf_peer,
                )
            })
            .flatten()
    })
    .map(|t| since(t0, t));
    eprintln!("serf: converged after {converge:?}");
    let mut subject = Serfs { agents };
    steady_loss_and_failures(&lab, plan, &mut subject, converge, "1 s")
}

/// The agents under test, as the shared measurement sees them.
trait Subject {
    /// (own host name, log text) of the agents in `range`.
    fn logs(&self, range: std::ops::Range<usize>) -> Vec<(String, String)>;
    /// RSS of every agent, KiB.
    fn rss_kib(&self) -> Vec<u64>;
    /// SIGKILLs agent `i`.
    fn kill(&mut self, i: usize) -> Result<(), BoxError>;
    /// The log marker of a member declared dead.
    const DEAD: &'static str;
    /// Timestamp of a log line.
    fn time(line: &str) -> Option<SystemTime>;
    /// Peer named by a log line.
    fn peer(line: &str) -> Option<String>;
}

struct Agents {
    agents: Vec<Agent>,
}

impl Subject for Agents {
    fn logs(&self, range: std::ops::Range<usize>) -> Vec<(String, String)> {
        self.agents[range]
            .iter()
            .map(|a| (a.node_name().to_owned(), a.log()))
            .collect()
    }
    fn rss_kib(&self) -> Vec<u64> {
        self.agents
            .iter()
            .filter_map(|a| a.rss_kib().ok())
            .collect()
    }
    fn kill(&mut self, i: usize) -> Result<(), BoxError> {
        self.agents[i].kill()?;
        Ok(())
    }
    const DEAD: &'static str = "event=member_dead";
    fn time(line: &str) -> Option<SystemTime> {
        muster_time(line)
    }
    fn peer(line: &str) -> Option<String> {
        muster_peer(line)
    }
}

struct Serfs {
    agents: Vec<SerfAgent>,
}

impl Subject for Serfs {
    fn logs(&self, range: std::ops::Range<usize>) -> Vec<(String, String)> {
        self.agents[range]
            .iter()
            .map(|a| (a.host().name().to_owned(), a.log()))
            .collect()
    }
    fn rss_kib(&self) -> Vec<u64> {
        self.agents
            .iter()
            .filter_map(|a| a.rss_kib().ok())
            .collect()
    }
    fn kill(&mut self, i: usize) -> Result<(), BoxError> {
        self.agents[i].signal(Signal::Kill)?;
        Ok(())
    }
    const DEAD: &'static str = "EventMemberFailed";
    fn time(line: &str) -> Option<SystemTime> {
        serf_time(line)
    }
    fn peer(line: &str) -> Option<String> {
        serf_peer(line)
    }
}

/// After convergence, the same steps for both systems: steady-state bytes and RSS, a phase of
/// 5% loss (counting deaths, all false), then a SIGKILLed and a link-cut agent.
fn steady_loss_and_failures<S: Subject>(
    lab: &Lab,
    plan: &Plan,
    subject: &mut S,
    converge: Option<Duration>,
    resolution: &'static str,
) -> Result<Figures, BoxError> {
    let n = plan.nodes;
    std::thread::sleep(Duration::from_secs(3));
    let b0 = bytes_sent(lab, 0..n)?;
    let s0 = Instant::now();
    std::thread::sleep(plan.steady);
    let b1 = bytes_sent(lab, 0..n)?;
    let bytes_per_node_sec = (b1 - b0) as f64 / n as f64 / s0.elapsed().as_secs_f64();
    let rss = subject.rss_kib();

    lossy(lab, true)?;
    std::thread::sleep(plan.loss);
    lossy(lab, false)?;
    let false_deaths: usize = subject
        .logs(0..n)
        .iter()
        .map(|(_, l)| l.lines().filter(|x| x.contains(S::DEAD)).count())
        .sum();

    let survivors = 0..n - 2;
    let detect =
        |subject: &mut S, victim: usize, cut: bool| -> Result<Option<Duration>, BoxError> {
            let name = lab.hosts()[victim].name().to_owned();
            let t = SystemTime::now();
            if cut {
                lab.hosts()[victim].link_down()?;
            } else {
                subject.kill(victim)?;
            }
            Ok(wait_for(Duration::from_secs(90), || {
                all_saw(
                    &subject.logs(survivors.clone()),
                    std::slice::from_ref(&name),
                    S::DEAD,
                    S::time,
                    S::peer,
                )
            })
            .map(|at| since(t, at)))
        };
    let detect_kill = detect(subject, n - 1, false)?;
    let detect_cut = detect(subject, n - 2, true)?;
    Ok(Figures {
        converge,
        detect_kill,
        detect_cut,
        bytes_per_node_sec,
        false_deaths,
        rss_mib_mean: rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64 / 1024.0,
        rss_mib_max: rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
        resolution,
    })
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("never".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}

fn ratio(m: Option<f64>, s: Option<f64>) -> String {
    match (m, s) {
        (Some(m), Some(s)) if m > 0.0 => format!("{:.1}x", s / m),
        _ => "-".to_owned(),
    }
}

fn print_table(plan: &Plan, m: &Figures, s: Option<&Figures>) {
    println!(
        "\nmesh benchmark, N = {} hosts in network namespaces",
        plan.nodes
    );
    println!(
        "{:<44} {:>12} {:>12} {:>16}",
        "figure", "muster", "serf", "serf / muster"
    );
    let d = |f: &Figures, pick: fn(&Figures) -> Option<Duration>| pick(f).map(|d| d.as_secs_f64());
    let rows: Vec<(&str, String, String, String)> = vec![
        (
            "converge from simultaneous start",
            secs(m.converge),
            s.map_or("-".into(), |s| secs(s.converge)),
            ratio(d(m, |f| f.converge), s.and_then(|s| d(s, |f| f.converge))),
        ),
        (
            "detect SIGKILLed node (all survivors)",
            secs(m.detect_kill),
            s.map_or("-".into(), |s| secs(s.detect_kill)),
            ratio(
                d(m, |f| f.detect_kill),
                s.and_then(|s| d(s, |f| f.detect_kill)),
            ),
        ),
        (
            "detect link-cut node (all survivors)",
            secs(m.detect_cut),
            s.map_or("-".into(), |s| secs(s.detect_cut)),
            ratio(
                d(m, |f| f.detect_cut),
                s.and_then(|s| d(s, |f| f.detect_cut)),
            ),
        ),
        (
            "bytes sent per node per second (steady)",
            format!("{:.0}", m.bytes_per_node_sec),
            s.map_or("-".into(), |s| format!("{:.0}", s.bytes_per_node_sec)),
            ratio(Some(m.bytes_per_node_sec), s.map(|s| s.bytes_per_node_sec)),
        ),
        (
            "false deaths during 5% loss",
            m.false_deaths.to_string(),
            s.map_or("-".into(), |s| s.false_deaths.to_string()),
            "-".into(),
        ),
        (
            "RSS per agent, mean (MiB)",
            format!("{:.1}", m.rss_mib_mean),
            s.map_or("-".into(), |s| format!("{:.1}", s.rss_mib_mean)),
            ratio(Some(m.rss_mib_mean), s.map(|s| s.rss_mib_mean)),
        ),
        (
            "RSS per agent, max (MiB)",
            format!("{:.1}", m.rss_mib_max),
            s.map_or("-".into(), |s| format!("{:.1}", s.rss_mib_max)),
            ratio(Some(m.rss_mib_max), s.map(|s| s.rss_mib_max)),
        ),
    ];
    for (name, a, b, r) in rows {
        println!("{name:<44} {a:>12} {b:>12} {r:>16}");
    }
    println!(
        "(time resolution: muster {}, serf {}; steady state over {} s; loss phase {} s)",
        m.resolution,
        s.map_or("-", |s| s.resolution),
        plan.steady.as_secs(),
        plan.loss.as_secs()
    );
}

fn print_simulator() {
    println!("\nmembership simulator: convergence from one seed each, in protocol periods");
    println!("{:>6} {:>10} {:>12}", "N", "periods", "log2(N)");
    for n in [100usize, 500, 1000] {
        match muster_core::membership::sim::convergence_periods(n, 7) {
            Ok(p) => println!("{n:>6} {p:>10.1} {:>12.1}", (n as f64).log2()),
            Err(e) => println!("{n:>6} failed: {e}"),
        }
    }
}
