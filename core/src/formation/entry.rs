//! The join coordinator on the entry point: serves join requests strictly one at a time and
//! removes departed members, never both at once.
//!
//! Owns: [`JoinCoordinator`], its requests, responses, inputs and outputs.
//! Does not own: running microk8s (the driver carries out [`Output::AddNode`] and
//! [`Output::RemoveNode`] and feeds back the results), gathering [`ClusterFacts`], or the
//! gRPC server that calls [`JoinCoordinator::request`].
//!
//! # One operation at a time
//! ```text
//! Idle --leave request--> Removing --result--> Idle
//! Idle --dead member past remove_after, quorum--> Removing(--force) --result--> Idle
//! Idle --queue head, no dead voter, quorum--> Preparing(add-node) --urls--> Granted
//! Granted --follower reports success--> Verifying --facts show it Ready (and in the
//!         datastore, for a control plane)--> Idle (Joined)
//! Granted/Verifying --facts show it joined--> Idle (Joined; the report may be lost)
//! Preparing/Granted/Verifying --failure, report of failure, or timeout--> Idle (JoinFailed)
//! ```
//! While a join is in flight, the token of the next follower in the queue is already made
//! (`add-node` only writes a token line; it starts nothing), so that it is granted the moment
//! the current join is verified. A prepared token older than half its TTL is not used.
//!
//! Followers ask with a long poll: a request ([`Input::Request`]) is answered
//! ([`Output::Answer`]) at once with a grant or a refusal; one that would have to wait is
//! held until its grant exists or [`JOIN_HOLD`] passes, whichever comes first, so a queued
//! follower hears of its turn the moment it comes ([`JoinCoordinator::request`] answers at
//! once, without holding). A newer request of the same follower supersedes its held one, and a
//! coordinator that stops being the entry point releases everything it holds. Every grant
//! carries a fresh TTL token, so a follower whose join failed after the token was accepted can
//! retry with a new grant. After a removal the coordinator waits for fresh facts before
//! deciding anything else, so it never acts on a node list that still shows the removed node.
//!
//! # Looking while a join is in flight
//! The coordinator asks for fresh facts ([`Output::RefreshFacts`]) every [`SERVING_REFRESH`]
//! after the last ones arrived while a grant is out (the node may show up before its report),
//! and, once the follower reported success, at once and then after 20 ms, doubling up to
//! [`SERVING_REFRESH`] ([`VERIFY_FIRST`]): a serialised formation waits on every such look.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use super::config::{FormationConfig, FormationConfigError};
use super::entry_msg::{
    Blocked, CoordinatorStatus, EntryRefusal, Input, JoinFailure, JoinRequest, JoinResponse,
    Output, Ticket, WaitReason,
};
use super::facts::ClusterFacts;
use super::grant::{choose_url, new_token};
use super::outcome::{Failure, FailureKind, Outcome};
use super::pacing::{JOIN_HOLD, NOT_ENTRY_RETRY, SERVING_REFRESH, VERIFY_FIRST, next_check_pause};
use super::policy::{JoinRole, join_role};
use crate::rng::Rng;

struct Job {
    req: JoinRequest,
    role: JoinRole,
}

/// The token made ahead for the next follower while another join is in flight.
struct Prepared {
    follower: String,
    /// The join URLs once `add-node` printed them.
    urls: Option<Vec<String>>,
    issued: Duration,
}

enum Slot {
    Idle,
    Preparing {
        job: Job,
        since: Duration,
    },
    Granted {
        job: Job,
        url: String,
        since: Duration,
        expires: Duration,
        /// Ask for fresh facts then.
        next_refresh: Duration,
    },
    Verifying {
        job: Job,
        since: Duration,
        /// Ask for fresh facts then.
        next_refresh: Duration,
        /// The wait after the next facts arrive.
        pause: Duration,
    },
    Removing {
        name: String,
        since: Duration,
    },
}

/// A join request held for its answer.
struct Held {
    ticket: Ticket,
    req: JoinRequest,
    until: Duration,
}

