//! Which API key a request presents, and whether it is well-formed — decided from the
//! headers alone, before any lookup.

use crate::decide::Config;
use crate::error::GatewayError;
use crate::tokens::TokenHash;
use keygate_contracts::token::{API_TOKEN_PREFIX, check_format};
use percent_encoding::percent_decode_str;
use std::borrow::Cow;

/// Optional whitespace around header values and between a scheme and its credentials.
fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &v[start..end]
}

/// The credentials of an `Authorization: Bearer <k>` value (scheme case-insensitive), or
/// `None` for another scheme.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let v = trim_ows(value);
    let scheme_end = v
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(v.len());
    if !v[..scheme_end].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    Some(trim_ows(&v[scheme_end..]))
}

/// The one key the request presents: every `X-API-Key` value and every Bearer value count;
/// several of either, or an `X-API-Key` and a Bearer that differ, are ambiguous.
/// `Authorization` values with another scheme (e.g. `Basic`) are not keys and are ignored.
pub fn presented_key<'a>(
    api_key: &[&'a [u8]],
    authorization: &[&'a [u8]],
) -> Result<&'a [u8], GatewayError> {
    let ambiguous = || Err(GatewayError::AmbiguousKey);
    if api_key.len() > 1 {
        return ambiguous();
    }
    let mut bearers = authorization.iter().filter_map(|v| bearer(v));
    let from_bearer = bearers.next();
    if bearers.next().is_some() {
        return ambiguous();
    }
    match (api_key.first().map(|v| trim_ows(v)), from_bearer) {
        (None, None) => Err(GatewayError::MissingKey),
        (Some(k), None) | (None, Some(k)) => Ok(k),
        (Some(a), Some(b)) if a == b => Ok(a),
        (Some(_), Some(_)) => ambiguous(),
    }
}

/// Checks the presented key's format (prefix, length, alphabet, checksum; legacy prefixes
/// only when configured) and returns its SHA-256, the token store's key. No lookup.
pub fn key_hash(presented: &[u8], config: &Config) -> Result<TokenHash, GatewayError> {
    let key = std::str::from_utf8(presented).map_err(|_| GatewayError::InvalidKey)?;
    if !well_formed(key, config) {
        return Err(GatewayError::InvalidKey);
    }
    Ok(TokenHash::of(key))
}

/// Whether `key` has a Keygate key's format: prefix, length, alphabet and checksum.
fn well_formed(key: &str, config: &Config) -> bool {
    if config.legacy_prefixes.is_empty() {
        check_format(key, API_TOKEN_PREFIX, &[]).is_ok()
    } else {
        let legacy: Vec<&str> = config.legacy_prefixes.iter().map(String::as_str).collect();
        check_format(key, API_TOKEN_PREFIX, &legacy).is_ok()
    }
}

/// Fewest bytes any accepted key can have: a legacy key with a one-letter prefix, `_` and 43
/// characters (a current key, `kg_` + 49, is longer). A query field shorter than this holds
/// no key, even percent-encoded.
const MIN_KEY_LEN: usize = 1 + 1 + 43;

