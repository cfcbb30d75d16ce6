//! The cluster workflow at runtime: the election and formation cores of `muster-core` (the
//! entry point's join coordinator and the follower's join), routed and carried out.
//!
//! Owns:
//! - `machine`: `WorkflowMachine`, the routing without a runtime.
//!   It feeds the cores the mesh's view, this node's microk8s facts and every request and
//!   result, and turns each core output into one effect, reply or journal notice. The tokio
//!   driver and the workflow simulation both run it, so the simulation tests the real routing.
//! - [`driver`]: the task. One `select!` over the mesh's view (`MeshView`, domain values),
//!   the inbox, the machine's deadline and cancellation; it carries out each effect once and
//!   publishes the [`FormationStatus`] on a `watch` channel it alone writes.
//! - `effects`: one effect per output (a microk8s command through the adapter, a call to a
//!   peer), each in a task that reports its typed result back to the inbox; `commands`: the
//!   microk8s steps themselves, shared with the simulation.
//! - `handle`: the [`WorkflowHandle`] the API and the `Peer` service use, in domain types,
//!   with a typed [`WorkflowError`].
//! - [`outcome`]: the one mapping from the adapter's classified errors to the cores' typed
//!   `Failure`s; [`facts`]: this node's microk8s facts and the views the cores read;
//!   [`rpc`]: the peer RPC glue (protobuf conversions, the gRPC clients); `status`: what
//!   the workflow publishes; [`vote`]: the election's vote on disk.
//! - `sim` (tests): the deterministic simulation of whole agents (mesh, machine, twin).
//!
//! Does not own any decision: who the entry point is, when to join, when to check a join and
//! when to give up, how long to hold a follower's request, how fast to look at the cluster
//! while a join is in flight: the cores decide, with their deadlines in `next_deadline()`.

mod commands;
pub mod driver;
mod effects;
pub mod facts;
mod handle;
mod machine;
pub mod outcome;
pub mod rpc;
#[cfg(test)]
mod sim;
mod status;
pub mod vote;

pub use driver::{StartError, WorkflowSetup, spawn};
pub use handle::{WorkflowError, WorkflowHandle};
pub use rpc::JoinAnswer;
pub use status::{ClusterView, FormationStatus};
