//! The contract between the microk8s adapter and the simulator: the agent's real CLI adapter
//! (`CliMicrok8s`, spawning a `microk8s` executable) drives simulated hosts through the whole
//! workflow the agent relies on, and every output it reads parses; every failure it meets is
//! classified as the real CLI's would be.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use microk8s_sim::loopback::{Host, Lab, fast_config};
use microk8s_sim::machine::Machine;
use muster::microk8s::{
    CliConfig, CliMicrok8s, Expected, JoinFailure, JoinRejection, JoinToken, Microk8s,
    Microk8sError, Readiness, Role, Status, TokenTtl, verify_joined, verify_removed,
};
use muster_tests::sim_bin;

/// A `microk8s` link (in `links/<name>`) to the simulator binary, bound to one simulated
/// host's state directory: step one of the simulator's own recipe. The host's daemon runs
/// in-process in the loopback lab, so the recipe's `serve` is not needed here.
fn microk8s_for(links: &Path, host: &Host) -> PathBuf {
    Machine {
        exe: sim_bin().expect("microk8s-sim is built"),
        link_dir: links.join(&host.name),
        state_dir: host.state.clone(),
        hostname: host.name.clone(),
        ip: host.ip,
    }
    .link()
    .expect("microk8s-sim link")
}

fn adapter(program: PathBuf) -> CliMicrok8s {
    CliMicrok8s::new(CliConfig {
        program,
        ..CliConfig::default()
    })
}

fn wait<T>(rt: &tokio::runtime::Runtime, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        rt.block_on(tokio::time::sleep(Duration::from_millis(200)));
    }
}

#[test]
fn adapter_drives_join_verify_leave_and_remove_against_the_simulator() {
    let lab = Lab::new(61, &["alpha", "beta", "gamma"], fast_config());
    let links = tempfile::tempdir().expect("tempdir");
    let m: Vec<CliMicrok8s> = lab
        .hosts
        .iter()
        .map(|h| adapter(microk8s_for(links.path(), h)))
        .collect();
    let ip = |i: usize| -> IpAddr { lab.hosts[i].ip };
    let rt = &lab.rt;

    // A fresh node: running, one voter on loopback, not HA.
    match rt
        .block_on(m[0].status(Some(Duration::from_secs(10))))
        .expect("status")
    {
        Status::Running(s) => {
            assert!(!s.high_availability);
            assert!(s.is_standalone(), "{s:?}");
        }
        other => panic!("fresh node: {other:?}"),
    }

    // Entry issues a short-lived token; the follower joins with the URL on its subnet.
    let mut rng = rand::rng();
    let token = JoinToken::generate(&mut rng);
    let added = rt
        .block_on(m[0].add_node(&token, TokenTtl::Expires(Duration::from_secs(120))))
        .expect("add-node");
    assert_eq!(added.token.expose(), token.expose());
    let url = added
        .url_for(ip(0))
        .expect("a URL on the entry's address")
        .clone();
    let joined = rt
        .block_on(m[1].join(&url, Role::ControlPlane))
        .expect("join");
    assert!(joined.contacted.is_some(), "{joined:?}");

    // Verified, not just exit 0: Ready in the node list and in the datastore lines.
    wait(rt, "beta verified", || {
        let nodes = rt.block_on(m[0].nodes()).ok()?;
        let status = rt.block_on(m[0].status(None)).ok()?;
        verify_joined(
            &nodes,
            Some(&status),
            &Expected {
                name: "beta",
                ip: ip(1),
                role: Role::ControlPlane,
            },
        )
        .ok()
    });

    // A worker with a TTL token reused from the same add-node (TTL tokens are reusable).
    let url_gamma = added.url_for(ip(0)).expect("url").clone();
    rt.block_on(m[2].join(&url_gamma, Role::Worker))
        .expect("worker join");
    wait(rt, "gamma verified as worker", || {
        let nodes = rt.block_on(m[0].nodes()).ok()?;
        verify_joined(
            &nodes,
            None,
            &Expected {
                name: "gamma",
                ip: ip(2),
                role: Role::Worker,
            },
        )
        .ok()
    });
    let nodes = rt.block_on(m[0].nodes()).expect("nodes");
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(
        nodes.iter().all(|n| n.readiness == Readiness::Ready),
        "{nodes:?}"
    );

    // The kubeconfig names the entry's address.
    let kc = rt.block_on(m[0].kubeconfig()).expect("kubeconfig");
    assert!(
        kc.server().is_some_and(|s| s.contains(&ip(0).to_string())),
        "{:?}",
        kc.server()
    );

    // A single-use token is spent by its first join attempt.
    let once = JoinToken::generate(&mut rng);
    let single = rt
        .block_on(m[0].add_node(&once, TokenTtl::SingleUse))
        .expect("add-node");
    let url_once = single.url_for(ip(0)).expect("url").clone();
    // The entry joining its own URL fails (same IP, 503) after the token was consumed...
    match rt.block_on(m[0].join(&url_once, Role::ControlPlane)) {
        Err(Microk8sError::Join {
            failure:
                JoinFailure::Rejected {
                    reason: JoinRejection::SameIp,
                    ..
                },
            code,
            ..
        }) => assert_eq!(code, Some(6)),
        other => panic!("join to itself: {other:?}"),
    }
    // ...so the next join with the same token is refused as an invalid token (exit 6, 500).
    match rt.block_on(m[2].join(&url_once, Role::Worker)) {
        Err(Microk8sError::Join {
            failure:
                JoinFailure::Rejected {
                    reason: JoinRejection::InvalidToken,
                    ..
                },
            ..
        }) => {}
        other => panic!("reused single-use token: {other:?}"),
    }

    // Leave on the departing node, then remove-node on the entry: gone from both views.
    rt.block_on(m[1].leave()).expect("leave");
    rt.block_on(m[0].remove_node("beta", false))
        .expect("remove-node");
    wait(rt, "beta removed", || {
        let nodes = rt.block_on(m[0].nodes()).ok()?;
        let status = rt.block_on(m[0].status(None)).ok()?;
        verify_removed(&nodes, Some(&status), "beta", Some(ip(1))).ok()
    });
}

