//! Which role a joining node takes, and the steps of leaving.
//!
//! Owns: [`RolePreference`], [`JoinRole`], [`join_role`] and [`leave_steps`]. The entry
//! point decides the role when it grants a join, because only it sees the cluster's current
//! control-plane count, and joins are serialised, so the count cannot change underneath.
//! Does not own: running `microk8s join` or `leave` (the driver does).

use serde::{Deserialize, Serialize};

/// What a node asks to be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolePreference {
    /// Control plane while the cluster has fewer than `control_planes`, else worker.
    #[default]
    Auto,
    /// Always a control plane (a dqlite member).
    ControlPlane,
    /// Always a worker (`microk8s join --worker`).
    Worker,
}

/// How a node joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinRole {
    /// Runs the control plane and becomes a datastore member.
    ControlPlane,
    /// `--worker`: kubelet only, never a datastore member.
    Worker,
}

impl JoinRole {
    /// The extra arguments for `microk8s join <url>`.
    pub fn join_args(self) -> &'static [&'static str] {
        match self {
            JoinRole::ControlPlane => &[],
            JoinRole::Worker => &["--worker"],
        }
    }
}

/// The role of the next joiner: its explicit preference, else control plane while the
/// cluster has fewer than `target` control planes (the entry point counts as one), else
/// worker. With the default target of 3 the cluster becomes HA with its third node.
pub fn join_role(preference: RolePreference, control_planes_now: u32, target: u32) -> JoinRole {
    match preference {
        RolePreference::ControlPlane => JoinRole::ControlPlane,
        RolePreference::Worker => JoinRole::Worker,
        RolePreference::Auto if control_planes_now < target => JoinRole::ControlPlane,
        RolePreference::Auto => JoinRole::Worker,
    }
}

/// One step of `muster leave`, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveStep {
    /// `microk8s leave` on this node.
    Microk8sLeave,
    /// Ask the entry point (or, when this node is the entry point, another up control plane
    /// of the cluster) to run `microk8s remove-node <our name>`: `leave` leaves the Node
    /// object behind as NotReady.
    RequestRemoval,
    /// Announce `left` to the mesh, so that nobody waits for us or elects us.
    AnnounceLeft,
}

/// The steps of `muster leave` for a node that is, or is not, in a multi-node cluster. A
/// node that never clustered has nothing to undo (and `microk8s leave` would refuse).
pub fn leave_steps(clustered: bool) -> &'static [LeaveStep] {
    if clustered {
        &[
            LeaveStep::Microk8sLeave,
            LeaveStep::RequestRemoval,
            LeaveStep::AnnounceLeft,
        ]
    } else {
        &[LeaveStep::AnnounceLeft]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_policy_table() {
        use JoinRole::{ControlPlane as Cp, Worker as W};
        use RolePreference::{Auto, ControlPlane, Worker};
        let cases = [
            (
                "second node of a new cluster is a control plane",
                Auto,
                1,
                3,
                Cp,
            ),
            ("third node makes the cluster HA", Auto, 2, 3, Cp),
            ("fourth node is a worker", Auto, 3, 3, W),
            ("a target of one makes every joiner a worker", Auto, 1, 1, W),
            (
                "a larger target keeps adding control planes",
                Auto,
                4,
                5,
                Cp,
            ),
            ("explicit worker wins below the target", Worker, 1, 3, W),
            (
                "explicit control plane wins above the target",
                ControlPlane,
                7,
                3,
                Cp,
            ),
        ];
        for (name, pref, now, target, want) in cases {
            assert_eq!(join_role(pref, now, target), want, "case: {name}");
        }
        assert_eq!(JoinRole::Worker.join_args(), ["--worker"]);
        assert!(JoinRole::ControlPlane.join_args().is_empty());
    }

    #[test]
    fn leave_runs_microk8s_leave_then_removal_then_announces_left() {
        assert_eq!(
            leave_steps(true),
            [
                LeaveStep::Microk8sLeave,
                LeaveStep::RequestRemoval,
                LeaveStep::AnnounceLeft
            ]
        );
        assert_eq!(leave_steps(false), [LeaveStep::AnnounceLeft]);
    }
}
