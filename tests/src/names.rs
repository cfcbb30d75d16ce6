//! Names of the kernel objects a lab creates, and the sweep of leftovers.
//!
//! Re-exports [`muster::lab::names`], the one implementation shared with `muster demo`: a
//! sweep from a test also removes what a crashed demo left behind, and the other way round.
//! Its functions report [`muster::lab::LabError`], which converts into
//! [`crate::HarnessError`] with `?`.

pub use muster::lab::names::*;
