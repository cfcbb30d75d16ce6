//! Running the demo without root: re-executing it inside a private user and network
//! namespace (`unshare --user --map-root-user --net`).
//!
//! Inside, the demo is "root" over a network namespace nobody else sees, so it can give its
//! hosts real (non-loopback) addresses on a veth, a default route and multicast, which the
//! agents need to form a cluster; nothing inside can reach the machine's real interfaces.
//! Owns the probe ([`probe`]), the re-execution ([`reexec`]) and the forwarding of signals
//! to the re-executed demo. What the demo does inside is [`super::hosts`]' business.

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use tokio::signal::unix::{SignalKind, signal};

use super::{DemoArgs, Mode};
use muster_lab::Signal;
use muster_lab::process::send_signal;

/// Set in the environment of the re-executed demo: it is inside its namespace already.
pub const INSIDE_ENV: &str = "MUSTER_DEMO_INSIDE_USERNS";

/// Whether this process is the re-executed demo.
pub fn inside() -> bool {
    std::env::var_os(INSIDE_ENV).is_some()
}

/// Checks that this machine lets an unprivileged user create a user and network namespace
/// and a veth in it (`unshare` from util-linux and `ip` from iproute2 are needed). Returns
/// the `unshare` to use, or why not, in words.
pub fn probe() -> Result<PathBuf, String> {
    let unshare = super::hosts::find_program("unshare")
        .ok_or_else(|| "`unshare` (util-linux) is not installed".to_owned())?;
    let out = Command::new(&unshare)
        .args(["--user", "--map-root-user", "--net", "--"])
        .args([
            "ip", "link", "add", "mprobe0", "type", "veth", "peer", "name", "mprobe1",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", unshare.display()))?;
    if out.status.success() {
        Ok(unshare)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "`unshare --user --map-root-user --net ip link add …` failed: {}",
            stderr.trim()
        ))
    }
}

/// Runs the demo again inside `unshare --user --map-root-user --net`, with the same flags and
/// `--mode userns`, forwarding SIGINT, SIGTERM and SIGHUP to it, and returns its exit code.
pub fn reexec(args: &DemoArgs, unshare: &Path, exe: &Path) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("muster demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        // Handlers first: from now on a Ctrl-C must not kill this process before the inner
        // demo has cleaned up.
        let (mut int, mut term, mut hup) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(i), Ok(t), Ok(h)) => (i, t, h),
            _ => {
                eprintln!("muster demo: cannot handle signals");
                return ExitCode::FAILURE;
            }
        };
        // `unshare` execs the demo after unsharing, so the child's pid is the inner demo's.
        let child = Command::new(unshare)
            .args(["--user", "--map-root-user", "--net", "--"])
            .arg(exe)
            .arg("demo")
            .args(args.to_args(Mode::Userns))
            .env(INSIDE_ENV, "1")
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!("muster demo: cannot run {}: {e}", unshare.display());
                return ExitCode::FAILURE;
            }
        };
        let pid = child.id();
        let mut waited = tokio::task::spawn_blocking(move || child.wait());
        loop {
            let forward = tokio::select! {
                status = &mut waited => {
                    return match status {
                        Ok(Ok(status)) => exit_code(status),
                        _ => ExitCode::FAILURE,
                    };
                }
                _ = int.recv() => Signal::Int,
                _ = term.recv() => Signal::Term,
                _ = hup.recv() => Signal::Hup,
            };
            // It may have exited in between; the wait above reports that.
            let _ = send_signal(pid, forward);
        }
    })
}

/// The exit code to pass on: the child's, or 128 + signal when a signal ended it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(sig)) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)),
        (None, None) => ExitCode::FAILURE,
    }
}
