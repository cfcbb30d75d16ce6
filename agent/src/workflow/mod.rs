//! The cluster workflow at runtime: one task that owns the pure [`muster_core::election`] state
//! machine and the [`muster_core::formation`] planners (the entry point's join coordinator and the
//! follower's join), feeds them the membership view and this node's microk8s facts, and
//! carries out their outputs: claims and join requests over gRPC, `microk8s add-node`,
//! `join`, `leave` and `remove-node` through the [`crate::microk8s::Microk8s`] adapter, the
//! journal, the gossiped metadata and the API's status.
//!
//! Commands and gRPC requests arrive on one inbox; slow work (microk8s commands, RPCs to
//! peers) runs in spawned tasks that report back to the same inbox, so no state is shared.

mod driver;
pub mod facts;
pub mod rpc;

pub use driver::{WorkflowHandle, WorkflowSetup, spawn};
