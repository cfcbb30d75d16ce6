//! The harness's error type is the shared lab code's [`muster_lab::LabError`]: every failure
//! names what was attempted (the command line, the file, the condition waited for) and carries
//! what was observed (exit status, a stderr excerpt, the last state seen), so that a failing
//! multi-host test explains itself without a rerun.

/// What went wrong inside the harness.
pub use muster_lab::LabError as HarnessError;

/// Result with [`HarnessError`].
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
