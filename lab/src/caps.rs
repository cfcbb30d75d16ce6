//! Whether this machine can run multi-host tests, and what to do when it cannot.
//!
//! Labs need root, `ip`, `tc` and working network namespaces, bridges and veths; some tests
//! also need tools such as `avahi-daemon` or `serf`. On a developer's machine without them a
//! test prints a loud `SKIPPED` line and returns. In CI (`CI=true`) a missing capability is a
//! failure, never a skip: [`decide`] makes that choice and [`require`] acts on it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::names;
use crate::process::run_ok;

/// What a test does about its requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Everything is there: run.
    Run,
    /// Something is missing outside CI: print the message and return without testing.
    Skip(String),
    /// Something is missing in CI: fail with the message.
    Fail(String),
}

/// Proof that the lab's requirements were checked and met; hand it around if useful.
#[derive(Debug, Clone, Copy)]
pub struct Capable(());

/// Whether the environment says this is CI (`CI` set to `true` or `1`, any case).
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
        .unwrap_or(false)
}

/// The decision for test `test` given what is `missing` and whether this is CI. Pure, so the
/// CI rule is tested without taking capabilities away.
pub fn decide(test: &str, missing: &[String], ci: bool) -> Decision {
    if missing.is_empty() {
        return Decision::Run;
    }
    let what = missing.join("; ");
    let what = what.trim_end_matches('.');
    if ci {
        Decision::Fail(format!(
            "{test}: CI=true and this machine lacks what multi-host tests need: {what}. \
             In CI a missing capability is a failure, not a skip."
        ))
    } else {
        Decision::Skip(format!(
            "SKIPPED {test}: missing {what} (run as root with iproute2; set CI=true to make \
             this a failure)"
        ))
    }
}

/// Acts on a decision: `Some` for [`Decision::Run`]; prints the message to stderr and returns
/// `None` for [`Decision::Skip`].
///
/// # Panics
/// On [`Decision::Fail`], with its message.
pub fn enforce(decision: Decision) -> Option<Capable> {
    match decision {
        Decision::Run => Some(Capable(())),
        Decision::Skip(message) => {
            eprintln!("\n*** {message} ***\n");
            None
        }
        Decision::Fail(message) => panic!("{message}"),
    }
}

/// Something a test needs beyond a working lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    /// A program on PATH, e.g. `ping`, `avahi-daemon`, `serf`.
    Tool(&'a str),
    /// nftables packet loss (`nft` and the kernel's nf_tables), for [`crate::Host::set_loss`].
    PacketLoss,
}

/// Checks that labs work here and that every program in `tools` is on PATH, then applies
/// [`decide`] and [`enforce`]. Use it first in every multi-host test:
///
/// ```no_run
/// let Some(_caps) = muster_lab::require("three_hosts_converge", &["ping"]) else { return };
/// ```
pub fn require(test: &str, tools: &[&str]) -> Option<Capable> {
    let needs: Vec<Need<'_>> = tools.iter().map(|t| Need::Tool(t)).collect();
    require_needs(test, &needs)
}

/// Like [`require`], for needs beyond programs (such as [`Need::PacketLoss`]).
pub fn require_needs(test: &str, needs: &[Need<'_>]) -> Option<Capable> {
    let mut missing = lab_problems().to_vec();
    for need in needs {
        match need {
            Need::Tool(tool) => {
                if find_program(tool).is_none() {
                    missing.push(format!("program `{tool}` not on PATH"));
                }
            }
            Need::PacketLoss => {
                if missing.is_empty()
                    && let Some(problem) = loss_problem()
                {
                    missing.push(problem.clone());
                }
            }
        }
    }
    enforce(decide(test, &missing, in_ci()))
}

/// Why nftables packet loss does not work here, if it does not. Probed once per process in a
/// scratch namespace.
pub fn loss_problem() -> Option<&'static String> {
    static PROBLEM: OnceLock<Option<String>> = OnceLock::new();
    PROBLEM
        .get_or_init(|| {
            let (tag, _) = names::next_lab_tag();
            let netns = names::netns_name(&tag, "loss");
            let result = run_ok(Command::new("ip").args(["netns", "add", &netns])).and_then(|_| {
                run_ok(Command::new("ip").args([
                    "netns", "exec", &netns, "nft", "add", "table", "inet", "probe",
                ]))
            });
            let _ = run_ok(Command::new("ip").args(["netns", "del", &netns]));
            result
                .err()
                .map(|e| format!("nftables (package nftables, kernel nf_tables): {e}"))
        })
        .as_ref()
}

