//! The follower's join state machine: from "not in the entry point's cluster" to a verified
//! member, with refusals, retries, backoff and jitter.
//!
//! Owns: [`FollowerJoin`], its [`Input`]s, [`Output`]s and [`Phase`]s, and the verification
//! schedule: when to check the join, when to give up, and the reset of a half-joined node.
//! Does not own: running microk8s or the RPCs (the driver carries out every output, one check
//! or command each, and feeds back the typed result), or the refusal rules (`refusal.rs`).
//!
//! # Phases
//! ```text
//! Idle --entry known, no refusal--> WaitingReady --ready--> Requesting --granted--> Joining
//! Requesting --wait--> Queued --poll time--> Requesting
//! Joining --join exited 0 (report sent)--> Verifying --check passes--> Joined
//! Verifying --check fails--> Verifying (next check after 20 ms, doubling to 200 ms)
//! Verifying --verify_timeout passed--> Resetting (`microk8s leave`) --done--> Failed
//! WaitingReady/Requesting/Joining --failure--> Failed(retry at t) --t--> Idle
//! Idle --refusal--> Refused --view changes, refusal gone--> Idle
//! Idle --only refusal is "in another cluster" and moving is allowed--> LeavingOther --> Idle
//! Joined --seen in a multi-node cluster, then no longer--> Idle;   any --leave--> Left
//! ```
//! A join that exits 0 can still never complete (microk8s' silent failure): only the checks
//! tell. One that is not verified within `verify_timeout` leaves microk8s half-joined (not
//! ready, its own datastore discarded), so the follower resets it with `microk8s leave` before
//! the retry starts from a clean standalone node. The reset waits as long as nobody can judge
//! the join: no live entry point of the cluster joined is in view (it died, or a partition cut
//! it off), or this control plane is a datastore member that is merely not Ready. Resetting
//! then could silently move a real member out of its cluster.
//! The entry point hears of the join as soon as `microk8s join` exits 0, so that it looks for
//! the node at once (it verifies on its own and also recognises a joined node it was not told
//! about). A failed join or verification is reported too, so that it serves the next follower
//! at once instead of waiting for its timeout.

use std::time::Duration;

use super::config::{FormationConfig, FormationConfigError};
use super::entry_msg::{EntryRefusal, JoinResponse, WaitReason};
use super::outcome::{Failure, FailureKind, Outcome};
use super::pacing::{VERIFY_FIRST, next_check_pause};
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
    /// `microk8s status --wait-ready` finished: ready, or why not.
    Ready(Outcome),
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
        error: Failure,
    },
    /// `microk8s join` finished (exit 0, or the classified failure).
    JoinFinished(Outcome),
    /// One check of the join finished ([`Output::CheckJoined`]): verified, or what is missing.
    Checked(Outcome),
    /// The reset of a join that was never verified (`microk8s leave`) finished.
    ResetDone(Outcome),
    /// `microk8s leave` of the other cluster finished (moving was allowed).
    LeftOther(Outcome),
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
    /// Check the join once, now, and feed back [`Input::Checked`]. A control plane checks
    /// itself: its own microk8s lists it Ready and in the datastore lines. A worker cannot (it
    /// cannot list nodes, and its `status` says "worker" even after a join that never
    /// completed), so it also needs the entry point's gossiped view to list it Ready.
    CheckJoined {
        /// The entry point followed now (the one that granted the join, unless it was
        /// replaced meanwhile).
        entry: NodeId,
        /// The role joined as.
        role: JoinRole,
    },
    /// Run `microk8s leave` to reset a half-joined node and feed back [`Input::ResetDone`].
    Reset,
    /// Report the outcome to the entry point that granted the join (fire and forget).
    Report {
        /// That entry point.
        entry: NodeId,
        /// `microk8s join` exited 0, or why the attempt failed.
        outcome: Outcome,
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
    NotReady(Failure),
    /// The join request did not reach the entry point.
    RequestFailed(Failure),
    /// The entry point refused.
    EntryRefused(EntryRefusal),
    /// `microk8s join` failed.
    JoinFailed(Failure),
    /// The join was not verified within `verify_timeout` (the last check's finding; the
    /// detail also says how the reset went).
    NotVerified(Failure),
    /// Leaving the other cluster failed.
    LeaveFailed(Failure),
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
    /// The join was not verified in time: resetting microk8s with `microk8s leave`.
    Resetting {
        /// The entry point that granted it.
        entry: NodeId,
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
                | Phase::Resetting { .. }
        )
    }
}

