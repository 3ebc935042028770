//! Request path and query safety, and the path normalisation that routing sees.
//!
//! A path is accepted only in origin form (`/…`) made of RFC 3986 path characters. Percent
//! escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded (RFC 3986 §6.2.2.2),
//! so `/%61pi` routes like `/api` and `%2e` is a `.`; other escapes are kept, upper-cased.
//! Refused: `\`, empty segments (`//`) except a trailing `/`, `.`/`..` segments (also after
//! decoding, and also as the name before a `;` path parameter, which some servers strip),
//! encoded `/` or `\`, raw or encoded control bytes, invalid escapes, and anything else that is
//! not a path character. The query may hold visible ASCII except `#`.

use std::borrow::Cow;

/// Longest request path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 8192;
/// Longest query accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 8192;

/// Why a path or query was refused (the rule, never the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with \"/\"")]
    NotOriginForm,
    #[error("the path is too long")]
    TooLong,
    #[error("the path must not contain a backslash")]
    Backslash,
    #[error("the path must not contain empty segments (\"//\")")]
    EmptySegment,
    #[error("the path must not contain \".\" or \"..\" segments")]
    DotSegment,
    #[error("the path must not contain an encoded \"/\" or \"\\\"")]
    EncodedSlash,
    #[error("the path must not contain control characters")]
    ControlByte,
    #[error("the path contains an invalid percent-escape")]
    BadEscape,
    #[error("the path contains a character that is not allowed")]
    BadChar,
    #[error("the query contains a character that is not allowed")]
    BadQuery,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Classes of raw path bytes, looked up in one table per byte.
const BAD: u8 = 0;
const OK: u8 = 1;
const PERCENT: u8 = 2;
const BACKSLASH: u8 = 3;
const CONTROL: u8 = 4;

/// OK: `/`, unreserved, sub-delims, `:`, `@`. Everything else is refused.
const CLASS: [u8; 256] = {
    let mut t = [BAD; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c < 0x20 || c == 0x7f {
            CONTROL
        } else if c == b'%' {
            PERCENT
        } else if c == b'\\' {
            BACKSLASH
        } else if c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'/'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            )
        {
            OK
        } else {
            BAD
        };
        b += 1;
    }
    t
};

/// Whether the URL parser leaves `path` unchanged when it is the path of a reference: only
/// path characters and `%`. Every path [`normalize_path`] returns passes.
pub(crate) fn is_canonical_path(path: &str) -> bool {
    path.bytes()
        .all(|b| CLASS[usize::from(b)] == OK || b == b'%')
}

/// Whether the URL parser leaves a query (accepted by [`check_query`]) unchanged in an
/// http(s) URL: it percent-encodes `"`, `<`, `>` and `'` there.
pub(crate) fn is_canonical_query(query: &str) -> bool {
    query
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'<' | b'>' | b'\'' | b'#'))
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Checks a raw request path and returns the normalised form that routing matches and that
/// is forwarded (borrowed when nothing was decoded).
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    if bytes.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    let mut has_escape = false;
    for &b in bytes {
        match CLASS[usize::from(b)] {
            OK => {}
            PERCENT => has_escape = true,
            BACKSLASH => return Err(PathError::Backslash),
            CONTROL => return Err(PathError::ControlByte),
            _ => return Err(PathError::BadChar),
        }
    }
    let path: Cow<'_, str> = if has_escape {
        Cow::Owned(decode_unreserved(bytes)?)
    } else {
        Cow::Borrowed(raw)
    };
    check_segments(&path)?;
    Ok(path)
}

/// Decodes escapes of unreserved characters, keeps (upper-cased) the others, refuses
/// encoded separators, controls and malformed escapes. Input is known to be ASCII.
fn decode_unreserved(bytes: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(b as char);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(hex_val),
            bytes.get(i + 2).copied().and_then(hex_val),
        ) else {
            return Err(PathError::BadEscape);
        };
        let v = hi * 16 + lo;
        match v {
            b'/' | b'\\' => return Err(PathError::EncodedSlash),
            0..=0x1f | 0x7f => return Err(PathError::ControlByte),
            v if is_unreserved(v) => out.push(v as char),
            v => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(v >> 4)] as char);
                out.push(HEX[usize::from(v & 0xf)] as char);
            }
        }
        i += 3;
    }
    Ok(out)
}

