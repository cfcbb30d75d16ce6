//! Realism knobs of the simulator: join latency, silent failures, liveness timing.
//!
//! Owns the [`SimConfig`] of one simulated host's daemon and how it is read from the
//! environment (`MUSTER_SIM_*`). It does not own the per-host identity (see `state_dir`)
//! nor the cluster rules (see `replica`).

use std::time::Duration;

use rand::Rng;

/// How long the slow steps of `join`, `leave` and node start-up take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyProfile {
    /// Everything immediate: for benchmarks and fast unit tests.
    Zero,
    /// A few seconds: the default for tests and `muster demo`.
    Fast,
    /// What a LAN of real machines shows: control-plane joins 20-60 s, workers 10-30 s,
    /// +10-20 s on the entry for the first join, `leave` 30-60 s.
    Realistic,
    /// Every join and leave takes exactly this long; no extra first-join delay.
    Fixed(Duration),
}

impl LatencyProfile {
    fn range(&self, rng: &mut impl Rng, fast_ms: u64, real_ms: (u64, u64)) -> Duration {
        match self {
            Self::Zero => Duration::ZERO,
            Self::Fast => Duration::from_millis(fast_ms),
            Self::Realistic => Duration::from_millis(rng.random_range(real_ms.0..=real_ms.1)),
            Self::Fixed(d) => *d,
        }
    }

    /// Time a control-plane joiner spends between the entry's answer and its dqlite membership.
    pub fn control_plane_join(&self, rng: &mut impl Rng) -> Duration {
        self.range(rng, 3_000, (20_000, 60_000))
    }

    /// Time a worker joiner spends on certificate signing and service restarts.
    pub fn worker_join(&self, rng: &mut impl Rng) -> Duration {
        self.range(rng, 2_000, (10_000, 30_000))
    }

    /// Extra time the entry needs on the first join (dqlite re-bind and restart).
    pub fn first_join_extra(&self, rng: &mut impl Rng) -> Duration {
        match self {
            Self::Fixed(_) => Duration::ZERO,
            other => other.range(rng, 500, (10_000, 20_000)),
        }
    }

    /// Time between a node's registration and its first `Ready` (CNI start-up).
    pub fn ready_delay(&self, rng: &mut impl Rng) -> Duration {
        match self {
            Self::Fixed(_) => Duration::ZERO,
            other => other.range(rng, 1_000, (5_000, 30_000)),
        }
    }

    /// Time `leave` spends stopping services, waiting and restarting.
    pub fn leave(&self, rng: &mut impl Rng) -> Duration {
        self.range(rng, 1_000, (30_000, 60_000))
    }

    /// Interval between the progress dots a waiting command prints; zero prints none.
    pub fn dot_interval(&self) -> Duration {
        match self {
            Self::Zero => Duration::ZERO,
            Self::Fast => Duration::from_millis(1_000),
            Self::Realistic => Duration::from_millis(5_000),
            Self::Fixed(d) => (*d / 4).min(Duration::from_secs(5)),
        }
    }
}

/// When a join pretends to succeed but the node never becomes Ready.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SilentFailure {
    /// Joins complete normally.
    Never,
    /// Each join on this host fails silently with this probability (0.0-1.0).
    Probability(f64),
    /// The first N joins started on this host fail silently.
    Count(u32),
}

/// Settings of one simulated host's daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// `MUSTER_SIM_JOIN_LATENCY`: `zero`, `fast` (default), `realistic` or milliseconds.
    pub latency: LatencyProfile,
    /// `MUSTER_SIM_SILENT_FAILURE`: a probability with a dot (`0.25`) or a count (`2`).
    pub silent_failure: SilentFailure,
    /// `MUSTER_SIM_HEARTBEAT_MS`: how often a node reports to the control planes (default 1000).
    pub heartbeat_interval: Duration,
    /// `MUSTER_SIM_NOT_READY_AFTER_MS`: silence after which a node is NotReady (default 5000).
    pub not_ready_after: Duration,
    /// `MUSTER_SIM_ROLE_INTERVAL_MS`: dqlite role adjustment period (default 30000).
    pub role_interval: Duration,
    /// `MUSTER_SIM_CONNECT_TIMEOUT_MS`: cap on a TCP connect; unset = the OS's own (~2 min).
    pub connect_timeout: Option<Duration>,
    /// `MUSTER_SIM_SEED`: seeds the daemon's random choices (latencies, failures, tokens).
    pub seed: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            latency: LatencyProfile::Fast,
            silent_failure: SilentFailure::Never,
            heartbeat_interval: Duration::from_millis(1_000),
            not_ready_after: Duration::from_millis(5_000),
            role_interval: Duration::from_millis(30_000),
            connect_timeout: None,
            seed: None,
        }
    }
}

