//! Every timing and size knob of the membership protocol, with defaults and validation.
//!
//! Owns: [`MembershipConfig`], its defaults (justified against muster's floors below), the
//! formulas that scale with cluster size (suspicion timeouts, retransmit limit, push-pull
//! interval) and [`ConfigError`].
//! Does not own: loading the file (the config module embeds this struct under `[membership]`).
//!
//! # The floors the defaults are chosen for (N = 20 on one LAN, gRPC over TCP)
//! - converge from a simultaneous start within 2 s: mDNS seeds within ~0.5 s, each new seed is
//!   synchronised at once (`join_syncs` of them per `seed_retry`), gossip every 200 ms;
//! - every survivor marks a SIGKILLed or cut-off node dead within 3.5 s: 1 s probes, 300 ms
//!   probe timeout, NACK-driven early verdict, suspicion of `1.0 * log10(20) * 1 s = 1.3 s`
//!   once `suspicion_confirmations` independent suspectors agree (`confirm_probes` nodes probe
//!   a fresh suspect at once, so confirmations come within about one probe timeout);
//! - zero false deaths at 5% loss: 3 indirect paths, a falsely suspected node has up to
//!   `suspicion_max_mult` × the minimum (7.8 s at N = 20) to refute, which gossip does in < 1 s;
//! - ≤ ~500 B/s per node in steady state: one probe (ping + ack) per second, nothing gossiped
//!   when nothing changed, a digest-only push-pull every 60 s, 9 bytes of view checksum per
//!   ack (a push-pull only when views differ).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Tunables of the SWIM/Lifeguard protocol. All durations are wall-clock spans.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MembershipConfig {
    /// Time between two scheduled probes of this node (default 1 s). One probe costs a ping and
    /// an ack, ~500 B on the wire; 1 s keeps steady-state traffic near the 500 B/s budget.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// How long a direct ping waits for its ack before indirect probes start (default 300 ms).
    /// A LAN round trip is < 1 ms; 300 ms covers one TCP retransmission (RTO min 200 ms).
    /// Scaled up by the local health score.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
    /// Number of members asked to ping a silent target on our behalf (default 3, SWIM's k).
    /// At 5% loss each indirect path fails ~19% of the time, all three ~0.6%.
    pub indirect_checks: usize,
    /// Suspicion minimum = `suspicion_mult * max(1, log10(N)) * probe_interval` (default 1.0:
    /// 1.3 s at N = 20, 3 s at N = 1000). Fractional values are allowed.
    pub suspicion_mult: f64,
    /// Suspicion maximum = `suspicion_max_mult * minimum`, the timeout with no confirmation
    /// (default 6, as in Lifeguard): a falsely suspected node gets this long to refute.
    pub suspicion_max_mult: f64,
    /// Independent confirmations that shrink the timeout from maximum to minimum (default 3).
    /// Treated as 0 (minimum at once) when fewer than `confirmations + 2` members exist.
    pub suspicion_confirmations: u32,
    /// Expected number of members that probe a newly suspected member immediately, each on
    /// its own, instead of waiting for their round-robin turn (default 8). This is what brings
    /// confirmations within about one probe timeout; 0 disables it.
    pub confirm_probes: u32,
    /// Upper bound of the local health score (default 8); timeouts scale by `score + 1`.
    pub awareness_max: u32,
    /// Each update is sent `retransmit_mult * ceil(log10(N + 1))` times (default 4).
    pub retransmit_mult: u32,
    /// Time between gossip rounds while updates are queued (default 200 ms); nothing is sent
    /// when the queue is empty.
    #[serde(with = "humantime_serde")]
    pub gossip_interval: Duration,
    /// Members sent a gossip message each round (default 3).
    pub gossip_fanout: usize,
    /// Dead members keep receiving gossip this long, so a wrongly declared one learns it and
    /// refutes (default 30 s).
    #[serde(with = "humantime_serde")]
    pub gossip_to_dead: Duration,
    /// Byte budget for the updates piggybacked on one message (default 1400).
    pub max_piggyback_bytes: usize,
    /// Period of the digest push-pull with one random member, for up to 32 members; it grows
    /// with `log2(N / 32)` beyond (default 60 s). Digests are ~30 B a member, so this costs
    /// ~30 B/s per node at N = 20.
    #[serde(with = "humantime_serde")]
    pub push_pull_interval: Duration,
    /// Retry period for a discovered (mDNS) peer that has not joined our view yet
    /// (default 500 ms, doubling per failed attempt up to 16×).
    #[serde(with = "humantime_serde")]
    pub seed_retry: Duration,
    /// At most this many seed syncs are started per `seed_retry` (default 3), so that a large
    /// LAN booting at once does not make every node sync with every other.
    pub join_syncs: usize,
    /// Period of a ping to one random dead member, to notice healed partitions (default 10 s).
    #[serde(with = "humantime_serde")]
    pub reconnect_interval: Duration,
    /// Dead and left members are forgotten after this long (default 24 h).
    #[serde(with = "humantime_serde")]
    pub dead_retention: Duration,
    /// Longest time spent gossiping our `left` state before going quiet (default 1 s).
    #[serde(with = "humantime_serde")]
    pub leave_timeout: Duration,
    /// Probes running at once beyond the scheduled one (default 4).
    pub max_extra_probes: usize,
    /// How the scheduled probe picks its target (default `ring`, see [`ProbeSchedule`]).
    pub probe_schedule: ProbeSchedule,
    /// Publish a checksum of this node's view in every ack, and start a push-pull with a
    /// probed member whose ack carries a checksum other than ours (default true). Gossip is
    /// sent a bounded number of times to random members, some of which may be unreachable, so
    /// a node can miss news for good; the checksum lets the next probe of or by its ring
    /// neighbour notice within about one period, instead of waiting for the periodic
    /// push-pull (60 s or more). Costs 9 bytes per ack when views agree.
    pub view_sync: bool,
    /// Least time between two push-pulls of this node with the same member that a checksum
    /// mismatch may start (default 5 s); any push-pull with that member, in either direction,
    /// counts. A push-pull downgrades a remote `dead` to `suspect`, so the views differ until
    /// that suspicion expires (up to `suspicion_max`): syncing again meanwhile would be
    /// wasted. Triggered push-pulls are also capped at one per protocol period per node.
    #[serde(with = "humantime_serde")]
    pub view_sync_cooldown: Duration,
}

