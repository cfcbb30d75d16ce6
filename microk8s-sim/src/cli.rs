//! The `microk8s` executable of the simulator (the `microk8s-sim` binary called as `microk8s`).
//!
//! Finds the host's state directory (`MUSTER_SIM_STATE`, else a `microk8s.sim-state` file
//! holding the path next to the `microk8s` link), runs the wrappers' file checks and the
//! argument parsing locally, does the file-only commands itself (`add-node`, `config`,
//! `stop`, `start`, `version`) and hands the others to the host's daemon over `sim.sock`.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::args::{self, Exit};
use super::control::{self, Request};
use super::format;
use super::state_dir::{Lock, StateDir};
use super::tokens::{TOKEN_MIN_LEN, generate_token};

/// Environment variable naming the simulated host's state directory.
pub const STATE_ENV: &str = "MUSTER_SIM_STATE";
/// File next to the `microk8s` link that names the state directory when the variable is unset.
pub const STATE_FILE: &str = "microk8s.sim-state";

const SUBCOMMANDS: [&str; 22] = [
    "add-node",
    "addons",
    "config",
    "ctr",
    "dbctl",
    "disable",
    "enable",
    "helm",
    "helm3",
    "images",
    "istioctl",
    "join",
    "kubectl",
    "leave",
    "linkerd",
    "refresh-certs",
    "remove-node",
    "reset",
    "start",
    "status",
    "stop",
    "version",
];

fn help() -> String {
    let mut s = String::from("Available subcommands are:\n");
    for c in SUBCOMMANDS {
        s.push('\t');
        s.push_str(c);
        s.push('\n');
    }
    s.push_str("\tinspect\n");
    s
}

/// Where the state directory of the host this `microk8s` belongs to is.
pub fn locate_state(argv0: &OsStr) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(STATE_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let argv0 = Path::new(argv0);
    let dir = if argv0.components().count() > 1 {
        argv0.parent().map(Path::to_path_buf)
    } else {
        std::env::var_os("PATH")
            .and_then(|p| std::env::split_paths(&p).find(|d| d.join(argv0).exists()))
    }?;
    let text = std::fs::read_to_string(dir.join(STATE_FILE)).ok()?;
    Some(PathBuf::from(text.trim()))
}

