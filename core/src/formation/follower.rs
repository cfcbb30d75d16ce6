//! The follower's join state machine: from "not in the entry point's cluster" to a verified
//! member, with refusals, retries, backoff and jitter.
//!
//! Owns: [`FollowerJoin`], its [`Input`]s, [`Output`]s and [`Phase`]s.
//! Does not own: running microk8s or the RPCs (the driver carries out every output and feeds
//! back the result), or the checks themselves (`refusal.rs`).
//!
//! # Phases
//! ```text
//! Idle --entry known, no refusal--> WaitingReady --ready--> Requesting --granted--> Joining
//! Requesting --wait--> Queued --poll time--> Requesting
//! Joining --join exited 0 (report sent)--> Verifying --verified--> Joined
//! WaitingReady/Requesting/Joining/Verifying --failure--> Failed(retry at t) --t--> Idle
//! Idle --refusal--> Refused --view changes, refusal gone--> Idle
//! Idle --only refusal is "in another cluster" and moving is allowed--> LeavingOther --> Idle
//! Joined --seen in a multi-node cluster, then no longer--> Idle;   any --leave--> Left
//! ```
//! The entry point hears of the join as soon as `microk8s join` exits 0, so that it looks for
//! the node at once (it verifies on its own and also recognises a joined node it was not told
//! about). A failed join or verification is reported too, so that it serves the next follower
//! at once instead of waiting for its timeout.

use std::time::Duration;

use super::config::{FormationConfig, FormationConfigError};
use super::entry_msg::{EntryRefusal, JoinResponse, WaitReason};
use super::policy::JoinRole;
use super::refusal::{Refusal, already_joined, join_refusals};
use crate::election::{MemberView, NodeId};
use crate::rng::Rng;

/// What the follower needs from the membership view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerView {
    /// This node.
    pub local: MemberView,
    /// The followed entry point, `None` while there is none.
    pub entry: Option<MemberView>,
    /// The whole view (for the duplicate-hostname check).
    pub members: Vec<MemberView>,
}

/// Something that happened outside the follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The membership view changed (boxed: it is much larger than the other inputs).
    View(Box<FollowerView>),
    /// `microk8s status --wait-ready` finished.
    Ready {
        /// microk8s is ready.
        ok: bool,
        /// What it printed, on failure.
        detail: String,
    },
    /// The entry point answered our join request.
    Response {
        /// The entry point that answered.
        from: NodeId,
        /// Its answer.
        response: JoinResponse,
    },
    /// The join request RPC failed.
    RequestFailed {
        /// The entry point asked.
        from: NodeId,
        /// What failed.
        error: String,
    },
    /// `microk8s join` finished.
    JoinFinished {
        /// Exit 0.
        ok: bool,
        /// What it printed, on failure.
        detail: String,
    },
    /// Local verification finished (`microk8s status` clustered, this node Ready).
    Verified {
        /// Verified.
        ok: bool,
        /// What was wrong, on failure.
        detail: String,
    },
    /// `microk8s leave` of the other cluster finished (moving was allowed).
    LeftOther {
        /// It succeeded.
        ok: bool,
        /// What it printed, on failure.
        detail: String,
    },
    /// The operator runs `muster leave`: stop joining for good.
    Leave,
    /// Time passed.
    Tick,
}

/// Something the driver must do or report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Run `microk8s status --wait-ready` (with a timeout) and feed back [`Input::Ready`].
    WaitReady,
    /// Send a join request to `entry` and feed back [`Input::Response`] or
    /// [`Input::RequestFailed`].
    RequestJoin {
        /// The entry point.
        entry: NodeId,
    },
    /// Run `microk8s join <url>` (plus [`JoinRole::join_args`]) and feed back
    /// [`Input::JoinFinished`]. The URL holds the token: never log it.
    Join {
        /// The join URL.
        url: String,
        /// The role granted.
        role: JoinRole,
    },
    /// Check the join locally and feed back [`Input::Verified`].
    Verify {
        /// The role joined as (a control plane must be in the datastore lines).
        role: JoinRole,
    },
    /// Report the outcome to the entry point that granted the join (fire and forget).
    Report {
        /// That entry point.
        entry: NodeId,
        /// Joined and verified.
        ok: bool,
        /// Explanation.
        detail: String,
    },
    /// Run `microk8s leave` to quit the other cluster (only when moving is allowed) and feed
    /// back [`Input::LeftOther`].
    LeaveOtherCluster,
    /// The phase changed (status, journal).
    Phase(Phase),
    /// This node refuses to join, for these reasons (journal and status; once per change).
    Refused(Vec<Refusal>),
    /// The refusal reported last no longer applies.
    RefusalCleared,
}

