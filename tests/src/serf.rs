//! HashiCorp Serf on lab hosts: the baseline muster's gossip is benchmarked against.
//!
//! [`SerfHost::start_serf`] runs `serf agent` (Debian package `serf`) inside a lab [`Host`]
//! with mDNS discovery on `eth0`; [`SerfAgent::members`] runs `serf members -format=json`
//! against its RPC address (loopback inside the same namespace) and parses the answer. Serf's mDNS
//! discovery re-polls only every 60 s, so agents started together may need that long to meet.

use std::collections::BTreeMap;
use std::process::ExitStatus;
use std::time::Duration;

use serde::Deserialize;

use muster_lab::{ChildGuard, Host, LabError, Result, Signal, wait_until};

/// Serf's gossip port.
pub const SERF_PORT: u16 = 7946;

/// Serf's RPC address inside each host (each namespace has its own loopback).
pub const SERF_RPC: &str = "127.0.0.1:7373";

/// One entry of `serf members -format=json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SerfMember {
    /// Node name.
    pub name: String,
    /// `ip:port`.
    pub addr: String,
    /// `alive`, `failed`, `left` or `leaving`.
    pub status: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct SerfMembersReply {
    members: Vec<SerfMember>,
}

/// Parses the output of `serf members -format=json`.
pub fn parse_serf_members(json: &str) -> Result<Vec<SerfMember>> {
    serde_json::from_str::<SerfMembersReply>(json)
        .map(|reply| reply.members)
        .map_err(|e| LabError::Parse {
            what: "`serf members -format=json` output".to_owned(),
            detail: format!("{e}; output was: {}", json.trim()),
        })
}

/// A running `serf agent` inside a lab host. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct SerfAgent {
    host: Host,
    child: ChildGuard,
}

/// Running Serf on a lab host: `host.start_serf(cluster, extra)`.
///
/// An extension of [`muster_lab::Host`]; bring it into scope with
/// `use muster_tests::SerfHost`.
pub trait SerfHost {
    /// Starts `serf agent -node=<host name> -bind=<ip>:7946 -iface=eth0 -discover=<cluster>
    /// -rpc-addr=127.0.0.1:7373 <extra…>` inside this host. The lab needs IPv6 (the
    /// default): Serf's mDNS client crashes on an interface without it.
    fn start_serf(&self, cluster: &str, extra: &[&str]) -> Result<SerfAgent>;
}

impl SerfHost for Host {
    fn start_serf(&self, cluster: &str, extra: &[&str]) -> Result<SerfAgent> {
        if !self.has_ipv6() {
            return Err(LabError::Invalid(format!(
                "serf on {} needs IPv6 in the lab (its mDNS client crashes without it); \
                 build the lab with ipv6(true)",
                self.name()
            )));
        }
        let mut cmd = self.command("serf");
        cmd.arg("agent")
            .arg(format!("-node={}", self.name()))
            .arg(format!("-bind={}:{SERF_PORT}", self.ip()))
            .arg("-iface=eth0")
            .arg(format!("-discover={cluster}"))
            .arg(format!("-rpc-addr={SERF_RPC}"))
            .args(extra);
        let child = self.spawn_command("serf-agent", cmd)?;
        Ok(SerfAgent {
            host: self.clone(),
            child,
        })
    }
}

impl SerfAgent {
    /// The host it runs in.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Its process guard.
    pub fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// Its member list.
    pub fn members(&self) -> Result<Vec<SerfMember>> {
        let rpc = format!("-rpc-addr={SERF_RPC}");
        let out = self.host.run("serf", &["members", &rpc, "-format=json"])?;
        parse_serf_members(&String::from_utf8_lossy(&out.stdout))
    }

    /// Waits until its RPC port answers. Fails early, quoting its log, if it exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let what = format!("serf on {} to answer RPC", self.host.name());
        let result = wait_until(&what, timeout, Duration::from_millis(100), || {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(Err(status));
            }
            self.members().map(|_| Ok(())).map_err(|e| e.to_string())
        })?;
        result.map_err(|status: ExitStatus| LabError::CommandFailed {
            command: self.child.command_line().to_owned(),
            status: format!("exited early: {status}"),
            stderr: self.child.log_tail(30),
        })
    }

    /// Sends `signal`.
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        self.child.signal(signal)
    }

    /// Its resident set size in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        self.child.rss_kib()
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        self.child.log()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serf_members_json_is_parsed() {
        let json = r#"{"members":[{"name":"h1","addr":"198.18.0.1:7946","port":7946,
            "tags":{"role":"x"},"status":"alive","protocol":{"max":5,"min":2,"version":5}}]}"#;
        let members = parse_serf_members(json).expect("valid");
        assert_eq!(members[0].name, "h1");
        assert_eq!(members[0].addr, "198.18.0.1:7946");
        assert_eq!(members[0].status, "alive");
        assert_eq!(members[0].tags["role"], "x");
    }
}
