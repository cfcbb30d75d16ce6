//! The twin's semantics, and the verification helpers driven through it end to end: hosts,
//! tokens and joins here; leaving, removal and quorum in `fake_removal_tests.rs`.

use super::*;
use crate::microk8s::verify::{Expected, NotYet, verify_joined, verify_removed};
use rand::SeedableRng;

fn ip(n: u8) -> IpAddr {
    IpAddr::from([198, 18, 0, n])
}

struct Lab {
    model: MemoryCluster,
    hosts: Vec<FakeMicrok8s>,
    rng: rand::rngs::StdRng,
}

impl Lab {
    fn new(n: u8) -> Self {
        let model = MemoryCluster::new();
        let hosts = (1..=n)
            .map(|i| model.add_host(&format!("Node-{i}"), ip(i)))
            .collect();
        Self {
            model,
            hosts,
            rng: rand::rngs::StdRng::seed_from_u64(1),
        }
    }

    fn token(&mut self) -> JoinToken {
        JoinToken::generate(&mut self.rng)
    }

    /// `add-node` on host 0, `join` on host `i`.
    async fn join(
        &mut self,
        i: usize,
        role: Role,
        ttl: TokenTtl,
    ) -> Result<JoinOutcome, Microk8sError> {
        let token = self.token();
        let out = self.hosts[0].add_node(&token, ttl).await.expect("add-node");
        self.hosts[i].join(&out.urls[0], role).await
    }

    async fn view(&self) -> (Vec<NodeInfo>, Status) {
        (
            self.hosts[0].nodes().await.expect("nodes"),
            self.hosts[0].status(None).await.expect("status"),
        )
    }
}

fn expected(i: u8, role: Role) -> (String, IpAddr, Role) {
    (format!("node-{i}"), ip(i), role)
}

fn check(nodes: &[NodeInfo], status: &Status, e: &(String, IpAddr, Role)) -> Result<(), NotYet> {
    verify_joined(
        nodes,
        Some(status),
        &Expected {
            name: &e.0,
            ip: e.1,
            role: e.2,
        },
    )
}

fn voters(s: &Status) -> usize {
    s.running().map_or(0, |c| c.voters().count())
}

#[tokio::test]
async fn fresh_host_is_a_standalone_running_control_plane() {
    let lab = Lab::new(1);
    let (nodes, status) = lab.view().await;
    assert!(status.running().is_some_and(ClusterStatus::is_standalone));
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (nodes[0].name.as_str(), nodes[0].readiness),
        ("node-1", Readiness::Ready)
    );
    assert_eq!(
        lab.hosts[0]
            .version()
            .await
            .expect("version")
            .map(|v| v.minor),
        Some(32)
    );
}

