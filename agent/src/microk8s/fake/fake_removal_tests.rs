//! The twin's leave / remove-node / quorum rules, checked with the verification helpers.

use super::*;

#[tokio::test]
async fn leave_rules_only_voter_not_clustered_and_node_left_behind() {
    let mut lab = Lab::new(4);
    let e = lab.hosts[1].leave().await.expect_err("never clustered");
    assert!(matches!(
        e,
        Microk8sError::Leave {
            code: Some(1),
            failure: LeaveFailure::NotClustered,
            ..
        }
    ));
    lab.join(1, Role::Worker, TokenTtl::SingleUse)
        .await
        .expect("worker joins");
    lab.join(2, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect("cp joins");
    lab.join(3, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect("cp joins");
    lab.hosts[2].leave().await.expect("node 3 leaves");
    let (nodes, status) = lab.view().await;
    let left = nodes
        .iter()
        .find(|n| n.name == "node-3")
        .expect("still listed");
    assert_eq!(left.readiness, Readiness::NotReady);
    assert_eq!(voters(&status), 2);
    assert!(
        lab.hosts[2]
            .status(None)
            .await
            .expect("status")
            .running()
            .is_some_and(ClusterStatus::is_standalone)
    );
    // Only-voter refusal: the other dqlite member is not a voter.
    {
        let mut w = lock(&lab.model.world);
        let c = w.hosts["Node-1"].cluster;
        let cluster = w.clusters.get_mut(&c).expect("cluster");
        cluster
            .dqlite
            .iter_mut()
            .filter(|(a, _)| a.starts_with("198.18.0.4:"))
            .for_each(|m| m.1 = DqliteRole::Standby);
    }
    let e = lab.hosts[0].leave().await.expect_err("only voter");
    assert!(matches!(
        e,
        Microk8sError::Leave {
            code: Some(3),
            failure: LeaveFailure::OnlyVoter,
            ..
        }
    ));
    lab.hosts[1].leave().await.expect("worker leaves");
    lab.hosts[3].leave().await.expect("standby leaves");
    lab.hosts[0]
        .leave()
        .await
        .expect("now alone: leaving resets it");
    assert_eq!(lab.model.cluster_members("Node-1"), ["Node-1"]);
}

#[tokio::test]
async fn remove_node_needs_force_for_members_and_purges_ghosts_by_ip() {
    let mut lab = Lab::new(4);
    for i in 1..=3 {
        lab.join(i, Role::ControlPlane, TokenTtl::SingleUse)
            .await
            .expect("join");
    }
    // Node 4 dies without leaving.
    lab.model.stop("Node-4");
    let e = lab.hosts[0]
        .remove_node("node-4", false)
        .await
        .expect_err("registered");
    assert!(matches!(
        e,
        Microk8sError::RemoveNode {
            failure: RemoveFailure::RegisteredWithDqlite,
            ..
        }
    ));
    assert_eq!(
        lab.hosts[0]
            .remove_node("node-4", true)
            .await
            .expect("forced"),
        RemoveOutcome::Removed
    );
    let (nodes, status) = lab.view().await;
    assert_eq!(
        verify_removed(&nodes, Some(&status), "node-4", Some(ip(4))),
        Ok(())
    );
    // Node 3 joins another cluster behind our back: a ghost stays in ours.
    let other = lab.model.add_host("Other", ip(9));
    let t = lab.token();
    let url = other
        .add_node(&t, TokenTtl::SingleUse)
        .await
        .expect("add-node")
        .urls[0]
        .clone();
    lab.hosts[2]
        .join(&url, Role::ControlPlane)
        .await
        .expect("moves");
    lab.hosts[0]
        .remove_node("node-3", true)
        .await
        .expect("node object removed");
    let (nodes, status) = lab.view().await;
    assert_eq!(
        verify_removed(&nodes, Some(&status), "node-3", Some(ip(3))),
        Ok(())
    );
    let absent = lab.hosts[0]
        .remove_node("198.18.0.3", true)
        .await
        .expect("nothing left");
    assert_eq!(
        absent,
        RemoveOutcome::NotInKubernetes {
            dqlite_checked: true,
            purged_from_dqlite: false
        }
    );
}

#[tokio::test]
async fn ghost_member_is_purged_by_ip_with_force() {
    let mut lab = Lab::new(3);
    lab.join(1, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect("join");
    lab.join(2, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect("join");
    // Node 3's Node object is deleted but its dqlite entry stays (a failed removal).
    let other = lab.model.add_host("Other", ip(9));
    let t = lab.token();
    let url = other
        .add_node(&t, TokenTtl::SingleUse)
        .await
        .expect("add-node")
        .urls[0]
        .clone();
    lab.hosts[2]
        .join(&url, Role::ControlPlane)
        .await
        .expect("moves away");
    {
        let mut w = lock(&lab.model.world);
        let c = w.hosts["Node-1"].cluster;
        w.clusters
            .get_mut(&c)
            .expect("cluster")
            .nodes
            .remove("node-3");
    }
    let (nodes, status) = lab.view().await;
    assert!(matches!(
        verify_removed(&nodes, Some(&status), "node-3", Some(ip(3))),
        Err(NotYet::StillInDatastore { .. })
    ));
    let out = lab.hosts[0]
        .remove_node("198.18.0.3", false)
        .await
        .expect("outcome");
    assert_eq!(
        out,
        RemoveOutcome::NotInKubernetes {
            dqlite_checked: false,
            purged_from_dqlite: false
        }
    );
    let out = lab.hosts[0]
        .remove_node("198.18.0.3", true)
        .await
        .expect("outcome");
    assert_eq!(
        out,
        RemoveOutcome::NotInKubernetes {
            dqlite_checked: true,
            purged_from_dqlite: true
        }
    );
    let (nodes, status) = lab.view().await;
    assert_eq!(
        verify_removed(&nodes, Some(&status), "node-3", Some(ip(3))),
        Ok(())
    );
}

#[tokio::test]
async fn quorum_loss_freezes_leave_and_forced_removal() {
    let mut lab = Lab::new(2);
    lab.join(1, Role::ControlPlane, TokenTtl::SingleUse)
        .await
        .expect("join");
    lab.model.stop("Node-2");
    assert!(matches!(
        lab.hosts[0].status(None).await,
        Ok(Status::NotReady { .. })
    ));
    let e = lab.hosts[0]
        .remove_node("node-2", true)
        .await
        .expect_err("no quorum");
    assert!(matches!(
        e,
        Microk8sError::RemoveNode {
            code: Some(2),
            failure: RemoveFailure::ContactFailed,
            ..
        }
    ));
    let e = lab.hosts[0].leave().await.expect_err("no quorum");
    assert!(matches!(
        e,
        Microk8sError::Leave {
            failure: LeaveFailure::NoQuorum,
            ..
        }
    ));
    assert_eq!(
        lab.hosts[1].status(None).await.expect("status"),
        Status::Stopped
    );
    lab.model.start("Node-2");
    assert!(matches!(
        lab.hosts[0].status(None).await,
        Ok(Status::Running(_))
    ));
}

#[tokio::test]
async fn standby_is_promoted_when_a_voter_leaves() {
    let mut lab = Lab::new(5);
    for i in 1..=4 {
        lab.join(i, Role::ControlPlane, TokenTtl::SingleUse)
            .await
            .expect("join");
    }
    let (_, status) = lab.view().await;
    assert_eq!(
        (voters(&status), status.running().map(|c| c.datastore.len())),
        (3, Some(5))
    );
    lab.hosts[1].leave().await.expect("voter leaves");
    let (_, status) = lab.view().await;
    assert_eq!(voters(&status), 3);
    assert!(status.running().is_some_and(|c| c.high_availability));
}

#[tokio::test]
async fn removing_a_live_worker_lets_it_re_register() {
    let mut lab = Lab::new(2);
    lab.join(1, Role::Worker, TokenTtl::SingleUse)
        .await
        .expect("join");
    assert_eq!(
        lab.hosts[0]
            .remove_node("node-2", false)
            .await
            .expect("removed"),
        RemoveOutcome::Removed
    );
    let (nodes, _) = lab.view().await;
    assert!(
        nodes.iter().any(|n| n.name == "node-2"),
        "kubelet re-registered"
    );
}
