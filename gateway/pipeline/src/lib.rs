//! The request pipeline every gateway host runs (the native gateway's two front ends and the
//! Cloudflare Worker): what happens between the core's decision and the host's IO.
//!
//! Must not: depend on tokio, hyper, `worker` or protobuf, read a clock, or put `Send` bounds
//! on its traits. It builds for `wasm32-unknown-unknown`.
