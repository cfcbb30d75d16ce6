//! The election state machine of one node: views, claims and replies in; votes, claims,
//! role changes and reports out.
//!
//! Owns: [`Election`] and its transitions; the vocabulary is in `msg.rs`.
//! Does not own: the rules (`rules.rs`), the vote decision (`claim.rs`), transport, clocks
//! or persistence (the driver carries out every output in order).
//!
//! # States
//! ```text
//! Follower --settled, rules choose us, quorum up, retry timer--> Candidate(term)
//! Candidate --majority of the electorate acknowledged--> Entry(term)
//! Candidate --timeout / majority refused / higher term / rules changed--> Follower (backoff)
//! Entry --higher term seen, quorum lost, or (settled) rules choose another--> Follower
//! any --grants a claim of a higher term--> Follower
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use super::claim::{self, Claim, ClaimReply, HardState, Refusal, VoteContext};
use super::config::{ElectionConfig, ElectionConfigError};
use super::msg::{ClaimFailure, Conflict, ElectionStatus, Input, Output, Role, StepDown};
use super::rules::{self, Decision};
use super::view::{self, Electorate, MemberView, NodeId, Term};
use crate::backoff::Backoff;
use crate::rng::Rng;

struct Candidacy {
    term: Term,
    electorate: Electorate,
    acks: BTreeSet<NodeId>,
    /// Voters asked that have not answered yet.
    pending: BTreeSet<NodeId>,
    deadline: Duration,
}

enum State {
    Follower,
    Candidate(Candidacy),
    Entry { term: Term },
}

/// The election core of one node. Feed [`Input`]s with [`Election::handle`], carry out
/// [`Election::drain_outputs`] in order, tick at [`Election::next_deadline`].
pub struct Election {
    local: NodeId,
    config: ElectionConfig,
    backoff: Backoff,
    rng: Rng,
    now: Duration,
    hard: HardState,
    seen_term: Term,
    state: State,
    view: Vec<MemberView>,
    electorate: Electorate,
    decision: Decision,
    fingerprint: u64,
    stable_since: Duration,
    next_forget_at: Option<Duration>,
    next_claim_at: Duration,
    /// When this node started: no claim before `started + discovery`.
    started: Duration,
    failed_claims: u32,
    following: Option<(NodeId, Term)>,
    follow_floor: Option<(Term, NodeId)>,
    /// The view or our role changed since following was last decided.
    recheck_following: bool,
    announced: (Option<Term>, Option<(NodeId, Term)>),
    conflict: Option<Conflict>,
    outputs: Vec<Output>,
}

impl Election {
    /// A follower with no view yet and no vote cast. `seed` drives the retry jitter.
    pub fn new(
        local: NodeId,
        config: ElectionConfig,
        seed: u64,
        now: Duration,
    ) -> Result<Self, ElectionConfigError> {
        config.validate()?;
        let backoff = Backoff {
            base: config.claim_retry,
            cap: config.claim_retry_max,
        };
        Ok(Election {
            local,
            config,
            backoff,
            rng: Rng::new(seed),
            now,
            hard: HardState::default(),
            seen_term: 0,
            state: State::Follower,
            view: Vec::new(),
            electorate: Electorate::default(),
            decision: Decision::None(rules::NoCandidate::NoEligibleMember),
            fingerprint: 0,
            stable_since: now,
            started: now,
            next_forget_at: None,
            next_claim_at: now,
            failed_claims: 0,
            following: None,
            follow_floor: None,
            recheck_following: false,
            announced: (None, None),
            conflict: None,
            outputs: Vec::new(),
        })
    }

    /// Restores the vote persisted before a restart (see [`Output::Persist`]).
    pub fn with_hard_state(mut self, hard: HardState) -> Self {
        self.seen_term = self.seen_term.max(hard.voted_term);
        self.hard = hard;
        self
    }

