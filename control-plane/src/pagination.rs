//! Opaque cursor page tokens and page-size rules shared by every List RPC.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keygate_contracts::FieldError;

/// Default and maximum page sizes.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

/// Checks `page_size` (0 = default).
pub fn page_size(v: u32) -> Result<u32, FieldError> {
    match v {
        0 => Ok(DEFAULT_PAGE_SIZE),
        1..=MAX_PAGE_SIZE => Ok(v),
        _ => Err(FieldError::new(
            "page_size",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        )),
    }
}

/// Encodes a cursor: the sort-key values of the last row returned, plus a kind tag so a token
/// from one List RPC is refused by another.
pub fn encode(kind: &str, parts: &[String]) -> String {
    let mut all = vec![kind.to_owned()];
    all.extend(parts.iter().cloned());
    let json = serde_json_array(&all);
    URL_SAFE_NO_PAD.encode(json.as_bytes())
}

/// Decodes a page token produced by [`encode`] with the same `kind` and `n` parts.
/// An empty token means "first page".
pub fn decode(kind: &str, token: &str, n: usize) -> Result<Option<Vec<String>>, FieldError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        FieldError::new(
            "page_token",
            "is not a page token from a previous response of this list",
        )
    };
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let mut v: Vec<String> = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v.len() != n + 1 || v[0] != kind {
        return Err(bad());
    }
    v.remove(0);
    Ok(Some(v))
}

fn serde_json_array(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings serialise")
}

/// Parses an integer cursor part.
pub fn int_part(s: &str) -> Result<i64, FieldError> {
    s.parse().map_err(|_| {
        FieldError::new(
            "page_token",
            "is not a page token from a previous response of this list",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let t = encode("tokens", &["17".into(), "tok_x".into()]);
        assert_eq!(
            decode("tokens", &t, 2).unwrap().unwrap(),
            vec!["17", "tok_x"]
        );
        assert!(decode("routes", &t, 2).is_err());
        assert!(decode("tokens", &t, 1).is_err());
        assert!(decode("tokens", "%%%", 2).is_err());
        assert_eq!(decode("tokens", "", 2).unwrap(), None);
        assert!(page_size(501).is_err());
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
    }
}
