//! A lab: one Linux bridge and N hosts, each a network namespace on it.
//!
//! [`Lab`] owns the kernel objects: a bridge, a second bridge for partitions, and per host a
//! namespace and a veth pair (host side on a bridge, `eth0` inside, `198.18.B.N/24`, `lo` up,
//! `224.0.0.0/4 dev eth0` so multicast such as mDNS leaves through the bridge). Every lab gets
//! its own bridge and its own /24 inside 198.18.0.0/15, so labs running in parallel never see
//! each other. Dropping the lab (also while a test panics) kills every process inside its
//! namespaces and deletes namespaces, veths and bridges.
//!
//! [`Host`] is one machine: run or spawn commands inside it, cut its link, add loss or delay,
//! read how many bytes it sent. What runs on the hosts is the caller's business (`muster demo`
//! starts simulated microk8s hosts and agents; the `muster-tests` crate adds avahi and serf).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;
use std::time::Duration;

use crate::error::{LabError, Result};
use crate::names::{self, LinkKind};
use crate::process::{ChildGuard, run, run_ok};

/// Number of /24 blocks in 198.18.0.0/15.
const SUBNET_BLOCKS: u64 = 512;

/// Set this environment variable to keep a lab's directory (logs, agent data) after the test.
pub const KEEP_DIR_ENV: &str = "MUSTER_KEEP_LAB";

static SWEEP_ONCE: Once = Once::new();

/// Name of the nftables table that [`Host::set_loss`] installs in a host.
const LOSS_TABLE: &str = "muster_loss";

/// Options of a lab; start with [`Lab::builder`].
#[derive(Debug, Clone)]
pub struct LabBuilder {
    hosts: usize,
    ipv6: bool,
    default_route: bool,
}

impl LabBuilder {
    /// Number of hosts (1..=254).
    pub fn hosts(mut self, hosts: usize) -> Self {
        self.hosts = hosts;
        self
    }

    /// Whether hosts have IPv6 (link-local) on `eth0`, as real machines do. On by default;
    /// off gives byte counts without IPv6 housekeeping (router solicitations, MLD), but Serf's
    /// mDNS client crashes without IPv6.
    pub fn ipv6(mut self, enabled: bool) -> Self {
        self.ipv6 = enabled;
        self
    }

    /// Whether hosts get a default route (`default via 198.18.B.254 dev eth0`), as real
    /// machines have and microk8s requires. Off by default. No host answers for `.254` (in a
    /// lab of 254 hosts, `h254` does and drops the packets), so nothing leaves the bridge.
    pub fn default_route(mut self, enabled: bool) -> Self {
        self.default_route = enabled;
        self
    }

    /// Creates the bridges and hosts. On failure, whatever was created is removed again.
    pub fn build(self) -> Result<Lab> {
        if !(1..=254).contains(&self.hosts) {
            return Err(LabError::Invalid(format!(
                "a lab has 1..=254 hosts, not {}",
                self.hosts
            )));
        }
        SWEEP_ONCE.call_once(|| {
            if let Err(err) = names::sweep() {
                eprintln!("lab: sweeping leftovers of earlier runs failed: {err}");
            }
        });
        let (tag, seq) = names::next_lab_tag();
        let block = (u64::from(std::process::id()) * 64 + seq) % SUBNET_BLOCKS;
        let octets = [
            198,
            18 + u8::try_from(block / 256).expect("block < 512"),
            u8::try_from(block % 256).expect("remainder < 256"),
        ];
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}{tag}-", names::LAB_DIR_PREFIX))
            .tempdir()
            .map_err(|e| LabError::io("creating the lab directory", e))?;
        // From here on the lab exists, so an error drops it and that removes what was made.
        let mut lab = Lab {
            tag,
            subnet: octets,
            bridge: names::next_link_name(LinkKind::Bridge),
            partition_bridge: names::next_link_name(LinkKind::PartitionBridge),
            hosts: Vec::new(),
            dir: Some(dir),
            torn_down: false,
        };
        for bridge in [lab.bridge.clone(), lab.partition_bridge.clone()] {
            ip(&[
                "link",
                "add",
                "name",
                &bridge,
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ])?;
            disable_ipv6_here(&bridge);
            ip(&["link", "set", &bridge, "up"])?;
        }
        for index in 1..=self.hosts {
            lab.add_host(index, self.ipv6, self.default_route)?;
        }
        Ok(lab)
    }
}

