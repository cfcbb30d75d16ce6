//! Deciding from observation whether a join or a removal has really happened.
//!
//! microk8s' exit codes lie (a join can exit 0 and leave a broken node; a ghost purge exits 1
//! and succeeds), so the workflow confirms every step here, from a control plane's
//! `kubectl get nodes -o json` and `status`. A node counts as joined only when it is listed
//! `Ready` with the expected address and role and, for a control plane, its address is a
//! datastore member; it counts as removed only when it is gone from both. Pure functions; the
//! caller decides how often to look and when to give up.

use std::net::IpAddr;

use super::contract::{DqliteRole, NodeInfo, Readiness, Role, Status};

/// The node a join should have produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected<'a> {
    /// Its hostname (microk8s lowercases it; compared case-insensitively).
    pub name: &'a str,
    /// The IP it joined from (its InternalIP and dqlite address).
    pub ip: IpAddr,
    /// How it joined.
    pub role: Role,
}

/// Why a join or removal is not (yet) visible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotYet {
    /// No Node object with that name.
    #[error("node {name} is not listed by kubectl get nodes{}", listed_as.as_ref().map(|n| format!(" (its address belongs to node {n})")).unwrap_or_default())]
    NotListed {
        /// The expected name.
        name: String,
        /// The name of a node that has the expected IP, if any (hostname mismatch).
        listed_as: Option<String>,
    },
    /// Listed but not Ready.
    #[error("node {name} is listed but {readiness:?}")]
    NotReady {
        /// The node.
        name: String,
        /// Its Ready condition.
        readiness: Readiness,
    },
    /// Listed with another InternalIP: possibly another machine with the same hostname.
    #[error("node {name} has InternalIP {found:?}, expected {expected}")]
    WrongAddress {
        /// The node.
        name: String,
        /// The IP it should have.
        expected: IpAddr,
        /// The IP it has.
        found: Option<IpAddr>,
    },
    /// Labelled with the other role.
    #[error("node {name} joined as {found:?}, expected {expected:?}")]
    WrongRole {
        /// The node.
        name: String,
        /// The role asked for.
        expected: Role,
        /// The role its labels show.
        found: Role,
    },
    /// The control plane's `status` is not a running one.
    #[error("no datastore view: status of the control plane is {0}")]
    StatusUnavailable(String),
    /// The datastore member list could not be read (`none`).
    #[error("the datastore member list is empty (dqlite unreachable?)")]
    DatastoreUnknown,
    /// A control plane whose address is not a dqlite member.
    #[error("{ip} is not a datastore member")]
    NotInDatastore {
        /// The address looked for.
        ip: IpAddr,
    },
    /// A removed node still has a Node object.
    #[error("node {name} is still listed")]
    StillListed {
        /// The listed node.
        name: String,
    },
    /// A removed node's address is still a dqlite member.
    #[error("{ip} is still a datastore member ({role:?})")]
    StillInDatastore {
        /// The address.
        ip: IpAddr,
        /// Its role.
        role: DqliteRole,
    },
}

fn datastore_view(status: Option<&Status>) -> Result<&super::contract::ClusterStatus, NotYet> {
    match status {
        Some(Status::Running(s)) if s.datastore.is_empty() => Err(NotYet::DatastoreUnknown),
        Some(Status::Running(s)) => Ok(s),
        Some(other) => Err(NotYet::StatusUnavailable(format!("{other:?}"))),
        None => Err(NotYet::StatusUnavailable("not queried".into())),
    }
}

/// Checks that `expected` has joined: listed, Ready, with its IP and role, and (control plane)
/// a datastore member in `status` (any role: voter, standby or spare). `status` may be `None`
/// for a worker.
pub fn verify_joined(
    nodes: &[NodeInfo],
    status: Option<&Status>,
    expected: &Expected<'_>,
) -> Result<(), NotYet> {
    let Some(node) = nodes
        .iter()
        .find(|n| n.name.eq_ignore_ascii_case(expected.name))
    else {
        let listed_as = nodes
            .iter()
            .find(|n| n.internal_ip == Some(expected.ip))
            .map(|n| n.name.clone());
        return Err(NotYet::NotListed {
            name: expected.name.to_owned(),
            listed_as,
        });
    };
    let name = node.name.clone();
    if node.internal_ip != Some(expected.ip) {
        return Err(NotYet::WrongAddress {
            name,
            expected: expected.ip,
            found: node.internal_ip,
        });
    }
    if node.readiness != Readiness::Ready {
        return Err(NotYet::NotReady {
            name,
            readiness: node.readiness,
        });
    }
    // Pre-1.23 nodes carry no role label: nothing to compare.
    if let Some(found) = node.role
        && found != expected.role
    {
        return Err(NotYet::WrongRole {
            name,
            expected: expected.role,
            found,
        });
    }
    if expected.role == Role::ControlPlane
        && datastore_view(status)?
            .datastore_member(expected.ip)
            .is_none()
    {
        return Err(NotYet::NotInDatastore { ip: expected.ip });
    }
    Ok(())
}

