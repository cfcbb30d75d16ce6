//! Running `muster demo`: set the hosts up, follow the agents until the cluster forms (or the
//! timeout passes, or Ctrl-C), print the result, clean up.
//!
//! Owns the signal handling (SIGINT, SIGTERM and SIGHUP cancel one token; cleanup then runs
//! through [`DemoCluster`]'s drop, as it does on errors and panics), the polling of every
//! agent's Status over its unix socket, and the progress display on stderr: one line redrawn
//! in place on a terminal, a new line per change otherwise. Stdout carries only the result:
//! the final `muster status` / `muster members`, or with `--json` one JSON document.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::hosts::{DemoCluster, Plan, SetupError};
use super::progress::{NodeSnapshot, Observed, Progress, assess};
use super::report::{self, End, Outcome};
use super::{DemoArgs, Mode, effective_uid, userns};
use crate::api::client::{StatusClient, Target};

/// How often the agents are asked for their status.
const POLL: Duration = Duration::from_millis(500);

/// Bound on connecting to one agent and on one Status call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Exit code after Ctrl-C, as shells report a SIGINT death (128 + 2).
const EXIT_INTERRUPTED: u8 = 130;

/// The simulator's executable name, looked for beside the `muster` executable.
const SIM_BINARY: &str = "microk8s-sim";

/// Where the Debian package installs the simulator (off PATH: it is for the demo only).
const SIM_INSTALLED: &str = "/usr/lib/muster/microk8s-sim";

