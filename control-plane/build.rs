//! Points the embedded admin UI at `admin-web/dist` (or `KEYGATE_ADMIN_WEB_DIST`) when it
//! was built, else at an empty folder under OUT_DIR, so `cargo build` works on a fresh clone
//! without Node (the server then answers the UI's paths with a page saying how to build it).
//! Release builds embed the files (`rust-embed`); debug builds read them from that folder at
//! run time.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let ui = manifest.join("../admin-web");
    // KEYGATE_ADMIN_WEB_DIST: embed a UI built elsewhere (default admin-web/dist).
    println!("cargo:rerun-if-env-changed=KEYGATE_ADMIN_WEB_DIST");
    let dist = match std::env::var_os("KEYGATE_ADMIN_WEB_DIST") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => ui.join("dist"),
    };
    let folder = if dist.join("index.html").is_file() {
        // Rebuild when the UI is rebuilt.
        println!("cargo:rerun-if-changed={}", dist.display());
        dist
    } else {
        let empty = out.join("admin-web-not-built");
        std::fs::create_dir_all(&empty).expect("create an empty folder under OUT_DIR");
        // Notice when the UI gets built (admin-web/ changes); a missing path would rerun
        // this script on every build.
        if ui.is_dir() {
            println!("cargo:rerun-if-changed={}", ui.display());
        } else {
            println!("cargo:rerun-if-changed=build.rs");
        }
        empty
    };
    let folder = folder.canonicalize().unwrap_or(folder);
    println!(
        "cargo:rustc-env=KEYGATE_ADMIN_WEB_EMBED_DIR={}",
        folder.display()
    );
}
