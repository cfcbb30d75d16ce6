//! The microk8s commands of the simulated agents, against the in-memory twin.
//!
//! A command starts when its core asks ([`Sim::start_command`]) and runs against the twin when
//! its simulated duration is over ([`Sim::run_command`]): that is when its effect lands and its
//! result goes back to the workflow. Each runs the same step as the real agent (`commands`,
//! which `effects.rs` runs in tasks), with the twin's futures polled to completion by
//! [`now_or_never`]: the twin never waits.

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::super::commands;
use super::super::effects::Done;
use super::super::machine::Effect;
use super::agent::Act;
use super::{Event, JoinWindow, Sim, SimFailure};
use crate::microk8s::JoinUrl;

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
            Effect::Join { .. } => self.cfg.join_time,
            _ => self.cfg.command_time,
        };
        let took = self.rng.duration_between(lo, hi);
        match &act {
            Effect::Join { url, .. } => self.join_starts(i, url, took)?,
            Effect::RemoveNode { name, force } => {
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
        if let Effect::RemoveNode { name, .. } = &act {
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
            Effect::Probe {
                remembered,
                version,
                was_running,
            } => agent.on_done(Done::Facts(Box::new(now_or_never(commands::probe(
                &m8s,
                remembered,
                version,
                was_running,
            ))))),
            Effect::WaitReady => {
                agent.on_done(Done::Ready(now_or_never(commands::wait_ready(&m8s))))
            }
            Effect::AddNode {
                follower,
                token,
                ttl,
            } => {
                let result = now_or_never(commands::add_node(&m8s, token, ttl));
                agent.on_done(Done::AddNode { follower, result });
            }
            Effect::RemoveNode { name, force } => {
                let outcome = now_or_never(commands::remove_node(&m8s, &name, force));
                agent.on_done(Done::Removed { name, outcome });
            }
            Effect::Join { url, role } => {
                let outcome = now_or_never(commands::join(&m8s, &url, role));
                // `took` only words the journal, which the simulation does not keep.
                agent.on_done(Done::Joined {
                    outcome,
                    took: Duration::ZERO,
                });
            }
            Effect::CheckJoined { entry, joiner } => {
                let entry = view.as_ref().and_then(|v| {
                    std::iter::once(&v.local)
                        .chain(v.members.iter())
                        .find(|m| m.id() == entry)
                });
                let outcome = now_or_never(commands::check_joined(&m8s, entry, &joiner));
                agent.on_done(Done::Checked(outcome));
            }
            Effect::Reset => {
                let outcome = now_or_never(commands::leave(&m8s));
                self.note(format!("{name} resets with microk8s leave: {outcome:?}"));
                if let Some(agent) = self.nodes[i].agent.as_mut() {
                    agent.on_done(Done::Reset(outcome));
                }
            }
            Effect::LeaveOther => {
                agent.on_done(Done::LeftOther(now_or_never(commands::leave(&m8s))))
            }
            other => unreachable!("{other:?} is not a microk8s command"),
        }
        Ok(())
    }
}
