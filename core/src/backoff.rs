//! Exponential backoff with jitter, for retries that many nodes may start at the same moment.
//!
//! Owns: [`Backoff`]. The randomness comes from the caller's seeded [`Rng`], so a retry
//! schedule is reproducible in tests and simulations.

use std::time::Duration;

use crate::rng::Rng;

/// Delays `base, 2·base, 4·base, …` capped at `cap`, each drawn uniformly from its upper half
/// ("equal jitter"): the spread keeps nodes that failed together from retrying together, and
/// the floor keeps a retry from coming back at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Longest delay (before jitter).
    pub cap: Duration,
}

impl Backoff {
    /// The uncapped-then-capped delay before retry number `attempt` (1 = first retry), without
    /// jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        let factor = 1u32 << doublings.min(31);
        self.base
            .saturating_mul(factor)
            .min(self.cap.max(self.base))
    }

    /// The delay before retry number `attempt`: uniform in `[ceiling/2, ceiling]`.
    pub fn delay(&self, attempt: u32, rng: &mut Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        rng.duration_between(ceiling / 2, ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_per_attempt_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        let got: Vec<u64> = (1..=6).map(|a| b.ceiling(a).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn delay_is_jittered_within_the_upper_half_and_reproducible() {
        let b = Backoff {
            base: Duration::from_millis(800),
            cap: Duration::from_secs(60),
        };
        let mut r1 = Rng::new(11);
        let mut r2 = Rng::new(11);
        let a: Vec<Duration> = (1..=5).map(|n| b.delay(n, &mut r1)).collect();
        let c: Vec<Duration> = (1..=5).map(|n| b.delay(n, &mut r2)).collect();
        assert_eq!(a, c);
        for (n, d) in (1..=5).zip(&a) {
            let ceiling = b.ceiling(n);
            assert!(*d >= ceiling / 2 && *d <= ceiling, "attempt {n}: {d:?}");
        }
        let mut r = Rng::new(3);
        let spread: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| b.delay(3, &mut r)).collect();
        assert!(
            spread.len() > 10,
            "jitter should spread retries: {spread:?}"
        );
    }
}