/// What keeps labs from working on this machine (empty when they work). Probed once per
/// process by creating and deleting a namespace, a bridge and a veth pair.
pub fn lab_problems() -> &'static [String] {
    static PROBLEMS: OnceLock<Vec<String>> = OnceLock::new();
    PROBLEMS.get_or_init(probe)
}

fn probe() -> Vec<String> {
    let mut missing = Vec::new();
    match effective_uid() {
        Some(0) => {}
        Some(uid) => missing.push(format!("root (running as uid {uid})")),
        None => missing.push("root (could not read the uid from /proc/self/status)".to_owned()),
    }
    for tool in ["ip", "tc"] {
        if find_program(tool).is_none() {
            missing.push(format!("program `{tool}` not on PATH (package iproute2)"));
        }
    }
    if !Path::new("/proc/self/ns/net").exists() {
        missing.push("network namespaces (no /proc/self/ns/net)".to_owned());
    }
    if missing.is_empty()
        && let Err(problem) = probe_kernel()
    {
        missing.push(problem);
    }
    missing
}

/// Creates and removes a namespace, a bridge and a veth pair between them.
fn probe_kernel() -> Result<(), String> {
    let (tag, _) = names::next_lab_tag();
    let netns = names::netns_name(&tag, "probe");
    let bridge = names::next_link_name(names::LinkKind::Bridge);
    let veth = names::next_link_name(names::LinkKind::Veth);
    let ip = |args: &[&str]| {
        run_ok(Command::new("ip").args(args))
            .map(drop)
            .map_err(|e| e.to_string())
    };
    let result = ip(&["netns", "add", &netns])
        .and_then(|()| ip(&["link", "add", "name", &bridge, "type", "bridge"]))
        .and_then(|()| {
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ])
        })
        .and_then(|()| ip(&["link", "set", &veth, "master", &bridge]));
    // Cleanup is best effort; a failure shows up in the result above or in a later sweep.
    for link in [&veth, &bridge] {
        if names::link_exists(link) {
            let _ = ip(&["link", "del", link]);
        }
    }
    let _ = ip(&["netns", "del", &netns]);
    result.map_err(|e| format!("network namespaces, bridges and veths ({e})"))
}

/// The effective uid, from the `Uid:` line of `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Where `program` is on PATH, if anywhere (also checks `/usr/sbin` and `/sbin`, which a
/// non-login root shell may lack).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_means_run_even_in_ci() {
        assert_eq!(decide("t", &[], true), Decision::Run);
        assert_eq!(decide("t", &[], false), Decision::Run);
    }

    #[test]
    fn missing_capability_fails_in_ci_and_skips_elsewhere() {
        let missing = vec!["root (running as uid 1000)".to_owned()];
        match decide("t", &missing, true) {
            Decision::Fail(message) => assert!(message.contains("uid 1000"), "{message}"),
            other => panic!("expected Fail, got {other:?}"),
        }
        match decide("t", &missing, false) {
            Decision::Skip(message) => assert!(message.starts_with("SKIPPED t"), "{message}"),
            other => panic!("expected Skip, got {other:?}"),
        }
    }

    #[test]
    fn shell_is_found_on_path() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-anywhere").is_none());
    }
}
