//! The microk8s commands of the simulated agents, against the in-memory twin.
//!
//! A command starts when its core asks ([`Sim::start_command`]) and runs against the twin when
//! its simulated duration is over ([`Sim::run_command`]): that is when its effect lands and its
//! result goes back to the workflow. Each body repeats the one in `effects.rs` (the same
//! adapter calls, the same pure helpers, the same mapping through [`failure`]) with the twin's
//! futures polled to completion by [`now_or_never`]: the twin never waits.

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::super::effects::m8s_role;
use super::super::facts;
use super::super::outcome::failure;
use super::agent::Act;
use super::{Event, JoinWindow, Sim, SimFailure};
use crate::microk8s::{Expected, JoinToken, JoinUrl, Microk8s, Role, Status, TokenTtl};
use muster_core::formation::{Failure, FailureKind, JoinRole};

/// The output of a twin future, which is ready at its first poll.
pub(super) fn now_or_never<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the twin's commands complete at once"),
    }
}

impl Sim {
    /// Starts a microk8s command of node `i`; it ends after its simulated duration.
    pub(super) fn start_command(&mut self, i: usize, act: Act) -> Result<(), SimFailure> {
        let (lo, hi) = match act {
            Act::Join { .. } => self.cfg.join_time,
            _ => self.cfg.command_time,
        };
        let took = self.rng.duration_between(lo, hi);
        match &act {
            Act::Join { url, .. } => self.join_starts(i, url, took)?,
            Act::RemoveNode { name, force } => {
                let entry = self.nodes[i].name.clone();
                self.note(format!("{entry} runs remove-node {name} (force {force})"));
                self.check_no_live_member_removed(i, name)?;
            }
            _ => {}
        }
        let epoch = self.nodes[i].epoch;
        self.push(
            self.now + took,
            Event::Command {
                node: i,
                epoch,
                act,
            },
        );
        Ok(())
    }

    /// Records the twin's view of a join that starts now and checks it overlaps no other.
    fn join_starts(&mut self, i: usize, url: &str, took: Duration) -> Result<(), SimFailure> {
        let joiner = self.nodes[i].name.clone();
        let target = JoinUrl::parse(url)
            .ok()
            .and_then(|u| u.ip())
            .and_then(|ip| self.nodes.iter().find(|n| n.ip == ip))
            .map(|n| n.name.clone());
        self.note(format!(
            "{joiner} starts microk8s join via {}",
            target.as_deref().unwrap_or("?")
        ));
        let Some(target) = target else {
            return Ok(());
        };
        let window = JoinWindow {
            joiner,
            cluster: self.twin.cluster_members(&target),
            from: self.now,
            until: self.now + took,
        };
        self.check_no_overlapping_joins(&window)?;
        self.joins.push(window);
        Ok(())
    }

    /// Runs node `i`'s command against the twin now and feeds its result to the workflow.
    pub(super) fn run_command(&mut self, i: usize, act: Act) -> Result<(), SimFailure> {
        if let Act::RemoveNode { name, .. } = &act {
            self.check_no_ready_live_node_removed(i, name)?;
        }
        let now = self.now;
        let m8s = self.nodes[i].fake.clone();
        let view = self.nodes[i].mesh.as_ref().map(|m| m.view());
        let name = self.nodes[i].name.clone();
        let Some(agent) = self.nodes[i].agent.as_mut() else {
            return Ok(());
        };
        agent.at(now);
        match act {
            Act::Probe {
                remembered,
                version,
                was_running,
            } => {
                let facts = now_or_never(async {
                    let version = match version {
                        Some(v) => Some(v),
                        None => m8s
                            .version()
                            .await
                            .ok()
                            .flatten()
                            .map(|v| format!("{}.{}", v.major, v.minor)),
                    };
                    facts::probe(&m8s, remembered.as_deref(), version, was_running).await
                });
                agent.on_facts(facts);
            }
            Act::WaitReady => {
                let outcome = match now_or_never(m8s.status(Some(Duration::from_secs(120)))) {
                    Ok(Status::Running(_) | Status::Worker) => Ok(()),
                    Ok(other) => Err(Failure::new(
                        FailureKind::NotRunning,
                        format!("microk8s is not ready: {other:?}"),
                    )),
                    Err(e) => Err(failure(&e)),
                };
                agent.on_ready(outcome);
            }
            Act::AddNode {
                follower,
                token,
                ttl,
            } => {
                let result = match JoinToken::new(token) {
                    Ok(t) => now_or_never(m8s.add_node(&t, TokenTtl::Expires(ttl)))
                        .map(|o| o.urls.iter().map(|u| u.expose()).collect())
                        .map_err(|e| failure(&e)),
                    Err(e) => Err(Failure::new(FailureKind::Other, e.to_string())),
                };
                agent.on_add_node(follower, result);
            }
            Act::RemoveNode { name, force } => {
                let outcome = now_or_never(m8s.remove_node(&name, force))
                    .map(drop)
                    .map_err(|e| failure(&e));
                agent.on_removed(name, outcome);
            }
            Act::Join { url, role } => {
                let outcome = match JoinUrl::parse(&url) {
                    Ok(u) => now_or_never(m8s.join(&u, m8s_role(role)))
                        .map(drop)
                        .map_err(|e| failure(&e)),
                    Err(e) => Err(Failure::new(FailureKind::BadAnswer, e.to_string())),
                };
                agent.on_joined(outcome);
            }
            Act::CheckJoined { entry, joiner } => {
                let by_entry = view
                    .as_ref()
                    .and_then(|v| {
                        std::iter::once(&v.local)
                            .chain(v.members.iter())
                            .find(|m| m.id() == entry)
                    })
                    .map(|e| {
                        facts::verified_by_entry(
                            e,
                            &joiner.name,
                            Some(joiner.ip),
                            m8s_role(joiner.role),
                        )
                    })
                    .unwrap_or_else(|| Err("the entry point is not in the view".to_owned()))
                    .map_err(|detail| Failure::new(FailureKind::NotYetJoined, detail));
                let local = match joiner.role {
                    JoinRole::ControlPlane => {
                        match (now_or_never(m8s.nodes()), now_or_never(m8s.status(None))) {
                            (Ok(nodes), Ok(status)) => crate::microk8s::verify_joined(
                                &nodes,
                                Some(&status),
                                &Expected {
                                    name: &joiner.name,
                                    ip: joiner.ip,
                                    role: Role::ControlPlane,
                                },
                            )
                            .map_err(|e| Failure::new(FailureKind::NotYetJoined, e.to_string())),
                            (Err(e), _) | (_, Err(e)) => Err(failure(&e)),
                        }
                    }
                    JoinRole::Worker => match now_or_never(m8s.status(None)) {
                        Ok(Status::Worker) => Ok(()),
                        Ok(other) => Err(Failure::new(
                            FailureKind::NotYetJoined,
                            format!("microk8s does not act as a worker: {other:?}"),
                        )),
                        Err(e) => Err(failure(&e)),
                    },
                };
                agent.on_checked(local.and(by_entry));
            }
            Act::Reset => {
                let outcome = now_or_never(m8s.leave()).map_err(|e| failure(&e));
                self.note(format!("{name} resets with microk8s leave: {outcome:?}"));
                if let Some(agent) = self.nodes[i].agent.as_mut() {
                    agent.on_reset(outcome);
                }
            }
            Act::LeaveOther => {
                let outcome = now_or_never(m8s.leave()).map_err(|e| failure(&e));
                agent.on_left_other(outcome);
            }
            other => unreachable!("{other:?} is not a microk8s command"),
        }
        Ok(())
    }
}
