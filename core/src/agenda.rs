//! The timeline of the deterministic simulators: events at virtual times, taken in time order
//! and, at equal times, in the order they were added, so that a run replays exactly from its
//! seed. The membership simulator and the agent's workflow simulation both run on it.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;

/// Events of type `E` waiting for their time.
#[derive(Debug)]
pub struct Agenda<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    added: u64,
}

#[derive(Debug)]
struct Entry<E> {
    at: Duration,
    order: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

impl<E> Default for Agenda<E> {
    fn default() -> Self {
        Agenda {
            heap: BinaryHeap::new(),
            added: 0,
        }
    }
}

impl<E> Agenda<E> {
    /// An empty agenda.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `event` at time `at`.
    pub fn push(&mut self, at: Duration, event: E) {
        self.added += 1;
        self.heap.push(Reverse(Entry {
            at,
            order: self.added,
            event,
        }));
    }

    /// The time of the next event, if any.
    pub fn next_at(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Takes the next event with its time.
    pub fn pop(&mut self) -> Option<(Duration, E)> {
        self.heap.pop().map(|Reverse(e)| (e.at, e.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_in_time_order_and_ties_in_the_order_added() {
        let mut a = Agenda::new();
        let ms = Duration::from_millis;
        a.push(ms(5), "c");
        a.push(ms(1), "a");
        a.push(ms(5), "d");
        a.push(ms(2), "b");
        assert_eq!(a.next_at(), Some(ms(1)));
        let order: Vec<_> = std::iter::from_fn(|| a.pop()).map(|(_, e)| e).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
        assert_eq!(a.next_at(), None);
    }
}
