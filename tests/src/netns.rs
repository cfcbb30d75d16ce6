//! A lab: one Linux bridge and N hosts, each a network namespace on it.
//!
//! The implementation lives in the `muster` crate ([`muster_lab`]), which `muster demo` uses
//! too; this module wraps its [`muster_lab::Lab`] and [`muster_lab::Host`] so that the
//! harness can add its own methods to [`Host`] (`start_agent`, `start_avahi`, `start_serf` in
//! [`crate::agent`], [`crate::avahi`] and [`crate::serf`]) and report
//! [`crate::HarnessError`]s. Every method here delegates; see the `muster_lab` documentation
//! for what they do to the kernel.

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};

use muster_lab as imp;

use crate::error::Result;
use crate::process::ChildGuard;

/// Set this environment variable to keep a lab's directory (logs, agent data) after the test.
pub const KEEP_DIR_ENV: &str = imp::KEEP_DIR_ENV;

/// Options of a lab; start with [`Lab::builder`].
#[derive(Debug, Clone)]
pub struct LabBuilder {
    inner: imp::LabBuilder,
}

impl LabBuilder {
    /// Number of hosts (1..=254).
    pub fn hosts(self, hosts: usize) -> Self {
        Self {
            inner: self.inner.hosts(hosts),
        }
    }

    /// Whether hosts have IPv6 (link-local) on `eth0`; see [`imp::LabBuilder::ipv6`].
    pub fn ipv6(self, enabled: bool) -> Self {
        Self {
            inner: self.inner.ipv6(enabled),
        }
    }

    /// Whether hosts get a default route; see [`imp::LabBuilder::default_route`].
    pub fn default_route(self, enabled: bool) -> Self {
        Self {
            inner: self.inner.default_route(enabled),
        }
    }

    /// Creates the bridges and hosts. On failure, whatever was created is removed again.
    pub fn build(self) -> Result<Lab> {
        let inner = self.inner.build()?;
        let hosts = inner
            .hosts()
            .iter()
            .map(|h| Host { inner: h.clone() })
            .collect();
        Ok(Lab { inner, hosts })
    }
}

/// A bridge with N hosts on it. Dropping it tears everything down.
#[derive(Debug)]
pub struct Lab {
    inner: imp::Lab,
    /// Copies of the inner lab's hosts, wrapped, so that [`Lab::hosts`] can lend a slice.
    hosts: Vec<Host>,
}

impl Lab {
    /// A lab with `hosts` hosts and default options.
    pub fn new(hosts: usize) -> Result<Self> {
        Self::builder().hosts(hosts).build()
    }

    /// Options for a lab (3 hosts, IPv6 on, no default route, unless changed).
    pub fn builder() -> LabBuilder {
        LabBuilder {
            inner: imp::Lab::builder(),
        }
    }

    /// All hosts, `h1` first.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Host number `n`, counted from 1 like its name `hN` and the last octet of its address.
    ///
    /// # Panics
    /// When the lab has no host `n`.
    pub fn host(&self, n: usize) -> &Host {
        match n.checked_sub(1).and_then(|i| self.hosts.get(i)) {
            Some(host) => host,
            None => panic!("the lab has hosts 1..={}, not {n}", self.hosts.len()),
        }
    }

    /// The tag shared by this lab's namespace names (`mst-<tag>-hN`).
    pub fn tag(&self) -> &str {
        self.inner.tag()
    }

    /// The main bridge.
    pub fn bridge(&self) -> &str {
        self.inner.bridge()
    }

    /// The bridge that holds the hosts of [`Lab::partition`]'s side.
    pub fn partition_bridge(&self) -> &str {
        self.inner.partition_bridge()
    }

    /// The lab's network, `198.18.B.0` with prefix length 24.
    pub fn subnet(&self) -> (Ipv4Addr, u8) {
        self.inner.subnet()
    }

    /// The lab's directory (one subdirectory per host for logs and agent data).
    pub fn dir(&self) -> &Path {
        self.inner.dir()
    }

