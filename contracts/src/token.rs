//! Token format, version 1 (see ARCHITECTURE.md, "Token format").
//!
//! `<prefix>_<body>` where `body` is 43 random base62 characters (>= 256 bits) followed by
//! 6 base62 characters of CRC32 over `<prefix>_<random>`. The checksum lets the gateway reject
//! typos and garbage with no lookup. Only `sha256_hex(full string)` is ever stored.

use sha2::{Digest, Sha256};

/// Prefix of API tokens presented to the gateway.
pub const API_TOKEN_PREFIX: &str = "kg";
/// Prefix of management keys presented to the control plane.
pub const MANAGEMENT_KEY_PREFIX: &str = "kgm";
/// Random base62 characters: 62^43 > 2^256.
pub const RANDOM_LEN: usize = 43;
/// Base62 characters of the CRC32 checksum: 62^6 > 2^32.
pub const CHECKSUM_LEN: usize = 6;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a presented string is not a well-formed token. Never includes the input itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("token is empty")]
    Empty,
    #[error("token has an unknown prefix")]
    UnknownPrefix,
    #[error("token has the wrong length or characters")]
    Malformed,
    #[error("token checksum does not match")]
    BadChecksum,
}

/// A freshly generated secret. `Debug` is redacted; the plaintext leaves only through
/// [`NewToken::expose`]. Needs the `generate` feature (an OS RNG).
#[cfg(feature = "generate")]
pub struct NewToken {
    plaintext: String,
}

#[cfg(feature = "generate")]
impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("preview", &self.preview())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "generate")]
impl NewToken {
    /// Generates a token with `prefix` from the OS-seeded thread RNG.
    pub fn generate(prefix: &str) -> Self {
        use rand::Rng;
        use rand::distr::Alphanumeric;
        let mut rng = rand::rng();
        let random: String = (&mut rng)
            .sample_iter(Alphanumeric)
            .take(RANDOM_LEN)
            .map(char::from)
            .collect();
        let head = format!("{prefix}_{random}");
        let plaintext = format!("{head}{}", checksum(&head));
        Self { plaintext }
    }

    /// The plaintext, to be shown to its owner exactly once.
    pub fn expose(&self) -> &str {
        &self.plaintext
    }

    /// `sha256_hex` of the plaintext: the only form that is stored.
    pub fn hash(&self) -> String {
        sha256_hex(&self.plaintext)
    }

    /// A recognisable, non-secret preview: prefix, 4 random characters, `…`, last 4.
    pub fn preview(&self) -> String {
        preview(&self.plaintext)
    }
}

/// Preview of a plaintext token (never enough to use it).
pub fn preview(plaintext: &str) -> String {
    let (prefix, body) = plaintext.split_once('_').unwrap_or(("", plaintext));
    let head: String = body.chars().take(4).collect();
    let tail: String = {
        let v: Vec<char> = body.chars().collect();
        v[v.len().saturating_sub(4)..].iter().collect()
    };
    format!("{prefix}_{head}…{tail}")
}

/// Lowercase hex SHA-256 of the full token string (same as the old system, so imported
/// tokens keep working).
pub fn sha256_hex(s: &str) -> String {
    hex32(&sha256(s))
}

/// SHA-256 of the full token string, as bytes (the gateway's in-memory key).
pub fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Lowercase hex of 32 bytes. Hand-rolled: several times faster than `hex::encode`'s
/// iterator, and the gateway formats a hash per request for usage events.
pub fn hex32(bytes: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
    std::str::from_utf8(&out).expect("hex is ASCII").to_owned()
}

/// CRC32 of `head`, as exactly [`CHECKSUM_LEN`] base62 characters (zero padded).
pub fn checksum(head: &str) -> String {
    String::from_utf8(checksum_bytes(head).to_vec()).expect("base62 is ASCII")
}

fn checksum_bytes(head: &str) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(head.as_bytes()) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    // 62^6 > u32::MAX, so nothing is left over.
    out
}

/// What kind of token a well-formed string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Current format with a verified checksum.
    Checksummed,
    /// A legacy format without checksum (`ntk_` + 43 base64url), accepted only when configured.
    Legacy,
}