    /// Processes one input at `now` (a clock that never goes back; earlier values are
    /// treated as the latest seen).
    pub fn handle(&mut self, now: Duration, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::ViewChanged(mut view) => {
                view.sort_by(|a, b| a.id.cmp(&b.id));
                view.dedup_by(|a, b| a.id == b.id);
                self.view = view;
                self.recompute();
            }
            Input::Claim { from, claim } => self.on_claim(from, claim),
            Input::ClaimReply { from, reply } => self.on_reply(from, reply),
            Input::SendFailed { to } => self.on_refusal(to, None, 0),
            Input::Tick => {}
        }
        self.evaluate();
        self.announce();
    }

    /// Takes the outputs queued so far.
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// When the next [`Input::Tick`] is due, if any timer is running.
    pub fn next_deadline(&self) -> Option<Duration> {
        let settle_end = self.settle_end();
        let mut due = Vec::with_capacity(4);
        if self.now < settle_end {
            due.push(settle_end);
        }
        match &self.state {
            State::Candidate(c) => due.push(c.deadline),
            State::Follower
                if self.decision.chooses(&self.local) && self.electorate.has_quorum() =>
            {
                due.push(self.next_claim_at.max(settle_end));
            }
            _ => {}
        }
        due.extend(self.next_forget_at);
        // A time already reached is handled by the tick that got us here; returning it
        // would make the driver spin.
        due.into_iter().filter(|at| *at > self.now).min()
    }

    /// Our role.
    pub fn role(&self) -> Role {
        match &self.state {
            State::Follower => Role::Follower,
            State::Candidate(c) => Role::Candidate { term: c.term },
            State::Entry { term } => Role::Entry { term: *term },
        }
    }

    /// The confirmed entry point we follow, with its term.
    pub fn following(&self) -> Option<(&str, Term)> {
        self.following.as_ref().map(|(id, t)| (id.as_str(), *t))
    }

    /// The vote to persist.
    pub fn hard_state(&self) -> &HardState {
        &self.hard
    }

    /// What the rules say on the current view.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// The current electorate.
    pub fn electorate(&self) -> &Electorate {
        &self.electorate
    }

    /// The local node id.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// A snapshot for status and the journal.
    pub fn status(&self) -> ElectionStatus {
        ElectionStatus {
            role: self.role(),
            seen_term: self.seen_term,
            following: self.following.clone(),
            decision: self.decision.clone(),
            settled: self.settled(),
            electorate: to_u32(self.electorate.len()),
            up: to_u32(self.electorate.up()),
            conflict: self.conflict.clone(),
        }
    }

    fn settled(&self) -> bool {
        self.now >= self.settle_end()
    }

    /// The view has been quiet for the settle window, and discovery had its time.
    fn settle_end(&self) -> Duration {
        self.stable_since
            .saturating_add(self.config.settle)
            .max(self.started.saturating_add(self.config.discovery))
    }

    fn recompute(&mut self) {
        let now = self.now;
        let forget = self.config.forget_dead_after;
        self.electorate = Electorate::of(&self.view, now, forget);
        let clusters = rules::clusters(&self.view);
        self.decision = rules::choose_entry_in(&self.view, &clusters);
        let fp = view::fingerprint(&self.view, |m| view::counts(m, now, forget));
        if fp != self.fingerprint {
            self.fingerprint = fp;
            self.stable_since = now;
        }
        self.next_forget_at = forget.and_then(|after| {
            self.view
                .iter()
                .filter_map(|m| match m.liveness {
                    view::Liveness::Dead { since } => Some(since.saturating_add(after)),
                    _ => None,
                })
                .filter(|at| *at > now)
                .min()
        });
        self.recheck_following = true;
        let next = (clusters.len() >= 2).then_some(Conflict { clusters });
        let ids = |c: &Option<Conflict>| {
            c.as_ref().map(|c| {
                c.clusters
                    .iter()
                    .map(|x| x.cluster_id.clone())
                    .collect::<Vec<_>>()
            })
        };
        if ids(&next) != ids(&self.conflict) {
            match &next {
                Some(c) => self.outputs.push(Output::Conflict(c.clone())),
                None => self.outputs.push(Output::ConflictCleared),
            }
        }
        self.conflict = next;
    }

    fn evaluate(&mut self) {
        if self.next_forget_at.is_some_and(|at| at <= self.now) {
            self.recompute();
        }
        match &self.state {
            State::Entry { term } => {
                let term = *term;
                if let Some((entry, t)) = self.rival_entry(term) {
                    self.step_down(StepDown::HigherTerm { entry, term: t });
                } else if !self.electorate.has_quorum() {
                    self.step_down(StepDown::QuorumLost {
                        up: to_u32(self.electorate.up()),
                        electorate: to_u32(self.electorate.len()),
                    });
                } else if self.settled() && !self.decision.chooses(&self.local) {
                    let choice = self.decision.node().map(str::to_owned);
                    self.step_down(StepDown::RulesChoose { choice });
                }
            }
            State::Candidate(c) => {
                if self.now >= c.deadline {
                    let failure = ClaimFailure::Timeout {
                        acks: to_u32(c.acks.len()),
                        needed: to_u32(c.electorate.majority()),
                    };
                    self.fail_claim(failure);
                } else if !self.decision.chooses(&self.local) {
                    self.fail_claim(ClaimFailure::ChoiceChanged);
                }
            }
            State::Follower => {}
        }
        if matches!(self.state, State::Follower) && self.may_claim() {
            self.start_claim();
        }
        if std::mem::take(&mut self.recheck_following) {
            self.update_following();
        }
    }

    fn may_claim(&self) -> bool {
        self.settled()
            && self.now >= self.next_claim_at
            && self.decision.chooses(&self.local)
            && self.electorate.contains(&self.local)
            && self.electorate.has_quorum()
    }

    /// Another node that up members announce as entry point of a term at least as high as
    /// `term`: directly (its own `entry_term`) or as followed. Equal terms mean two
    /// electorates collided; stepping down lets the rules' choice claim a higher term.
    fn rival_entry(&self, term: Term) -> Option<(NodeId, Term)> {
        self.view
            .iter()
            .filter(|m| m.liveness.is_up())
            .flat_map(|m| {
                let own = (m.id != self.local)
                    .then(|| m.entry_term.map(|t| (t, &m.id)))
                    .flatten();
                let followed = m.followed.as_ref().map(|(id, t)| (*t, id));
                [own, followed]
            })
            .flatten()
            .filter(|(t, id)| *t >= term && *id != &self.local)
            .max()
            .map(|(t, id)| (id.clone(), t))
    }

    fn announce(&mut self) {
        let entry_term = match self.state {
            State::Entry { term } => Some(term),
            _ => None,
        };
        let followed = self.follow_floor.as_ref().map(|(t, id)| (id.clone(), *t));
        let now = (entry_term, followed);
        if now != self.announced {
            self.announced = now.clone();
            self.outputs.push(Output::Announce {
                entry_term: now.0,
                followed: now.1,
            });
        }
    }

    fn start_claim(&mut self) {
        let term = self
            .seen_term
            .max(self.hard.voted_term)
            .max(rules::max_announced_term(&self.view))
            .max(self.follow_floor.as_ref().map_or(0, |(t, _)| *t))
            .saturating_add(1);
        self.hard = HardState {
            voted_term: term,
            voted_for: Some(self.local.clone()),
        };
        self.seen_term = term;
        self.outputs.push(Output::Persist(self.hard.clone()));
        let electorate = self.electorate.clone();
        self.outputs.push(Output::ClaimStarted {
            term,
            electorate: to_u32(electorate.len()),
        });
        let claim = Claim {
            term,
            electorate_digest: electorate.digest(),
            electorate_size: to_u32(electorate.len()),
        };
        let mut pending = BTreeSet::new();
        for m in &self.view {
            if m.id != self.local && m.liveness.is_up() && electorate.contains(&m.id) {
                pending.insert(m.id.clone());
                self.outputs.push(Output::SendClaim {
                    to: m.id.clone(),
                    claim: claim.clone(),
                });
            }
        }
        let done = electorate.majority() <= 1;
        self.state = State::Candidate(Candidacy {
            term,
            electorate,
            acks: BTreeSet::from([self.local.clone()]),
            pending,
            deadline: self.now.saturating_add(self.config.claim_timeout),
        });
        if done {
            self.become_entry(term);
        }
    }

    fn on_claim(&mut self, from: NodeId, claim: Claim) {
        if from == self.local {
            return;
        }
        self.seen_term = self.seen_term.max(claim.term);
        let ctx = VoteContext {
            hard: &self.hard,
            choice: self.decision.node(),
            electorate: (self.electorate.digest(), to_u32(self.electorate.len())),
        };
        let verdict = claim::vote(ctx, &from, &claim);
        let granted = verdict.is_ok();
        if granted {
            if self.hard.voted_term != claim.term {
                self.hard = HardState {
                    voted_term: claim.term,
                    voted_for: Some(from.clone()),
                };
                self.outputs.push(Output::Persist(self.hard.clone()));
            }
            match &self.state {
                State::Candidate(c) if c.term < claim.term => {
                    self.fail_claim(ClaimFailure::Superseded { term: claim.term });
                }
                State::Entry { term } if *term < claim.term => {
                    self.step_down(StepDown::Superseded {
                        claimant: from.clone(),
                        term: claim.term,
                    });
                }
                _ => {}
            }
        }
        let reply = ClaimReply {
            term: claim.term,
            granted,
            seen_term: self.seen_term.max(self.hard.voted_term),
            refusal: verdict.err(),
        };
        self.outputs
            .push(Output::SendClaimReply { to: from, reply });
    }

    fn on_reply(&mut self, from: NodeId, reply: ClaimReply) {
        self.seen_term = self.seen_term.max(reply.seen_term);
        let State::Candidate(c) = &mut self.state else {
            return;
        };
        if reply.term != c.term || !c.electorate.contains(&from) {
            return;
        }
        if reply.granted {
            c.pending.remove(&from);
            c.acks.insert(from);
            if c.acks.len() >= c.electorate.majority() {
                let term = c.term;
                self.become_entry(term);
            }
        } else {
            self.on_refusal(from, reply.refusal, reply.seen_term);
        }
    }

    fn on_refusal(&mut self, from: NodeId, refusal: Option<Refusal>, seen: Term) {
        let State::Candidate(c) = &mut self.state else {
            return;
        };
        if !c.pending.remove(&from) {
            return;
        }
        if seen > c.term {
            self.fail_claim(ClaimFailure::Superseded { term: seen });
        } else if c.acks.len() + c.pending.len() < c.electorate.majority() {
            self.fail_claim(ClaimFailure::Refused { last: refusal });
        }
    }

    fn become_entry(&mut self, term: Term) {
        self.state = State::Entry { term };
        self.failed_claims = 0;
        self.outputs.push(Output::BecameEntry { term });
        if let Some((entry, t)) = self.following.take() {
            self.outputs.push(Output::Unfollowed { entry, term: t });
        }
    }

    fn fail_claim(&mut self, reason: ClaimFailure) {
        let State::Candidate(c) = &self.state else {
            return;
        };
        let term = c.term;
        self.state = State::Follower;
        self.failed_claims = self.failed_claims.saturating_add(1);
        let delay = self.backoff.delay(self.failed_claims, &mut self.rng);
        self.next_claim_at = self.now.saturating_add(delay);
        self.outputs.push(Output::ClaimFailed { term, reason });
    }

    fn step_down(&mut self, reason: StepDown) {
        let State::Entry { term } = self.state else {
            return;
        };
        self.state = State::Follower;
        self.recheck_following = true;
        self.outputs.push(Output::SteppedDown { term, reason });
    }

    /// Follows the up member announcing the highest entry term, never going back to a lower
    /// term than one already followed, and never holding two at once.
    fn update_following(&mut self) {
        if matches!(self.state, State::Entry { .. }) {
            return;
        }
        let best = self
            .view
            .iter()
            .filter(|m| m.id != self.local && m.liveness.is_up())
            .filter_map(|m| m.entry_term.map(|t| (t, &m.id)))
            // Highest term; on an (anomalous) tie the lowest id, for determinism.
            .max_by(|(ta, a), (tb, b)| ta.cmp(tb).then_with(|| b.cmp(a)))
            .map(|(t, id)| (t, id.clone()));
        if let Some((entry, term)) = &self.following {
            let still = self
                .view
                .iter()
                .any(|m| &m.id == entry && m.liveness.is_up() && m.entry_term == Some(*term));
            let outranked = best.as_ref().is_some_and(|(t, _)| t > term);
            if still && !outranked {
                return;
            }
            let (entry, term) = (entry.clone(), *term);
            self.following = None;
            self.outputs.push(Output::Unfollowed { entry, term });
        }
        let Some((term, entry)) = best else {
            return;
        };
        let allowed = match &self.follow_floor {
            None => true,
            Some((ft, fid)) => term > *ft || (term == *ft && entry == *fid),
        };
        if allowed {
            self.follow_floor = Some((term, entry.clone()));
            self.following = Some((entry.clone(), term));
            self.outputs.push(Output::Following { entry, term });
        }
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
