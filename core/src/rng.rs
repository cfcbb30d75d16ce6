//! Deterministic pseudo-random numbers for the pure cores.
//!
//! Owns: a small seeded generator (xoshiro256** whose state is expanded from a `u64` seed with
//! SplitMix64) and the helpers the cores need (bounded integers, probabilities, shuffles,
//! sampling). Both algorithms are public-domain designs by Blackman and Vigna, written out here
//! from their published descriptions so that a simulation is reproducible from its seed alone,
//! whatever version of an external crate is in the lock file.
//!
//! Does not own: seeding from the operating system. The daemon's driver picks a seed (from
//! `rand` or the clock) and hands it in; cores never read entropy themselves.

use std::time::Duration;

/// One step of SplitMix64: advances `state` and returns a well-mixed 64-bit value.
///
/// Used to expand a single seed into the four words xoshiro needs (a seed of 0 is fine).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded xoshiro256** generator: fast, small state, good statistical quality.
///
/// Not cryptographic: it picks probe targets and gossip peers, never secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        // SplitMix64 never yields four zero words in a row, so the all-zero state (the one
        // fixed point of xoshiro) cannot occur.
        Rng { s }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A new generator with an independent stream, derived from this one.
    ///
    /// The simulator gives each node its own fork so that adding a node does not shift the
    /// random choices of the others.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// A uniform integer in `0..n`; returns 0 when `n` is 0.
    ///
    /// Multiply-shift with rejection of the biased low zone, so every value is equally likely.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let wide = u128::from(self.next_u64()) * u128::from(n);
            // The low half decides rejection; truncation to u64 is the point here.
            let low = wide as u64;
            if low >= threshold {
                return (wide >> 64) as u64;
            }
        }
    }

    /// A uniform index into a slice of length `len`, or `None` for an empty slice.
    pub fn index(&mut self, len: usize) -> Option<usize> {
        if len == 0 {
            None
        } else {
            // `below(len)` is < len, so it fits in usize.
            Some(self.below(len as u64) as usize)
        }
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (values outside `[0, 1]` are clamped).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.unit_f64() < p
        }
    }

    /// A uniform duration in `[lo, hi]` at microsecond resolution (`lo` when `hi <= lo`).
    pub fn duration_between(&mut self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo).as_micros().min(u128::from(u64::MAX - 1)) as u64;
        lo + Duration::from_micros(self.below(span + 1))
    }

    /// Shuffles `items` in place (Fisher-Yates), every permutation equally likely.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// A uniformly chosen element, or `None` for an empty slice.
    pub fn choose<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        self.index(items.len()).map(|i| &items[i])
    }

    /// `k` distinct indices in `0..len` (fewer when `len < k`), in random order.
    ///
    /// Cheap for the common case of a few picks from a large table: it draws and rejects
    /// repeats instead of shuffling the whole range.
    pub fn sample_indices(&mut self, len: usize, k: usize) -> Vec<usize> {
        let k = k.min(len);
        if k == 0 {
            return Vec::new();
        }
        if k * 4 >= len {
            let mut all: Vec<usize> = (0..len).collect();
            // Partial Fisher-Yates: only the first k positions need to be settled.
            for i in 0..k {
                let j = i + self.below((len - i) as u64) as usize;
                all.swap(i, j);
            }
            all.truncate(k);
            return all;
        }
        let mut picked = Vec::with_capacity(k);
        while picked.len() < k {
            let candidate = self.below(len as u64) as usize;
            if !picked.contains(&candidate) {
                picked.push(candidate);
            }
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_reference_first_output_for_seed_zero() {
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn same_seed_same_stream_and_different_seed_different_stream() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let mut c = Rng::new(43);
        let xa: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn below_stays_in_range_and_covers_it_evenly() {
        let mut r = Rng::new(7);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            let v = r.below(6);
            assert!(v < 6);
            counts[v as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "uneven counts {counts:?}");
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.index(0), None);
    }

    #[test]
    fn chance_clamps_and_roughly_matches_probability() {
        let mut r = Rng::new(1);
        assert!(!r.chance(0.0));
        assert!(r.chance(1.0));
        assert!(!r.chance(-3.0));
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2_200..2_800).contains(&hits), "hits {hits}");
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut r = Rng::new(3);
        let mut v: Vec<u32> = (0..100).collect();
        r.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(v, sorted, "a 100-element shuffle left everything in place");
    }

    #[test]
    fn sample_indices_are_distinct_and_bounded() {
        let mut r = Rng::new(9);
        for (len, k) in [(10, 3), (10, 10), (5, 9), (1000, 3), (0, 2)] {
            let s = r.sample_indices(len, k);
            assert_eq!(s.len(), k.min(len));
            let mut d = s.clone();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), s.len());
            assert!(s.iter().all(|&i| i < len));
        }
    }

    #[test]
    fn duration_between_is_inclusive_and_ordered() {
        let mut r = Rng::new(5);
        let lo = Duration::from_millis(1);
        let hi = Duration::from_millis(2);
        for _ in 0..1000 {
            let d = r.duration_between(lo, hi);
            assert!(d >= lo && d <= hi);
        }
        assert_eq!(r.duration_between(hi, lo), hi);
    }
}
