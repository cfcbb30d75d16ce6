//! The gossip mesh at runtime: the driver task around the pure [`muster_core::membership`]
//! core, the gRPC streams between agents (both ends, one connection per pair), and the
//! protobuf codec of the protocol's messages.
//!
//! Protobuf lives only at the wire: the codec ([`codec`]) turns core messages into
//! envelopes and back, the transport ([`transport`], [`serve`], [`routes`], [`header`]) moves
//! envelopes, and the handle ([`handle`]) decodes what the `Peer` service hands in and
//! encodes the immediate answers. The [`driver`] sees only core messages and its own domain
//! values.

pub mod codec;
pub mod driver;
pub mod handle;
pub mod header;
pub mod routes;
pub mod serve;
pub mod transport;

pub use driver::{MeshSetup, MeshView, spawn};
pub use handle::{DeliverError, MeshHandle};
