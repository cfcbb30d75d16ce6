//! The end of a demo: the `--json` document, the final `muster status` and `muster members`
//! (the real CLI run against the agents' sockets), and the `--keep` instructions.
//!
//! Owns [`Outcome`] and [`End`]. The document is built purely from the last observations;
//! printing the CLI's output needs the running cluster ([`super::hosts::DemoCluster`]).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::hosts::{AGENT_PORT, DemoCluster};
use super::progress::{Observed, Progress};
use super::{Latency, Mode};

/// How the wait for the cluster ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Every node joined and was verified.
    Formed,
    /// The timeout passed first.
    TimedOut,
    /// Ctrl-C or SIGTERM arrived first.
    Interrupted,
}

/// What the demo ends with.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// How it ended.
    pub end: End,
    /// The last round of observations, `h1` first.
    pub observed: Vec<Observed>,
    /// Their assessment.
    pub progress: Progress,
    /// Time from the start of the demo to the end of the wait.
    pub elapsed: Duration,
}

impl Outcome {
    /// The node to show at the end: the entry point, else the first node that answered.
    pub fn focus(&self) -> Option<&str> {
        self.progress.entry_point().or_else(|| {
            self.observed
                .iter()
                .find(|o| o.snapshot.is_some())
                .map(|o| o.name.as_str())
        })
    }
}

/// The `--json` document: `{"formed", "entry_point", "elapsed_ms", "nodes": [{"name",
/// "role", "joined", "verified", "entry_point", "ha", …}], …}`. A node that never answered
/// has role `null`.
pub fn document(
    outcome: &Outcome,
    cluster: &str,
    mode: Mode,
    latency: Latency,
    timeout: Duration,
) -> Value {
    let nodes: Vec<Value> = outcome
        .observed
        .iter()
        .map(|o| match &o.snapshot {
            Some(s) => json!({
                "name": o.name,
                "answering": true,
                "role": s.role.as_str(),
                "joined": s.joined(),
                "verified": s.counts_verified(),
                "entry_point": (!s.entry_point.is_empty()).then_some(&s.entry_point),
                "ha": s.ha,
                "cluster_size": s.size,
                "members_alive": s.members_alive,
            }),
            None => json!({
                "name": o.name,
                "answering": false,
                "role": null,
                "joined": false,
                "verified": false,
                "entry_point": null,
                "ha": false,
                "cluster_size": 0,
                "members_alive": 0,
            }),
        })
        .collect();
    let p = &outcome.progress;
    json!({
        "formed": outcome.end == End::Formed,
        "entry_point": p.entry_point(),
        "elapsed_ms": u64::try_from(outcome.elapsed.as_millis()).unwrap_or(u64::MAX),
        "discovered": p.discovered,
        "joined": p.joined,
        "verified": p.verified,
        "interrupted": outcome.end == End::Interrupted,
        "timeout_ms": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        "missing": p.missing(),
        "cluster": cluster,
        "mode": mode.as_str(),
        "latency": latency.env_value(),
        "nodes": nodes,
    })
}

/// Runs `muster <args…>` and returns what it printed (stdout, then stderr).
fn cli(exe: &Path, args: &[&str], socket: &Path) -> String {
    match Command::new(exe)
        .args(args)
        .arg("--socket")
        .arg(socket)
        .env_remove("MUSTER_SOCKET")
        .output()
    {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            text
        }
        Err(e) => format!("(could not run {}: {e})\n", exe.display()),
    }
}

/// The human end: `muster status` of the entry point (or the first answering node) and
/// `muster members` as it sees them, by the real CLI.
pub fn final_text(cluster: &DemoCluster, outcome: &Outcome) -> String {
    let mut out = String::new();
    let Some(focus) = outcome.focus() else {
        return "no agent answered; nothing to show\n".to_owned();
    };
    let Some(host) = cluster.hosts().iter().find(|h| h.name == focus) else {
        return String::new();
    };
    let what = if outcome.progress.entry_point() == Some(focus) {
        "the entry point"
    } else {
        "no entry point yet"
    };
    let socket = host.socket();
    let _ = writeln!(out, "\n== muster status ({focus}, {what}) ==");
    out.push_str(&cli(cluster.exe(), &["status"], &socket));
    let _ = writeln!(out, "\n== muster members (as {focus} sees them) ==");
    out.push_str(&cli(cluster.exe(), &["members"], &socket));
    out
}

