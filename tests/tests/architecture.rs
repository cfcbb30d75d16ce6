//! The crate graph is the architecture: the claims of the README's crate table, checked with
//! `cargo tree` on every test run instead of trusted.
//!
//! - `muster-core` (the pure cores) depends on no runtime: no tokio, tonic, prost, hyper, log
//!   or sysinfo.
//! - `muster` (the agent) carries none of the simulator: no `microk8s-sim`.
//! - `microk8s-sim` and `muster-lab` depend on no crate of ours.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

/// The names of the crates `package` depends on at run time (normal edges), itself included.
fn normal_dependencies(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(cargo)
        .current_dir(&workspace)
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none"])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The workspace's own crates.
const OURS: [&str; 6] = [
    "muster",
    "muster-core",
    "muster-lab",
    "muster-proto",
    "muster-tests",
    "microk8s-sim",
];

#[test]
fn the_core_depends_on_no_runtime() {
    let deps = normal_dependencies("muster-core");
    for forbidden in ["tokio", "tonic", "prost", "hyper", "log", "sysinfo", "rand"] {
        assert!(
            !deps.contains(forbidden),
            "muster-core depends on {forbidden}: {deps:?}"
        );
    }
    for ours in OURS.iter().filter(|c| **c != "muster-core") {
        assert!(!deps.contains(*ours), "muster-core depends on {ours}");
    }
}

#[test]
fn the_agent_carries_none_of_the_simulator() {
    let deps = normal_dependencies("muster");
    assert!(
        !deps.contains("microk8s-sim"),
        "muster depends on microk8s-sim: {deps:?}"
    );
    assert!(deps.contains("muster-core"), "{deps:?}");
}

#[test]
fn the_simulator_and_the_lab_depend_on_no_crate_of_ours() {
    for package in ["microk8s-sim", "muster-lab"] {
        let deps = normal_dependencies(package);
        for ours in OURS.iter().filter(|c| **c != package) {
            assert!(!deps.contains(*ours), "{package} depends on {ours}");
        }
    }
}
