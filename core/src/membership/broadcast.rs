//! The dissemination queue: updates waiting to be piggybacked or gossiped.
//!
//! Owns: the queued updates, each sent a bounded number of times, least-sent first and
//! newest first among equals, within a byte budget per message. A newer update about a member
//! drops the queued ones it makes obsolete; suspicions by different suspectors at the same
//! incarnation are kept side by side, because each is an independent confirmation that
//! Lifeguard needs to reach every node. Does not own: choosing the recipients or the
//! retransmit limit (the state machine passes `retransmit_mult * ceil(log10(N + 1))`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::message::{NodeId, Update};

#[derive(Clone, Debug)]
struct Item {
    update: Update,
    transmits: u32,
    order: u64,
}

/// Queue key: the member, and the suspector for suspicions (empty otherwise).
type Slot = (NodeId, NodeId);

/// Priority key: fewest transmits first, then the most recently queued.
type Key = (u32, Reverse<u64>);

fn slot(update: &Update) -> Slot {
    let from = match update {
        Update::Suspect { from, .. } => from.clone(),
        _ => NodeId::new(),
    };
    (update.id().to_owned(), from)
}

/// The queue of updates to disseminate.
#[derive(Clone, Debug, Default)]
pub struct BroadcastQueue {
    items: BTreeMap<Slot, Item>,
    by_priority: BTreeSet<(Key, Slot)>,
    next_order: u64,
}

impl BroadcastQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `update`, dropping the queued updates about the same member that it makes
    /// obsolete (all of them, except other suspicions at the same incarnation).
    pub fn push(&mut self, update: Update) {
        let id = update.id().to_owned();
        let keep_same_incarnation_suspects = matches!(update, Update::Suspect { .. });
        let obsolete: Vec<Slot> = self
            .items
            .range((id.clone(), NodeId::new())..)
            .take_while(|((member, _), _)| *member == id)
            .filter(|(_, item)| {
                !(keep_same_incarnation_suspects
                    && matches!(item.update, Update::Suspect { .. })
                    && item.update.incarnation() >= update.incarnation())
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in obsolete {
            self.remove(&k);
        }
        let key = slot(&update);
        self.remove(&key);
        let order = self.next_order;
        self.next_order += 1;
        self.by_priority.insert(((0, Reverse(order)), key.clone()));
        self.items.insert(
            key,
            Item {
                update,
                transmits: 0,
                order,
            },
        );
    }

    fn remove(&mut self, key: &Slot) {
        if let Some(old) = self.items.remove(key) {
            self.by_priority
                .remove(&((old.transmits, Reverse(old.order)), key.clone()));
        }
    }

    /// Takes updates for one message within `max_bytes`, counting one transmission for each;
    /// an update sent `limit` times leaves the queue.
    pub fn take(&mut self, max_bytes: usize, limit: u32) -> Vec<Update> {
        let mut out = Vec::new();
        let mut used = 0usize;
        let mut chosen = Vec::new();
        for (key, slot) in &self.by_priority {
            let Some(item) = self.items.get(slot) else {
                continue;
            };
            let size = item.update.size_hint();
            if used + size > max_bytes {
                // A smaller update further down may still fit.
                continue;
            }
            used += size;
            out.push(item.update.clone());
            chosen.push((*key, slot.clone()));
            if max_bytes - used < 16 {
                break;
            }
        }
        for (key, slot) in chosen {
            self.by_priority.remove(&(key, slot.clone()));
            let Some(item) = self.items.get_mut(&slot) else {
                continue;
            };
            item.transmits += 1;
            if item.transmits >= limit {
                self.items.remove(&slot);
            } else {
                self.by_priority
                    .insert(((item.transmits, Reverse(item.order)), slot));
            }
        }
        out
    }

    /// Drops every queued update about `id` (the member was forgotten).
    pub fn forget(&mut self, id: &str) {
        let slots: Vec<Slot> = self
            .items
            .range((id.to_owned(), NodeId::new())..)
            .take_while(|((member, _), _)| member == id)
            .map(|(k, _)| k.clone())
            .collect();
        for k in slots {
            self.remove(&k);
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

    fn suspect(id: &str, inc: u64, from: &str) -> Update {
        Update::Suspect {
            id: id.to_owned(),
            incarnation: inc,
            from: from.to_owned(),
        }
    }

    #[test]
    fn confirmations_coexist_until_a_newer_state_supersedes_them() {
        let mut q = BroadcastQueue::new();
        q.push(suspect("x", 1, "a"));
        q.push(suspect("x", 1, "b"));
        q.push(suspect("x", 1, "a"));
        assert_eq!(q.len(), 2, "one per suspector");
        q.push(suspect("x", 2, "c"));
        assert_eq!(q.len(), 1, "older-incarnation suspicions are obsolete");
        q.push(left("x", 3));
        assert_eq!(q.take(10_000, 5), vec![left("x", 3)]);
        q.push(suspect("y", 1, "a"));
        q.push(suspect("y", 1, "b"));
        q.forget("y");
        assert_eq!(q.len(), 1, "only the left of x remains");
    }
}
