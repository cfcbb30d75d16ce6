//! Running commands and owning child processes.
//!
//! [`run`] and [`run_ok`] run a command to completion and turn a failure into a
//! [`LabError`] that names the command line and quotes its stderr. [`ChildGuard`] owns a
//! long-running child: its output goes to a log file, and when the guard drops the child gets
//! SIGKILL and is reaped, so a failing test never leaves processes behind. Which network
//! namespace a command runs in is decided by the caller (see [`crate::Host::command`]).
//!
//! Signals other than SIGKILL go through the shell's `kill` builtin, because the workspace
//! denies `unsafe` and std only offers SIGKILL.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// How much of a failing command's output an error quotes.
const EXCERPT_CHARS: usize = 2000;

/// A signal the harness sends to its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: ask for a graceful shutdown.
    Term,
    /// SIGKILL: crash without any cleanup.
    Kill,
    /// SIGINT: as if Ctrl-C was pressed.
    Int,
    /// SIGHUP: commonly "reload".
    Hup,
    /// SIGSTOP: freeze the process (a hung peer).
    Stop,
    /// SIGCONT: resume a stopped process.
    Cont,
}

impl Signal {
    /// The name `kill -s` understands.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Int => "INT",
            Signal::Hup => "HUP",
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
        }
    }
}

/// The command line of `cmd`, quoted well enough for a human to rerun it.
pub fn describe(cmd: &Command) -> String {
    let mut line = quote(cmd.get_program());
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    line
}

fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The last [`EXCERPT_CHARS`] characters of a command's stderr, or of its stdout when stderr
/// is empty: the end is where tools print why they failed.
fn excerpt(output: &Output) -> String {
    let text = if output.stderr.iter().all(u8::is_ascii_whitespace) {
        String::from_utf8_lossy(&output.stdout)
    } else {
        String::from_utf8_lossy(&output.stderr)
    };
    let text = text.trim();
    let count = text.chars().count();
    if count <= EXCERPT_CHARS {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(count - EXCERPT_CHARS).collect();
    format!("...{tail}")
}

/// Runs `cmd` to completion with stdin closed and returns its output, whatever its exit status.
/// Fails only when the command cannot be started.
pub fn run(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            command: describe(cmd),
            source,
        })
}

/// Runs `cmd` to completion and fails with [`LabError::CommandFailed`] (quoting stderr)
/// unless it exits with status 0.
pub fn run_ok(cmd: &mut Command) -> Result<Output> {
    let output = run(cmd)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(LabError::CommandFailed {
            command: describe(cmd),
            status: output.status.to_string(),
            stderr: excerpt(&output),
        })
    }
}

/// Sends `signal` to process `pid` through the shell's `kill` builtin.
pub fn send_signal(pid: u32, signal: Signal) -> Result<()> {
    run_ok(
        Command::new("sh")
            .args(["-c", "kill -s \"$1\" \"$2\"", "sh"])
            .arg(signal.name())
            .arg(pid.to_string()),
    )
    .map(drop)
}

/// Resident set size of process `pid` in KiB, from the `VmRSS` line of `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(|e| LabError::io(format!("reading {path}"), e))?;
    parse_vm_rss(&status).ok_or_else(|| LabError::Parse {
        what: path,
        detail: "no VmRSS line (is the process a zombie or a kernel thread?)".to_owned(),
    })
}

/// The `VmRSS:   1234 kB` value of a `/proc/<pid>/status` text, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

/// A long-running child process that is killed (SIGKILL) and reaped when the guard drops.
///
/// Its stdout and stderr go to a log file (appended, after a header line naming the command)
/// so that a test can print them when it fails.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    command: String,
    child: Child,
    log: Option<PathBuf>,
    exited: Option<ExitStatus>,
}

