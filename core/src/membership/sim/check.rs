//! Safety invariants of the membership protocol, checked by the simulator after every step.
//!
//! Owns: [`Violation`] and the [`Checker`] that keeps, for every observer, the last
//! (incarnation, status) it reported for every member, fed by the observer's events.
//! Does not own: liveness (convergence), which the simulator measures after faults heal.
//!
//! One check per invariant of ALGORITHM.md:
//! - an observer never lowers a member's incarnation, and a node never lowers its own;
//! - a member an observer holds dead or left comes back only with a higher incarnation;
//! - no running member is declared dead while the network is benign (no partition or cut
//!   link, loss at most the tolerance) and the member has been up for a grace period;
//! - events tell the whole story: a periodic audit compares each view with the events seen;
//! - honest traffic is never rejected, and a tick always moves the next deadline forward.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::membership::message::Status;
use crate::membership::swim::{EventKind, MemberEvent, Membership};

/// A broken invariant, with the nodes involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// An observer's record of a member went to a lower incarnation.
    IncarnationDecreased {
        /// Who holds the view.
        observer: String,
        /// The member concerned.
        member: String,
        /// Incarnation before.
        from: u64,
        /// Incarnation after.
        to: u64,
    },
    /// A node's own incarnation went down within one life.
    LocalIncarnationDecreased {
        /// The node.
        node: String,
        /// Incarnation before.
        from: u64,
        /// Incarnation after.
        to: u64,
    },
    /// A dead or left member came back without a higher incarnation.
    Resurrected {
        /// Who holds the view.
        observer: String,
        /// The member concerned.
        member: String,
        /// Incarnation at which it was dead or left.
        down_at: u64,
        /// Incarnation at which it came back.
        back_at: u64,
    },
    /// A running member was declared dead on a benign network.
    FalseDead {
        /// Who declared it.
        observer: String,
        /// The running member.
        member: String,
    },
    /// An observer's view disagrees with the events it emitted.
    EventsIncomplete {
        /// Who holds the view.
        observer: String,
        /// The member concerned.
        member: String,
    },
    /// A message between honest simulated nodes was rejected.
    Rejected {
        /// The receiving node.
        node: String,
        /// The reason given.
        reason: String,
    },
    /// After a tick the next deadline was not in the future: the node would spin.
    StuckDeadline {
        /// The node.
        node: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::IncarnationDecreased {
                observer,
                member,
                from,
                to,
            } => write!(
                f,
                "{observer} lowered {member}'s incarnation {from} -> {to}"
            ),
            Violation::LocalIncarnationDecreased { node, from, to } => {
                write!(f, "{node} lowered its own incarnation {from} -> {to}")
            }
            Violation::Resurrected {
                observer,
                member,
                down_at,
                back_at,
            } => write!(
                f,
                "{observer} resurrected {member} (down at {down_at}, back at {back_at})"
            ),
            Violation::FalseDead { observer, member } => {
                write!(
                    f,
                    "{observer} declared running {member} dead on a benign network"
                )
            }
            Violation::EventsIncomplete { observer, member } => {
                write!(f, "{observer}'s view of {member} differs from its events")
            }
            Violation::Rejected { node, reason } => write!(f, "{node} rejected: {reason}"),
            Violation::StuckDeadline { node } => write!(f, "{node}'s deadline did not advance"),
        }
    }
}

/// What the simulator knows about the member an event is about.
#[derive(Clone, Copy, Debug)]
pub struct MemberFacts {
    /// The member's process is running.
    pub up: bool,
    /// Since when (sim time), if running.
    pub up_since: Duration,
}

/// Per-observer records of what each observer reported.
#[derive(Clone, Debug, Default)]
pub struct Checker {
    seen: Vec<HashMap<String, (u64, Status)>>,
    local: Vec<u64>,
}

impl Checker {
    /// A checker for `n` nodes.
    pub fn new(n: usize) -> Self {
        Checker {
            seen: vec![HashMap::new(); n],
            local: vec![0; n],
        }
    }

    /// Forgets what node `i` reported (it restarted with an empty view).
    pub fn reset(&mut self, i: usize, local_incarnation: u64) {
        self.seen[i].clear();
        self.local[i] = local_incarnation;
    }

    /// Checks one event emitted by observer `i` (named `observer`).
    ///
    /// `benign` says whether a dead verdict about a running member is a violation now.
    pub fn event(
        &mut self,
        i: usize,
        observer: &str,
        event: &MemberEvent,
        facts: MemberFacts,
        benign_for_dead: bool,
    ) -> Result<(), Violation> {
        let member = event.member.meta.id.clone();
        if event.kind == EventKind::Refuted {
            return Ok(());
        }
        if event.kind == EventKind::Forgotten {
            self.seen[i].remove(&member);
            return Ok(());
        }
        let (inc, status) = (event.member.incarnation, event.member.status);
        if let Some(&(old_inc, old_status)) = self.seen[i].get(&member) {
            if inc < old_inc {
                return Err(Violation::IncarnationDecreased {
                    observer: observer.to_owned(),
                    member,
                    from: old_inc,
                    to: inc,
                });
            }
            if !old_status.is_live() && status.is_live() && inc <= old_inc {
                return Err(Violation::Resurrected {
                    observer: observer.to_owned(),
                    member,
                    down_at: old_inc,
                    back_at: inc,
                });
            }
        }
        if status == Status::Dead && facts.up && benign_for_dead {
            return Err(Violation::FalseDead {
                observer: observer.to_owned(),
                member,
            });
        }
        self.seen[i].insert(member, (inc, status));
        Ok(())
    }

    /// Checks node `i`'s own incarnation after a step.
    pub fn local(&mut self, i: usize, node: &str, incarnation: u64) -> Result<(), Violation> {
        if incarnation < self.local[i] {
            return Err(Violation::LocalIncarnationDecreased {
                node: node.to_owned(),
                from: self.local[i],
                to: incarnation,
            });
        }
        self.local[i] = incarnation;
        Ok(())
    }

    /// Compares node `i`'s whole view with the events it emitted.
    pub fn audit(&self, i: usize, node: &Membership) -> Result<(), Violation> {
        let observer = &node.local().meta.id;
        let mut count = 0usize;
        for m in node.members() {
            count += 1;
            if self.seen[i].get(m.id()) != Some(&(m.incarnation, m.status)) {
                return Err(Violation::EventsIncomplete {
                    observer: observer.clone(),
                    member: m.id().to_owned(),
                });
            }
        }
        if count != self.seen[i].len() {
            let extra = self.seen[i]
                .keys()
                .find(|k| node.member(k).is_none())
                .cloned()
                .unwrap_or_default();
            return Err(Violation::EventsIncomplete {
                observer: observer.clone(),
                member: extra,
            });
        }
        Ok(())
    }
}
