//! The gRPC API: the `Agent` service that users and tools query (served on the unix socket
//! and on TCP, with health and reflection), the `Peer` service that agents call, and the
//! CLI's client side with its human and JSON renderings.

pub mod client;
pub mod peer;
pub mod render;
pub mod router;
pub mod server;
pub mod snapshot;

pub use snapshot::{Snapshot, Sources};