/// Entry point when the binary runs as `microk8s` (or `microk8s.<command>`).
pub fn microk8s_main(args: Vec<OsString>) -> i32 {
    let argv0 = args
        .first()
        .cloned()
        .unwrap_or_else(|| OsString::from("microk8s"));
    let mut rest: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let base = Path::new(&argv0)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(cmd) = base.strip_prefix("microk8s.") {
        rest.insert(0, cmd.to_owned());
    }
    let Some(state) = locate_state(&argv0) else {
        eprintln!(
            "microk8s-sim: set {STATE_ENV} to the simulated host's state directory (or put its path in {STATE_FILE} next to this microk8s)"
        );
        return 1;
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run_cli(&state, &rest, &mut stdout.lock(), &mut stderr.lock())
}

fn emit(e: Exit, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let _ = out.write_all(e.stdout.as_bytes());
    let _ = err.write_all(e.stderr.as_bytes());
    e.code
}

fn say(w: &mut dyn Write, s: &str, code: i32) -> i32 {
    let _ = w.write_all(s.as_bytes());
    code
}

fn daemon(
    dir: &StateDir,
    req: &Request,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, control::ControlError> {
    control::call(&dir.socket_path(), req, out, err)
}

fn via_daemon(dir: &StateDir, req: &Request, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    daemon(dir, req, out, err).unwrap_or_else(|e| say(err, &format!("microk8s-sim: {e}\n"), 1))
}

/// Runs one `microk8s` command for the host whose state is in `state`.
pub fn run_cli(state: &Path, args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let dir = match StateDir::open(state) {
        Ok(d) => d,
        Err(e) => return say(err, &format!("microk8s-sim: {e}\n"), 1),
    };
    let Some((cmd, rest)) = args.split_first() else {
        return say(out, &help(), 1);
    };
    let worker = dir.has(Lock::Clustered);
    let stopped = dir.has(Lock::Stopped);
    match cmd.as_str() {
        "add-node" => add_node(&dir, rest, out, err),
        "join" => match args::join(rest) {
            Ok(a) => via_daemon(&dir, &Request::join(&a), out, err),
            Err(e) => emit(e, out, err),
        },
        "leave" => {
            if stopped {
                return say(err, format::STOPPED, 1);
            }
            let clustered = dir.has(Lock::NoCertReissue) && (worker || dir.has_dqlite_args());
            if !clustered {
                return say(out, format::LEAVE_NOT_CLUSTERED, 1);
            }
            match args::leave(rest) {
                Ok(()) => via_daemon(&dir, &Request::Leave, out, err),
                Err(e) => emit(e, out, err),
            }
        }
        "remove-node" => {
            if worker {
                return say(out, format::REMOVE_ON_WORKER, 1);
            }
            match args::remove_node(rest, dir.has(Lock::HaCluster)) {
                Ok((node, force)) => {
                    via_daemon(&dir, &Request::RemoveNode { node, force }, out, err)
                }
                Err(e) => emit(e, out, err),
            }
        }
        "status" => {
            if worker {
                return say(out, format::STATUS_ON_WORKER, 0);
            }
            if stopped {
                return say(out, format::STOPPED, 0);
            }
            let a = match args::status(rest) {
                Ok(a) => a,
                Err(e) => return emit(e, out, err),
            };
            let req = Request::Status {
                format: a.format.clone(),
                wait_ready: a.wait_ready,
                timeout: a.timeout,
                addon: a.addon.clone(),
            };
            daemon(&dir, &req, out, err).unwrap_or_else(|_| {
                // Services down: nothing answers, the cluster is not ready.
                if a.wait_ready && a.timeout > 0 {
                    std::thread::sleep(std::time::Duration::from_secs(a.timeout as u64));
                }
                let text = match a.addon {
                    Some(_) => "disabled\n".to_owned(),
                    None => format::status(
                        &a.format,
                        &format::StatusView {
                            ready: false,
                            ha_enabled: dir.has(Lock::HaCluster),
                            members: Vec::new(),
                        },
                    ),
                };
                say(out, &text, 1)
            })
        }
        "kubectl" => {
            if worker {
                return say(out, format::KUBECTL_ON_WORKER, 0);
            }
            if stopped {
                return say(err, format::STOPPED, 1);
            }
            daemon(
                &dir,
                &Request::Kubectl {
                    args: rest.to_vec(),
                },
                out,
                err,
            )
            .unwrap_or_else(|_| say(err, format::API_REFUSED, 1))
        }
        "config" => config(&dir, rest, worker, out, err),
        "stop" => match dir.set(Lock::Stopped) {
            Ok(()) => say(out, "Stopped.\n", 0),
            Err(e) => say(err, &format!("microk8s-sim: {e}\n"), 1),
        },
        "start" => match dir.clear(Lock::Stopped) {
            Ok(()) => 0,
            Err(e) => say(err, &format!("microk8s-sim: {e}\n"), 1),
        },
        "version" => {
            let v = dir.host().map(|h| h.version).unwrap_or_default();
            say(
                out,
                &format!("MicroK8s {v} revision {}\n", format::SNAP_REVISION),
                0,
            )
        }
        "help" | "--help" | "-h" => say(out, &help(), 0),
        c if SUBCOMMANDS.contains(&c) || c == "inspect" => say(
            err,
            &format!("microk8s-sim: `microk8s {c}` is not simulated\n"),
            1,
        ),
        c => say(
            out,
            &format!("'{c}' is not a valid MicroK8s subcommand.\n{}", help()),
            1,
        ),
    }
}

fn add_node(dir: &StateDir, rest: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if dir.has(Lock::Clustered) {
        return say(out, format::ADD_NODE_ON_WORKER, 1);
    }
    if rest.iter().any(|a| a.contains("help")) {
        return say(out, args::ADD_NODE_HELP, 0);
    }
    if dir.has(Lock::Stopped) {
        return say(err, format::STOPPED, 1);
    }
    let a = match args::add_node(rest) {
        Ok(a) => a,
        Err(e) => return emit(e, out, err),
    };
    let token = a.token.unwrap_or_else(|| generate_token(&mut rand::rng()));
    if token.chars().count() < TOKEN_MIN_LEN {
        return say(out, format::INVALID_TOKEN_SIZE, 1);
    }
    let host = match dir.host() {
        Ok(h) => h,
        Err(e) => return say(err, &format!("microk8s-sim: {e}\n"), 1),
    };
    let now_unix = ((super::daemon::now_ms() + 500) / 1000) as i64;
    if let Err(e) = dir.tokens().add(&token, a.ttl, now_unix) {
        return say(err, &format!("microk8s-sim: cluster-tokens.txt: {e}\n"), 1);
    }
    let text = format::add_node(
        &a.format,
        &token,
        host.fingerprint(),
        &host.default_ip().to_string(),
        &format::ip_strings(&host.ips),
        dir.has(Lock::HaCluster),
    );
    say(out, &text, 0)
}

fn config(
    dir: &StateDir,
    rest: &[String],
    worker: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    if worker {
        return say(out, format::CONFIG_ON_WORKER, 0);
    }
    // getopt was called with `--name "$@"`, so its messages carry the first argument as name.
    let name = rest.first().cloned().unwrap_or_default();
    let mut loopback = false;
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i].as_str();
        i += 1;
        match a {
            "-l" | "--use-loopback" => loopback = true,
            "-h" | "--help" => {
                return say(
                    out,
                    "Usage: microk8s config [OPTIONS]\n\nRetrieve the client config, similar to microk8s kubectl config view --raw\n\nOptions:\n -h, --help          Show this help\n -l, --use-loopback  Report the cluster address using the loopback address\n                     (127.0.0.1) rather than the default interface address\n",
                    0,
                );
            }
            "-o" | "--output" => i += 1,
            "--" => break,
            s if s.starts_with("--") => {
                return say(err, &format!("{name}: unrecognized option '{s}'\n"), 1);
            }
            s if s.starts_with('-') && s.len() > 1 => {
                return say(
                    err,
                    &format!("{name}: invalid option -- '{}'\n", &s[1..2]),
                    1,
                );
            }
            _ => {}
        }
    }
    let (cfg, host) = match (dir.client_config(), dir.host()) {
        (Ok(c), Ok(h)) => (c, h),
        (Err(e), _) | (_, Err(e)) => return say(err, &format!("microk8s-sim: {e}\n"), 1),
    };
    say(
        out,
        &format::config(&cfg, &host.default_ip().to_string(), loopback),
        0,
    )
}
