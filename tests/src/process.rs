//! Running commands and owning child processes.
//!
//! The implementation lives in [`muster_lab::process`] (shared with `muster demo`).
//! [`ChildGuard`], [`Signal`], [`describe`] and [`parse_vm_rss`] are re-exported as they are
//! (the guard's methods report [`muster_lab::LabError`], which converts into
//! [`HarnessError`] with `?`); the free functions below report [`HarnessError`] directly.

use std::process::{Command, Output};

use crate::error::Result;

pub use muster_lab::process::{ChildGuard, Signal, describe, parse_vm_rss};

/// Runs `cmd` to completion with stdin closed and returns its output, whatever its exit status.
/// Fails only when the command cannot be started.
pub fn run(cmd: &mut Command) -> Result<Output> {
    muster_lab::process::run(cmd)
}

/// Runs `cmd` to completion and fails with [`HarnessError::CommandFailed`] (quoting stderr)
/// unless it exits with status 0.
pub fn run_ok(cmd: &mut Command) -> Result<Output> {
    muster_lab::process::run_ok(cmd)
}

/// Sends `signal` to process `pid`.
pub fn send_signal(pid: u32, signal: Signal) -> Result<()> {
    muster_lab::process::send_signal(pid, signal)
}

/// Resident set size of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    muster_lab::process::rss_kib(pid)
}
