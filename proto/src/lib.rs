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

/// A usage rollup as the wire carries it: every gateway host (native and Worker) sends its
/// `keygate-rollup` accumulator's rows through this one conversion.
pub fn usage_rollup(
    (key, v): (keygate_rollup::RollupKey, keygate_rollup::RollupValue),
) -> v1::UsageRollup {
    v1::UsageRollup {
        minute: Some(prost_types::Timestamp {
            seconds: key.minute.div_euclid(1000),
            nanos: 0,
        }),
        token_id: key.token_id,
        team_id: key.team_id,
        route: key.route,
        status: u32::from(key.status),
        error: key.error,
        count: v.count,
        request_bytes: v.request_bytes,
        response_bytes: v.response_bytes,
        latency_sum_us: v.latency_sum_us,
        latency_min_us: v.latency_min_us,
        latency_max_us: v.latency_max_us,
        latency_sketch: v.sketch.encode(),
    }
}
