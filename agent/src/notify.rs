//! systemd readiness protocol: READY=1 once the API is bound, STATUS= lines as the role
//! changes, STOPPING=1 on shutdown, and WATCHDOG=1 pings when the unit sets `WatchdogSec`.
//! Every call is a no-op outside systemd (no `NOTIFY_SOCKET`).

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Tells systemd the agent is ready, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Updates the one-line status that `systemctl status muster` shows.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Tells systemd the agent is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    // Failing to notify must not stop the agent; systemd reports a missed READY itself.
    if let Err(e) = sd_notify::notify(false, states) {
        log::debug!("sd_notify failed: {e}");
    }
}

/// The watchdog interval the unit asked for, if any (`WATCHDOG_USEC`, for this process).
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog at half its interval until `cancel` fires. A runtime that stops being
/// able to run this task is exactly what the watchdog is for.
pub async fn run_watchdog(interval: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => send(&[NotifyState::Watchdog]),
        }
    }
}
