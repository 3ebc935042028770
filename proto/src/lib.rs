//! Keygate's wire API: the `keygate.v1` protobuf package, generated at build time.
//!
//! Owns: message and service definitions (the `.proto` files next to this crate) and the
//! generated tonic clients/servers. Must not contain business rules: domain types live in
//! the control plane and convert from/to these with `TryFrom`/`From`.
#![allow(clippy::all, missing_docs)]

/// `keygate.v1` messages, clients (`*_client`) and servers (`*_server`).
pub mod v1 {
    tonic::include_proto!("keygate.v1");
}

/// Encoded `FileDescriptorSet` of every Keygate proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("keygate_descriptor");
