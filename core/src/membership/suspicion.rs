//! Lifeguard's suspicion timer: a timeout that shrinks as independent suspectors confirm.
//!
//! Owns: [`Suspicion`] (start, bounds, the set of confirmers) and the pure [`timeout`]
//! formula. Does not own: what happens when the timer fires (the state machine declares the
//! member dead) or which messages count as confirmations (any `suspect` from a node other than
//! the first suspector, at the same incarnation).

use std::collections::BTreeSet;
use std::time::Duration;

use super::message::NodeId;

/// The timeout after `confirmations` of `expected` confirmations, between `min` and `max`.
///
/// Falls logarithmically from `max` (none) to `min` (all `expected`): the first confirmations
/// matter most, since one independent witness already rules out most local faults.
pub fn timeout(min: Duration, max: Duration, expected: u32, confirmations: u32) -> Duration {
    if expected == 0 || max <= min {
        return min;
    }
    let c = confirmations.min(expected);
    let fraction = (f64::from(c) + 1.0).ln() / (f64::from(expected) + 1.0).ln();
    let span = max - min;
    let reduced = max.saturating_sub(span.mul_f64(fraction.clamp(0.0, 1.0)));
    reduced.max(min)
}

/// A running suspicion of one member.
#[derive(Clone, Debug, PartialEq)]
pub struct Suspicion {
    start: Duration,
    min: Duration,
    max: Duration,
    expected: u32,
    /// The first suspector and every confirmer: each counts once.
    witnesses: BTreeSet<NodeId>,
}

impl Suspicion {
    /// A suspicion raised by `from` at `start`, with bounds for the current cluster size.
    pub fn new(from: &str, start: Duration, min: Duration, max: Duration, expected: u32) -> Self {
        let mut witnesses = BTreeSet::new();
        witnesses.insert(from.to_owned());
        Suspicion {
            start,
            min,
            max,
            expected,
            witnesses,
        }
    }

    /// Records a suspicion by `from`; true when it is a new independent confirmation (worth
    /// re-gossiping), false for a repeat or once enough confirmations are in.
    pub fn confirm(&mut self, from: &str) -> bool {
        if self.confirmations() >= self.expected || self.witnesses.contains(from) {
            return false;
        }
        self.witnesses.insert(from.to_owned());
        true
    }

    /// Independent confirmations so far (the first suspector excluded).
    pub fn confirmations(&self) -> u32 {
        u32::try_from(self.witnesses.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// When the member is to be declared dead.
    pub fn deadline(&self) -> Duration {
        self.start + timeout(self.min, self.max, self.expected, self.confirmations())
    }

    /// When the suspicion started (local clock).
    pub fn start(&self) -> Duration {
        self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn timeout_table() {
        // (expected, confirmations, timeout in ms) with min 2 s and max 10 s.
        let cases = [
            (0, 0, 2000),
            (3, 0, 10_000),
            (3, 1, 6000),
            (3, 2, 3660),
            (3, 3, 2000),
            (3, 9, 2000),
            (1, 1, 2000),
        ];
        for (expected, c, ms) in cases {
            let got = timeout(S(2), S(10), expected, c).as_millis();
            assert!(
                got.abs_diff(ms) <= 5,
                "expected={expected} c={c}: got {got} want {ms}"
            );
        }
        assert_eq!(
            timeout(S(5), S(3), 3, 0),
            S(5),
            "max below min collapses to min"
        );
    }

    #[test]
    fn confirmations_shrink_the_deadline_and_count_each_node_once() {
        let mut s = Suspicion::new("a", S(100), S(2), S(10), 3);
        assert_eq!(s.deadline(), S(110));
        assert!(!s.confirm("a"), "the first suspector is not a confirmation");
        assert!(s.confirm("b"));
        assert!(!s.confirm("b"), "a repeat is not a confirmation");
        assert_eq!(s.confirmations(), 1);
        assert_eq!(s.deadline(), S(106));
        assert!(s.confirm("c"));
        assert!(s.confirm("d"));
        assert_eq!(s.deadline(), S(102));
        assert!(!s.confirm("e"), "no more are needed");
        assert_eq!(s.start(), S(100));
    }
}
