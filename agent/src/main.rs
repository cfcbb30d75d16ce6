//! The `muster` binary: parses arguments and hands off to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    muster::cli::run(muster::cli::Cli::parse())
}
