//! avahi as an independent mDNS observer: what a stock Linux client sees of muster's adverts.
//!
//! avahi-browse talks to avahi-daemon over the system D-Bus, which is one bus for the whole
//! machine while the daemon's sockets live in one network namespace. [`SystemBus`] starts a
//! system bus when none runs (and stops it only if it started it); [`AvahiHost::start_avahi`]
//! starts `avahi-daemon` inside one observer [`Host`], with a config that keeps it on `eth0`,
//! IPv4, and a neutral host name; [`AvahiDaemon::browse`] runs `avahi-browse -rpt` and
//! [`parse_browse`] turns its `=;…` lines into [`AvahiService`]s. Only one avahi-daemon can
//! own the bus name at a time, so daemons started here take turns (a process-wide lock).

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use muster_lab::process::{run, run_ok, send_signal};
use muster_lab::{ChildGuard, Host, LabError, Result, Signal, wait_until};

/// The system bus socket avahi's clients connect to.
pub const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// Packages the avahi helpers need (Debian names).
pub const PACKAGES: &[&str] = &["avahi-daemon", "avahi-utils", "dbus"];

/// The observer's mDNS host name; it must not announce the real machine's name on a lab.
pub const OBSERVER_HOST_NAME: &str = "muster-observer";

#[derive(Debug, Default)]
struct BusState {
    users: usize,
    started_pid: Option<u32>,
}

static BUS: Mutex<BusState> = Mutex::new(BusState {
    users: 0,
    started_pid: None,
});

static AVAHI_TURN: Mutex<()> = Mutex::new(());

/// A reference to the machine's system D-Bus. The first reference starts a bus when none
/// answers; the last one stops it again, but only if this process started it.
#[derive(Debug)]
pub struct SystemBus(());

impl SystemBus {
    /// Makes sure a system bus answers on [`SYSTEM_BUS_SOCKET`].
    pub fn ensure() -> Result<Self> {
        let mut state = BUS.lock().unwrap_or_else(PoisonError::into_inner);
        if state.users == 0 && UnixStream::connect(SYSTEM_BUS_SOCKET).is_err() {
            std::fs::create_dir_all("/run/dbus")
                .map_err(|e| LabError::io("creating /run/dbus", e))?;
            // A bus that died without cleanup leaves its pid file, and dbus-daemon refuses
            // to start while it exists.
            let _ = std::fs::remove_file("/run/dbus/pid");
            let out =
                run_ok(Command::new("dbus-daemon").args(["--system", "--fork", "--print-pid"]))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let pid = text.trim().parse().map_err(|_| LabError::Parse {
                what: "dbus-daemon --print-pid output".to_owned(),
                detail: format!("not a pid: {text:?}"),
            })?;
            state.started_pid = Some(pid);
            wait_until(
                "the system bus to accept connections",
                Duration::from_secs(10),
                Duration::from_millis(20),
                || {
                    UnixStream::connect(SYSTEM_BUS_SOCKET)
                        .map(drop)
                        .map_err(|e| e.to_string())
                },
            )?;
        }
        state.users += 1;
        Ok(Self(()))
    }

    /// The pid of the bus this process started, if it started one.
    pub fn started_pid() -> Option<u32> {
        BUS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .started_pid
    }
}

impl Drop for SystemBus {
    fn drop(&mut self) {
        let mut state = BUS.lock().unwrap_or_else(PoisonError::into_inner);
        state.users = state.users.saturating_sub(1);
        if state.users == 0
            && let Some(pid) = state.started_pid.take()
            && let Err(err) = send_signal(pid, Signal::Term)
        {
            eprintln!("harness: could not stop the system bus (pid {pid}): {err}");
        }
    }
}

/// The avahi-daemon config the observer runs with.
pub fn observer_config() -> String {
    format!(
        "[server]\nhost-name={OBSERVER_HOST_NAME}\nuse-ipv4=yes\nuse-ipv6=no\n\
         allow-interfaces=eth0\nratelimit-interval-usec=1000000\nratelimit-burst=1000\n\
         [wide-area]\nenable-wide-area=no\n\
         [publish]\npublish-hinfo=no\npublish-workstation=no\n"
    )
}

/// An `avahi-daemon` running inside one lab host. Stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct AvahiDaemon {
    // Fields drop in order: the daemon first, then the bus it used, then the turn.
    child: ChildGuard,
    host: Host,
    _bus: SystemBus,
    _turn: MutexGuard<'static, ()>,
}