impl ChildGuard {
    /// Starts `cmd` as a child called `name` (used in messages), stdin closed, stdout and stderr
    /// appended to `log` (discarded when `None`).
    pub fn spawn(name: impl Into<String>, mut cmd: Command, log: Option<&Path>) -> Result<Self> {
        let command = describe(&cmd);
        let (stdout, stderr) = match log {
            Some(path) => {
                let mut file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| LabError::io(format!("opening log {}", path.display()), e))?;
                writeln!(file, "=== lab: starting {command}")
                    .map_err(|e| LabError::io(format!("writing {}", path.display()), e))?;
                let copy = file
                    .try_clone()
                    .map_err(|e| LabError::io(format!("cloning {}", path.display()), e))?;
                (Stdio::from(file), Stdio::from(copy))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| LabError::Spawn {
                command: command.clone(),
                source,
            })?;
        Ok(Self {
            name: name.into(),
            command,
            child,
            log: log.map(Path::to_path_buf),
            exited: None,
        })
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command line it runs.
    pub fn command_line(&self) -> &str {
        &self.command
    }

    /// Its process id. Commands started through `ip netns exec` keep this pid, because `ip`
    /// execs the command after entering the namespace.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal`. Does nothing once the child has been reaped, because its pid may
    /// already belong to another process.
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        send_signal(self.pid(), signal)
    }

    /// Its exit status if it has exited (reaping it), `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self
                .child
                .try_wait()
                .map_err(|e| LabError::io(format!("waiting for {}", self.name), e))?;
        }
        Ok(self.exited)
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> Result<bool> {
        Ok(self.try_wait()?.is_none())
    }

    /// Waits up to `timeout` for it to exit; `None` if it still runs afterwards.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then reap. Returns the exit status.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        // An error here means it exited in between; wait() below tells.
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .map_err(|e| LabError::io(format!("reaping {}", self.name), e))?;
        self.exited = Some(status);
        Ok(status)
    }

    /// SIGTERM, wait up to `grace` for it to exit, then SIGKILL. Returns the exit status and
    /// whether it exited within the grace period.
    pub fn stop(&mut self, grace: Duration) -> Result<(ExitStatus, bool)> {
        self.signal(Signal::Term)?;
        match self.wait_timeout(grace)? {
            Some(status) => Ok((status, true)),
            None => Ok((self.kill()?, false)),
        }
    }

    /// Its resident set size in KiB (see [`rss_kib`]).
    pub fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.pid())
    }

    /// Path of its log file, if it has one.
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// Everything it has logged so far (empty without a log file or when unreadable).
    pub fn log(&self) -> String {
        self.log
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of its log, prefixed with its name; for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        let mut out = String::new();
        for line in &all[all.len().saturating_sub(lines)..] {
            let _ = writeln!(out, "[{}] {line}", self.name);
        }
        out
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Err(err) = self.kill() {
            eprintln!("lab: could not kill {}: {err}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tmuster\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(1234));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn describe_quotes_words_a_shell_would_split() {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", "h1", "sh", "-c", "echo it's"]);
        assert_eq!(describe(&cmd), r"ip netns exec h1 sh -c 'echo it'\''s'");
    }

    #[test]
    fn failing_command_error_quotes_stderr() {
        let err = run_ok(Command::new("sh").args(["-c", "echo boom >&2; exit 3"]))
            .expect_err("exit 3 is a failure");
        let text = err.to_string();
        assert!(text.contains("boom") && text.contains('3'), "{text}");
    }

    #[test]
    fn dropping_the_guard_kills_the_child() {
        let mut cmd = Command::new("sleep");
        cmd.arg("600");
        let guard = ChildGuard::spawn("sleeper", cmd, None).expect("sleep starts");
        let pid = guard.pid();
        drop(guard);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still exists"
        );
    }

    #[test]
    fn stop_sends_sigterm_first() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap 'exit 7' TERM; while :; do sleep 0.05; done"]);
        let mut guard = ChildGuard::spawn("trapper", cmd, None).expect("sh starts");
        std::thread::sleep(Duration::from_millis(200));
        let (status, graceful) = guard.stop(Duration::from_secs(5)).expect("stop works");
        assert!(graceful);
        assert_eq!(status.code(), Some(7));
    }
}
