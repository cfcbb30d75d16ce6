//! `muster-bench`: benchmarks that print their figures (never asserted in tests).
//!
//! ```text
//! muster-bench mesh [--nodes N] [--no-serf] [--steady SECS] [--loss-secs SECS]
//! muster-bench formation [--nodes N] [--latency zero|fast|realistic]
//! ```
//! Both need root (network namespaces); see each module for what is measured.

mod formation;
mod mesh;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("mesh") => mesh::run(&args[1..]),
        Some("formation") => formation::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: muster-bench mesh [--nodes N] [--no-serf] [--steady SECS] [--loss-secs SECS]\n       muster-bench formation [--nodes N] [--latency zero|fast|realistic]"
            );
            ExitCode::from(2)
        }
    }
}