/// The entry point's join and removal planner.
pub struct JoinCoordinator {
    local_name: String,
    config: FormationConfig,
    rng: Rng,
    now: Duration,
    facts: Option<ClusterFacts>,
    /// Facts must be refreshed before the next decision (after a removal).
    facts_stale: bool,
    nets: Vec<(IpAddr, u8)>,
    queue: VecDeque<(JoinRequest, Duration)>,
    leaves: VecDeque<String>,
    /// Earliest next automatic removal attempt per node, after a failed one.
    removal_backoff: BTreeMap<String, Duration>,
    slot: Slot,
    next: Option<Prepared>,
    blocked: Option<Blocked>,
    /// This node is the entry point.
    active: bool,
    /// Requests held for their answer, by follower.
    held: BTreeMap<String, Held>,
    outputs: Vec<Output>,
}

impl JoinCoordinator {
    /// A coordinator for the entry point named `local_name` (never removed by itself).
    /// `seed` drives the join tokens; the driver seeds it from the operating system, since
    /// tokens are secrets.
    pub fn new(
        local_name: String,
        config: FormationConfig,
        seed: u64,
        now: Duration,
    ) -> Result<Self, FormationConfigError> {
        config.validate()?;
        Ok(JoinCoordinator {
            local_name,
            config,
            rng: Rng::new(seed),
            now,
            facts: None,
            facts_stale: false,
            nets: Vec::new(),
            queue: VecDeque::new(),
            leaves: VecDeque::new(),
            removal_backoff: BTreeMap::new(),
            slot: Slot::Idle,
            next: None,
            blocked: None,
            active: true,
            held: BTreeMap::new(),
            outputs: Vec::new(),
        })
    }

    /// Answers a follower's join request at once, without holding it (see [`JoinResponse`]);
    /// [`Input::Request`] is the same with the long poll.
    pub fn request(&mut self, now: Duration, req: JoinRequest) -> JoinResponse {
        self.now = self.now.max(now);
        if let Some(refusal) = self.refusal(&req) {
            self.queue.retain(|(q, _)| q.follower != req.follower);
            return JoinResponse::Refused(refusal);
        }
        if self.serving() != Some(req.follower.as_str())
            && self.stale_object_of(&req)
            && !self.leaves.contains(&req.name)
            && !matches!(&self.slot, Slot::Removing { name, .. } if *name == req.name)
        {
            // Removals go before joins: the follower's turn comes once its old object is gone.
            self.leaves.push_back(req.name.clone());
        }
        if self.serving() == Some(req.follower.as_str())
            && let Some(response) = self.in_flight_response()
        {
            return response;
        }
        match self
            .queue
            .iter_mut()
            .find(|(q, _)| q.follower == req.follower)
        {
            Some(entry) => *entry = (req.clone(), self.now),
            None => self.queue.push_back((req.clone(), self.now)),
        }
        self.pump();
        self.prepare_next();
        if self.serving() == Some(req.follower.as_str())
            && let Some(response) = self.in_flight_response()
        {
            return response;
        }
        let position = self
            .queue
            .iter()
            .position(|(q, _)| q.follower == req.follower)
            .map_or(0, |p| u32::try_from(p + 1).unwrap_or(u32::MAX));
        JoinResponse::Wait {
            position,
            retry_after: self.config.poll_interval,
            reason: match &self.blocked {
                Some(b) => WaitReason::Blocked(b.clone()),
                None => WaitReason::Queued,
            },
        }
    }

