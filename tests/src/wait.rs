//! Waiting for a condition with a deadline.
//!
//! [`wait_until`] is [`muster_lab::wait_until`] (shared with `muster demo`) reporting
//! [`HarnessError::Timeout`]: multi-host tests assert outcomes, not timings, and a timeout
//! names the condition and the last state the check observed.

use std::fmt::Debug;
use std::time::Duration;

use crate::error::Result;

/// Polls `check` every `poll` until it returns `Ok(value)`, and returns that value; after
/// `timeout`, fails with the condition `what` and the last `Err(observed)` of `check`.
pub fn wait_until<T, S: Debug>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    check: impl FnMut() -> Result<T, S>,
) -> Result<T> {
    muster_lab::wait_until(what, timeout, poll, check)
}
