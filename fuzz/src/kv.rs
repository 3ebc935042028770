//! `kv_decoders`: arbitrary bytes into every KV record decoder (`keygate-kv-record`'s
//! `decode` for `TokenRecord`, `RouteTable`, `RevisionRecord`), the token hash parser, the
//! core's compilers of what decodes (`EdgeToken::from_record`, `Routes::compile` with the
//! vectors' fixed edge key, so sealed secrets in a seed can open).
//!
//! Asserts: nothing panics; whatever decodes re-encodes to bytes that decode to the same
//! value, and re-encoding that is a fixed point (the encoding is canonical).

use keygate_gateway_core::{EdgeToken, Routes, TokenHash};
use keygate_kv_record::{
    REVISION_KEY, ROUTES_KEY, RevisionRecord, RouteTable, TokenRecord, Versioned, decode, encode,
};
use serde::{Serialize, de::DeserializeOwned};

/// A token record's key as kv-sync writes it (any well-formed one: the key is only named in
/// errors).
const TOKEN_KEY: &str = "v1/token/0000000000000000000000000000000000000000000000000000000000000000";

fn round_trip<T>(key: &str, data: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + Versioned + PartialEq + std::fmt::Debug,
{
    let value = decode::<T>(key, data).ok()?;
    let bytes = encode(&value);
    let again = match decode::<T>(key, &bytes) {
        Ok(v) => v,
        Err(e) => panic!("{key}: {value:?} decoded, but its encoding does not: {e}"),
    };
    assert_eq!(
        again, value,
        "{key}: the re-encoded record decodes differently"
    );
    assert_eq!(
        encode(&again),
        bytes,
        "{key}: the encoding is not canonical"
    );
    Some(value)
}

/// One input through every decoder.
pub fn run(data: &[u8]) {
    if let Some(t) = round_trip::<TokenRecord>(TOKEN_KEY, data) {
        let _ = EdgeToken::from_record(&t);
    }
    if let Some(table) = round_trip::<RouteTable>(ROUTES_KEY, data) {
        let key = &crate::decide_fixture().key;
        // Compiles or refuses with its problems; the same table compiles the same way twice.
        let first = Routes::compile(&table, key).map(|r| r.len());
        let second = Routes::compile(&table, key).map(|r| r.len());
        match (&first, &second) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(
                a.iter().map(ToString::to_string).collect::<Vec<_>>(),
                b.iter().map(ToString::to_string).collect::<Vec<_>>()
            ),
            _ => panic!("Routes::compile is not deterministic"),
        }
        if let Err(problems) = first {
            assert!(!problems.is_empty(), "a refused table names its problems");
        }
    }
    let _ = round_trip::<RevisionRecord>(REVISION_KEY, data);
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(h) = TokenHash::from_hex(text)
    {
        assert_eq!(TokenHash::from_hex(&h.hex()), Some(h));
    }
}
