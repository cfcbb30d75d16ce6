//! Knobs of the formation workflow, with defaults and validation.
//!
//! Owns: [`FormationConfig`] (embeddable as `[formation]` in the agent's TOML) and
//! [`FormationConfigError`].
//! Does not own: loading the file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::RolePreference;
use crate::backoff::Backoff;

/// Tunables of joining, leaving and removing nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FormationConfig {
    /// Target number of control-plane nodes (default 3): nodes join as control planes until
    /// the cluster has this many, so that it becomes highly available at three; later nodes
    /// join with `--worker`. At least 1.
    pub control_planes: u32,
    /// This node's own wish, overriding the count above: `auto` (default), `control-plane`
    /// or `worker`.
    pub role: RolePreference,
    /// Lifetime of each join token (`add-node --token-ttl`, default 5 min). A TTL token
    /// survives a failed join attempt, so the follower can retry with it; a fresh token is
    /// made for every grant anyway.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// How long the entry point waits for a granted follower to report (default 10 min: a
    /// `microk8s join` takes 1-2 minutes, more on slow disks).
    #[serde(with = "humantime_serde")]
    pub join_timeout: Duration,
    /// How long the entry point waits, after a follower reported success, to see it Ready
    /// (and, for a control plane, in the datastore) before giving up (default 5 min).
    #[serde(with = "humantime_serde")]
    pub verify_timeout: Duration,
    /// Remove a member that has been dead this long (`remove-node <name> --force`); `None`
    /// (default) never removes anyone automatically. Never done without datastore quorum.
    #[serde(with = "humantime_serde")]
    pub remove_after: Option<Duration>,
    /// First retry delay of a failed join on the follower (default 5 s), doubling per failure.
    #[serde(with = "humantime_serde")]
    pub join_retry: Duration,
    /// Longest delay between join attempts (default 2 min).
    #[serde(with = "humantime_serde")]
    pub join_retry_max: Duration,
    /// How often every node probes its microk8s facts, and how soon a follower asks again when
    /// it was told to wait (default 2 s). While a join is in flight the coordinator looks much
    /// more often (see `pacing`) and holds a queued follower's question until its grant.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// A queued follower that has not asked again for this long loses its place (default 30 s).
    #[serde(with = "humantime_serde")]
    pub queue_expiry: Duration,
    /// Let this node leave another multi-node cluster to join the entry point's (default
    /// false: such a node refuses, and the conflict is reported). Only an operator sets it.
    pub move_from_other_cluster: bool,
}

impl Default for FormationConfig {
    fn default() -> Self {
        FormationConfig {
            control_planes: 3,
            role: RolePreference::Auto,
            token_ttl: Duration::from_secs(300),
            join_timeout: Duration::from_secs(600),
            verify_timeout: Duration::from_secs(300),
            remove_after: None,
            join_retry: Duration::from_secs(5),
            join_retry_max: Duration::from_secs(120),
            poll_interval: Duration::from_secs(2),
            queue_expiry: Duration::from_secs(30),
            move_from_other_cluster: false,
        }
    }
}

/// A formation setting that cannot work; names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormationConfigError {
    /// A value that must be positive is zero.
    #[error("formation.{field} must be greater than zero")]
    Zero {
        /// The offending field.
        field: &'static str,
    },
    /// Two fields contradict each other.
    #[error("formation.{field} must be {relation} formation.{other}")]
    Relation {
        /// The field that must change.
        field: &'static str,
        /// How it must relate to `other`.
        relation: &'static str,
        /// The field it is compared with.
        other: &'static str,
    },
}

impl FormationConfig {
    /// Checks every field and the relations between them.
    pub fn validate(&self) -> Result<(), FormationConfigError> {
        if self.control_planes == 0 {
            return Err(FormationConfigError::Zero {
                field: "control_planes",
            });
        }
        for (field, value) in [
            ("token_ttl", self.token_ttl),
            ("join_timeout", self.join_timeout),
            ("verify_timeout", self.verify_timeout),
            ("join_retry", self.join_retry),
            ("join_retry_max", self.join_retry_max),
            ("poll_interval", self.poll_interval),
            ("queue_expiry", self.queue_expiry),
        ] {
            if value.is_zero() {
                return Err(FormationConfigError::Zero { field });
            }
        }
        if self.remove_after.is_some_and(|d| d.is_zero()) {
            return Err(FormationConfigError::Zero {
                field: "remove_after",
            });
        }
        if self.token_ttl.as_secs() == 0 {
            // add-node takes whole seconds; a TTL below one second would be "expired at once".
            return Err(FormationConfigError::Zero { field: "token_ttl" });
        }
        if self.join_retry_max < self.join_retry {
            return Err(FormationConfigError::Relation {
                field: "join_retry_max",
                relation: "at least",
                other: "join_retry",
            });
        }
        if self.queue_expiry <= self.poll_interval {
            // A follower polling on time must never lose its place.
            return Err(FormationConfigError::Relation {
                field: "queue_expiry",
                relation: "longer than",
                other: "poll_interval",
            });
        }
        Ok(())
    }

    /// The follower's retry schedule.
    pub fn join_backoff(&self) -> Backoff {
        Backoff {
            base: self.join_retry,
            cap: self.join_retry_max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = FormationConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!((c.control_planes, c.remove_after), (3, None));
        assert_eq!(c.token_ttl, Duration::from_secs(300));
    }

    #[test]
    fn validate_names_the_offending_field() {
        let c = FormationConfig {
            control_planes: 0,
            ..FormationConfig::default()
        };
        assert_eq!(
            c.validate().expect_err("invalid").to_string(),
            "formation.control_planes must be greater than zero"
        );
        let c = FormationConfig {
            token_ttl: Duration::from_millis(500),
            ..FormationConfig::default()
        };
        assert_eq!(
            c.validate(),
            Err(FormationConfigError::Zero { field: "token_ttl" })
        );
        let c = FormationConfig {
            queue_expiry: Duration::from_secs(1),
            ..FormationConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(FormationConfigError::Relation {
                field: "queue_expiry",
                ..
            })
        ));
    }

    #[test]
    fn config_reads_humantime_and_role_names() {
        let c: FormationConfig =
            serde_json::from_str(r#"{"remove_after":"1h","role":"worker","token_ttl":"2m"}"#)
                .expect("parses");
        assert_eq!(c.remove_after, Some(Duration::from_secs(3600)));
        assert_eq!(c.role, RolePreference::Worker);
        assert_eq!(c.token_ttl, Duration::from_secs(120));
        assert!(serde_json::from_str::<FormationConfig>(r#"{"roles":"worker"}"#).is_err());
    }
}