/// Why an attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// microk8s did not become ready.
    NotReady(String),
    /// The join request did not reach the entry point.
    RequestFailed(String),
    /// The entry point refused.
    EntryRefused(EntryRefusal),
    /// `microk8s join` failed.
    JoinFailed(String),
    /// The join could not be verified.
    NotVerified(String),
    /// Leaving the other cluster failed.
    LeaveFailed(String),
}

/// Where the follower stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nothing to do: no entry point, or this node is the entry point.
    Idle,
    /// Refusing to join (see [`Output::Refused`]).
    Refused,
    /// Leaving another cluster before joining (moving allowed by the operator).
    LeavingOther,
    /// Waiting for microk8s to be ready.
    WaitingReady,
    /// Asking `entry` for a join.
    Requesting {
        /// The entry point.
        entry: NodeId,
    },
    /// In `entry`'s queue.
    Queued {
        /// The entry point.
        entry: NodeId,
        /// Place in the queue (0: being served).
        position: u32,
        /// Why waiting.
        reason: WaitReason,
    },
    /// Running `microk8s join`.
    Joining {
        /// The entry point that granted it.
        entry: NodeId,
        /// The role.
        role: JoinRole,
    },
    /// Checking the join.
    Verifying {
        /// The entry point that granted it.
        entry: NodeId,
        /// The role.
        role: JoinRole,
    },
    /// A member of the entry point's cluster.
    Joined,
    /// The last attempt failed; the next starts at `retry_at`.
    Failed {
        /// Failed attempts in a row.
        attempt: u32,
        /// When to try again.
        retry_at: Duration,
        /// Why.
        reason: FailReason,
    },
    /// The operator made this node leave; it joins nothing any more.
    Left,
}

impl Phase {
    /// Between deciding to join and a verified join (`muster status` shows "joining").
    pub fn is_joining(&self) -> bool {
        matches!(
            self,
            Phase::LeavingOther
                | Phase::WaitingReady
                | Phase::Requesting { .. }
                | Phase::Queued { .. }
                | Phase::Joining { .. }
                | Phase::Verifying { .. }
        )
    }
}

/// The follower side of forming a cluster.
pub struct FollowerJoin {
    config: FormationConfig,
    rng: Rng,
    now: Duration,
    local: Option<MemberView>,
    entry: Option<MemberView>,
    members: Vec<MemberView>,
    phase: Phase,
    attempt: u32,
    poll_at: Duration,
    refusals: Vec<Refusal>,
    /// The cluster we left to move, until the view stops showing us in it.
    left_cluster: Option<String>,
    /// While joined: the view has shown us in a multi-node cluster. Only then does a view
    /// without it mean we dropped out (right after a join the view may still lag).
    seen_clustered: bool,
    outputs: Vec<Output>,
}

impl FollowerJoin {
    /// A follower that has seen no view yet. `seed` drives the retry jitter.
    pub fn new(
        config: FormationConfig,
        seed: u64,
        now: Duration,
    ) -> Result<Self, FormationConfigError> {
        config.validate()?;
        Ok(FollowerJoin {
            config,
            rng: Rng::new(seed),
            now,
            local: None,
            entry: None,
            members: Vec::new(),
            phase: Phase::Idle,
            attempt: 0,
            poll_at: now,
            refusals: Vec::new(),
            left_cluster: None,
            seen_clustered: false,
            outputs: Vec::new(),
        })
    }

