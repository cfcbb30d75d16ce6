//! The lab's one error type.
//!
//! Every failure names what was attempted (the command line, the file, the condition waited for)
//! and carries what was observed (exit status, a stderr excerpt, the last state seen), so that a
//! failing demo or multi-host test explains itself without a rerun. Owns nothing else.

use std::io;
use std::time::Duration;

/// What went wrong while building, driving or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
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
    /// Output of a tool did not have the expected shape.
    #[error("could not parse {what}: {detail}")]
    Parse {
        /// Which output, e.g. "`muster members --json` output".
        what: String,
        /// What was wrong, with an excerpt of the input.
        detail: String,
    },
    /// The lab was asked for something impossible (e.g. host 0, a lab of 300 hosts).
    #[error("invalid lab request: {0}")]
    Invalid(String),
}

/// Result with [`LabError`].
pub type Result<T, E = LabError> = std::result::Result<T, E>;

impl LabError {
    /// Builds an [`LabError::Io`] with a description of the operation.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
