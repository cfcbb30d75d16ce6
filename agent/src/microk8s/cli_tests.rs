//! The CLI adapter against small shell-script stand-ins for `microk8s` written to a temp dir:
//! the exact arguments passed, exit-code handling, the `--format` fallback, timeouts, redaction.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::microk8s::error::{JoinFailure, JoinRejection};

const T: &str = "3f2c1a9e8d7b6c5a4f3e2d1c0b9a8f7e";

fn fixture_path(name: &str) -> String {
    format!(
        "{}/tests/fixtures/microk8s/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A fake `microk8s` that appends its arguments to `calls.log` and then runs `body`.
struct Fake {
    dir: tempfile::TempDir,
    program: PathBuf,
}

impl Fake {
    fn new(body: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let program = dir.path().join("microk8s");
        let log = dir.path().join("calls.log");
        let script = format!("#!/bin/sh\necho \"$*\" >> '{}'\n{body}\n", log.display());
        std::fs::write(&program, script).expect("write");
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self { dir, program }
    }

    fn cli(&self) -> CliMicrok8s {
        self.cli_with(Timeouts::default())
    }

    fn cli_with(&self, timeouts: Timeouts) -> CliMicrok8s {
        CliMicrok8s::new(CliConfig {
            program: self.program.clone(),
            timeouts,
        })
    }

    fn calls(&self) -> Vec<String> {
        let log = self.dir.path().join("calls.log");
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn path(&self) -> &Path {
        &self.program
    }
}

fn token() -> JoinToken {
    JoinToken::new(T).expect("valid")
}

#[tokio::test]
async fn status_asks_for_yaml_and_passes_wait_ready() {
    let fake = Fake::new(&format!("cat '{}'", fixture_path("status-yaml-ha.txt")));
    let cli = fake.cli();
    let s = cli.status(None).await.expect("status");
    assert_eq!(s.running().map(|c| c.voters().count()), Some(3));
    cli.status(Some(Duration::from_secs(30)))
        .await
        .expect("status");
    cli.status(Some(Duration::from_millis(1)))
        .await
        .expect("status");
    assert_eq!(
        fake.calls(),
        [
            "status --format yaml",
            "status --format yaml --wait-ready --timeout 30",
            "status --format yaml --wait-ready --timeout 1"
        ]
    );
}

#[tokio::test]
async fn status_not_ready_exit_1_is_a_status() {
    let fake = Fake::new(&format!(
        "cat '{}'; exit 1",
        fixture_path("status-yaml-not-running.txt")
    ));
    assert!(matches!(
        fake.cli().status(None).await,
        Ok(Status::NotReady { .. })
    ));
}

#[tokio::test]
async fn add_node_passes_token_ttl_and_json_format() {
    let fake = Fake::new(&format!("cat '{}'", fixture_path("add-node-json.txt")));
    let out = fake
        .cli()
        .add_node(&token(), TokenTtl::Expires(Duration::from_secs(300)))
        .await
        .expect("add-node");
    assert_eq!(out.urls.len(), 3);
    assert_eq!(
        fake.calls(),
        [format!(
            "add-node --token {T} --token-ttl 300 --format json"
        )]
    );
}

#[tokio::test]
async fn add_node_falls_back_to_pretty_output_once_format_is_refused() {
    let body = format!(
        "case \"$*\" in *--format*) cat '{}' >&2; exit 2;; esac\ncat '{}'",
        fixture_path("add-node-old-format.stderr.txt"),
        fixture_path("add-node-pretty-1.19.txt")
    );
    let fake = Fake::new(&body);
    let cli = fake.cli();
    let out = cli
        .add_node(&token(), TokenTtl::SingleUse)
        .await
        .expect("add-node");
    assert_eq!(out.fingerprint, None);
    assert_eq!(out.urls[0].host(), "10.0.0.1");
    cli.add_node(&token(), TokenTtl::SingleUse)
        .await
        .expect("add-node");
    let with = format!("add-node --token {T} --token-ttl -1 --format json");
    let without = format!("add-node --token {T} --token-ttl -1");
    assert_eq!(fake.calls(), [with, without.clone(), without]);
}

#[tokio::test]
async fn add_node_errors_never_show_the_token() {
    let fake = Fake::new(&format!(
        "echo 'microk8s join 10.0.0.1:25000/{T}'; echo 'Failed to call utility function.'; exit 1"
    ));
    let e = fake
        .cli()
        .add_node(&token(), TokenTtl::SingleUse)
        .await
        .expect_err("fails");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(T), "{shown}");
    assert!(
        shown.contains("add-node --token <redacted> --token-ttl -1 --format json"),
        "{shown}"
    );
    assert_eq!(e.exit_code(), Some(1));
}

#[tokio::test]
async fn join_classifies_rejections_and_redacts() {
    let fake = Fake::new(&format!(
        "cat '{}'; exit 6",
        fixture_path("join-invalid-token.txt")
    ));
    let url = JoinUrl::parse(&format!("10.0.0.1:25000/{T}/a1b2c3d4e5f6")).expect("valid");
    let e = fake
        .cli()
        .join(&url, Role::ControlPlane)
        .await
        .expect_err("rejected");
    match &e {
        Microk8sError::Join {
            code: Some(6),
            failure: JoinFailure::Rejected { reason, .. },
            ..
        } => {
            assert_eq!(*reason, JoinRejection::InvalidToken);
        }
        other => panic!("{other:?}"),
    }
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(T), "{shown}");
    assert!(
        shown.contains("join 10.0.0.1:25000/<redacted>/a1b2c3d4e5f6"),
        "{shown}"
    );
    assert_eq!(
        fake.calls(),
        [format!("join 10.0.0.1:25000/{T}/a1b2c3d4e5f6")]
    );
}

#[tokio::test]
async fn join_as_worker_and_success() {
    let fake = Fake::new(&format!(
        "cat '{}'",
        fixture_path("join-worker-success.txt")
    ));
    let url = JoinUrl::parse(&format!("10.0.0.1:25000/{T}")).expect("valid");
    let ok = fake.cli().join(&url, Role::Worker).await.expect("joined");
    assert!(ok.confirmed);
    assert_eq!(fake.calls(), [format!("join 10.0.0.1:25000/{T} --worker")]);
}

#[tokio::test]
async fn join_timeout_kills_and_reports() {
    let fake = Fake::new("echo 'Contacting cluster at 10.0.0.1'; sleep 30");
    let url = JoinUrl::parse(&format!("10.0.0.1:25000/{T}")).expect("valid");
    let timeouts = Timeouts {
        join: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let started = std::time::Instant::now();
    let e = fake
        .cli_with(timeouts)
        .join(&url, Role::ControlPlane)
        .await
        .expect_err("times out");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(e, Microk8sError::Timeout { .. }), "{e:?}");
    assert!(!e.to_string().contains(T), "{e}");
}

#[tokio::test]
async fn leave_and_remove_node_arguments_and_outcomes() {
    let fake = Fake::new(&format!(
        "case \"$1\" in leave) cat '{}'; exit 3;; remove-node) cat '{}'; exit 1;; esac",
        fixture_path("leave-only-voter.txt"),
        fixture_path("remove-node-ghost-purged.txt")
    ));
    let cli = fake.cli();
    let e = cli.leave().await.expect_err("only voter");
    assert!(
        matches!(
            e,
            Microk8sError::Leave {
                failure: crate::microk8s::LeaveFailure::OnlyVoter,
                ..
            }
        ),
        "{e:?}"
    );
    let out = cli.remove_node("10.0.0.3", true).await.expect("outcome");
    assert_eq!(
        out,
        RemoveOutcome::NotInKubernetes {
            dqlite_checked: true,
            purged_from_dqlite: true
        }
    );
    assert_eq!(fake.calls(), ["leave", "remove-node 10.0.0.3 --force"]);
}

#[tokio::test]
async fn queries_nodes_config_version() {
    let fake = Fake::new(&format!(
        "case \"$1\" in kubectl) cat '{}';; config) cat '{}';; version) cat '{}'; exit 1;; esac",
        fixture_path("nodes.json"),
        fixture_path("config-x509.txt"),
        fixture_path("version-unknown.txt")
    ));
    let cli = fake.cli();
    assert_eq!(cli.nodes().await.expect("nodes").len(), 4);
    let k = cli.kubeconfig().await.expect("config");
    assert_eq!(k.server(), Some("https://10.0.0.1:16443"));
    assert_eq!(cli.version().await.expect("version"), None);
    assert_eq!(
        fake.calls(),
        ["kubectl get nodes -o json", "config", "version"]
    );
}

#[tokio::test]
async fn missing_executable_names_the_configured_path() {
    let cli = CliMicrok8s::new(CliConfig {
        program: "/nonexistent/bin/microk8s".into(),
        ..CliConfig::default()
    });
    let e = cli.status(None).await.expect_err("not installed");
    assert!(matches!(e, Microk8sError::Spawn { .. }));
    assert!(e.to_string().contains("/nonexistent/bin/microk8s"), "{e}");
}

#[test]
fn defaults_and_config_parsing() {
    let c = CliConfig::default();
    assert_eq!(c.program, PathBuf::from("/snap/bin/microk8s"));
    assert!(c.timeouts.join >= Duration::from_secs(300));
    let parsed: CliConfig =
        serde_json::from_str(r#"{"program":"/opt/mk","timeouts":{"join":"2m"}}"#).expect("parses");
    assert_eq!(parsed.program, PathBuf::from("/opt/mk"));
    assert_eq!(parsed.timeouts.join, Duration::from_secs(120));
    assert_eq!(parsed.timeouts.leave, Timeouts::default().leave);
    assert!(serde_json::from_str::<CliConfig>(r#"{"progrm":"/x"}"#).is_err());
    let fake = Fake::new("true");
    assert_eq!(fake.cli().config().program, fake.path());
}
