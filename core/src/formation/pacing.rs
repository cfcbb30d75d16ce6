//! How fast the formation cores look and how long they hold: the timings of a join in flight.
//!
//! Owns the constants both planners schedule with. They are decisions, not driver details: a
//! serialised formation spends most of its time between "the node joined" and "someone looked",
//! so the planners look often while a join is in flight and back off as it drags on.

use std::time::Duration;

/// While a join is in flight (granted, not yet verified), the entry point refreshes its
/// microk8s facts this long after the previous ones arrived: it may see the node before its
/// report does.
pub const SERVING_REFRESH: Duration = Duration::from_millis(200);

/// The first pause between checks once a join has exited 0 (the follower checking itself, the
/// entry point after the follower's report): the node is often Ready at once. Each further
/// pause doubles, up to [`SERVING_REFRESH`], so a node that needs seconds costs few checks.
pub const VERIFY_FIRST: Duration = Duration::from_millis(20);

/// How long the entry point holds a join request it cannot grant yet (a long poll): the
/// follower hears of its grant the moment it exists instead of at its next question. Well
/// below the agents' RPC timeout (10 s), so the follower's call never times out.
pub const JOIN_HOLD: Duration = Duration::from_secs(2);

/// When a node that is not the entry point tells a follower to ask again (it may become the
/// entry point, or the follower learns the real one meanwhile).
pub const NOT_ENTRY_RETRY: Duration = Duration::from_secs(2);

/// The pause after `pause` while checking a join: doubled, up to [`SERVING_REFRESH`].
pub fn next_check_pause(pause: Duration) -> Duration {
    (pause * 2).min(SERVING_REFRESH)
}
