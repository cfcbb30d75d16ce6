//! The harness's one error type.
//!
//! Every failure names what was attempted (the command line, the file, the condition waited for)
//! and carries what was observed (exit status, a stderr excerpt, the last state seen), so that a
//! failing multi-host test explains itself without a rerun. Errors of the shared lab code
//! ([`muster::lab::LabError`]) convert variant by variant. Owns nothing else.

use std::io;
use std::time::Duration;

/// What went wrong inside the harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A command ran but exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line, for a human to rerun.
        command: String,
        /// How it ended (exit code or signal).
        status: String,
        /// The end of its stderr (and stdout when stderr was empty).
        stderr: String,
    },
    /// A command could not be started at all.
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why the spawn failed.
        #[source]
        source: io::Error,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, e.g. "reading /sys/class/net/x/statistics/rx_bytes".
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A condition did not hold before its deadline.
    #[error("timed out after {waited:?} waiting for {what}; last observed: {last}")]
    Timeout {
        /// The condition, in words.
        what: String,
        /// How long was waited.
        waited: Duration,
        /// The last state the check reported.
        last: String,
    },
    /// The `muster` binary is not where the harness looked.
    #[error(
        "the muster binary was not found (looked at {tried}); run `cargo build -p muster` first, \
         or set MUSTER_BIN to its path"
    )]
    BinaryMissing {
        /// The paths that were tried, comma separated.
        tried: String,
    },
    /// Output of a tool did not have the expected shape.
    #[error("could not parse {what}: {detail}")]
    Parse {
        /// Which output, e.g. "`muster members --json` output".
        what: String,
        /// What was wrong, with an excerpt of the input.
        detail: String,
    },
    /// The harness was asked for something impossible (e.g. host 0, a lab of 300 hosts).
    #[error("invalid harness request: {0}")]
    Invalid(String),
}

/// Result with [`HarnessError`].
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

impl HarnessError {
    /// Builds an [`HarnessError::Io`] with a description of the operation.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<muster::lab::LabError> for HarnessError {
    fn from(err: muster::lab::LabError) -> Self {
        use muster::lab::LabError as L;
        match err {
            L::CommandFailed {
                command,
                status,
                stderr,
            } => Self::CommandFailed {
                command,
                status,
                stderr,
            },
            L::Spawn { command, source } => Self::Spawn { command, source },
            L::Io { what, source } => Self::Io { what, source },
            L::Timeout { what, waited, last } => Self::Timeout { what, waited, last },
            L::Parse { what, detail } => Self::Parse { what, detail },
            L::Invalid(message) => Self::Invalid(message),
        }
    }
}