/// Checks a presented token's shape and checksum without any lookup.
///
/// `expected_prefix` is the current-format prefix accepted here; `legacy_prefixes` lists
/// old prefixes (without `_`) accepted without checksum, empty unless configured.
pub fn check_format(
    presented: &str,
    expected_prefix: &str,
    legacy_prefixes: &[&str],
) -> Result<TokenKind, TokenFormatError> {
    if presented.is_empty() {
        return Err(TokenFormatError::Empty);
    }
    let (prefix, body) = presented
        .split_once('_')
        .ok_or(TokenFormatError::UnknownPrefix)?;
    if prefix == expected_prefix {
        if body.len() != RANDOM_LEN + CHECKSUM_LEN
            || !body.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(TokenFormatError::Malformed);
        }
        let split = presented.len() - CHECKSUM_LEN;
        if checksum_bytes(&presented[..split]) != presented.as_bytes()[split..] {
            return Err(TokenFormatError::BadChecksum);
        }
        return Ok(TokenKind::Checksummed);
    }
    if legacy_prefixes.contains(&prefix) {
        // Old format: 43 URL-safe base64 characters (256 bits), no checksum.
        let ok = body.len() == 43
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return if ok {
            Ok(TokenKind::Legacy)
        } else {
            Err(TokenFormatError::Malformed)
        };
    }
    Err(TokenFormatError::UnknownPrefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "generate")]
    #[test]
    fn generated_tokens_check_and_differ() {
        let a = NewToken::generate(API_TOKEN_PREFIX);
        let b = NewToken::generate(API_TOKEN_PREFIX);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 3 + RANDOM_LEN + CHECKSUM_LEN);
        assert_eq!(
            check_format(a.expose(), API_TOKEN_PREFIX, &[]),
            Ok(TokenKind::Checksummed)
        );
        assert_eq!(a.hash().len(), 64);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[cfg(feature = "generate")]
    #[test]
    fn rejects_bad_tokens_without_lookup() {
        let t = NewToken::generate(API_TOKEN_PREFIX);
        let s = t.expose();
        // Flip one random character: checksum must catch it.
        let mut bytes = s.as_bytes().to_vec();
        bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(
            check_format(&flipped, API_TOKEN_PREFIX, &[]),
            Err(TokenFormatError::BadChecksum)
        );
        assert_eq!(
            check_format(&s[..s.len() - 1], API_TOKEN_PREFIX, &[]),
            Err(TokenFormatError::Malformed)
        );
        assert_eq!(
            check_format(s, MANAGEMENT_KEY_PREFIX, &[]),
            Err(TokenFormatError::UnknownPrefix)
        );
        assert_eq!(check_format("", "kg", &[]), Err(TokenFormatError::Empty));
        assert_eq!(
            check_format("kg_!!", "kg", &[]),
            Err(TokenFormatError::Malformed)
        );
    }

    #[test]
    fn legacy_only_when_configured() {
        let legacy = format!("ntk_{}", "a-_B".repeat(10) + "xyz");
        assert_eq!(legacy.len(), 47);
        assert_eq!(
            check_format(&legacy, "kg", &[]),
            Err(TokenFormatError::UnknownPrefix)
        );
        assert_eq!(check_format(&legacy, "kg", &["ntk"]), Ok(TokenKind::Legacy));
    }

    #[test]
    fn checksum_is_fixed_width_and_known() {
        // CRC32("") = 0 -> all zeros; CRC32("a") = 0xe8b7be43 = 3904355907.
        assert_eq!(checksum(""), "000000");
        let mut n: u64 = 3_904_355_907;
        let mut expect = String::new();
        for _ in 0..6 {
            expect.insert(0, BASE62[(n % 62) as usize] as char);
            n /= 62;
        }
        assert_eq!(checksum("a"), expect);
    }

    #[test]
    fn sha256_hex_is_lowercase_hex_of_the_digest() {
        for s in ["", "a", "kg_x", &"z".repeat(1000)] {
            assert_eq!(sha256_hex(s), hex::encode(Sha256::digest(s.as_bytes())));
        }
    }

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[cfg(feature = "generate")]
    #[test]
    fn preview_hides_the_secret() {
        let t = NewToken::generate("kg");
        let p = t.preview();
        assert!(p.starts_with("kg_"));
        assert_eq!(p.chars().count(), 3 + 4 + 1 + 4);
    }
}