/// Checks that a node is gone: no Node object with that name (or, when `ip` is given, that
/// InternalIP), and `ip` no longer a datastore member. With `status` `None` only the node
/// list is checked (enough for a worker).
pub fn verify_removed(
    nodes: &[NodeInfo],
    status: Option<&Status>,
    name: &str,
    ip: Option<IpAddr>,
) -> Result<(), NotYet> {
    let listed = nodes
        .iter()
        .find(|n| n.name.eq_ignore_ascii_case(name) || (ip.is_some() && n.internal_ip == ip));
    if let Some(n) = listed {
        return Err(NotYet::StillListed {
            name: n.name.clone(),
        });
    }
    if let (Some(ip), Some(_)) = (ip, status)
        && let Some(m) = datastore_view(status)?.datastore_member(ip)
    {
        return Err(NotYet::StillInDatastore { ip, role: m.role });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::microk8s::fixture;
    use crate::microk8s::parse::{parse_nodes, parse_status};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn cp<'a>(name: &'a str, addr: &str) -> Expected<'a> {
        Expected {
            name,
            ip: ip(addr),
            role: Role::ControlPlane,
        }
    }

    #[test]
    fn joined_table() {
        let nodes = parse_nodes(&fixture("nodes.json")).expect("nodes");
        let ha = parse_status(&fixture("status-yaml-ha.txt")).expect("status");
        let none = parse_status(&fixture("status-pretty-none.txt")).expect("status");
        let stopped = Status::Stopped;
        let worker = |name| Expected {
            name,
            ip: ip("10.0.0.2"),
            role: Role::Worker,
        };
        type Case<'a> = (
            &'a str,
            Expected<'a>,
            Option<&'a Status>,
            Result<(), NotYet>,
        );
        let cases: Vec<Case<'_>> = vec![
            ("ready voter", cp("node-a", "10.0.0.1"), Some(&ha), Ok(())),
            (
                "name is case-insensitive",
                cp("NODE-A", "10.0.0.1"),
                Some(&ha),
                Ok(()),
            ),
            (
                "ready worker without status",
                worker("node-b"),
                None,
                Ok(()),
            ),
            (
                "unknown readiness",
                cp("node-c", "10.0.0.3"),
                Some(&ha),
                Err(NotYet::NotReady {
                    name: "node-c".into(),
                    readiness: Readiness::Unknown,
                }),
            ),
            (
                "not listed, address owned by another name",
                cp("other", "10.0.0.1"),
                Some(&ha),
                Err(NotYet::NotListed {
                    name: "other".into(),
                    listed_as: Some("node-a".into()),
                }),
            ),
            (
                "same hostname, other machine",
                cp("node-a", "10.0.0.9"),
                Some(&ha),
                Err(NotYet::WrongAddress {
                    name: "node-a".into(),
                    expected: ip("10.0.0.9"),
                    found: Some(ip("10.0.0.1")),
                }),
            ),
            (
                "worker label when control plane expected",
                cp("node-b", "10.0.0.2"),
                Some(&ha),
                Err(NotYet::WrongRole {
                    name: "node-b".into(),
                    expected: Role::ControlPlane,
                    found: Role::Worker,
                }),
            ),
            (
                "datastore unreadable",
                cp("node-a", "10.0.0.1"),
                Some(&none),
                Err(NotYet::DatastoreUnknown),
            ),
            (
                "no status",
                cp("node-a", "10.0.0.1"),
                None,
                Err(NotYet::StatusUnavailable("not queried".into())),
            ),
            (
                "control plane stopped",
                cp("node-a", "10.0.0.1"),
                Some(&stopped),
                Err(NotYet::StatusUnavailable("Stopped".into())),
            ),
        ];
        for (what, expected, status, want) in cases {
            assert_eq!(verify_joined(&nodes, status, &expected), want, "{what}");
        }
    }

    #[test]
    fn control_plane_missing_from_datastore_is_not_joined() {
        let nodes = parse_nodes(&fixture("nodes.json")).expect("nodes");
        let two = parse_status(&fixture("status-pretty-two.txt")).expect("status");
        // node-d is a control plane at 10.0.0.4; make it Ready: the datastore lists only .1
        // and .2, so it still does not count as joined.
        let mut n = nodes.clone();
        n[3].readiness = Readiness::Ready;
        assert_eq!(
            verify_joined(&n, Some(&two), &cp("node-d", "10.0.0.4")),
            Err(NotYet::NotInDatastore { ip: ip("10.0.0.4") })
        );
    }

    #[test]
    fn pre_1_23_nodes_without_role_labels_count() {
        let nodes = parse_nodes(&fixture("nodes-1.19.json")).expect("nodes");
        let st = parse_status(
            "microk8s is running\nhigh-availability: no\n  datastore master nodes: 192.168.1.21:19001\n  datastore standby nodes: none\n",
        )
        .expect("status");
        assert_eq!(
            verify_joined(&nodes, Some(&st), &cp("pi-one", "192.168.1.21")),
            Ok(())
        );
    }

    #[test]
    fn removed_table() {
        let nodes = parse_nodes(&fixture("nodes.json")).expect("nodes");
        let ha = parse_status(&fixture("status-yaml-ha.txt")).expect("status");
        assert_eq!(
            verify_removed(&nodes, Some(&ha), "node-c", Some(ip("10.0.0.3"))),
            Err(NotYet::StillListed {
                name: "node-c".into()
            })
        );
        assert_eq!(
            verify_removed(&nodes, Some(&ha), "renamed", Some(ip("10.0.0.3"))),
            Err(NotYet::StillListed {
                name: "node-c".into()
            })
        );
        // Gone from Kubernetes but still a (spare) dqlite member: a ghost.
        assert_eq!(
            verify_removed(&nodes, Some(&ha), "node-g", Some(ip("10.0.0.7"))),
            Err(NotYet::StillInDatastore {
                ip: ip("10.0.0.7"),
                role: DqliteRole::Spare
            })
        );
        assert_eq!(
            verify_removed(&nodes, Some(&ha), "node-z", Some(ip("10.0.0.99"))),
            Ok(())
        );
        assert_eq!(verify_removed(&nodes, None, "node-z", None), Ok(()));
    }
}