/// How to reach the agents of a kept cluster.
pub fn keep_text(cluster: &DemoCluster) -> String {
    let exe = cluster.exe().display();
    let mut out = String::from(
        "\nThe cluster keeps running; press Ctrl-C to stop it and clean everything up.\n",
    );
    for h in cluster.hosts() {
        let _ = writeln!(
            out,
            "  {}: {exe} status --socket {}",
            h.name,
            h.socket().display()
        );
    }
    if let Some(h) = cluster.hosts().first() {
        let _ = writeln!(out, "Inside a host (its network and its microk8s):");
        let prefix = match &h.netns {
            Some(ns) => format!("sudo ip netns exec {ns} "),
            None => String::new(),
        };
        // The private namespace of user-namespace mode cannot be entered by address.
        if cluster.mode() != Mode::Userns {
            let _ = writeln!(out, "  {prefix}{exe} members --addr {}:{AGENT_PORT}", h.ip);
        }
        let _ = writeln!(out, "  {prefix}{} status", h.microk8s().display());
        let _ = writeln!(
            out,
            "  {prefix}{} kubectl get nodes",
            h.microk8s().display()
        );
    }
    if let Some(dir) = cluster.dir() {
        let _ = writeln!(
            out,
            "Logs: {}/hN/agent.log and sim.log (cluster name {}, mode {})",
            dir.display(),
            cluster.cluster(),
            cluster.mode().as_str()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::progress::{NodeSnapshot, Role, assess};

    fn outcome(end: End, snaps: Vec<Option<NodeSnapshot>>) -> Outcome {
        let observed: Vec<Observed> = snaps
            .into_iter()
            .enumerate()
            .map(|(i, snapshot)| Observed {
                name: format!("h{}", i + 1),
                snapshot,
            })
            .collect();
        Outcome {
            end,
            progress: assess(&observed),
            observed,
            elapsed: Duration::from_millis(1234),
        }
    }

    fn snap(role: Role, entry: &str) -> NodeSnapshot {
        NodeSnapshot {
            role,
            members_alive: 2,
            entry_point: entry.to_owned(),
            verified: true,
            ha: false,
            size: 2,
            conflict: String::new(),
        }
    }

    #[test]
    fn document_of_a_formed_cluster() {
        let o = outcome(
            End::Formed,
            vec![
                Some(snap(Role::EntryPoint, "h1")),
                Some(snap(Role::Worker, "h1")),
            ],
        );
        let doc = document(
            &o,
            "demo-x",
            Mode::Netns,
            Latency::Fast,
            Duration::from_secs(60),
        );
        assert_eq!(doc["formed"], true);
        assert_eq!(doc["entry_point"], "h1");
        assert_eq!(doc["elapsed_ms"], 1234);
        assert_eq!(doc["discovered"], 2);
        assert_eq!(doc["mode"], "netns");
        assert_eq!(doc["cluster"], "demo-x");
        let nodes = doc["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0]["role"], "entry-point");
        assert_eq!(nodes[1]["name"], "h2");
        assert_eq!(nodes[1]["joined"], true);
        assert_eq!(nodes[1]["verified"], true);
        assert_eq!(nodes[1]["entry_point"], "h1");
        assert_eq!(nodes[1]["ha"], false);
        assert_eq!(doc["missing"].as_array().map(Vec::len), Some(0));
    }

    #[test]
    fn document_of_a_cluster_that_did_not_form() {
        let o = outcome(End::TimedOut, vec![Some(snap(Role::Unclustered, "")), None]);
        assert_eq!(o.focus(), Some("h1"));
        let doc = document(
            &o,
            "demo-x",
            Mode::Loopback,
            Latency::Zero,
            Duration::from_secs(20),
        );
        assert_eq!(doc["formed"], false);
        assert_eq!(doc["entry_point"], Value::Null);
        assert_eq!(doc["nodes"][0]["entry_point"], Value::Null);
        assert_eq!(doc["nodes"][1]["answering"], false);
        assert_eq!(doc["nodes"][1]["role"], Value::Null);
        let missing = doc["missing"].to_string();
        assert!(missing.contains("agents not answering: h2"), "{missing}");
    }
}
