//! Which API key a request presents, and whether it is well-formed — decided from the
//! headers alone, before any lookup.

use crate::decide::Config;
use crate::error::GatewayError;
use crate::tokens::TokenHash;
use keygate_contracts::token::{API_TOKEN_PREFIX, check_format};

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
    let invalid = || GatewayError::InvalidKey;
    let key = std::str::from_utf8(presented).map_err(|_| invalid())?;
    let ok = if config.legacy_prefixes.is_empty() {
        check_format(key, API_TOKEN_PREFIX, &[])
    } else {
        let legacy: Vec<&str> = config.legacy_prefixes.iter().map(String::as_str).collect();
        check_format(key, API_TOKEN_PREFIX, &legacy)
    };
    ok.map_err(|_| invalid())?;
    Ok(TokenHash::of(key))
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
