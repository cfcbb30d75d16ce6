//! `muster-bench formation`: how long N machines started at once take to become one
//! verified cluster, beside the serialized floor — the sum of the `microk8s join` durations,
//! which no orchestrator can beat when joins must not overlap — and muster's own overhead
//! (formation time minus that floor).
//!
//! Every host runs the microk8s simulator (join latency `zero`, `fast` or `realistic`) and a
//! real agent. Times come from the agents' log timestamps: the start is just before the
//! first agent starts, the end is the entry point's last `node_joined` (verified) event; the
//! floor is the sum of the followers' `join_finished` durations.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use muster_lab::{Lab, require};
use muster_tests::{SimHost, SimNode, SimNodeOptions};

/// Runs the formation benchmark with the arguments after `formation`.
pub fn run(args: &[String]) -> ExitCode {
    let mut nodes = 5usize;
    let mut latency = "zero".to_owned();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--nodes", Some(n)) => match n.parse::<usize>() {
                Ok(n) if (2..=50).contains(&n) => nodes = n,
                _ => {
                    eprintln!("muster-bench: --nodes takes 2 to 50");
                    return ExitCode::from(2);
                }
            },
            ("--latency", Some(l)) if ["zero", "fast", "realistic"].contains(&l.as_str()) => {
                latency = l.clone()
            }
            _ => {
                eprintln!("muster-bench: formation [--nodes N] [--latency zero|fast|realistic]");
                return ExitCode::from(2);
            }
        }
    }
    if require("muster-bench formation", &[]).is_none() {
        return ExitCode::FAILURE;
    }
    match measure(nodes, &latency) {
        Ok(f) => {
            println!(
                "\nformation benchmark, N = {nodes} hosts started at once, simulator join latency `{latency}`"
            );
            println!("{:<40} {:>10}", "figure", "seconds");
            println!(
                "{:<40} {:>10.2}",
                "formation (start to last verified join)",
                f.formation.as_secs_f64()
            );
            println!(
                "{:<40} {:>10.2}",
                "serialized floor (sum of join times)",
                f.floor.as_secs_f64()
            );
            println!(
                "{:<40} {:>10.2}",
                "muster's overhead (formation - floor)",
                f.formation.as_secs_f64() - f.floor.as_secs_f64()
            );
            println!("{:<40} {:>10}", "joins (verified)", f.joins);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("muster-bench: formation run failed: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Figures {
    formation: Duration,
    floor: Duration,
    joins: usize,
}

/// The first RFC 3339 timestamp on a log line (lines may carry a host prefix).
fn log_time(line: &str) -> Option<SystemTime> {
    line.split_whitespace()
        .find_map(|w| humantime::parse_rfc3339(w).ok())
}

fn measure(n: usize, latency: &str) -> Result<Figures, Box<dyn std::error::Error>> {
    let lab = Lab::new(n)?;
    let mut options = SimNodeOptions::new(&format!("fbench-{}", std::process::id()));
    options.sim_env = vec![("MUSTER_SIM_JOIN_LATENCY".to_owned(), latency.to_owned())];
    options.config = "[formation]\nverify_timeout = \"5min\"\n".to_owned();
    // The machines run microk8s already (as after `snap install`); the clock starts when
    // every agent is started at once, as when the package lands on all of them.
    let mut sims = Vec::new();
    for h in lab.hosts() {
        sims.push(h.start_sim(&options.hostname_on(h), &options.sim_env)?);
    }
    for sim in &sims {
        sim.wait(Duration::from_secs(30))?;
    }
    let t0 = SystemTime::now();
    let mut machines: Vec<SimNode> = Vec::new();
    for (h, sim) in lab.hosts().iter().zip(sims) {
        machines.push(SimNode {
            agent: h.start_sim_agent(&options, &sim)?,
            sim,
        });
    }
    eprintln!("formation: {n} agents started");
    let limit = Duration::from_secs(if latency == "realistic" { 900 } else { 300 });
    let started = Instant::now();
    loop {
        // The entry point logs one verified `node_joined` per follower.
        for m in &machines {
            let log = m.agent.log();
            let joined: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("event=node_joined") && l.contains("role=entry-point"))
                .collect();
            if joined.len() + 1 >= n {
                let end = joined
                    .iter()
                    .filter_map(|l| log_time(l))
                    .max()
                    .ok_or("no timestamps")?;
                let floor_ms: u64 = machines
                    .iter()
                    .flat_map(|m| {
                        m.agent
                            .log()
                            .lines()
                            .filter(|l| l.contains("event=join_finished"))
                            .filter_map(|l| {
                                l.split_whitespace()
                                    .find_map(|w| w.strip_prefix("duration_ms="))
                                    .and_then(|v| v.parse::<u64>().ok())
                            })
                            .collect::<Vec<_>>()
                    })
                    .sum();
                if let Some(dir) = std::env::var_os("MUSTER_BENCH_LOGS") {
                    // For reading the timeline: every agent's log, one file per machine.
                    let dir = std::path::PathBuf::from(dir);
                    std::fs::create_dir_all(&dir)?;
                    for (i, m) in machines.iter().enumerate() {
                        std::fs::write(dir.join(format!("agent-{i}.log")), m.agent.log())?;
                    }
                }
                return Ok(Figures {
                    formation: end.duration_since(t0)?,
                    floor: Duration::from_millis(floor_ms),
                    joins: joined.len(),
                });
            }
        }
        if started.elapsed() > limit {
            return Err(format!("the cluster did not form within {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