/// The verification schedule of a join that exited 0.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Check {
    /// The next check is due at `at`; the one after waits `pause`.
    Due { at: Duration, pause: Duration },
    /// A check is running; the next waits `pause` after it.
    Running { pause: Duration },
}

/// Checking a join: the schedule, the deadline and the last finding.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Verification {
    /// Give up (and reset) once this passes, if someone can judge the join by then.
    until: Duration,
    check: Check,
    /// What the last check found missing.
    last: Option<Failure>,
    /// The cluster joined (the granting entry point's), when known.
    cluster: Option<String>,
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
    /// While [`Phase::Verifying`] or [`Phase::Resetting`]: the checks of the join.
    verification: Option<Verification>,
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
            verification: None,
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
            Input::Ready(outcome) => {
                if self.phase == Phase::WaitingReady {
                    match outcome {
                        Ok(()) => self.request(),
                        Err(failure) => self.fail(FailReason::NotReady(failure)),
                    }
                }
            }
            Input::Response { from, response } => self.on_response(&from, response),
            Input::RequestFailed { from, error } => {
                if self.asking() == Some(from.as_str()) {
                    self.fail(FailReason::RequestFailed(error));
                }
            }
            Input::JoinFinished(outcome) => {
                if let Phase::Joining { entry, role } = &self.phase {
                    let (entry, role) = (entry.clone(), *role);
                    match outcome {
                        Ok(()) => {
                            // Tell the entry point at once: it verifies on its own and serves
                            // the next follower as soon as it sees this node, so every moment
                            // between the join and its first look is dead time in a
                            // serialised formation.
                            self.outputs.push(Output::Report {
                                entry: entry.clone(),
                                outcome: Ok(()),
                            });
                            let cluster = self.entry.as_ref().and_then(|e| e.cluster_id.clone());
                            self.verification = Some(Verification {
                                until: self.now + self.config.verify_timeout,
                                check: Check::Due {
                                    at: self.now,
                                    pause: VERIFY_FIRST,
                                },
                                last: None,
                                cluster,
                            });
                            self.set_phase(Phase::Verifying { entry, role });
                        }
                        Err(failure) => {
                            self.report_failure(entry, &failure);
                            self.fail(FailReason::JoinFailed(failure));
                        }
                    }
                }
            }
            Input::Checked(outcome) => self.on_checked(outcome),
            Input::ResetDone(outcome) => self.on_reset(outcome),
            Input::LeftOther(outcome) => {
                if self.phase == Phase::LeavingOther {
                    match outcome {
                        Ok(()) => {
                            self.left_cluster =
                                self.local.as_ref().and_then(|l| l.cluster_id.clone());
                            self.set_phase(Phase::Idle);
                        }
                        Err(failure) => self.fail(FailReason::LeaveFailed(failure)),
                    }
                }
            }
            Input::Leave => {
                self.verification = None;
                self.set_phase(Phase::Left);
            }
            Input::Tick => {}
        }
        self.verify();
        self.evaluate();
    }

    /// Takes the outputs queued so far.
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// When the next [`Input::Tick`] is due, if any timer is running.
    pub fn next_deadline(&self) -> Option<Duration> {
        let at = match (&self.phase, &self.verification) {
            (Phase::Failed { retry_at, .. }, _) => *retry_at,
            (Phase::Queued { .. }, _) => self.poll_at,
            (
                Phase::Verifying { .. },
                Some(Verification {
                    until,
                    check: Check::Due { at, .. },
                    ..
                }),
            ) => (*at).min(*until),
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

    /// While verifying: starts the check that is due, or the reset once the deadline passed
    /// and no check is running.
    fn verify(&mut self) {
        let (Phase::Verifying { entry, role }, Some(v)) = (&self.phase, &mut self.verification)
        else {
            return;
        };
        let Check::Due { at, pause } = v.check else {
            return;
        };
        // Only a live entry point of the cluster joined can deny the join, and a control plane
        // that is a datastore member has joined whatever its readiness: without either, the
        // node may be a member cut off from its cluster, and a reset would move it silently.
        let judged = self.entry.as_ref().is_some_and(|e| {
            e.liveness.is_up() && (v.cluster.is_none() || e.cluster_id == v.cluster)
        }) && v
            .last
            .as_ref()
            .is_none_or(|f| f.kind != FailureKind::NotReadyMember);
        if self.now >= v.until && !judged {
            v.until = self.now + self.config.verify_timeout;
        }
        if self.now >= v.until {
            let entry = entry.clone();
            self.outputs.push(Output::Reset);
            self.set_phase(Phase::Resetting { entry });
        } else if self.now >= at {
            v.check = Check::Running { pause };
            // Checked with the entry point followed now: the one that granted the join may have
            // died before it saw this node (its successor, of the same cluster, sees it).
            let entry = self
                .entry
                .as_ref()
                .map_or_else(|| entry.clone(), |e| e.id.clone());
            self.outputs
                .push(Output::CheckJoined { entry, role: *role });
        }
    }

    fn on_checked(&mut self, outcome: Outcome) {
        let (Phase::Verifying { .. }, Some(v)) = (&self.phase, &mut self.verification) else {
            return;
        };
        let Check::Running { pause } = v.check else {
            return;
        };
        match outcome {
            Ok(()) => {
                self.verification = None;
                self.attempt = 0;
                self.set_phase(Phase::Joined);
            }
            Err(failure) => {
                v.last = Some(failure);
                v.check = Check::Due {
                    at: self.now + pause,
                    pause: next_check_pause(pause),
                };
            }
        }
    }

    fn on_reset(&mut self, outcome: Outcome) {
        let Phase::Resetting { entry } = &self.phase else {
            return;
        };
        let entry = entry.clone();
        let last = self
            .verification
            .take()
            .and_then(|v| v.last)
            .unwrap_or_else(|| Failure::new(FailureKind::NotYetJoined, "not checked yet"));
        let reset = match &outcome {
            Ok(()) => "microk8s reset with `microk8s leave`".to_owned(),
            Err(e) => format!("`microk8s leave` to reset it failed: {e}"),
        };
        let failure = Failure::new(
            last.kind,
            format!(
                "not verified within {}: {}; {reset}",
                humantime::format_duration(self.config.verify_timeout),
                last.detail
            ),
        );
        self.report_failure(entry, &failure);
        self.fail(FailReason::NotVerified(failure));
    }

    fn evaluate(&mut self) {
        let entry_id = self.entry.as_ref().map(|e| e.id.clone());
        match &self.phase {
            Phase::Left
            | Phase::LeavingOther
            | Phase::WaitingReady
            | Phase::Joining { .. }
            | Phase::Verifying { .. }
            | Phase::Resetting { .. } => return,
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
            // The entry point judges from facts that may predate this node's last reset; the
            // node's own view of its cluster decides.
            JoinResponse::Refused(EntryRefusal::AlreadyMember) if self.joined_already() => {
                self.attempt = 0;
                self.set_phase(Phase::Joined);
            }
            JoinResponse::Refused(refusal) => self.fail(FailReason::EntryRefused(refusal)),
        }
    }

    fn report_failure(&mut self, entry: NodeId, failure: &Failure) {
        self.outputs.push(Output::Report {
            entry,
            outcome: Err(failure.clone()),
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