/// A `MUSTER_SIM_*` variable that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?}: {reason}")]
pub struct ConfigError {
    /// The variable's name.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl SimConfig {
    /// Reads the knobs from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the knobs through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut cfg = Self::default();
        if let Some(v) = lookup("MUSTER_SIM_JOIN_LATENCY") {
            cfg.latency = match v.trim() {
                "zero" | "0" => LatencyProfile::Zero,
                "fast" => LatencyProfile::Fast,
                "realistic" => LatencyProfile::Realistic,
                other => LatencyProfile::Fixed(Duration::from_millis(parse_u64(
                    "MUSTER_SIM_JOIN_LATENCY",
                    other,
                )?)),
            };
        }
        if let Some(v) = lookup("MUSTER_SIM_SILENT_FAILURE") {
            let t = v.trim();
            cfg.silent_failure = if t.contains('.') {
                let p: f64 = t.parse().map_err(|_| err("MUSTER_SIM_SILENT_FAILURE", t))?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(err("MUSTER_SIM_SILENT_FAILURE", t));
                }
                SilentFailure::Probability(p)
            } else {
                match parse_u64("MUSTER_SIM_SILENT_FAILURE", t)? {
                    0 => SilentFailure::Never,
                    n => SilentFailure::Count(u32::try_from(n).unwrap_or(u32::MAX)),
                }
            };
        }
        let ms = |name: &'static str| -> Result<Option<Duration>, ConfigError> {
            lookup(name)
                .map(|v| parse_u64(name, v.trim()).map(Duration::from_millis))
                .transpose()
        };
        if let Some(d) = ms("MUSTER_SIM_HEARTBEAT_MS")? {
            cfg.heartbeat_interval = d.max(Duration::from_millis(10));
        }
        if let Some(d) = ms("MUSTER_SIM_NOT_READY_AFTER_MS")? {
            cfg.not_ready_after = d;
        }
        if let Some(d) = ms("MUSTER_SIM_ROLE_INTERVAL_MS")? {
            cfg.role_interval = d.max(Duration::from_millis(10));
        }
        cfg.connect_timeout = ms("MUSTER_SIM_CONNECT_TIMEOUT_MS")?;
        if let Some(v) = lookup("MUSTER_SIM_SEED") {
            cfg.seed = Some(parse_u64("MUSTER_SIM_SEED", v.trim())?);
        }
        Ok(cfg)
    }
}

fn err(name: &'static str, value: &str) -> ConfigError {
    ConfigError {
        name,
        value: value.to_owned(),
        reason: "not understood",
    }
}

fn parse_u64(name: &'static str, value: &str) -> Result<u64, ConfigError> {
    value.parse().map_err(|_| ConfigError {
        name,
        value: value.to_owned(),
        reason: "expected a whole number",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<SimConfig, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SimConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_are_fast_and_never_silent() {
        let c = cfg(&[]).expect("defaults");
        assert_eq!(c.latency, LatencyProfile::Fast);
        assert_eq!(c.silent_failure, SilentFailure::Never);
        assert_eq!(c.not_ready_after, Duration::from_secs(5));
    }

    #[test]
    fn knobs_parse_profiles_counts_and_probabilities() {
        let c = cfg(&[
            ("MUSTER_SIM_JOIN_LATENCY", "250"),
            ("MUSTER_SIM_SILENT_FAILURE", "0.5"),
            ("MUSTER_SIM_CONNECT_TIMEOUT_MS", "1500"),
        ])
        .expect("valid");
        assert_eq!(c.latency, LatencyProfile::Fixed(Duration::from_millis(250)));
        assert_eq!(c.silent_failure, SilentFailure::Probability(0.5));
        assert_eq!(c.connect_timeout, Some(Duration::from_millis(1500)));
        let c = cfg(&[("MUSTER_SIM_SILENT_FAILURE", "2")]).expect("valid");
        assert_eq!(c.silent_failure, SilentFailure::Count(2));
        assert!(cfg(&[("MUSTER_SIM_SILENT_FAILURE", "1.5")]).is_err());
        assert!(cfg(&[("MUSTER_SIM_JOIN_LATENCY", "slow")]).is_err());
    }

    #[test]
    fn realistic_profile_stays_in_documented_ranges() {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
        for _ in 0..50 {
            let cp = LatencyProfile::Realistic.control_plane_join(&mut rng);
            assert!((20..=60).contains(&cp.as_secs()));
            let w = LatencyProfile::Realistic.worker_join(&mut rng);
            assert!((10..=30).contains(&w.as_secs()));
        }
    }
}
