//! Keygate's wire API: the `keygate.v1` protobuf package, generated at build time.
//!
//! Owns: message and service definitions (the `.proto` files next to this crate) and the
//! generated tonic clients/servers. Must not contain business rules: domain types live in
//! the control plane and convert from/to these with `TryFrom`/`From`.
#![allow(clippy::all, missing_docs)]

/// `keygate.v1` messages, and with the `grpc` feature (default) clients (`*_client`) and
/// servers (`*_server`). Without it the crate is prost messages only and builds for wasm32
/// (`./scripts/test.sh` checks that it does).
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/keygate.v1.rs"));
}

/// Encoded `FileDescriptorSet` of every Keygate proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/keygate_descriptor.bin"));
