//! Runs one microk8s process with a deadline, and makes sure nothing it started outlives it.
//!
//! Owns spawning (stdin null, stdout/stderr captured), the timeout, and killing: the child is
//! made the leader of its own process group so that a timeout or a dropped future kills the
//! whole group — the `microk8s` wrapper runs bash, sudo and python underneath, and killing only
//! the wrapper would leave a half-finished `join` running. Knows nothing about what the output
//! means (`classify` does).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::classify::Output;
use super::error::{CommandLine, Microk8sError, excerpt};

/// The most output kept per stream; more than any microk8s command prints for a LAN cluster.
const MAX_OUTPUT: u64 = 8 * 1024 * 1024;

/// One process to run.
#[derive(Debug)]
pub struct Invocation<'a> {
    /// The executable.
    pub program: &'a Path,
    /// The real arguments (may contain secrets; never displayed).
    pub args: Vec<OsString>,
    /// The display form with secrets redacted.
    pub display: CommandLine,
    /// Kill the process group after this long.
    pub timeout: Duration,
    /// Secrets that may appear in the output (kept out of timeout excerpts).
    pub secrets: &'a [&'a str],
}

/// Kills the child's process group when dropped, unless disarmed after the child was reaped.
/// This covers both the timeout path and a caller dropping the future mid-command.
struct GroupKiller {
    pgid: Option<i32>,
}

impl GroupKiller {
    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            kill_group(pgid);
        }
    }
}

/// Sends SIGKILL to a whole process group.
#[allow(unsafe_code)]
fn kill_group(pgid: i32) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. The group is the
    // one our unreaped child leads, so its id cannot have been reused; ESRCH (already gone)
    // is fine to ignore.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

async fn read_capped<R: AsyncRead + Unpin>(
    reader: Option<R>,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    if let Some(r) = reader {
        r.take(MAX_OUTPUT).read_to_end(buf).await?;
    }
    Ok(())
}

/// Spawns, retrying briefly on ETXTBSY: exec fails while any process still holds the file
/// open for writing, which happens for a moment while a snap refresh (or a test) replaces it
/// and another thread forks.
async fn spawn(cmd: &mut tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    let mut attempts = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 10 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// Runs the invocation to completion or until its timeout.
///
/// Returns the output whatever the exit code; errors only when the process could not be
/// started ([`Microk8sError::Spawn`]), waited for ([`Microk8sError::Io`]), or ran out of time
/// ([`Microk8sError::Timeout`], after killing its process group).
pub async fn run(inv: Invocation<'_>) -> Result<Output, Microk8sError> {
    let mut cmd = tokio::process::Command::new(inv.program);
    cmd.args(&inv.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = spawn(&mut cmd)
        .await
        .map_err(|source| Microk8sError::Spawn {
            command: inv.display.clone(),
            program: PathBuf::from(inv.program),
            source,
        })?;
    let mut killer = GroupKiller {
        pgid: child.id().and_then(|id| i32::try_from(id).ok()),
    };
    let (stdout_pipe, stderr_pipe) = (child.stdout.take(), child.stderr.take());
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let finished = tokio::time::timeout(inv.timeout, async {
        let (o, e, status) = tokio::join!(
            read_capped(stdout_pipe, &mut stdout),
            read_capped(stderr_pipe, &mut stderr),
            child.wait()
        );
        o.and(e).and(status)
    })
    .await;
    match finished {
        Ok(Ok(status)) => {
            killer.disarm();
            Ok(Output {
                code: status.code(),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            })
        }
        Ok(Err(source)) => Err(Microk8sError::Io {
            command: inv.display,
            source,
        }),
        Err(_elapsed) => {
            drop(killer);
            // Reap the leader so no zombie is left; after SIGKILL this returns at once.
            let _ = child.wait().await;
            let so_far = excerpt(
                &String::from_utf8_lossy(&stdout),
                &String::from_utf8_lossy(&stderr),
                inv.secrets,
            );
            Err(Microk8sError::Timeout {
                command: inv.display,
                timeout: inv.timeout,
                excerpt: so_far,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    pub(crate) fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn inv<'a>(program: &'a Path, timeout: Duration) -> Invocation<'a> {
        Invocation {
            program,
            args: vec!["a".into(), "b c".into()],
            display: CommandLine::new("fake", ["a", "b c"]),
            timeout,
            secrets: &[],
        }
    }

    #[tokio::test]
    async fn captures_both_streams_exit_code_and_arguments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = script(
            dir.path(),
            "m",
            "echo \"args:$1|$2\"; echo oops >&2; exit 6",
        );
        let out = run(inv(&p, Duration::from_secs(10))).await.expect("runs");
        assert_eq!(out.code, Some(6));
        assert_eq!(out.stdout, "args:a|b c\n");
        assert_eq!(out.stderr, "oops\n");
    }

    #[tokio::test]
    async fn stdin_is_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = script(
            dir.path(),
            "m",
            "if read x; then echo got; else echo eof; fi",
        );
        let out = run(inv(&p, Duration::from_secs(10))).await.expect("runs");
        assert_eq!(out.stdout, "eof\n");
    }

    #[tokio::test]
    async fn missing_executable_is_a_spawn_error_naming_the_path() {
        let p = PathBuf::from("/nonexistent/microk8s");
        let e = run(inv(&p, Duration::from_secs(1)))
            .await
            .expect_err("cannot spawn");
        assert!(matches!(e, Microk8sError::Spawn { .. }));
        assert!(e.to_string().contains("/nonexistent/microk8s"), "{e}");
    }

    /// Waits until `pid` is gone (killed and reaped by its parent or init).
    async fn gone(pid: i32) -> bool {
        for _ in 0..100 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // A zombie ("Z") no longer runs; it only waits for init to reap it.
            if stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z") {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group_and_keeps_partial_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("grandchild.pid");
        // The grandchild is what a sudo/python pair under the wrapper looks like.
        let body = format!(
            "sleep 30 & echo $! > {}\necho 'Contacting cluster at 10.0.0.1'\nwait",
            pidfile.display()
        );
        let p = script(dir.path(), "m", &body);
        let started = std::time::Instant::now();
        let e = run(inv(&p, Duration::from_millis(500)))
            .await
            .expect_err("times out");
        assert!(started.elapsed() < Duration::from_secs(10));
        match &e {
            Microk8sError::Timeout { excerpt, .. } => {
                assert!(excerpt.contains("Contacting cluster"), "{excerpt}")
            }
            other => panic!("{other:?}"),
        }
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid")
            .trim()
            .parse()
            .expect("number");
        assert!(gone(pid).await, "grandchild {pid} survived the timeout");
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("grandchild.pid");
        let body = format!("sleep 30 & echo $! > {}\nwait", pidfile.display());
        let p = script(dir.path(), "m", &body);
        let fut = run(inv(&p, Duration::from_secs(60)));
        let cancelled = tokio::time::timeout(Duration::from_millis(500), fut).await;
        assert!(cancelled.is_err(), "should still be running");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid")
            .trim()
            .parse()
            .expect("number");
        assert!(
            gone(pid).await,
            "grandchild {pid} survived the cancelled call"
        );
    }
}
