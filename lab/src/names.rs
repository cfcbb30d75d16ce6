//! Names of the kernel objects a lab creates, and the sweep of leftovers.
//!
//! Every bridge, veth and namespace name embeds the pid of the process that created it and a
//! per-process sequence number that is never reused, so parallel tests, parallel test binaries
//! and the asynchronous deletion of veths never collide. Interface names stay within the
//! kernel's 15 characters: `mst` + a kind letter + pid and sequence in base 36
//! (`mstb1a2b-3`). Namespaces are `mst-<pid36>-<lab36>-h<N>`. The separator is `-`
//! because every letter is a base-36 digit.
//!
//! Because the owner's pid is in the name, [`sweep`] can remove what crashed runs left behind
//! without touching the labs of processes that still run. Creating the objects is
//! [`crate::Lab`]'s job.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{LabError, Result};
use crate::process::{Signal, run, run_ok, send_signal};

/// The prefix of every kernel object name the harness creates.
pub const PREFIX: &str = "mst";

/// Interface names longer than this are rejected by the kernel (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

static LINK_SEQ: AtomicU64 = AtomicU64::new(0);
static LAB_SEQ: AtomicU64 = AtomicU64::new(0);

/// What an interface created by the harness is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A lab's main bridge.
    Bridge,
    /// A lab's second bridge, which holds one side of a partition.
    PartitionBridge,
    /// The host-side end of a host's veth pair.
    Veth,
}

impl LinkKind {
    fn letter(self) -> char {
        match self {
            LinkKind::Bridge => 'b',
            LinkKind::PartitionBridge => 'p',
            LinkKind::Veth => 'v',
        }
    }
}

/// `n` in base 36, lowercase.
pub fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_base36(text: &str) -> Option<u64> {
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        return None;
    }
    u64::from_str_radix(text, 36).ok()
}

/// A fresh lab tag `<pid36>-<seq36>` and the lab's sequence number.
pub fn next_lab_tag() -> (String, u64) {
    let seq = LAB_SEQ.fetch_add(1, Ordering::Relaxed);
    (
        format!("{}-{}", base36(u64::from(std::process::id())), base36(seq)),
        seq,
    )
}

/// The namespace name of host `host` (e.g. `h1`) in the lab tagged `lab_tag`.
pub fn netns_name(lab_tag: &str, host: &str) -> String {
    format!("{PREFIX}-{lab_tag}-{host}")
}

/// A fresh interface name of `kind` that does not exist on this machine right now.
pub fn next_link_name(kind: LinkKind) -> String {
    let pid = base36(u64::from(std::process::id()));
    loop {
        let seq = LINK_SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}{pid}-{}", kind.letter(), base36(seq));
        // A leftover of an earlier process with the same pid may still be there.
        if !link_exists(&name) {
            return name;
        }
    }
}

/// Whether an interface of that name exists in the harness's own namespace.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The pid embedded in a harness interface name (`mst` + kind + `<pid36>-<seq36>`).
pub fn link_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let rest = rest
        .strip_prefix('b')
        .or_else(|| rest.strip_prefix('p'))
        .or_else(|| rest.strip_prefix('v'))?;
    owner_of_tag(rest)
}

/// The pid embedded in a harness namespace name (`mst-<pid36>-<lab36>-<host>`).
pub fn netns_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?.strip_prefix('-')?;
    let (pid, rest) = rest.split_once('-')?;
    let (lab, host) = rest.split_once('-')?;
    if host.is_empty() {
        return None;
    }
    owner_of_tag(&format!("{pid}-{lab}"))
}

fn owner_of_tag(tag: &str) -> Option<u32> {
    let (pid, seq) = tag.split_once('-')?;
    parse_base36(seq)?;
    u32::try_from(parse_base36(pid)?).ok()
}

/// Whether process `pid` exists (a zombie counts as gone).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start())
            .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Names of all network namespaces (`ip netns list`).