/// Target choice of the scheduled probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeSchedule {
    /// Each node probes the next live member in id order. When views agree every member is
    /// probed exactly once per period, so a failure is noticed within one period. With one
    /// probe per node per second (the traffic budget) SWIM's random choice leaves a member
    /// unprobed for an exponentially distributed time (mean 1 s, 5% beyond 3 s), which
    /// alone would break the 3.5 s detection floor. For `suspicion_max` after any member is
    /// suspected or declared dead, every other scheduled probe takes a shuffled round-robin
    /// target instead: failures are often correlated, and the ring alone would find a run of
    /// k failed successors (half of a partition) one after the other.
    #[default]
    Ring,
    /// SWIM's shuffled round-robin: every member once per round of N - 1 periods, in a
    /// random order per node.
    ShuffledRoundRobin,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(300),
            indirect_checks: 3,
            suspicion_mult: 1.0,
            suspicion_max_mult: 6.0,
            suspicion_confirmations: 3,
            confirm_probes: 8,
            awareness_max: 8,
            retransmit_mult: 4,
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            gossip_to_dead: Duration::from_secs(30),
            max_piggyback_bytes: 1400,
            push_pull_interval: Duration::from_secs(60),
            seed_retry: Duration::from_millis(500),
            join_syncs: 3,
            reconnect_interval: Duration::from_secs(10),
            dead_retention: Duration::from_secs(24 * 3600),
            leave_timeout: Duration::from_secs(1),
            max_extra_probes: 4,
            probe_schedule: ProbeSchedule::Ring,
            view_sync: true,
            view_sync_cooldown: Duration::from_secs(5),
        }
    }
}

