//! The dissemination queue: updates waiting to be piggybacked or gossiped.
//!
//! Owns: at most one queued update per member (a newer one replaces the older, which is
//! obsolete anyway), each sent a bounded number of times, least-sent first and newest first
//! among equals, within a byte budget per message. Does not own: choosing the recipients or
//! the retransmit limit (the state machine passes `retransmit_mult * ceil(log10(N + 1))`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::message::{NodeId, Update};

#[derive(Clone, Debug)]
struct Item {
    update: Update,
    transmits: u32,
    order: u64,
}

/// Priority key: fewest transmits first, then the most recently queued.
type Key = (u32, Reverse<u64>);

/// The queue of updates to disseminate.
#[derive(Clone, Debug, Default)]
pub struct BroadcastQueue {
    items: BTreeMap<NodeId, Item>,
    by_priority: BTreeSet<(Key, NodeId)>,
    next_order: u64,
}

impl BroadcastQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `update`, replacing any queued update about the same member.
    pub fn push(&mut self, update: Update) {
        let id = update.id().to_owned();
        if let Some(old) = self.items.remove(&id) {
            self.by_priority
                .remove(&((old.transmits, Reverse(old.order)), id.clone()));
        }
        let order = self.next_order;
        self.next_order += 1;
        self.by_priority.insert(((0, Reverse(order)), id.clone()));
        self.items.insert(
            id,
            Item {
                update,
                transmits: 0,
                order,
            },
        );
    }

    /// Takes updates for one message within `max_bytes`, counting one transmission for each;
    /// an update sent `limit` times leaves the queue.
    pub fn take(&mut self, max_bytes: usize, limit: u32) -> Vec<Update> {
        let mut out = Vec::new();
        let mut used = 0usize;
        let mut chosen = Vec::new();
        for (key, id) in &self.by_priority {
            let Some(item) = self.items.get(id) else {
                continue;
            };
            let size = item.update.size_hint();
            if used + size > max_bytes {
                // A smaller update further down may still fit.
                continue;
            }
            used += size;
            out.push(item.update.clone());
            chosen.push((*key, id.clone()));
            if max_bytes - used < 16 {
                break;
            }
        }
        for (key, id) in chosen {
            self.by_priority.remove(&(key, id.clone()));
            let Some(item) = self.items.get_mut(&id) else {
                continue;
            };
            item.transmits += 1;
            if item.transmits >= limit {
                self.items.remove(&id);
            } else {
                self.by_priority
                    .insert(((item.transmits, Reverse(item.order)), id));
            }
        }
        out
    }

    /// Drops any queued update about `id` (the member was forgotten).
    pub fn forget(&mut self, id: &str) {
        if let Some(old) = self.items.remove(id) {
            self.by_priority
                .remove(&((old.transmits, Reverse(old.order)), id.to_owned()));
        }
    }

    /// Number of queued updates.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(id: &str, inc: u64) -> Update {
        Update::Left {
            id: id.to_owned(),
            incarnation: inc,
        }
    }

    #[test]
    fn newer_update_about_a_member_replaces_the_queued_one() {
        let mut q = BroadcastQueue::new();
        q.push(left("a", 1));
        q.push(left("a", 2));
        assert_eq!(q.len(), 1);
        assert_eq!(q.take(10_000, 5), vec![left("a", 2)]);
    }

    #[test]
    fn updates_leave_after_the_retransmit_limit() {
        let mut q = BroadcastQueue::new();
        q.push(left("a", 1));
        for _ in 0..3 {
            assert_eq!(q.take(10_000, 3).len(), 1);
        }
        assert!(q.is_empty());
        assert!(q.take(10_000, 3).is_empty());
    }

    #[test]
    fn least_sent_then_newest_first_within_the_budget() {
        let mut q = BroadcastQueue::new();
        q.push(left("a", 1));
        q.push(left("b", 1));
        let one = left("a", 1).size_hint();
        // Budget for a single update: the newest ("b") goes first.
        assert_eq!(q.take(one, 10), vec![left("b", 1)]);
        // Then "a", which has been sent fewer times.
        assert_eq!(q.take(one, 10), vec![left("a", 1)]);
        q.push(left("c", 1));
        assert_eq!(q.take(one, 10), vec![left("c", 1)]);
        q.forget("c");
        assert_eq!(q.len(), 2);
    }
}