    /// Processes one input at `now`.
    pub fn handle(&mut self, now: Duration, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::View(view) => {
                let FollowerView {
                    local,
                    entry,
                    members,
                } = *view;
                if self.left_cluster.is_some() && self.left_cluster != local.cluster_id {
                    self.left_cluster = None;
                }
                self.local = Some(local);
                self.entry = entry;
                self.members = members;
            }
            Input::Ready { ok, detail } => {
                if self.phase == Phase::WaitingReady {
                    if ok {
                        self.request();
                    } else {
                        self.fail(FailReason::NotReady(detail));
                    }
                }
            }
            Input::Response { from, response } => self.on_response(&from, response),
            Input::RequestFailed { from, error } => {
                if self.asking() == Some(from.as_str()) {
                    self.fail(FailReason::RequestFailed(error));
                }
            }
            Input::JoinFinished { ok, detail } => {
                if let Phase::Joining { entry, role } = &self.phase {
                    let (entry, role) = (entry.clone(), *role);
                    if ok {
                        // Tell the entry point at once: it verifies on its own and serves the
                        // next follower as soon as it sees this node, so every moment between
                        // the join and its first look is dead time in a serialised formation.
                        self.outputs.push(Output::Report {
                            entry: entry.clone(),
                            ok: true,
                            detail: "microk8s join exited 0".into(),
                        });
                        self.outputs.push(Output::Verify { role });
                        self.set_phase(Phase::Verifying { entry, role });
                    } else {
                        self.report_failure(entry, &detail);
                        self.fail(FailReason::JoinFailed(detail));
                    }
                }
            }
            Input::Verified { ok, detail } => {
                if let Phase::Verifying { entry, .. } = &self.phase {
                    let entry = entry.clone();
                    if ok {
                        self.attempt = 0;
                        self.set_phase(Phase::Joined);
                    } else {
                        self.report_failure(entry, &detail);
                        self.fail(FailReason::NotVerified(detail));
                    }
                }
            }
            Input::LeftOther { ok, detail } => {
                if self.phase == Phase::LeavingOther {
                    if ok {
                        self.left_cluster = self.local.as_ref().and_then(|l| l.cluster_id.clone());
                        self.set_phase(Phase::Idle);
                    } else {
                        self.fail(FailReason::LeaveFailed(detail));
                    }
                }
            }
            Input::Leave => self.set_phase(Phase::Left),
            Input::Tick => {}
        }
        self.evaluate();
    }

    /// Takes the outputs queued so far.
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// When the next [`Input::Tick`] is due, if any timer is running.
    pub fn next_deadline(&self) -> Option<Duration> {
        let at = match &self.phase {
            Phase::Failed { retry_at, .. } => *retry_at,
            Phase::Queued { .. } => self.poll_at,
            _ => return None,
        };
        (at > self.now).then_some(at)
    }

    /// Where the follower stands.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The refusals in force (empty when none).
    pub fn refusals(&self) -> &[Refusal] {
        &self.refusals
    }

    /// Failed attempts in a row.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The entry point a request or queue place is pending with.
    fn asking(&self) -> Option<&str> {
        match &self.phase {
            Phase::Requesting { entry } | Phase::Queued { entry, .. } => Some(entry),
            _ => None,
        }
    }

    fn evaluate(&mut self) {
        let entry_id = self.entry.as_ref().map(|e| e.id.clone());
        match &self.phase {
            Phase::Left
            | Phase::LeavingOther
            | Phase::WaitingReady
            | Phase::Joining { .. }
            | Phase::Verifying { .. } => return,
            Phase::Joined => {
                let clustered = self.local.as_ref().is_some_and(|l| l.cluster_size >= 2);
                self.seen_clustered |= clustered;
                if clustered || !self.seen_clustered {
                    return;
                }
            }
            Phase::Failed { retry_at, .. } if self.now < *retry_at => return,
            Phase::Requesting { entry } | Phase::Queued { entry, .. }
                if Some(entry) == entry_id.as_ref() =>
            {
                if self.joined_already() {
                    self.set_phase(Phase::Joined);
                    self.seen_clustered = true;
                } else if matches!(self.phase, Phase::Queued { .. }) && self.now >= self.poll_at {
                    self.request();
                }
                return;
            }
            _ => {}
        }
        self.start();
    }

    fn joined_already(&self) -> bool {
        match (&self.local, &self.entry) {
            (Some(l), Some(e)) => already_joined(l, e),
            _ => false,
        }
    }

    /// From Idle, Refused, a due retry, or a changed entry point: decide afresh.
    fn start(&mut self) {
        let (Some(local), Some(entry)) = (&self.local, &self.entry) else {
            return self.set_phase(Phase::Idle);
        };
        if entry.id == local.id {
            return self.set_phase(Phase::Idle);
        }
        if already_joined(local, entry) {
            self.attempt = 0;
            self.set_refusals(Vec::new());
            self.set_phase(Phase::Joined);
            self.seen_clustered = true;
            return;
        }
        let refusals = join_refusals(local, entry, &self.members);
        let only_other_cluster = matches!(refusals[..], [Refusal::InAnotherCluster { .. }]);
        if only_other_cluster && self.config.move_from_other_cluster {
            self.set_refusals(Vec::new());
            if self.left_cluster.is_some() {
                // Left already; waiting for the view to show it.
                return self.set_phase(Phase::Idle);
            }
            self.outputs.push(Output::LeaveOtherCluster);
            return self.set_phase(Phase::LeavingOther);
        }
        if !refusals.is_empty() {
            self.set_refusals(refusals);
            return self.set_phase(Phase::Refused);
        }
        self.set_refusals(Vec::new());
        self.outputs.push(Output::WaitReady);
        self.set_phase(Phase::WaitingReady);
    }

    fn request(&mut self) {
        let Some(entry) = self.entry.as_ref().map(|e| e.id.clone()) else {
            return self.set_phase(Phase::Idle);
        };
        self.outputs.push(Output::RequestJoin {
            entry: entry.clone(),
        });
        self.set_phase(Phase::Requesting { entry });
    }

    fn on_response(&mut self, from: &str, response: JoinResponse) {
        if self.asking() != Some(from) {
            return;
        }
        let entry = from.to_owned();
        match response {
            JoinResponse::Granted { url, role } => {
                self.outputs.push(Output::Join { url, role });
                self.set_phase(Phase::Joining { entry, role });
            }
            JoinResponse::Wait {
                position,
                retry_after,
                reason,
            } => {
                self.poll_at = self.now + retry_after;
                self.set_phase(Phase::Queued {
                    entry,
                    position,
                    reason,
                });
            }
            JoinResponse::Refused(EntryRefusal::AlreadyMember) => {
                self.attempt = 0;
                self.set_phase(Phase::Joined);
            }
            JoinResponse::Refused(refusal) => self.fail(FailReason::EntryRefused(refusal)),
        }
    }

    fn report_failure(&mut self, entry: NodeId, detail: &str) {
        self.outputs.push(Output::Report {
            entry,
            ok: false,
            detail: detail.to_owned(),
        });
    }

    fn fail(&mut self, reason: FailReason) {
        self.attempt = self.attempt.saturating_add(1);
        let delay = self
            .config
            .join_backoff()
            .delay(self.attempt, &mut self.rng);
        self.set_phase(Phase::Failed {
            attempt: self.attempt,
            retry_at: self.now + delay,
            reason,
        });
    }

    fn set_phase(&mut self, phase: Phase) {
        if phase != self.phase {
            self.seen_clustered = false;
            self.phase = phase.clone();
            self.outputs.push(Output::Phase(phase));
        }
    }

    fn set_refusals(&mut self, refusals: Vec<Refusal>) {
        if refusals != self.refusals {
            self.outputs.push(if refusals.is_empty() {
                Output::RefusalCleared
            } else {
                Output::Refused(refusals.clone())
            });
            self.refusals = refusals;
        }
    }
}

#[cfg(test)]
#[path = "follower_tests.rs"]
mod tests;