    /// Processes one input at `now`.
    pub fn handle(&mut self, now: Duration, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::Active(active) => {
                if self.active && !active {
                    self.resign();
                }
                self.active = active;
            }
            Input::Request { ticket, req } => self.on_request(ticket, req),
            Input::Facts(facts) => {
                self.facts = Some(facts);
                self.facts_stale = false;
                self.check_joined();
                self.pace_refresh();
            }
            Input::Networks(nets) => self.nets = nets,
            Input::AddNodeDone { follower, urls } => self.on_add_node(&follower, Ok(urls)),
            Input::AddNodeFailed { follower, error } => self.on_add_node(&follower, Err(error)),
            Input::Report { follower, outcome } => self.on_report(&follower, outcome),
            // Only the entry point removes nodes; a request that reached another node is
            // dropped rather than kept for a later term in which it may be stale.
            Input::LeaveRequested { name } => {
                if self.active && !self.leaves.contains(&name) {
                    self.leaves.push_back(name);
                }
            }
            Input::RemoveDone { name, outcome } => self.on_removed(name, outcome),
            Input::Tick => self.check_timeouts(),
        }
        self.pump();
        self.prepare_next();
        self.answer_held();
    }

    /// Takes the outputs queued so far.
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// When the next [`Input::Tick`] is due, if any timer is running.
    pub fn next_deadline(&self) -> Option<Duration> {
        let c = &self.config;
        let mut due: Vec<Duration> = match &self.slot {
            Slot::Idle => Vec::new(),
            Slot::Preparing { since, .. } | Slot::Removing { since, .. } => {
                vec![*since + c.join_timeout]
            }
            Slot::Granted {
                since,
                next_refresh,
                ..
            } => vec![*since + c.join_timeout, *next_refresh],
            Slot::Verifying {
                since,
                next_refresh,
                ..
            } => vec![*since + c.verify_timeout, *next_refresh],
        };
        due.extend(self.queue.iter().map(|(_, seen)| *seen + c.queue_expiry));
        due.extend(self.held.values().map(|h| h.until));
        if let (Some(after), Some(facts)) = (c.remove_after, &self.facts) {
            due.extend(facts.nodes.iter().filter_map(|n| match n.member {
                super::facts::MemberState::Dead { since } => Some(since.saturating_add(after)),
                _ => None,
            }));
        }
        due.extend(self.removal_backoff.values().copied());
        due.into_iter().filter(|t| *t > self.now).min()
    }

    /// Whether this node is the entry point, as last told ([`Input::Active`]).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// A snapshot for status.
    pub fn status(&self) -> CoordinatorStatus {
        CoordinatorStatus {
            serving: self.serving().map(str::to_owned),
            removing: match &self.slot {
                Slot::Removing { name, .. } => Some(name.clone()),
                _ => None,
            },
            queued: self.queue.iter().map(|(q, _)| q.follower.clone()).collect(),
            held: self.held.len(),
            blocked: self.blocked.clone(),
        }
    }

    /// A request with the long poll: answered now unless it would have to wait.
    fn on_request(&mut self, ticket: Ticket, req: JoinRequest) {
        if !self.active {
            return self.answer(ticket, not_entry());
        }
        let response = self.request(self.now, req.clone());
        if !matches!(response, JoinResponse::Wait { .. }) {
            return self.answer(ticket, response);
        }
        let held = Held {
            ticket,
            req,
            until: self.now + JOIN_HOLD,
        };
        if let Some(old) = self.held.insert(held.req.follower.clone(), held) {
            // Superseded by the follower's newer question.
            self.answer(old.ticket, ask_again_now());
        }
    }

    /// Answers the held requests that can be answered now: the follower being served once
    /// its grant exists, those whose hold is over, and everyone once this node is no longer
    /// the entry point.
    fn answer_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        if !self.active {
            for (_, h) in std::mem::take(&mut self.held) {
                self.answer(h.ticket, not_entry());
            }
            return;
        }
        if let Some(follower) = self.serving().map(str::to_owned)
            && let Some(held) = self.held.remove(&follower)
        {
            match self.request(self.now, held.req.clone()) {
                JoinResponse::Wait { .. } => {
                    self.held.insert(follower, held);
                }
                response => self.answer(held.ticket, response),
            }
        }
        let now = self.now;
        let expired: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.until <= now)
            .map(|(f, _)| f.clone())
            .collect();
        for follower in expired {
            if let Some(h) = self.held.remove(&follower) {
                self.answer(h.ticket, ask_again_now());
            }
        }
    }

    fn answer(&mut self, ticket: Ticket, response: JoinResponse) {
        self.outputs.push(Output::Answer { ticket, response });
    }

    /// After fresh facts, while a join is in flight: when to look again.
    fn pace_refresh(&mut self) {
        let now = self.now;
        match &mut self.slot {
            Slot::Granted { next_refresh, .. } => *next_refresh = now + SERVING_REFRESH,
            Slot::Verifying {
                next_refresh,
                pause,
                ..
            } => {
                *next_refresh = now + *pause;
                *pause = next_check_pause(*pause);
            }
            _ => {}
        }
    }

    fn serving(&self) -> Option<&str> {
        match &self.slot {
            Slot::Preparing { job, .. }
            | Slot::Granted { job, .. }
            | Slot::Verifying { job, .. } => Some(&job.req.follower),
            Slot::Idle | Slot::Removing { .. } => None,
        }
    }

    /// The answer to the follower being served; `None` when its grant expired, which
    /// abandons the attempt so that the caller queues it afresh.
    fn in_flight_response(&mut self) -> Option<JoinResponse> {
        let wait = |reason| JoinResponse::Wait {
            position: 0,
            retry_after: self.config.poll_interval,
            reason,
        };
        match &self.slot {
            Slot::Preparing { .. } => Some(wait(WaitReason::Preparing)),
            Slot::Verifying { .. } => Some(wait(WaitReason::Verifying)),
            Slot::Granted {
                job, url, expires, ..
            } if self.now < *expires => Some(JoinResponse::Granted {
                url: url.clone(),
                role: job.role,
            }),
            Slot::Granted { .. } => {
                self.fail(JoinFailure::NoReport);
                None
            }
            Slot::Idle | Slot::Removing { .. } => None,
        }
    }

    fn refusal(&self, req: &JoinRequest) -> Option<EntryRefusal> {
        let facts = self.facts.as_ref()?;
        if let (Some(f), Some(e)) = (&req.version, &facts.version)
            && f != e
        {
            return Some(EntryRefusal::MixedVersions {
                follower: f.clone(),
                entry: e.clone(),
            });
        }
        let node = facts.node(&req.name)?;
        // The node being served may show up before its report; that is not a conflict.
        if self.serving() == Some(req.follower.as_str()) {
            return None;
        }
        if node.ready && node.ip == Some(req.addr) {
            Some(EntryRefusal::AlreadyMember)
        } else if self.stale_object_of(req) {
            None
        } else {
            Some(EntryRefusal::NameTaken {
                name: req.name.clone(),
            })
        }
    }

    /// Whether the cluster lists a NotReady Node object with the follower's name and address
    /// that is no datastore member: what a join that never completed, or a `leave` whose
    /// `remove-node` never came, leaves behind. The follower asking is alive with microk8s
    /// ready and outside this cluster (else it would not ask), so the object is its own stale
    /// one: it is removed before the follower's join instead of refusing the name for good.
    /// A datastore member is never removed this way (that needs `--force`, an operator's call).
    fn stale_object_of(&self, req: &JoinRequest) -> bool {
        self.facts
            .as_ref()
            .and_then(|f| f.node(&req.name))
            .is_some_and(|n| !n.ready && n.ip == Some(req.addr) && n.datastore.is_none())
    }

    /// This node stopped being the entry point: the new one serves everyone from now on.
    /// Nothing waits here any more: the queue, the token made ahead and the removal requests
    /// go, and a join in flight ends (its follower asks the new entry point; a join that ran
    /// is seen by the new one's facts). A `remove-node` already running is let finish.
    fn resign(&mut self) {
        self.queue.clear();
        self.next = None;
        self.leaves.clear();
        self.set_blocked(None);
        self.fail(JoinFailure::NotEntry);
    }

    /// Starts the next operation if nothing is in flight (and this node is the entry point).
    fn pump(&mut self) {
        if !self.active || !matches!(self.slot, Slot::Idle) {
            return;
        }
        let now = self.now;
        let expiry = self.config.queue_expiry;
        self.queue
            .retain(|(_, seen)| now < seen.saturating_add(expiry));
        self.removal_backoff.retain(|_, at| now < *at);
        if let Some(name) = self.leaves.pop_front() {
            self.start_removal(name, false);
            return;
        }
        if self.facts_stale {
            return;
        }
        let Some(facts) = &self.facts else {
            let blocked = (!self.queue.is_empty()).then_some(Blocked::NoFacts);
            self.set_blocked(blocked);
            return;
        };
        if let Some(after) = self.config.remove_after
            && facts.has_quorum()
            && let Some(node) = facts
                .due_for_removal(now, after, &self.local_name)
                .filter(|n| !self.removal_backoff.contains_key(&n.name))
        {
            let name = node.name.clone();
            self.start_removal(name, true);
            return;
        }
        let blocked = if !facts.has_quorum() {
            Some(Blocked::QuorumLost {
                live: facts.live_voters(),
                voters: facts.voters(),
            })
        } else {
            let names: Vec<String> = facts.dead_voters().iter().map(|n| n.name.clone()).collect();
            (!names.is_empty()).then_some(Blocked::DeadVoters { names })
        };
        let control_planes = facts.control_planes().max(1);
        let is_blocked = blocked.is_some();
        self.set_blocked(blocked);
        if is_blocked {
            return;
        }
        let Some((req, _)) = self.queue.pop_front() else {
            return;
        };
        let role = join_role(req.preference, control_planes, self.config.control_planes);
        let job = Job { req, role };
        match self.next.take() {
            Some(p)
                if p.follower == job.req.follower && now < p.issued + self.config.token_ttl / 2 =>
            {
                self.slot = Slot::Preparing {
                    job,
                    since: p.issued,
                };
                if let Some(urls) = p.urls {
                    self.on_add_node(&p.follower, Ok(urls));
                }
            }
            _ => {
                self.outputs.push(Output::AddNode {
                    follower: job.req.follower.clone(),
                    token: new_token(&mut self.rng),
                    ttl: self.config.token_ttl,
                });
                self.slot = Slot::Preparing { job, since: now };
            }
        }
    }

    /// Makes the next follower's token while a join is in flight (see the module doc).
    fn prepare_next(&mut self) {
        if !self.active
            || self.next.is_some()
            || self.blocked.is_some()
            || !matches!(self.slot, Slot::Granted { .. } | Slot::Verifying { .. })
        {
            return;
        }
        let Some((head, _)) = self.queue.front() else {
            return;
        };
        let follower = head.follower.clone();
        self.outputs.push(Output::AddNode {
            follower: follower.clone(),
            token: new_token(&mut self.rng),
            ttl: self.config.token_ttl,
        });
        self.next = Some(Prepared {
            follower,
            urls: None,
            issued: self.now,
        });
    }

    fn set_blocked(&mut self, blocked: Option<Blocked>) {
        if blocked != self.blocked {
            self.outputs.push(match &blocked {
                Some(b) => Output::Blocked(b.clone()),
                None => Output::Unblocked,
            });
            self.blocked = blocked;
        }
    }

    fn start_removal(&mut self, name: String, force: bool) {
        self.outputs.push(Output::RemoveNode {
            name: name.clone(),
            force,
        });
        self.slot = Slot::Removing {
            name,
            since: self.now,
        };
    }

    fn on_add_node(&mut self, follower: &str, result: Result<Vec<String>, Failure>) {
        if let Some(p) = &mut self.next
            && p.follower == follower
            && p.urls.is_none()
        {
            match result {
                Ok(urls) => p.urls = Some(urls),
                // Made again, the usual way, when its turn comes.
                Err(_) => self.next = None,
            }
            return;
        }
        let Slot::Preparing { job, .. } = &self.slot else {
            return;
        };
        if job.req.follower != follower {
            return;
        }
        let urls = match result {
            Ok(urls) => urls,
            Err(error) => return self.fail(JoinFailure::AddNode(error)),
        };
        let Some(url) = choose_url(&urls, job.req.addr, job.req.met_on, &self.nets) else {
            return self.fail(JoinFailure::NoUsableUrl);
        };
        let url = url.to_owned();
        let Slot::Preparing { job, .. } = std::mem::replace(&mut self.slot, Slot::Idle) else {
            return;
        };
        self.outputs.push(Output::Granted {
            follower: job.req.follower.clone(),
            name: job.req.name.clone(),
            role: job.role,
        });
        self.slot = Slot::Granted {
            job,
            url,
            since: self.now,
            expires: self.now + self.config.token_ttl,
            next_refresh: self.now + SERVING_REFRESH,
        };
        // From now on the node may show up at any moment.
        self.outputs.push(Output::RefreshFacts);
    }

    fn on_report(&mut self, follower: &str, outcome: Outcome) {
        if self.serving() != Some(follower) || matches!(self.slot, Slot::Preparing { .. }) {
            return;
        }
        if let Err(failure) = outcome {
            return self.fail(JoinFailure::Reported(failure));
        }
        if let Slot::Granted { .. } = self.slot {
            let Slot::Granted { job, .. } = std::mem::replace(&mut self.slot, Slot::Idle) else {
                return;
            };
            // Look at once; after that the pauses start short and double.
            self.slot = Slot::Verifying {
                job,
                since: self.now,
                next_refresh: self.now + SERVING_REFRESH,
                pause: VERIFY_FIRST,
            };
            self.outputs.push(Output::RefreshFacts);
        }
    }

    /// Ends the attempt in flight as verified when the facts show the node Ready (and, for a
    /// control plane, in the datastore).
    fn check_joined(&mut self) {
        let (Slot::Granted { job, .. } | Slot::Verifying { job, .. }) = &self.slot else {
            return;
        };
        let Some(node) = self.facts.as_ref().and_then(|f| f.node(&job.req.name)) else {
            return;
        };
        let in_datastore = job.role == JoinRole::Worker || node.datastore.is_some();
        if node.ready && in_datastore {
            let (Slot::Granted { job, .. } | Slot::Verifying { job, .. }) =
                std::mem::replace(&mut self.slot, Slot::Idle)
            else {
                return;
            };
            self.outputs.push(Output::Joined {
                follower: job.req.follower,
                name: job.req.name,
                role: job.role,
            });
        }
    }

    fn check_timeouts(&mut self) {
        let now = self.now;
        let c = &self.config;
        match &self.slot {
            Slot::Preparing { since, .. } if now >= *since + c.join_timeout => {
                self.fail(JoinFailure::AddNode(Failure::new(
                    FailureKind::TimedOut,
                    "add-node did not finish",
                )));
            }
            Slot::Granted { since, .. } if now >= *since + c.join_timeout => {
                self.fail(JoinFailure::NoReport);
            }
            Slot::Verifying { since, .. } if now >= *since + c.verify_timeout => {
                self.fail(JoinFailure::NotVerified);
            }
            Slot::Granted { next_refresh, .. } | Slot::Verifying { next_refresh, .. }
                if now >= *next_refresh =>
            {
                if let Slot::Granted { next_refresh, .. } | Slot::Verifying { next_refresh, .. } =
                    &mut self.slot
                {
                    // Asked again if these facts do not arrive in time.
                    *next_refresh = now + SERVING_REFRESH;
                }
                self.outputs.push(Output::RefreshFacts);
            }
            Slot::Removing { name, since } if now >= *since + c.join_timeout => {
                let name = name.clone();
                self.on_removed(
                    name,
                    Err(Failure::new(
                        FailureKind::TimedOut,
                        "remove-node did not finish",
                    )),
                );
            }
            _ => {}
        }
    }

    fn fail(&mut self, reason: JoinFailure) {
        let (Slot::Preparing { job, .. } | Slot::Granted { job, .. } | Slot::Verifying { job, .. }) =
            std::mem::replace(&mut self.slot, Slot::Idle)
        else {
            return;
        };
        self.outputs.push(Output::JoinFailed {
            follower: job.req.follower,
            name: job.req.name,
            reason,
        });
    }

    fn on_removed(&mut self, name: String, outcome: Outcome) {
        let Slot::Removing { name: current, .. } = &self.slot else {
            return;
        };
        if *current != name {
            return;
        }
        self.slot = Slot::Idle;
        match outcome {
            Ok(()) => self.outputs.push(Output::Removed { name }),
            Err(error) => {
                let retry = self.now + self.config.join_retry_max;
                self.removal_backoff.insert(name.clone(), retry);
                self.outputs.push(Output::RemoveFailed { name, error });
            }
        }
        // The node list still shows the node until it is read again.
        self.facts_stale = true;
        self.outputs.push(Output::RefreshFacts);
    }
}

/// The answer of a node that is not the entry point.
fn not_entry() -> JoinResponse {
    JoinResponse::Wait {
        position: 0,
        retry_after: NOT_ENTRY_RETRY,
        reason: WaitReason::NotEntry,
    }
}

/// "Ask again now": a hold that ended without a grant, or was superseded.
fn ask_again_now() -> JoinResponse {
    JoinResponse::Wait {
        position: 0,
        retry_after: Duration::ZERO,
        reason: WaitReason::Queued,
    }
}

#[cfg(test)]
#[path = "entry_tests.rs"]
mod tests;
