//! Tests of the recipe: the command lines [`Machine`] builds are the ones the binary's own
//! parser accepts, and `link` writes the link and the state file. The daemon's side (`wait`
//! against a running `serve`) is in `tests/machine.rs`, which has the built binary.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};

use super::*;

fn machine(dir: &Path) -> Machine {
    Machine::in_dir(
        "/opt/microk8s-sim",
        dir,
        "Alpha",
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
    )
}

fn strings(cmd: &Command) -> Vec<String> {
    cmd.get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn in_dir_puts_the_link_in_bin_and_the_state_in_state() {
    let m = machine(Path::new("/d"));
    assert_eq!(m.microk8s(), Path::new("/d/bin/microk8s"));
    assert_eq!(m.state_file(), Path::new("/d/bin/microk8s.sim-state"));
    assert_eq!(m.state_dir, Path::new("/d/state"));
}

#[test]
fn serve_binds_and_announces_the_machine_address() {
    let m = machine(Path::new("/d"));
    assert_eq!(
        strings(&m.serve_command()),
        [
            "serve",
            "--state-dir",
            "/d/state",
            "--bind",
            "198.18.0.1",
            "--hostname",
            "Alpha",
            "--ip",
            "198.18.0.1"
        ]
    );
    assert_eq!(m.serve_command().get_program(), "/opt/microk8s-sim");
    // What the binary's parser makes of it: the recipe and the CLI agree.
    let args: Vec<String> = m.serve_args()[1..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let parsed = crate::parse_sim_args(&args).expect("serve arguments parse");
    assert_eq!(parsed.state_dir.as_deref(), Some(Path::new("/d/state")));
    assert_eq!(parsed.hostname.as_deref(), Some("Alpha"));
    assert_eq!(parsed.ips, [m.ip]);
    assert_eq!(parsed.binds, [m.ip]);
}

#[test]
fn link_and_wait_command_lines_parse() {
    let m = machine(Path::new("/d"));
    let link = strings(&m.link_command());
    assert_eq!(link, ["link", "--dir", "/d/bin", "--state-dir", "/d/state"]);
    let parsed = crate::parse_sim_args(&link[1..]).expect("link arguments parse");
    assert_eq!(parsed.dir.as_deref(), Some(Path::new("/d/bin")));
    let wait = strings(&m.wait_command(Duration::from_millis(1500)));
    assert_eq!(
        wait,
        ["wait", "--state-dir", "/d/state", "--timeout-ms", "1500"]
    );
    let parsed = crate::parse_sim_args(&wait[1..]).expect("wait arguments parse");
    assert_eq!(parsed.timeout_ms, Some(1500));
}

#[test]
fn link_subcommand_writes_the_link_and_the_state_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = machine(dir.path());
    // In-process, so the link points at this test executable; the file layout is the point.
    let args: Vec<OsString> = strings(&m.link_command())
        .into_iter()
        .map(OsString::from)
        .collect();
    assert_eq!(crate::sim_main(args.clone()), 0);
    let target = std::fs::read_link(m.microk8s()).expect("microk8s is a symlink");
    assert_eq!(target, std::env::current_exe().expect("current exe"));
    assert_eq!(
        std::fs::read_to_string(m.state_file()).expect("state file"),
        m.state_dir.display().to_string()
    );
    // Linking again replaces the link instead of failing on it.
    assert_eq!(crate::sim_main(args), 0);
}

#[test]
fn wait_without_a_state_dir_is_a_usage_error() {
    assert_eq!(crate::sim_main(vec!["wait".into()]), 64);
}