/// `query` (raw, without `?`) with every field that carries a Keygate key removed, so a
/// caller's key given in the URL (`?api_key=<key>`) never reaches a backend: a field goes
/// when its name or its value, percent-decoded (a value also after a `Bearer ` scheme), is
/// a well-formed key (checksum included), also when `+` is read as a space. Fields are split at `&` and at `;`, as some
/// backends split at either. `None` when no field is left; the query unchanged (borrowed)
/// when it holds no key.
pub fn query_without_keys<'q>(query: &'q str, config: &Config) -> Option<Cow<'q, str>> {
    if query.len() < MIN_KEY_LEN {
        return Some(Cow::Borrowed(query));
    }
    let holds_key = |field: &str| {
        let (name, value) = field.split_once('=').unwrap_or((field, ""));
        [name, value].into_iter().any(|part| {
            if part.len() < MIN_KEY_LEN {
                return false;
            }
            // As a backend may read it: percent-decoded, and also with `+` as a space (form
            // decoding), so `Bearer+<key>` and `+<key>+` are keys too (found by fuzzing).
            let plus = part.contains('+').then(|| part.replace('+', " "));
            [Some(part), plus.as_deref()]
                .into_iter()
                .flatten()
                .any(|p| {
                    let Ok(decoded) = percent_decode_str(p).decode_utf8() else {
                        return false;
                    };
                    let decoded = decoded.trim();
                    well_formed(decoded, config)
                        || bearer(decoded.as_bytes())
                            .and_then(|k| std::str::from_utf8(k).ok())
                            .is_some_and(|k| well_formed(k, config))
                })
        })
    };
    let fields = || query.split(['&', ';']);
    if !fields().any(holds_key) {
        return Some(Cow::Borrowed(query));
    }
    // Rebuild from the kept fields, each with the separator that preceded it in the query.
    let mut kept = String::with_capacity(query.len());
    let mut start = 0;
    for field in fields() {
        let end = start + field.len();
        if !holds_key(field) {
            if !kept.is_empty() {
                kept.push(query.as_bytes()[start - 1] as char);
            }
            kept.push_str(field);
        }
        start = end + 1;
    }
    (!kept.is_empty()).then_some(Cow::Owned(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<&[u8], GatewayError>) -> &'static str {
        r.unwrap_err().as_str()
    }

    #[test]
    fn which_key() {
        let k: &[u8] = b"kg_abc";
        assert_eq!(presented_key(&[k], &[]), Ok(k));
        assert_eq!(presented_key(&[b" kg_abc\t"], &[]), Ok(k));
        assert_eq!(presented_key(&[], &[b"Bearer kg_abc"]), Ok(k));
        assert_eq!(presented_key(&[], &[b"bearer  kg_abc"]), Ok(k));
        assert_eq!(presented_key(&[], &[b"BEARER\tkg_abc"]), Ok(k));
        assert_eq!(presented_key(&[k], &[b"Bearer kg_abc"]), Ok(k));
        assert_eq!(presented_key(&[k], &[b"Basic dXNlcjpwdw=="]), Ok(k));
        assert_eq!(presented_key(&[], &[b"Bearer"]), Ok(&b""[..]));
        assert_eq!(err(presented_key(&[], &[])), "missing_key");
        assert_eq!(
            err(presented_key(&[], &[b"Basic dXNlcjpwdw=="])),
            "missing_key"
        );
        assert_eq!(err(presented_key(&[], &[b"Bearerkg_abc"])), "missing_key");
        assert_eq!(err(presented_key(&[k, k], &[])), "ambiguous_key");
        assert_eq!(
            err(presented_key(&[], &[b"Bearer a", b"Bearer a"])),
            "ambiguous_key"
        );
        assert_eq!(
            err(presented_key(&[k], &[b"Bearer kg_other"])),
            "ambiguous_key"
        );
    }

    #[test]
    fn keys_leave_the_query() {
        let cfg = Config::default();
        // A well-formed key of the test vectors (decide.json, `tok_all`).
        let k = "kg_20Jz06uzy3Ojv1BvW72GHW8qGNqsqLEHMdYLl0fth933DsYCL";
        assert!(well_formed(k, &cfg));
        let strip = |q: &str| query_without_keys(q, &cfg).map(|c| c.into_owned());
        // Borrowed when nothing is removed.
        assert!(matches!(
            query_without_keys("a=1&b=2", &cfg),
            Some(Cow::Borrowed("a=1&b=2"))
        ));
        let long = format!("q={}", "x".repeat(60));
        assert!(matches!(
            query_without_keys(&long, &cfg),
            Some(Cow::Borrowed(_))
        ));
        // The key as a value, a name, percent-encoded, after Bearer, alone, between fields.
        let encoded = k.replace('_', "%5F");
        let cases = [
            (format!("api_key={k}"), None),
            (format!("api_key={k}&a=1"), Some("a=1")),
            (format!("a=1&api_key={k}&b=2"), Some("a=1&b=2")),
            (format!("a=1;key={k};b=2"), Some("a=1;b=2")),
            (format!("a=1&{k}"), Some("a=1")),
            (format!("{k}=x&a=1"), Some("a=1")),
            (format!("token={encoded}&a=1"), Some("a=1")),
            (format!("auth=Bearer%20{k}&a=1"), Some("a=1")),
            (format!("a=1&k1={k}&k2={k}"), Some("a=1")),
        ];
        for (query, want) in cases {
            assert_eq!(strip(&query).as_deref(), want, "{query}");
        }
        // Not a key: a wrong checksum, another prefix, a key inside a longer value.
        let mut bad = k.to_string();
        let last = bad.pop().unwrap();
        bad.push(if last == 'a' { 'b' } else { 'a' });
        let other = format!("zz_{}", &k[3..]);
        // Legacy keys only when their prefix is configured.
        let legacy = format!("ntk_{}", "a".repeat(43));
        for query in [
            format!("api_key={bad}"),
            format!("x={other}"),
            format!("x=a{k}"),
            format!("k={legacy}"),
        ] {
            assert_eq!(strip(&query).as_deref(), Some(query.as_str()), "{query}");
        }
        let cfg = Config {
            legacy_prefixes: vec!["ntk".into()],
        };
        assert_eq!(
            query_without_keys(&format!("k={legacy}&a=1"), &cfg).as_deref(),
            Some("a=1")
        );
    }

    #[test]
    fn format_before_lookup() {
        let cfg = Config::default();
        assert_eq!(key_hash(b"", &cfg).unwrap_err(), GatewayError::InvalidKey);
        assert_eq!(
            key_hash(b"kg_short", &cfg).unwrap_err(),
            GatewayError::InvalidKey
        );
        assert_eq!(
            key_hash(&[0xff, 0xfe], &cfg).unwrap_err(),
            GatewayError::InvalidKey
        );
        let legacy = format!("ntk_{}", "a".repeat(43));
        assert!(key_hash(legacy.as_bytes(), &cfg).is_err());
        let cfg = Config {
            legacy_prefixes: vec!["ntk".into()],
        };
        assert_eq!(
            key_hash(legacy.as_bytes(), &cfg).unwrap().hex(),
            keygate_contracts::token::sha256_hex(&legacy)
        );
    }
}
