//! Names of the kernel objects a lab creates, and the sweep of leftovers.
//!
//! Re-exports [`muster_lab::names`], the one implementation shared with `muster demo`: a
//! sweep from a test also removes what a crashed demo left behind, and the other way round.
//! Its functions report [`muster_lab::LabError`], which converts into
//! [`crate::HarnessError`] with `?`.

pub use muster_lab::names::*;