/// Running the avahi observer on a lab host: `host.start_avahi()`.
///
/// An extension of [`muster_lab::Host`]; bring it into scope with
/// `use muster_tests::AvahiHost`.
pub trait AvahiHost {
    /// Starts `avahi-daemon --no-drop-root --no-chroot` inside this host (in the foreground,
    /// owned by the returned guard) and waits until clients can reach it over D-Bus.
    /// Waits for its turn while another avahi-daemon of this process runs.
    fn start_avahi(&self) -> Result<AvahiDaemon>;
}

impl AvahiHost for Host {
    fn start_avahi(&self) -> Result<AvahiDaemon> {
        let turn = AVAHI_TURN.lock().unwrap_or_else(PoisonError::into_inner);
        let bus = SystemBus::ensure()?;
        // `--check` exits 0 when the pid file names a live daemon.
        if run(Command::new("avahi-daemon").arg("--check"))?
            .status
            .success()
        {
            return Err(LabError::Invalid(
                "an avahi-daemon already runs on this machine (see /run/avahi-daemon/pid); \
                 stop it before running the avahi tests"
                    .to_owned(),
            ));
        }
        let config = self.dir().join("avahi-daemon.conf");
        std::fs::write(&config, observer_config())
            .map_err(|e| LabError::io(format!("writing {}", config.display()), e))?;
        let mut cmd = self.command("avahi-daemon");
        cmd.args(["--no-drop-root", "--no-chroot", "--no-rlimits", "-f"])
            .arg(&config);
        let mut child = self.spawn_command("avahi-daemon", cmd)?;
        let ready = wait_until(
            "avahi-daemon to answer on the system bus",
            Duration::from_secs(15),
            Duration::from_millis(100),
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    return Ok(Err(status));
                }
                let out = run(self
                    .command("avahi-browse")
                    .args(["-pt", "_muster-probe._tcp"]))
                .map_err(|e| e.to_string())?;
                if out.status.success() {
                    Ok(Ok(()))
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
                }
            },
        )?;
        if let Err(status) = ready {
            return Err(LabError::CommandFailed {
                command: child.command_line().to_owned(),
                status: format!("exited early: {status}"),
                stderr: child.log_tail(30),
            });
        }
        Ok(AvahiDaemon {
            child,
            host: self.clone(),
            _bus: bus,
            _turn: turn,
        })
    }
}

