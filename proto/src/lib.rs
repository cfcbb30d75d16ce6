//! Generated gRPC types and services of muster (package `muster.v1`), plus the encoded file
//! descriptor set that the agent's reflection service serves.

#![allow(missing_docs)] // generated code carries the .proto comments as its docs

/// Package `muster.v1`: the `Agent` and `Peer` services and their messages.
pub mod v1 {
    tonic::include_proto!("muster.v1");
}

/// Encoded `FileDescriptorSet` of every muster proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/muster_descriptor.bin"));