/// A bridge with N hosts on it; see the module doc. Dropping it tears everything down.
#[derive(Debug)]
pub struct Lab {
    tag: String,
    subnet: [u8; 3],
    bridge: String,
    partition_bridge: String,
    hosts: Vec<Host>,
    dir: Option<tempfile::TempDir>,
    torn_down: bool,
}

impl Lab {
    /// A lab with `hosts` hosts and default options.
    pub fn new(hosts: usize) -> Result<Self> {
        Self::builder().hosts(hosts).build()
    }

    /// Options for a lab (3 hosts, IPv6 on, no default route, unless changed).
    pub fn builder() -> LabBuilder {
        LabBuilder {
            hosts: 3,
            ipv6: true,
            default_route: false,
        }
    }

    fn add_host(&mut self, index: usize, ipv6: bool, default_route: bool) -> Result<()> {
        let name = format!("h{index}");
        let netns = names::netns_name(&self.tag, &name);
        let veth = names::next_link_name(LinkKind::Veth);
        let [a, b, c] = self.subnet;
        let ip4 = Ipv4Addr::new(a, b, c, u8::try_from(index).expect("index <= 254"));
        let dir = self.dir().join(&name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
        ip(&["netns", "add", &netns])?;
        self.hosts.push(Host {
            name,
            netns: netns.clone(),
            veth: veth.clone(),
            ip: ip4,
            dir,
            partition_bridge: self.partition_bridge.clone(),
            ipv6,
        });
        if !ipv6 {
            // Before eth0 exists, so that `default` applies to it as well.
            run_ok(Command::new("ip").args(["netns", "exec", &netns, "sh", "-c"]).arg(
                "for k in all default; do echo 1 > /proc/sys/net/ipv6/conf/$k/disable_ipv6; done",
            ))?;
        }
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ])?;
        disable_ipv6_here(&veth);
        ip(&["link", "set", &veth, "master", &self.bridge, "up"])?;
        let cidr = format!("{ip4}/24");
        ip(&["-n", &netns, "addr", "add", &cidr, "dev", "eth0"])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &netns, "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
        if default_route {
            let gateway = Ipv4Addr::new(a, b, c, 254).to_string();
            ip(&[
                "-n", &netns, "route", "add", "default", "via", &gateway, "dev", "eth0",
            ])?;
        }
        Ok(())
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
        &self.tag
    }

    /// The main bridge.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The bridge that holds the hosts of [`Lab::partition`]'s side.
    pub fn partition_bridge(&self) -> &str {
        &self.partition_bridge
    }

    /// The lab's network, `198.18.B.0` with prefix length 24.
    pub fn subnet(&self) -> (Ipv4Addr, u8) {
        let [a, b, c] = self.subnet;
        (Ipv4Addr::new(a, b, c, 0), 24)
    }

    /// The lab's directory (one subdirectory per host for logs and agent data); removed on
    /// drop unless [`KEEP_DIR_ENV`] is set.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or_else(|| Path::new("/nonexistent"), |d| d.path())
    }

    /// Splits the lab in two: the hosts numbered in `side` move to the partition bridge, all
    /// others to the main bridge. The two groups cannot exchange any packet until
    /// [`Lab::heal`]. Calling it again replaces the previous partition.
    pub fn partition(&self, side: &[usize]) -> Result<()> {
        for n in side {
            if *n == 0 || *n > self.hosts.len() {
                return Err(LabError::Invalid(format!(
                    "cannot partition host {n}: the lab has hosts 1..={}",
                    self.hosts.len()
                )));
            }
        }
        for (i, host) in self.hosts.iter().enumerate() {
            let bridge = if side.contains(&(i + 1)) {
                &self.partition_bridge
            } else {
                &self.bridge
            };
            ip(&["link", "set", &host.veth, "master", bridge])?;
        }
        Ok(())
    }

    /// Puts every host back on the main bridge.
    pub fn heal(&self) -> Result<()> {
        self.partition(&[])
    }

    /// Tears the lab down now and reports the first error (dropping does the same silently).
    pub fn teardown(mut self) -> Result<()> {
        match self.teardown_all().into_iter().next() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn teardown_all(&mut self) -> Vec<LabError> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        let mut errors = Vec::new();
        for host in &self.hosts {
            names::kill_netns_processes(&host.netns);
            // Deleting the host side removes eth0 too; waiting for the namespace's deletion
            // to do it would race with the next lab.
            if names::link_exists(&host.veth) {
                errors.extend(ip(&["link", "del", &host.veth]).err());
            }
            errors.extend(ip(&["netns", "del", &host.netns]).err());
        }
        for bridge in [&self.bridge, &self.partition_bridge] {
            if names::link_exists(bridge) {
                errors.extend(ip(&["link", "del", bridge]).err());
            }
        }
        if let Some(dir) = self.dir.take() {
            if std::env::var_os(KEEP_DIR_ENV).is_some() {
                eprintln!("lab: keeping lab directory {}", dir.keep().display());
            } else if let Err(err) = dir.close() {
                errors.push(LabError::io("removing the lab directory", err));
            }
        }
        errors
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for err in self.teardown_all() {
            eprintln!("lab: lab {} teardown: {err}", self.tag);
        }
    }
}