/// A configuration value that the protocol cannot work with; names the field.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A duration that must be positive is zero.
    #[error("membership.{field} must be greater than zero")]
    ZeroDuration {
        /// The offending field.
        field: &'static str,
    },
    /// A count that must be at least one is zero.
    #[error("membership.{field} must be at least 1")]
    ZeroCount {
        /// The offending field.
        field: &'static str,
    },
    /// A multiplier is not a finite number in its allowed range.
    #[error("membership.{field} = {value} is out of range ({expected})")]
    OutOfRange {
        /// The offending field.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range, in words.
        expected: &'static str,
    },
    /// Two fields contradict each other.
    #[error("membership.{field} must be {relation} membership.{other}")]
    Relation {
        /// The field that must change.
        field: &'static str,
        /// How it must relate to `other`.
        relation: &'static str,
        /// The field it is compared with.
        other: &'static str,
    },
}

impl MembershipConfig {
    /// Checks every field and the relations between fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let durations = [
            ("probe_interval", self.probe_interval),
            ("probe_timeout", self.probe_timeout),
            ("gossip_interval", self.gossip_interval),
            ("push_pull_interval", self.push_pull_interval),
            ("seed_retry", self.seed_retry),
            ("reconnect_interval", self.reconnect_interval),
            ("dead_retention", self.dead_retention),
            ("leave_timeout", self.leave_timeout),
            ("view_sync_cooldown", self.view_sync_cooldown),
        ];
        for (field, value) in durations {
            if value.is_zero() {
                return Err(ConfigError::ZeroDuration { field });
            }
        }
        let counts = [
            ("gossip_fanout", self.gossip_fanout),
            ("join_syncs", self.join_syncs),
            ("retransmit_mult", self.retransmit_mult as usize),
            ("awareness_max", self.awareness_max as usize),
        ];
        for (field, value) in counts {
            if value == 0 {
                return Err(ConfigError::ZeroCount { field });
            }
        }
        if !(self.suspicion_mult.is_finite() && self.suspicion_mult > 0.0) {
            return Err(ConfigError::OutOfRange {
                field: "suspicion_mult",
                value: self.suspicion_mult,
                expected: "a finite number > 0",
            });
        }
        if !(self.suspicion_max_mult.is_finite() && self.suspicion_max_mult >= 1.0) {
            return Err(ConfigError::OutOfRange {
                field: "suspicion_max_mult",
                value: self.suspicion_max_mult,
                expected: "a finite number >= 1",
            });
        }
        if self.awareness_max > 64 {
            return Err(ConfigError::OutOfRange {
                field: "awareness_max",
                value: f64::from(self.awareness_max),
                expected: "1..=64",
            });
        }
        if self.probe_timeout >= self.probe_interval {
            return Err(ConfigError::Relation {
                field: "probe_timeout",
                relation: "shorter than",
                other: "probe_interval",
            });
        }
        if self.max_piggyback_bytes < 256 {
            return Err(ConfigError::OutOfRange {
                field: "max_piggyback_bytes",
                value: self.max_piggyback_bytes as f64,
                expected: ">= 256, room for one update with metadata",
            });
        }
        Ok(())
    }

    /// Minimum suspicion timeout for a cluster of `n` members (this node included).
    pub fn suspicion_min(&self, n: usize) -> Duration {
        let scale = (n.max(1) as f64).log10().max(1.0);
        self.probe_interval.mul_f64(self.suspicion_mult * scale)
    }

    /// Maximum suspicion timeout (no confirmations) for a cluster of `n` members.
    pub fn suspicion_max(&self, n: usize) -> Duration {
        self.suspicion_min(n).mul_f64(self.suspicion_max_mult)
    }

    /// Confirmations expected before the timeout reaches its minimum, for `n` members: 0 when
    /// too few others exist to ever send them.
    pub fn expected_confirmations(&self, n: usize) -> u32 {
        let k = self.suspicion_confirmations;
        // The suspect and the first suspector cannot confirm.
        if n.saturating_sub(2) < k as usize {
            0
        } else {
            k
        }
    }

    /// How many times one update is sent before it leaves the queue, for `n` members.
    pub fn retransmit_limit(&self, n: usize) -> u32 {
        let scale = ((n as f64) + 1.0).log10().ceil().max(1.0);
        self.retransmit_mult.saturating_mul(scale as u32)
    }

    /// Push-pull period for `n` members: the base up to 32 members, then one more base period
    /// per doubling, so the total sync traffic of the cluster grows slower than `N`.
    pub fn push_pull_interval_for(&self, n: usize) -> Duration {
        const THRESHOLD: f64 = 32.0;
        let n = n as f64;
        if n <= THRESHOLD {
            return self.push_pull_interval;
        }
        let factor = (n.log2() - THRESHOLD.log2()).ceil() + 1.0;
        self.push_pull_interval.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        assert_eq!(MembershipConfig::default().validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_field() {
        let cases: Vec<(MembershipConfig, &str)> = vec![
            (
                MembershipConfig {
                    probe_interval: Duration::ZERO,
                    ..Default::default()
                },
                "probe_interval",
            ),
            (
                MembershipConfig {
                    gossip_fanout: 0,
                    ..Default::default()
                },
                "gossip_fanout",
            ),
            (
                MembershipConfig {
                    suspicion_mult: f64::NAN,
                    ..Default::default()
                },
                "suspicion_mult",
            ),
            (
                MembershipConfig {
                    suspicion_max_mult: 0.5,
                    ..Default::default()
                },
                "suspicion_max_mult",
            ),
            (
                MembershipConfig {
                    probe_timeout: Duration::from_secs(2),
                    ..Default::default()
                },
                "probe_timeout",
            ),
            (
                MembershipConfig {
                    max_piggyback_bytes: 10,
                    ..Default::default()
                },
                "max_piggyback_bytes",
            ),
        ];
        for (config, field) in cases {
            let err = config.validate().expect_err(field);
            assert!(err.to_string().contains(field), "{err} lacks {field}");
        }
    }

    #[test]
    fn suspicion_bounds_scale_with_log_n() {
        let c = MembershipConfig::default();
        assert_eq!(c.suspicion_min(1), Duration::from_secs(1));
        assert_eq!(c.suspicion_min(10), Duration::from_secs(1));
        let m20 = c.suspicion_min(20).as_secs_f64();
        assert!((m20 - 1.301).abs() < 0.01, "{m20}");
        assert_eq!(c.suspicion_min(1000), Duration::from_secs(3));
        assert_eq!(c.suspicion_max(1000), Duration::from_secs(18));
    }

    #[test]
    fn confirmations_drop_to_zero_in_tiny_clusters() {
        let c = MembershipConfig::default();
        assert_eq!(c.expected_confirmations(3), 0);
        assert_eq!(c.expected_confirmations(5), 3);
    }

    #[test]
    fn retransmit_limit_and_push_pull_scale() {
        let c = MembershipConfig::default();
        assert_eq!(c.retransmit_limit(1), 4);
        assert_eq!(c.retransmit_limit(20), 8);
        assert_eq!(c.retransmit_limit(1000), 16);
        assert_eq!(c.push_pull_interval_for(20), Duration::from_secs(60));
        assert_eq!(c.push_pull_interval_for(64), Duration::from_secs(120));
        assert_eq!(c.push_pull_interval_for(1000), Duration::from_secs(360));
    }

    #[test]
    fn deserializes_humantime_and_rejects_unknown_fields() {
        let c: MembershipConfig =
            serde_json::from_str(r#"{"probe_interval":"2s","probe_timeout":"500ms"}"#)
                .expect("valid json");
        assert_eq!(c.probe_interval, Duration::from_secs(2));
        assert_eq!(c.gossip_fanout, 3);
        assert!(serde_json::from_str::<MembershipConfig>(r#"{"probe_intervall":"2s"}"#).is_err());
    }
}