#[tokio::test]
async fn first_join_rebinds_dqlite_and_three_voters_make_ha() {
    let mut lab = Lab::new(5);
    lab.join(1, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect("join 2");
    let (nodes, status) = lab.view().await;
    let c = status.running().expect("running");
    assert_eq!(c.datastore[0].address, "198.18.0.1:19001");
    assert!(!c.high_availability);
    assert_eq!(
        check(&nodes, &status, &expected(2, Role::ControlPlane)),
        Ok(())
    );

    lab.join(2, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect("join 3");
    lab.join(3, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect("join 4");
    lab.join(4, Role::Worker, TokenTtl::SingleUse)
        .await
        .expect("join 5");
    let (nodes, status) = lab.view().await;
    let c = status.running().expect("running");
    assert!(c.high_availability);
    let roles: Vec<DqliteRole> = c.datastore.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            DqliteRole::Voter,
            DqliteRole::Voter,
            DqliteRole::Voter,
            DqliteRole::Standby
        ]
    );
    for i in 2..=4 {
        assert_eq!(
            check(&nodes, &status, &expected(i, Role::ControlPlane)),
            Ok(()),
            "node {i}"
        );
    }
    assert_eq!(check(&nodes, &status, &expected(5, Role::Worker)), Ok(()));
    assert_eq!(
        lab.hosts[4].status(None).await.expect("status"),
        Status::Worker
    );
    assert!(matches!(
        lab.hosts[4].nodes().await,
        Err(Microk8sError::WorkerNode { .. })
    ));
    assert_eq!(lab.model.cluster_members("Node-1").len(), 5);
}

#[tokio::test]
async fn single_use_token_is_consumed_even_by_a_failed_join() {
    let mut lab = Lab::new(3);
    let token = lab.token();
    let url = lab.hosts[0]
        .add_node(&token, TokenTtl::SingleUse)
        .await
        .expect("add-node")
        .urls[0]
        .clone();
    lab.model.set_join_fault(
        "Node-2",
        JoinFault::Reject(JoinRejection::HostnameNotResolving),
    );
    let first = lab.hosts[1]
        .join(&url, Role::ControlPlane)
        .await
        .expect_err("rejected");
    assert!(matches!(
        first,
        Microk8sError::Join {
            failure: JoinFailure::Rejected {
                reason: JoinRejection::HostnameNotResolving,
                ..
            },
            ..
        }
    ));
    let retry = lab.hosts[1]
        .join(&url, Role::ControlPlane)
        .await
        .expect_err("token gone");
    assert!(matches!(
        retry,
        Microk8sError::Join {
            code: Some(6),
            failure: JoinFailure::Rejected {
                reason: JoinRejection::InvalidToken,
                status: Some(500),
                ..
            },
            ..
        }
    ));
}

#[tokio::test]
async fn ttl_tokens_are_reusable_until_they_expire() {
    let mut lab = Lab::new(3);
    let token = lab.token();
    let ttl = TokenTtl::Expires(Duration::from_secs(120));
    let url = lab.hosts[0]
        .add_node(&token, ttl)
        .await
        .expect("add-node")
        .urls[0]
        .clone();
    lab.hosts[1]
        .join(&url, Role::ControlPlane)
        .await
        .expect("first use");
    lab.model.advance(Duration::from_secs(121));
    let late = lab.hosts[2]
        .join(&url, Role::ControlPlane)
        .await
        .expect_err("expired");
    assert!(matches!(
        late,
        Microk8sError::Join {
            failure: JoinFailure::Rejected {
                reason: JoinRejection::InvalidToken,
                ..
            },
            ..
        }
    ));
    assert_eq!(lab.model.token_count("Node-1"), 1, "expired lines are kept");
}

#[tokio::test]
async fn tokens_are_node_local_and_checked_against_the_fingerprint() {
    let mut lab = Lab::new(3);
    let token = lab.token();
    let url = lab.hosts[0]
        .add_node(&token, TokenTtl::SingleUse)
        .await
        .expect("add-node")
        .urls[0]
        .clone();
    // The same token presented to node 3's agent is unknown there.
    let elsewhere = JoinUrl::new(ip(3).to_string(), 25000, token.clone(), None);
    let e = lab.hosts[1]
        .join(&elsewhere, Role::ControlPlane)
        .await
        .expect_err("unknown on node 3");
    assert!(matches!(
        e,
        Microk8sError::Join {
            failure: JoinFailure::Rejected {
                reason: JoinRejection::InvalidToken,
                ..
            },
            ..
        }
    ));
    let forged = JoinUrl::new(ip(1).to_string(), 25000, token, Some("000000000000".into()));
    let e = lab.hosts[1]
        .join(&forged, Role::ControlPlane)
        .await
        .expect_err("bad fingerprint");
    assert!(matches!(
        e,
        Microk8sError::Join {
            code: Some(4),
            failure: JoinFailure::Fingerprint { .. },
            ..
        }
    ));
    assert_eq!(url.fingerprint().map(str::len), Some(12));
}

#[tokio::test]
async fn join_errors_same_ip_unreachable_already_known() {
    let mut lab = Lab::new(3);
    let e = lab
        .join(0, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect_err("self");
    assert!(matches!(
        e,
        Microk8sError::Join {
            failure: JoinFailure::Rejected {
                reason: JoinRejection::SameIp,
                status: Some(503),
                ..
            },
            ..
        }
    ));
    lab.model.set_reachable("Node-1", false);
    let e = lab
        .join(1, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect_err("unreachable");
    assert!(matches!(
        e,
        Microk8sError::Join {
            code: Some(1),
            failure: JoinFailure::Unreachable { .. },
            ..
        }
    ));
    lab.model.set_reachable("Node-1", true);
    lab.join(1, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect("joins");
    let e = lab
        .join(1, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect_err("again");
    assert!(matches!(
        e,
        Microk8sError::Join {
            failure: JoinFailure::Rejected {
                reason: JoinRejection::AlreadyKnown,
                ..
            },
            ..
        }
    ));
}

#[tokio::test]
async fn silent_join_failure_exits_zero_but_never_verifies() {
    let mut lab = Lab::new(2);
    lab.model.set_join_fault("Node-2", JoinFault::Silent);
    let ok = lab
        .join(1, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect("exit 0");
    assert!(ok.confirmed);
    let (nodes, status) = lab.view().await;
    let got = check(&nodes, &status, &expected(2, Role::ControlPlane));
    assert_eq!(
        got,
        Err(NotYet::NotReady {
            name: "node-2".into(),
            readiness: Readiness::NotReady
        })
    );
}

#[tokio::test]
async fn stopped_and_worker_hosts_refuse_control_plane_commands_and_calls_are_redacted() {
    let mut lab = Lab::new(2);
    lab.join(1, Role::Worker, TokenTtl::SingleUse)
        .await
        .expect("join");
    let t = lab.token();
    assert!(matches!(
        lab.hosts[1].add_node(&t, TokenTtl::SingleUse).await,
        Err(Microk8sError::WorkerNode { .. })
    ));
    assert!(matches!(
        lab.hosts[1].kubeconfig().await,
        Err(Microk8sError::WorkerNode { .. })
    ));
    lab.model.stop("Node-1");
    assert!(matches!(
        lab.hosts[0].nodes().await,
        Err(Microk8sError::Stopped { .. })
    ));
    lab.model.start("Node-1");
    let k = lab.hosts[0].kubeconfig().await.expect("config");
    assert_eq!(k.server(), Some("https://198.18.0.1:16443"));
    let calls = lab.model.calls();
    assert!(calls.iter().all(|(_, c)| !c.as_str().contains(t.expose())));
    assert!(calls.iter().any(|(h, c)| {
        h == "Node-2"
            && c.as_str()
                .starts_with("microk8s join 198.18.0.1:25000/<redacted>/")
    }));
}

#[tokio::test]
async fn the_twin_is_usable_as_a_trait_object() {
    let lab = Lab::new(1);
    let dynamic: Arc<dyn Microk8s> = Arc::new(lab.hosts[0].clone());
    assert!(matches!(dynamic.status(None).await, Ok(Status::Running(_))));
    assert_eq!(
        lab.model.host("Node-1").map(|h| h.hostname().to_owned()),
        Some("Node-1".to_owned())
    );
    assert!(lab.model.host("nope").is_none());
}

#[path = "fake_removal_tests.rs"]
mod removal;