/// Empty segments (but a trailing `/`) and `.`/`..` segments, also as the name before a
/// `;` parameter. `path` starts with `/`.
fn check_segments(path: &str) -> Result<(), PathError> {
    let p = path.as_bytes();
    let mut start = 1;
    while start <= p.len() {
        let end = p[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(p.len(), |i| start + i);
        let seg = &p[start..end];
        if seg.is_empty() && end != p.len() {
            return Err(PathError::EmptySegment);
        }
        let name = seg
            .iter()
            .position(|&b| b == b';')
            .map_or(seg, |i| &seg[..i]);
        if name == b"." || name == b".." {
            return Err(PathError::DotSegment);
        }
        start = end + 1;
    }
    Ok(())
}

/// Checks a raw query (without `?`): visible ASCII except `#`, at most [`MAX_QUERY_LEN`].
pub fn check_query(query: &str) -> Result<(), PathError> {
    if query.len() > MAX_QUERY_LEN {
        return Err(PathError::TooLong);
    }
    if query
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b'#')
    {
        Ok(())
    } else {
        Err(PathError::BadQuery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_paths_and_their_normal_form() {
        let cases = [
            ("/", "/"),
            ("/api/x", "/api/x"),
            ("/api/x/", "/api/x/"),
            ("/api/x@evil.com/y", "/api/x@evil.com/y"),
            ("/api/x.evil.com", "/api/x.evil.com"),
            ("/%61pi/%7Ex", "/api/~x"),
            ("/a/%20b/%3f/%c3%a9", "/a/%20b/%3F/%C3%A9"),
            ("/a/...", "/a/..."),
            ("/a/.well-known/x", "/a/.well-known/x"),
            ("/a;b=c/d:e/f(g)", "/a;b=c/d:e/f(g)"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw).as_deref(), Ok(want), "{raw}");
        }
        assert!(matches!(normalize_path("/api/x"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn refused_paths() {
        use PathError::*;
        let cases = [
            ("", NotOriginForm),
            ("*", NotOriginForm),
            ("api/x", NotOriginForm),
            ("http://evil.com/x", NotOriginForm),
            ("//evil.com/x", EmptySegment),
            ("/api//x", EmptySegment),
            ("/api\\x", Backslash),
            ("/api/../admin", DotSegment),
            ("/api/./x", DotSegment),
            ("/api/..", DotSegment),
            ("/api/%2e%2e/admin", DotSegment),
            ("/api/%2E./admin", DotSegment),
            ("/api/.%2e", DotSegment),
            ("/api/%2e", DotSegment),
            ("/api/..;/admin", DotSegment),
            ("/api/..;x=1/admin", DotSegment),
            ("/api/x%2fy", EncodedSlash),
            ("/api/x%2Fy", EncodedSlash),
            ("/api/x%5cy", EncodedSlash),
            ("/api/x%5Cy", EncodedSlash),
            ("/api/x%00", ControlByte),
            ("/api/x%0d%0a", ControlByte),
            ("/api/x%7f", ControlByte),
            ("/api/x\ny", ControlByte),
            ("/api/x\ty", ControlByte),
            ("/api/x%", BadEscape),
            ("/api/x%2", BadEscape),
            ("/api/x%zz", BadEscape),
            ("/api/x y", BadChar),
            ("/api/x#f", BadChar),
            ("/api/x?q", BadChar),
            ("/api/é", BadChar),
            ("/api/[x]", BadChar),
            ("/api/x\"", BadChar),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw), Err(want), "{raw:?}");
        }
        assert_eq!(
            normalize_path(&format!("/{}", "a".repeat(MAX_PATH_LEN))),
            Err(TooLong)
        );
    }

    #[test]
    fn queries() {
        assert!(check_query("a=1&b=%20x&c=/d?e").is_ok());
        assert!(check_query("").is_ok());
        for bad in ["a b", "a#b", "a\nb", "é"] {
            assert_eq!(check_query(bad), Err(PathError::BadQuery), "{bad:?}");
        }
    }
}
