//! Waiting for a condition with a deadline.
//!
//! Labs and multi-host tests assert outcomes, not timings: [`wait_until`] polls a check until it holds
//! and, when the generous deadline passes, fails with the condition's name and the last state
//! the check observed, so the failure message says what the cluster looked like.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// Polls `check` every `poll` until it returns `Ok(value)`, and returns that value.
///
/// `check` returns `Err(observed)` while the condition does not hold yet; `observed` is the
/// state it saw (a member list, an error message), which the
/// [`LabError::Timeout`] quotes when `timeout` passes. `check` always runs at least once,
/// and once more at the deadline.
pub fn wait_until<T, S: Debug>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: impl FnMut() -> Result<T, S>,
) -> Result<T> {
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let last = match check() {
            Ok(value) => return Ok(value),
            Err(observed) => observed,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(LabError::Timeout {
                what: what.to_owned(),
                waited: now - start,
                last: format!("{last:?}"),
            });
        }
        std::thread::sleep(poll.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_the_check_holds() {
        let mut calls = 0;
        let value = wait_until("third call", Duration::from_secs(5), Duration::ZERO, || {
            calls += 1;
            if calls == 3 {
                Ok(calls * 10)
            } else {
                Err(calls)
            }
        })
        .expect("holds on the third call");
        assert_eq!(value, 30);
    }

    #[test]
    fn timeout_names_the_condition_and_the_last_observation() {
        let mut seen = 0;
        let err = wait_until(
            "three members alive",
            Duration::from_millis(50),
            Duration::from_millis(10),
            || -> Result<(), String> {
                seen += 1;
                Err(format!("{seen} alive"))
            },
        )
        .expect_err("never holds");
        let text = err.to_string();
        assert!(text.contains("three members alive"), "{text}");
        assert!(text.contains(&format!("{seen} alive")), "{text}");
    }
}
