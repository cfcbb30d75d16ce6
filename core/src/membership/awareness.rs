//! Lifeguard's local health ("awareness") score.
//!
//! Owns: a saturating score in `0..max`, raised when this node shows signs of being the slow
//! or lossy one (missed NACKs, having to refute a suspicion of itself) and lowered by each
//! successful probe; timeouts are multiplied by `score + 1`, so a struggling node waits longer
//! before accusing others. Does not own: deciding which events move the score (`probe.rs`,
//! `swim.rs`).

use std::time::Duration;

/// The local health score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Awareness {
    max: u32,
    score: u32,
}

impl Awareness {
    /// A healthy score (0) bounded by `max` (at least 1).
    pub fn new(max: u32) -> Self {
        Awareness {
            max: max.max(1),
            score: 0,
        }
    }

    /// Adds `delta` (may be negative), clamped to `0..max`.
    pub fn apply(&mut self, delta: i64) {
        let next = i64::from(self.score).saturating_add(delta);
        let top = i64::from(self.max - 1);
        self.score = u32::try_from(next.clamp(0, top)).unwrap_or(0);
    }

    /// The current score; 0 is healthy.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// `timeout` stretched by the score.
    pub fn scale(&self, timeout: Duration) -> Duration {
        timeout.saturating_mul(self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_saturates_at_both_ends_and_scales_timeouts() {
        let mut a = Awareness::new(8);
        a.apply(-1);
        assert_eq!(a.score(), 0);
        assert_eq!(
            a.scale(Duration::from_millis(300)),
            Duration::from_millis(300)
        );
        a.apply(3);
        assert_eq!(
            a.scale(Duration::from_millis(300)),
            Duration::from_millis(1200)
        );
        a.apply(100);
        assert_eq!(a.score(), 7);
        a.apply(-2);
        assert_eq!(a.score(), 5);
    }
}
