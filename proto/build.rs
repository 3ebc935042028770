//! Compiles `keygate/v1/*.proto` with protox (pure Rust, no `protoc`) and generates
//! prost messages plus, with the `grpc` feature (default), tonic clients and servers. The
//! encoded descriptor set is kept for gRPC server reflection.
use prost::Message;
use std::path::PathBuf;

const FILES: &[&str] = &[
    "keygate/v1/common.proto",
    "keygate/v1/token.proto",
    "keygate/v1/route.proto",
    "keygate/v1/team.proto",
    "keygate/v1/audit.proto",
    "keygate/v1/auth.proto",
    "keygate/v1/user.proto",
    "keygate/v1/invitation.proto",
    "keygate/v1/service_account.proto",
    "keygate/v1/sync.proto",
    "keygate/v1/usage.proto",
    "keygate/v1/alert.proto",
    "keygate/v1/dashboard.proto",
    "keygate/v1/system.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for f in FILES {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(FILES, [&root])?;
    std::fs::write(out.join("keygate_descriptor.bin"), fds.encode_to_vec())?;
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        .compile_fds(fds)?;
    Ok(())
}
