//! The bodies of the fuzz targets in `fuzz_targets/` (cargo-fuzz, libFuzzer), and the fixed
//! tables they run against. Kept in a library so a crash input can be replayed from a plain
//! test too. How to run them, and what the long runs found: `docs/fuzzing.md`.
//!
//! - [`h1`]: the HTTP/1.1 fast path against hyper on the same bytes (`h1_differential`).
//! - [`decide`]: the core's `decide` invariants (`decide_invariants`).
//! - [`kv`]: the KV record decoders and `Routes::compile` (`kv_decoders`).

pub mod decide;
pub mod h1;
pub mod kv;

use keygate_gateway_core::vectors::{Loaded, load, parse};
use std::sync::OnceLock;

/// The clock every decision runs at (the vectors' 2026-01-01T00:00:00Z).
pub const NOW_MS: i64 = 1_767_225_600_000;

/// A vector file's fixture, loaded (routes compiled with its edge key, tokens hashed).
fn fixture(json: &str) -> Loaded {
    let file = parse(json).expect("the vector file parses");
    load(&file.fixture.expect("the vector file has a fixture")).expect("the fixture loads")
}

/// `gateway/core/vectors/decide.json`'s fixture: six routes (http and https backends, base
/// paths, strip, every auth kind, CORS, team allow-lists) and its tokens.
pub fn decide_fixture() -> &'static Loaded {
    static F: OnceLock<Loaded> = OnceLock::new();
    F.get_or_init(|| fixture(include_str!("../../gateway/core/vectors/decide.json")))
}

/// `gateway/core/vectors/root.json`'s fixture: a `/` route and the legacy prefix `ntk`.
pub fn root_fixture() -> &'static Loaded {
    static F: OnceLock<Loaded> = OnceLock::new();
    F.get_or_init(|| fixture(include_str!("../../gateway/core/vectors/root.json")))
}

/// The plaintext keys of both fixtures (every valid caller key the targets can present).
pub fn fixture_keys() -> &'static [String] {
    static K: OnceLock<Vec<String>> = OnceLock::new();
    K.get_or_init(|| {
        let mut keys = Vec::new();
        for json in [
            include_str!("../../gateway/core/vectors/decide.json"),
            include_str!("../../gateway/core/vectors/root.json"),
        ] {
            let file = parse(json).expect("the vector file parses");
            for t in file.fixture.expect("a fixture").tokens {
                if !keys.contains(&t.key) {
                    keys.push(t.key);
                }
            }
        }
        keys
    })
}