impl AvahiDaemon {
    /// The host it runs in.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Its process guard.
    pub fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// `avahi-browse -rpt <service_type>` inside the observer host, parsed: every resolved
    /// instance of `service_type` (e.g. `_muster._tcp`) currently in the daemon's cache.
    pub fn browse(&self, service_type: &str) -> Result<Vec<AvahiService>> {
        let out = self.host.run("avahi-browse", &["-rpt", service_type])?;
        Ok(parse_browse(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Publishes a service through this daemon with `avahi-publish -s` until the returned
    /// guard drops. `txt` entries are `key=value` strings.
    pub fn publish(
        &self,
        name: &str,
        service_type: &str,
        port: u16,
        txt: &[&str],
    ) -> Result<ChildGuard> {
        let mut cmd = self.host.command("avahi-publish");
        cmd.args(["-s", name, service_type, &port.to_string()])
            .args(txt);
        self.host.spawn_command("avahi-publish", cmd)
    }

    /// The daemon's output so far.
    pub fn log(&self) -> String {
        self.child.log()
    }
}

impl Drop for AvahiDaemon {
    fn drop(&mut self) {
        // SIGTERM lets it send goodbye packets and release the bus name cleanly.
        if let Err(err) = self.child.stop(Duration::from_secs(5)) {
            eprintln!("harness: stopping avahi-daemon: {err}");
        }
    }
}

/// One resolved service from `avahi-browse -rpt` (a line starting with `=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvahiService {
    /// Interface it was seen on, e.g. `eth0`.
    pub interface: String,
    /// `IPv4` or `IPv6`.
    pub protocol: String,
    /// Instance name, unescaped.
    pub name: String,
    /// Service type, e.g. `_muster._tcp`.
    pub service_type: String,
    /// Domain, normally `local`.
    pub domain: String,
    /// Target host name, e.g. `h1.local`.
    pub hostname: String,
    /// Address the host name resolved to.
    pub address: String,
    /// Port from the SRV record.
    pub port: u16,
    /// TXT record as key -> value (`""` for a key without `=`).
    pub txt: BTreeMap<String, String>,
}

/// Parses `avahi-browse -p -r` output; lines other than resolved (`=`) entries are skipped.
pub fn parse_browse(output: &str) -> Vec<AvahiService> {
    output.lines().filter_map(parse_resolved_line).collect()
}

fn parse_resolved_line(line: &str) -> Option<AvahiService> {
    let fields: Vec<&str> = line.splitn(10, ';').collect();
    let [
        kind,
        interface,
        protocol,
        name,
        service_type,
        domain,
        hostname,
        address,
        port,
        txt,
    ] = fields.as_slice()
    else {
        return None;
    };
    if *kind != "=" {
        return None;
    }
    Some(AvahiService {
        interface: (*interface).to_owned(),
        protocol: (*protocol).to_owned(),
        name: unescape_label(name),
        service_type: (*service_type).to_owned(),
        domain: (*domain).to_owned(),
        hostname: (*hostname).to_owned(),
        address: (*address).to_owned(),
        port: port.parse().ok()?,
        txt: parse_txt(txt),
    })
}

/// Undoes avahi's escaping of names in parsable output: `\.` and `\\` for those characters,
/// `\DDD` (decimal) for any other byte outside `[-_a-zA-Z0-9]`.
pub fn unescape_label(escaped: &str) -> String {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            let digits = &bytes[i + 1..bytes.len().min(i + 4)];
            if digits.len() == 3 && digits.iter().all(u8::is_ascii_digit) {
                let value = digits
                    .iter()
                    .fold(0_u32, |acc, d| acc * 10 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
            out.push(bytes[i + 1]);
            i += 2;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses avahi's TXT rendering: each string in double quotes, separated by one space, with
/// no escaping inside.
fn parse_txt(field: &str) -> BTreeMap<String, String> {
    let field = field.trim();
    let Some(inner) = field.strip_prefix('"').and_then(|f| f.strip_suffix('"')) else {
        return BTreeMap::new();
    };
    inner
        .split("\" \"")
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (entry.to_owned(), String::new()),
        })
        .collect()
}

/// Whether avahi's programs are installed (see [`PACKAGES`]).
pub fn avahi_installed() -> bool {
    [
        "avahi-daemon",
        "avahi-browse",
        "avahi-publish",
        "dbus-daemon",
    ]
    .iter()
    .all(|p| muster_lab::caps::find_program(p).is_some())
        && Path::new("/usr/share/dbus-1/system.conf").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_lines_are_parsed_and_others_skipped() {
        let output = "+;eth0;IPv4;h1;_muster._tcp;local\n\
            =;eth0;IPv4;h1;_muster._tcp;local;h1.local;198.18.0.1;7440;\"cluster=lab\" \"id=ab12\" \"flag\"\n\
            =;eth0;IPv4;Muster\\032on\\032h\\.2;_muster._tcp;local;h2.local;198.18.0.2;7440;\n";
        let services = parse_browse(output);
        assert_eq!(services.len(), 2);
        let first = &services[0];
        assert_eq!(
            (first.name.as_str(), first.address.as_str(), first.port),
            ("h1", "198.18.0.1", 7440)
        );
        assert_eq!(first.hostname, "h1.local");
        assert_eq!(first.txt["cluster"], "lab");
        assert_eq!(first.txt["id"], "ab12");
        assert_eq!(first.txt["flag"], "");
        assert_eq!(services[1].name, "Muster on h.2");
        assert!(services[1].txt.is_empty());
    }

    #[test]
    fn txt_values_may_hold_semicolons_and_equals_signs() {
        let line =
            "=;eth0;IPv4;h1;_muster._tcp;local;h1.local;198.18.0.1;7440;\"a=b;c=d\" \"e=f=g\"";
        let services = parse_browse(line);
        assert_eq!(services[0].txt["a"], "b;c=d");
        assert_eq!(services[0].txt["e"], "f=g");
    }

    #[test]
    fn escaped_labels_are_decoded() {
        assert_eq!(unescape_label(r"a\\b\.c\059d"), r"a\b.c;d");
        assert_eq!(unescape_label("caf\\195\\169"), "café");
    }
}
