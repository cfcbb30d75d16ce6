//! The `muster` binary: parses arguments and hands off to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The microk8s simulator: `microk8s …` (argv[0]) and `muster sim …`, before clap sees argv.
    if let Some(code) = muster::sim::dispatch(std::env::args_os().collect()) {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    muster::cli::run(muster::cli::Cli::parse())
}