/// Runs the demo and returns the process exit code: 0 when the cluster formed, 1 when it did
/// not (or could not be set up), 130 when interrupted.
pub fn run(args: DemoArgs) -> ExitCode {
    let mut mode = args.mode.resolve(effective_uid());
    let timeout = args.effective_timeout();
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("muster demo: cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The simulator is a binary of its own (the agent carries none of its code): built beside
    // us by cargo, installed in /usr/lib/muster by the package.
    let candidates = [exe.with_file_name(SIM_BINARY), PathBuf::from(SIM_INSTALLED)];
    let Some(sim_exe) = candidates.iter().find(|p| p.is_file()).cloned() else {
        eprintln!(
            "muster demo: the microk8s simulator is neither at {} nor at {SIM_INSTALLED} (build \
             it with `cargo build --release -p muster -p microk8s-sim`)",
            candidates[0].display()
        );
        return ExitCode::FAILURE;
    };
    if mode == Mode::Userns && !userns::inside() {
        match userns::probe() {
            Ok(unshare) => return userns::reexec(&args, &unshare, &exe),
            Err(why) if args.mode == Mode::Auto => {
                eprintln!(
                    "muster demo: no private user namespace ({why}); falling back to loopback"
                );
                mode = Mode::Loopback;
            }
            Err(why) => {
                eprintln!("muster demo: --mode userns is not possible here: {why}");
                return ExitCode::FAILURE;
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("muster demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = CancellationToken::new();
    if let Err(e) = rt.block_on(watch_signals(stop.clone())) {
        eprintln!("muster demo: cannot handle signals: {e}");
        return ExitCode::FAILURE;
    }
    let mut display = Display::new(std::io::stderr().is_terminal());
    let started = Instant::now();
    let plan = Plan {
        nodes: usize::from(args.nodes),
        mode,
        latency: args.latency,
        exe,
        sim_exe,
    };
    display.note(&format!(
        "forming a {}-node cluster ({} mode, join latency {}, timeout {})",
        plan.nodes,
        mode.as_str(),
        args.latency.env_value(),
        humantime::format_duration(timeout)
    ));
    // Set-up runs on this (the main) thread: children started under `--pdeathsig` die with
    // the thread that started them.
    let mut cluster = match DemoCluster::start(&plan, &stop, &mut |m| display.note(m)) {
        Ok(cluster) => cluster,
        Err(SetupError::Interrupted) => {
            eprintln!("muster demo: interrupted during set-up; cleaned up");
            return ExitCode::from(EXIT_INTERRUPTED);
        }
        Err(e) => {
            let hint = if mode == Mode::Netns {
                " (namespaces need root with CAP_NET_ADMIN and iproute2; `--mode loopback` needs neither)"
            } else {
                ""
            };
            eprintln!("muster demo: cannot set up the hosts: {e}{hint}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(follow(&cluster, started, timeout, &stop, &mut display));
    display.finish();
    finish(&args, &mut cluster, &outcome, timeout);
    if args.keep && outcome.end != End::Interrupted {
        eprint!("{}", report::keep_text(&cluster));
        rt.block_on(stop.cancelled());
    }
    eprintln!("muster demo: stopping the agents and simulators, removing the hosts");
    drop(cluster);
    match outcome.end {
        End::Formed => ExitCode::SUCCESS,
        End::TimedOut => ExitCode::FAILURE,
        End::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
    }
}

/// Prints the result: the JSON document or the final status and members, and why the
/// cluster did not form.
fn finish(args: &DemoArgs, cluster: &mut DemoCluster, outcome: &Outcome, timeout: Duration) {
    let p = &outcome.progress;
    if args.json {
        let doc = report::document(
            outcome,
            cluster.cluster(),
            cluster.mode(),
            args.latency,
            timeout,
        );
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
        );
    } else {
        if outcome.end == End::Formed {
            let ha = outcome
                .observed
                .iter()
                .filter_map(|o| o.snapshot.as_ref())
                .any(|s| s.ha);
            println!(
                "cluster of {} nodes formed in {:.1}s: entry point {}, HA {}",
                p.nodes,
                outcome.elapsed.as_secs_f64(),
                p.entry_point().unwrap_or("-"),
                if ha { "yes" } else { "no" }
            );
        }
        print!("{}", report::final_text(cluster, outcome));
    }
    match outcome.end {
        End::Formed => {}
        End::TimedOut => {
            let waited = humantime::format_duration(timeout).to_string();
            eprintln!("muster demo: {}", p.failure(&waited));
            for (host, log) in cluster.exited_agents() {
                eprintln!("muster demo: the agent of {host} exited: {log}");
            }
        }
        End::Interrupted => eprintln!("muster demo: interrupted; {}", p.line()),
    }
    let _ = std::io::stdout().flush();
}

/// Polls every agent until the cluster forms, `timeout` passes since `started`, or `stop`.
async fn follow(
    cluster: &DemoCluster,
    started: Instant,
    timeout: Duration,
    stop: &CancellationToken,
    display: &mut Display,
) -> Outcome {
    let sockets: Vec<(String, PathBuf)> = cluster
        .hosts()
        .iter()
        .map(|h| (h.name.clone(), h.socket()))
        .collect();
    let mut clients: Vec<Option<StatusClient>> = vec![None; sockets.len()];
    let deadline = started + timeout;
    loop {
        let observed = poll(&sockets, &mut clients).await;
        let progress = assess(&observed);
        display.update(started.elapsed(), &progress);
        let end = if progress.formed() {
            Some(End::Formed)
        } else if stop.is_cancelled() {
            Some(End::Interrupted)
        } else if Instant::now() >= deadline {
            Some(End::TimedOut)
        } else {
            None
        };
        if let Some(end) = end {
            return Outcome {
                end,
                observed,
                progress,
                elapsed: started.elapsed(),
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.cancelled() => {}
        }
    }
}

/// One round: every agent's status, asked concurrently, reusing connections.
async fn poll(
    sockets: &[(String, PathBuf)],
    clients: &mut [Option<StatusClient>],
) -> Vec<Observed> {
    let mut set = JoinSet::new();
    for (i, (_, socket)) in sockets.iter().enumerate() {
        let client = clients.get_mut(i).and_then(Option::take);
        let socket = socket.clone();
        set.spawn(async move {
            let (client, snapshot) = status_of(client, &socket).await;
            (i, client, snapshot)
        });
    }
    let mut snapshots: Vec<Option<NodeSnapshot>> = vec![None; sockets.len()];
    while let Some(joined) = set.join_next().await {
        if let Ok((i, client, snapshot)) = joined {
            if let Some(slot) = clients.get_mut(i) {
                *slot = client;
            }
            if let Some(slot) = snapshots.get_mut(i) {
                *slot = snapshot;
            }
        }
    }
    sockets
        .iter()
        .zip(snapshots)
        .map(|((name, _), snapshot)| Observed {
            name: name.clone(),
            snapshot,
        })
        .collect()
}

/// Asks one agent for its status, connecting first when needed; a failed call drops the
/// connection so that the next round reconnects.
async fn status_of(
    client: Option<StatusClient>,
    socket: &Path,
) -> (Option<StatusClient>, Option<NodeSnapshot>) {
    let mut client = match client {
        Some(c) => c,
        None => match StatusClient::connect(&Target::Socket(socket.to_owned()), CALL_TIMEOUT).await
        {
            Ok(c) => c,
            Err(_) => return (None, None),
        },
    };
    match tokio::time::timeout(CALL_TIMEOUT, client.node_snapshot()).await {
        Ok(Ok(snapshot)) => (Some(client), Some(snapshot)),
        _ => (None, None),
    }
}

/// Cancels `stop` on the first SIGINT, SIGTERM or SIGHUP. The handlers are installed before
/// this returns, so a Ctrl-C during set-up is seen as soon as set-up checks the token.
async fn watch_signals(stop: CancellationToken) -> std::io::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        stop.cancel();
    });
    Ok(())
}

/// The progress display on stderr.
struct Display {
    /// Redraw one line in place (a terminal) instead of printing each change.
    tty: bool,
    /// The last progress line shown.
    last: String,
    /// Whether a line is drawn in place and not yet ended.
    open: bool,
}

impl Display {
    fn new(tty: bool) -> Self {
        Self {
            tty,
            last: String::new(),
            open: false,
        }
    }

    /// A set-up step or other message, on its own line.
    fn note(&mut self, message: &str) {
        self.finish();
        eprintln!("muster demo: {message}");
    }

    /// Shows the progress at `elapsed`.
    fn update(&mut self, elapsed: Duration, progress: &Progress) {
        let line = progress.line();
        let secs = elapsed.as_secs_f64();
        if self.tty {
            eprint!("\r\x1b[2K[{secs:6.1}s] {line}");
            let _ = std::io::stderr().flush();
            self.open = true;
        } else if line != self.last {
            eprintln!("[{secs:.1}s] {line}");
        }
        self.last = line;
    }

    /// Ends a line drawn in place.
    fn finish(&mut self) {
        if self.open {
            eprintln!();
            self.open = false;
        }
    }
}