pub fn list_netns() -> Result<Vec<String>> {
    let out = run_ok(Command::new("ip").args(["netns", "list"]))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Names of all interfaces in the harness's own namespace.
pub fn list_links() -> Result<Vec<String>> {
    let dir = std::fs::read_dir("/sys/class/net")
        .map_err(|e| LabError::io("listing /sys/class/net", e))?;
    Ok(dir
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect())
}

/// Pids of the processes inside namespace `netns` (`ip netns pids`).
pub fn netns_pids(netns: &str) -> Vec<u32> {
    run(Command::new("ip").args(["netns", "pids", netns]))
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs every process inside `netns` and waits briefly until they are gone; daemons that
/// forked away from their guard (avahi-daemon -D) die here too.
pub fn kill_netns_processes(netns: &str) {
    let Some(inside) = netns_link_target(netns) else {
        return;
    };
    let pids = netns_pids(netns);
    for &pid in &pids {
        // Pids wrap quickly on small pid_max; kill only what is still inside the namespace.
        let still_inside = std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .is_ok_and(|target| target.as_os_str() == inside.as_str());
        if still_inside {
            // It may have exited since it was checked.
            let _ = send_signal(pid, Signal::Kill);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while pids.iter().any(|&p| pid_alive(p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// What `/proc/<pid>/ns/net` reads for a process inside namespace `netns` (`net:[<inode>]`),
/// or `None` when the namespace does not exist.
pub fn netns_link_target(netns: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(format!("/run/netns/{netns}")).ok()?.ino();
    Some(format!("net:[{inode}]"))
}

/// What [`sweep`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Namespaces deleted (their processes killed first).
    pub netns: Vec<String>,
    /// Interfaces deleted (bridges and host-side veths).
    pub links: Vec<String>,
    /// Lab directories (logs, agent data) deleted from the temporary directory.
    pub dirs: Vec<std::path::PathBuf>,
}

/// The prefix of lab directories in the temporary directory: `muster-lab-<pid36>-<lab36>-…`.
pub const LAB_DIR_PREFIX: &str = "muster-lab-";

/// The pid embedded in a lab directory's name.
pub fn lab_dir_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(LAB_DIR_PREFIX)?;
    let mut parts = rest.splitn(3, '-');
    let (pid, lab) = (parts.next()?, parts.next()?);
    parts.next()?;
    owner_of_tag(&format!("{pid}-{lab}"))
}

/// Removes namespaces, interfaces and lab directories with the harness's name prefix whose
/// owning process no longer runs: what test runs that crashed or were killed left behind.
/// Objects of this process and of other live processes are kept, so sweeping is safe while
/// other labs run. Lab directories are kept while [`crate::netns::KEEP_DIR_ENV`] is set.
pub fn sweep() -> Result<SweepReport> {
    let me = std::process::id();
    let stale = |owner: Option<u32>| owner.is_some_and(|pid| pid != me && !pid_alive(pid));
    let mut report = SweepReport::default();
    for ns in list_netns()? {
        if stale(netns_owner(&ns)) {
            kill_netns_processes(&ns);
            run_ok(Command::new("ip").args(["netns", "del", &ns]))?;
            report.netns.push(ns);
        }
    }
    // Veths first: a bridge goes more quietly once its ports are gone.
    let mut links: Vec<String> = list_links()?
        .into_iter()
        .filter(|l| stale(link_owner(l)))
        .collect();
    links.sort_by_key(|l| !l.starts_with(&format!("{PREFIX}v")));
    for link in links {
        let out = run(Command::new("ip").args(["link", "del", &link]))?;
        // Deleting a namespace removes its veths in the background; gone is fine.
        if out.status.success() || !link_exists(&link) {
            report.links.push(link);
        } else {
            return Err(LabError::CommandFailed {
                command: format!("ip link del {link}"),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
    }
    if std::env::var_os(crate::netns::KEEP_DIR_ENV).is_none() {
        let tmp = std::env::temp_dir();
        let entries = std::fs::read_dir(&tmp)
            .map_err(|e| LabError::io(format!("listing {}", tmp.display()), e))?;
        for entry in entries.filter_map(|e| e.ok()) {
            if stale(lab_dir_owner(&entry.file_name().to_string_lossy())) {
                let path = entry.path();
                std::fs::remove_dir_all(&path)
                    .map_err(|e| LabError::io(format!("removing {}", path.display()), e))?;
                report.dirs.push(path);
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_round_trips() {
        for n in [0_u64, 1, 35, 36, 4_194_304, u64::from(u32::MAX)] {
            assert_eq!(parse_base36(&base36(n)), Some(n));
        }
        assert_eq!(base36(4_194_304), "2hwcg");
    }

    #[test]
    fn link_names_fit_the_kernel_limit_and_name_their_owner() {
        for kind in [LinkKind::Bridge, LinkKind::PartitionBridge, LinkKind::Veth] {
            let name = next_link_name(kind);
            assert!(name.len() <= IFNAME_MAX, "{name}");
            assert_eq!(link_owner(&name), Some(std::process::id()));
        }
        // The largest pid Linux hands out, with a large sequence number, still fits.
        let worst = format!("mstv{}-{}", base36(4_194_304), base36(46_655));
        assert!(worst.len() <= IFNAME_MAX, "{worst}");
    }

    #[test]
    fn link_names_are_never_reused() {
        let a = next_link_name(LinkKind::Veth);
        let b = next_link_name(LinkKind::Veth);
        assert_ne!(a, b);
    }

    #[test]
    fn owners_are_parsed_only_from_harness_names() {
        assert_eq!(netns_owner("mst-2s-0-h1"), Some(100));
        assert_eq!(link_owner("mstb2s-0"), Some(100));
        // Every letter is a base-36 digit, the x of an earlier naming scheme included.
        assert_eq!(netns_owner("mst-hxs-x7-h1"), Some(23_248));
        assert_eq!(link_owner("mstvhxs-x7"), Some(23_248));
        for foreign in [
            "eth0",
            "mst",
            "mstb",
            "mstq2s-0",
            "mstb2s",
            "mstbZZ-1",
            "mst-2s-0-",
            "mst-2s-0",
            "h1",
        ] {
            assert_eq!(link_owner(foreign), None, "{foreign}");
            assert_eq!(netns_owner(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn lab_directories_name_their_owner() {
        assert_eq!(lab_dir_owner("muster-lab-2s-0-AbC123"), Some(100));
        assert_eq!(lab_dir_owner("muster-lab-2s-0"), None);
        assert_eq!(lab_dir_owner("muster-other-2s-0-x"), None);
    }

    #[test]
    fn this_process_is_alive() {
        assert!(pid_alive(std::process::id()));
    }
}