    /// Splits the lab in two: the hosts numbered in `side` on one bridge, the others on the
    /// other, until [`Lab::heal`].
    pub fn partition(&self, side: &[usize]) -> Result<()> {
        self.inner.partition(side)
    }

    /// Puts every host back on the main bridge.
    pub fn heal(&self) -> Result<()> {
        self.inner.heal()
    }

    /// Tears the lab down now and reports the first error (dropping does the same silently).
    pub fn teardown(self) -> Result<()> {
        self.inner.teardown()
    }

    /// The `muster_lab` lab this wraps.
    pub fn inner(&self) -> &imp::Lab {
        &self.inner
    }
}

/// One host of a [`Lab`]: a network namespace with `eth0` on the lab's bridge.
#[derive(Debug, Clone)]
pub struct Host {
    inner: imp::Host,
}

impl Host {
    /// Its name, `hN`.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Its namespace's name.
    pub fn netns(&self) -> &str {
        self.inner.netns()
    }

    /// The host-side end of its veth pair.
    pub fn veth(&self) -> &str {
        self.inner.veth()
    }

    /// Its address on `eth0`.
    pub fn ip(&self) -> Ipv4Addr {
        self.inner.ip()
    }

    /// Whether IPv6 is enabled inside it (see [`LabBuilder::ipv6`]).
    pub fn has_ipv6(&self) -> bool {
        self.inner.has_ipv6()
    }

    /// Its directory for logs and data, inside the lab's directory.
    pub fn dir(&self) -> &Path {
        self.inner.dir()
    }

    /// A command that runs `program` inside this host (`ip netns exec <ns> program`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.inner.command(program)
    }

    /// Runs `program args…` inside this host and fails unless it exits with status 0.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Output> {
        self.inner.run(program, args)
    }

    /// Runs `program args…` inside this host and returns its output whatever its status.
    pub fn run_unchecked(&self, program: &str, args: &[&str]) -> Result<Output> {
        self.inner.run_unchecked(program, args)
    }

    /// Starts `program args…` inside this host; output in `<host dir>/<name>.log`, SIGKILL
    /// when the returned guard drops.
    pub fn spawn(&self, name: &str, program: &str, args: &[&str]) -> Result<ChildGuard> {
        self.inner.spawn(name, program, args)
    }

    /// Like [`Host::spawn`] for a command built with [`Host::command`]; returns once the
    /// child is inside the namespace.
    pub fn spawn_command(&self, name: &str, cmd: Command) -> Result<ChildGuard> {
        self.inner.spawn_command(name, cmd)
    }

    /// Whether one `ping` to `target` from this host is answered within a second.
    pub fn ping(&self, target: Ipv4Addr) -> Result<bool> {
        self.inner.ping(target)
    }

    /// Cuts its cable (host-side veth down).
    pub fn link_down(&self) -> Result<()> {
        self.inner.link_down()
    }

    /// Plugs its cable back in.
    pub fn link_up(&self) -> Result<()> {
        self.inner.link_up()
    }

    /// Whether its veth is currently on the partition bridge.
    pub fn is_partitioned(&self) -> bool {
        self.inner.is_partitioned()
    }

    /// Drops `percent` of the packets leaving its `eth0` at random (nftables).
    pub fn set_loss(&self, percent: f64) -> Result<()> {
        self.inner.set_loss(percent)
    }

    /// Removes the loss rule again; does nothing when there is none.
    pub fn clear_loss(&self) -> Result<()> {
        self.inner.clear_loss()
    }

    /// Bytes this host has sent.
    pub fn bytes_sent(&self) -> Result<u64> {
        self.inner.bytes_sent()
    }

    /// Bytes delivered to this host.
    pub fn bytes_received(&self) -> Result<u64> {
        self.inner.bytes_received()
    }

    /// Pids of every process inside this host's namespace.
    pub fn pids(&self) -> Vec<u32> {
        self.inner.pids()
    }

    /// The `muster_lab` host this wraps.
    pub fn inner(&self) -> &imp::Host {
        &self.inner
    }
}
