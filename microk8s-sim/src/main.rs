//! The `microk8s-sim` binary: the microk8s simulator that `muster demo` and the tests drive.
//!
//! It is a binary of its own so that the agent (`muster`) carries none of the simulator's code:
//! every agent on a machine maps only what it runs. Run as `microk8s` (a symlink made by
//! `microk8s-sim link`) it is the simulated CLI; `microk8s-sim init|serve|link|wait` manage a host
//! (see `microk8s_sim::machine` for the recipe).

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = microk8s_sim::dispatch(std::env::args_os().collect());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
