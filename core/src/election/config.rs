//! Timing knobs of the election, with defaults and validation.
//!
//! Owns: [`ElectionConfig`] (embeddable as `[election]` in the agent's TOML) and
//! [`ElectionConfigError`].
//! Does not own: loading the file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Tunables of the entry-point election. All durations are spans of the caller's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElectionConfig {
    /// The view must stay unchanged this long before the node claims, or steps down because
    /// the rules now pick another node (default 400 ms). After a simultaneous start the mesh
    /// learns every member in one burst (mDNS announcements, then push-pull, all within about
    /// a second at N = 20); 400 ms without news means the burst is over. A claim made
    /// too early is not unsafe (voters only acknowledge a claimant that counts the same
    /// voters), it just fails and is retried after `claim_retry`.
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
    /// No claim before this long after the agent started (default 1.2 s), however quiet the
    /// view. In the first second after a simultaneous boot each node still knows only part of
    /// the LAN (mDNS announces a service only after probing its name for ~750 ms), and two
    /// groups that have not heard of each other yet could each confirm a claim of the same
    /// term with a majority of their own small electorate.
    #[serde(with = "humantime_serde")]
    pub discovery: Duration,
    /// How long a claim waits for a majority of acknowledgements (default 1.5 s: a LAN round
    /// trip is below 1 ms, a gRPC connect plus one TCP retransmission well below 1 s).
    #[serde(with = "humantime_serde")]
    pub claim_timeout: Duration,
    /// Wait before the first retry of a failed claim (default 1 s); doubles per failure.
    #[serde(with = "humantime_serde")]
    pub claim_retry: Duration,
    /// Longest wait between claims (default 30 s).
    #[serde(with = "humantime_serde")]
    pub claim_retry_max: Duration,
    /// A member dead this long no longer counts as a voter (default 10 min). Without it, a
    /// LAN where most machines were switched off could never elect; with it, the two sides
    /// of a partition that lasts longer may each form a cluster, which is then reported as a
    /// conflict when they meet again. `None` keeps dead members until membership forgets them.
    #[serde(with = "humantime_serde")]
    pub forget_dead_after: Option<Duration>,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig {
            settle: Duration::from_millis(400),
            discovery: Duration::from_millis(1200),
            claim_timeout: Duration::from_millis(1500),
            claim_retry: Duration::from_secs(1),
            claim_retry_max: Duration::from_secs(30),
            forget_dead_after: Some(Duration::from_secs(600)),
        }
    }
}

/// An election setting the protocol cannot work with; names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ElectionConfigError {
    /// A duration that must be positive is zero.
    #[error("election.{field} must be greater than zero")]
    Zero {
        /// The offending field.
        field: &'static str,
    },
    /// Two fields contradict each other.
    #[error("election.{field} must be {relation} election.{other}")]
    Relation {
        /// The field that must change.
        field: &'static str,
        /// How it must relate to `other`.
        relation: &'static str,
        /// The field it is compared with.
        other: &'static str,
    },
}

impl ElectionConfig {
    /// Checks every field and the relations between them.
    pub fn validate(&self) -> Result<(), ElectionConfigError> {
        for (field, value) in [
            ("claim_timeout", self.claim_timeout),
            ("claim_retry", self.claim_retry),
            ("claim_retry_max", self.claim_retry_max),
        ] {
            if value.is_zero() {
                return Err(ElectionConfigError::Zero { field });
            }
        }
        if self.forget_dead_after.is_some_and(|d| d.is_zero()) {
            return Err(ElectionConfigError::Zero {
                field: "forget_dead_after",
            });
        }
        if self.claim_retry_max < self.claim_retry {
            return Err(ElectionConfigError::Relation {
                field: "claim_retry_max",
                relation: "at least",
                other: "claim_retry",
            });
        }
        if self
            .forget_dead_after
            .is_some_and(|d| d < self.settle.saturating_add(self.claim_timeout))
        {
            // Forgetting faster than a claim round would let a claimant count a voter that
            // its peers already dropped, and the electorate digests would never agree.
            return Err(ElectionConfigError::Relation {
                field: "forget_dead_after",
                relation: "at least the sum of",
                other: "settle and election.claim_timeout",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ElectionConfig::default().validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_offending_field() {
        let zero = ElectionConfig {
            claim_timeout: Duration::ZERO,
            ..ElectionConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err(ElectionConfigError::Zero {
                field: "claim_timeout"
            })
        );
        let inverted = ElectionConfig {
            claim_retry_max: Duration::from_millis(10),
            ..ElectionConfig::default()
        };
        assert!(matches!(
            inverted.validate(),
            Err(ElectionConfigError::Relation {
                field: "claim_retry_max",
                ..
            })
        ));
        let hasty = ElectionConfig {
            forget_dead_after: Some(Duration::from_secs(1)),
            ..ElectionConfig::default()
        };
        assert!(
            hasty
                .validate()
                .expect_err("invalid")
                .to_string()
                .contains("forget_dead_after")
        );
    }

    #[test]
    fn config_reads_humantime_and_rejects_unknown_fields() {
        let c: ElectionConfig =
            serde_json::from_str(r#"{"settle":"3s","forget_dead_after":null}"#).expect("parses");
        assert_eq!(c.settle, Duration::from_secs(3));
        assert_eq!(c.forget_dead_after, None);
        assert_eq!(c.claim_timeout, ElectionConfig::default().claim_timeout);
        assert!(serde_json::from_str::<ElectionConfig>(r#"{"setle":"3s"}"#).is_err());
    }
}