/// One host of a [`Lab`]: a network namespace with `eth0` on the lab's bridge.
#[derive(Debug, Clone)]
pub struct Host {
    name: String,
    netns: String,
    veth: String,
    ip: Ipv4Addr,
    dir: PathBuf,
    partition_bridge: String,
    ipv6: bool,
}

impl Host {
    /// Its name, `hN`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its namespace's name.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The host-side end of its veth pair (on a bridge in the harness's namespace).
    pub fn veth(&self) -> &str {
        &self.veth
    }

    /// Its address on `eth0`.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Whether IPv6 is enabled inside it (see [`LabBuilder::ipv6`]).
    pub fn has_ipv6(&self) -> bool {
        self.ipv6
    }

    /// Its directory for logs and data, inside the lab's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A command that runs `program` inside this host (`ip netns exec <ns> program`). Add
    /// arguments, environment or a working directory before running it.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns]).arg(program);
        cmd
    }

    /// Runs `program args…` inside this host and fails unless it exits with status 0.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Output> {
        run_ok(self.command(program).args(args))
    }

    /// Runs `program args…` inside this host and returns its output whatever its status.
    pub fn run_unchecked(&self, program: &str, args: &[&str]) -> Result<Output> {
        run(self.command(program).args(args))
    }

    /// Starts `program args…` inside this host; its output goes to `<host dir>/<name>.log`,
    /// and it gets SIGKILL when the returned guard drops.
    pub fn spawn(&self, name: &str, program: &str, args: &[&str]) -> Result<ChildGuard> {
        let mut cmd = self.command(program);
        cmd.args(args);
        self.spawn_command(name, cmd)
    }

    /// Like [`Host::spawn`] for a command built with [`Host::command`]. Returns once the child
    /// is inside the namespace, so its pid shows in [`Host::pids`] right away.
    pub fn spawn_command(&self, name: &str, cmd: Command) -> Result<ChildGuard> {
        let log = self.dir.join(format!("{name}.log"));
        let mut child = ChildGuard::spawn(format!("{}/{name}", self.name), cmd, Some(&log))?;
        self.wait_entered(&mut child)?;
        Ok(child)
    }

    /// Waits until `child` (still `ip netns exec` right after spawn) has joined the namespace,
    /// or has exited.
    fn wait_entered(&self, child: &mut ChildGuard) -> Result<()> {
        let expected = names::netns_link_target(&self.netns)
            .ok_or_else(|| LabError::Invalid(format!("namespace {} does not exist", self.netns)))?;
        let ns_link = format!("/proc/{}/ns/net", child.pid());
        crate::wait::wait_until(
            &format!("{} to enter {}", child.name(), self.netns),
            Duration::from_secs(10),
            Duration::from_millis(2),
            || {
                let entered = std::fs::read_link(&ns_link)
                    .is_ok_and(|target| target.as_os_str() == expected.as_str());
                match child.try_wait() {
                    _ if entered => Ok(()),
                    Ok(Some(_)) | Err(_) => Ok(()),
                    Ok(None) => Err("still outside"),
                }
            },
        )
    }

    /// Whether one `ping` to `target` from this host is answered within a second.
    pub fn ping(&self, target: Ipv4Addr) -> Result<bool> {
        let out = self.run_unchecked("ping", &["-n", "-q", "-c1", "-W1", &target.to_string()])?;
        Ok(out.status.success())
    }

    /// Cuts its cable: the host-side veth goes down, so nothing enters or leaves `eth0`.
    pub fn link_down(&self) -> Result<()> {
        ip(&["link", "set", &self.veth, "down"])
    }

    /// Plugs its cable back in.
    pub fn link_up(&self) -> Result<()> {
        ip(&["link", "set", &self.veth, "up"])
    }

    /// Whether its veth is currently on the partition bridge.
    pub fn is_partitioned(&self) -> bool {
        std::fs::read_link(format!("/sys/class/net/{}/master", self.veth))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .is_some_and(|master| master == self.partition_bridge)
    }

    /// Drops `percent` of the packets leaving its `eth0` at random, replacing an earlier
    /// setting. Uses an nftables `numgen random` rule rather than `tc netem`: the kernels of
    /// these machines are built without the netem qdisc, while nf_tables is always there.
    pub fn set_loss(&self, percent: f64) -> Result<()> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(LabError::Invalid(format!(
                "loss of {percent}% is not a percentage"
            )));
        }
        self.clear_loss()?;
        let per_10k = (percent * 100.0).round() as u32;
        if per_10k == 0 {
            return Ok(());
        }
        // numgen's range is 0..=9999, so total loss is a plain drop.
        let chance = if per_10k >= 10_000 {
            String::new()
        } else {
            format!("numgen random mod 10000 < {per_10k} ")
        };
        let rules = format!(
            "table inet {LOSS_TABLE} {{\n  chain egress {{\n    type filter hook output priority 0; policy accept;\n    oifname \"eth0\" {chance}drop\n  }}\n}}\n"
        );
        let file = self.dir.join("loss.nft");
        std::fs::write(&file, rules)
            .map_err(|e| LabError::io(format!("writing {}", file.display()), e))?;
        let file = file.display().to_string();
        self.run("nft", &["-f", &file]).map(drop)
    }

    /// Removes the loss rule again; does nothing when there is none.
    pub fn clear_loss(&self) -> Result<()> {
        let listed = self.run_unchecked("nft", &["list", "tables"])?;
        if String::from_utf8_lossy(&listed.stdout).contains(LOSS_TABLE) {
            self.run("nft", &["delete", "table", "inet", LOSS_TABLE])?;
        }
        Ok(())
    }

    /// Bytes this host has sent: the host-side veth's `rx_bytes`.
    pub fn bytes_sent(&self) -> Result<u64> {
        self.veth_counter("rx_bytes")
    }

    /// Bytes delivered to this host: the host-side veth's `tx_bytes`.
    pub fn bytes_received(&self) -> Result<u64> {
        self.veth_counter("tx_bytes")
    }

    fn veth_counter(&self, counter: &str) -> Result<u64> {
        let path = format!("/sys/class/net/{}/statistics/{counter}", self.veth);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| LabError::io(format!("reading {path}"), e))?;
        text.trim().parse().map_err(|_| LabError::Parse {
            what: path,
            detail: format!("not a number: {text:?}"),
        })
    }

    /// Pids of every process inside this host's namespace.
    pub fn pids(&self) -> Vec<u32> {
        names::netns_pids(&self.netns)
    }
}

fn ip(args: &[&str]) -> Result<()> {
    run_ok(Command::new("ip").args(args)).map(drop)
}

/// Turns IPv6 off on an interface of the harness's own namespace, so that the host never
/// speaks on the lab's bridges. Best effort: a kernel without IPv6 has nothing to turn off.
fn disable_ipv6_here(ifname: &str) {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    let _ = std::fs::write(path, "1");
}
