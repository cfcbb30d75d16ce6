//! The gossip mesh at runtime: the driver task around the pure [`muster_core::membership`] core,
//! the gRPC streams between agents (both ends, one connection per pair), and the protobuf codec of the protocol's
//! messages.

pub mod codec;
pub mod driver;
pub mod header;
pub mod routes;
pub mod serve;
pub mod transport;

pub use driver::{DeliverError, MeshHandle, MeshSetup, MeshView, spawn};