#[test]
fn unreachable_entry_and_wrong_fingerprint_are_classified() {
    let lab = Lab::new(62, &["alpha", "beta"], fast_config());
    let links = tempfile::tempdir().expect("tempdir");
    let m: Vec<CliMicrok8s> = lab
        .hosts
        .iter()
        .map(|h| adapter(microk8s_for(links.path(), h)))
        .collect();
    let rt = &lab.rt;
    let mut rng = rand::rng();
    let token = JoinToken::generate(&mut rng);
    let added = rt
        .block_on(m[0].add_node(&token, TokenTtl::Expires(Duration::from_secs(60))))
        .expect("add-node");
    let url = added.url_for(lab.hosts[0].ip).expect("url").clone();

    let wrong = muster::microk8s::JoinUrl::new(
        url.host(),
        url.port(),
        token.clone(),
        Some("000000000000".to_owned()),
    );
    match rt.block_on(m[1].join(&wrong, Role::ControlPlane)) {
        Err(Microk8sError::Join {
            failure: JoinFailure::Fingerprint { .. },
            code,
            ..
        }) => assert_eq!(code, Some(4)),
        other => panic!("wrong fingerprint: {other:?}"),
    }

    // Nothing listens on port 25000 of an unused loopback address.
    let nowhere = muster::microk8s::JoinUrl::new("127.0.62.99", 25000, token, None);
    match rt.block_on(m[1].join(&nowhere, Role::ControlPlane)) {
        Err(Microk8sError::Join {
            failure: JoinFailure::Unreachable { .. },
            code,
            ..
        }) => assert_eq!(code, Some(1)),
        other => panic!("unreachable entry: {other:?}"),
    }
}
