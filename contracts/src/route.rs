//! Route rules: path prefixes matched on whole segments, backend URLs, methods, timeouts,
//! CORS origins and per-route rate limits.

use crate::FieldError;
use url::Url;

/// Longest accepted path prefix, in bytes.
pub const MAX_PATH_PREFIX_LEN: usize = 200;
/// Longest accepted backend URL, in bytes.
pub const MAX_BACKEND_URL_LEN: usize = 2048;
/// Backend timeout bounds and default, in milliseconds.
pub const MIN_TIMEOUT_MS: u32 = 1;
pub const MAX_TIMEOUT_MS: u32 = 300_000;
pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;
/// Most CORS origins per route, and the longest accepted origin, in bytes.
pub const MAX_CORS_ORIGINS: usize = 20;
pub const MAX_CORS_ORIGIN_LEN: usize = 300;
/// Largest rate limit in requests per minute, per route (per token) and per token (over all
/// routes); 0 means no limit.
pub const MAX_RATE_LIMIT_PER_MINUTE: u32 = 1_000_000;
/// Methods a route may restrict itself to.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A path prefix is `/` or `/seg(/seg)*` where each segment is 1+ characters of
/// `[A-Za-z0-9._~-]` and is not `.` or `..`. No percent-escapes, `@`, `:` or empty segments:
/// whatever is accepted here is matched literally, segment by segment.
pub fn validate_path_prefix(field: &str, v: &str) -> Result<(), FieldError> {
    if !v.starts_with('/') {
        return Err(FieldError::new(field, "must start with \"/\""));
    }
    if v.len() > MAX_PATH_PREFIX_LEN {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_PATH_PREFIX_LEN} characters"),
        ));
    }
    if v == "/" {
        return Ok(());
    }
    if v.ends_with('/') {
        return Err(FieldError::new(field, "must not end with \"/\""));
    }
    for seg in v[1..].split('/') {
        if seg.is_empty() {
            return Err(FieldError::new(
                field,
                "must not contain empty segments (\"//\")",
            ));
        }
        if seg == "." || seg == ".." {
            return Err(FieldError::new(
                field,
                "must not contain \".\" or \"..\" segments",
            ));
        }
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
        {
            return Err(FieldError::new(
                field,
                "segments may only contain letters, digits, '.', '_', '~' and '-'",
            ));
        }
    }
    Ok(())
}

/// Whether `prefix` matches `path` on whole segments: `/api/x` matches `/api/x` and
/// `/api/x/...`, never `/api/xy`. `path` must already be normalised by the caller.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// An absolute `http`/`https` URL with a host, no userinfo, no query and no fragment.
/// Returns the parsed URL (normalised by the WHATWG rules).
pub fn validate_backend_url(field: &str, v: &str) -> Result<Url, FieldError> {
    if v.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if v.len() > MAX_BACKEND_URL_LEN {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_BACKEND_URL_LEN} characters"),
        ));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError::new(field, "must not contain whitespace"));
    }
    let url = Url::parse(v)
        .map_err(|e| FieldError::new(field, format!("must be an absolute URL ({e})")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(FieldError::new(field, "scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FieldError::new(
            field,
            "must not contain credentials (user:password@); use backend_auth",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FieldError::new(field, "must have a host"));
    }
    if url.query().is_some() {
        return Err(FieldError::new(field, "must not have a query string"));
    }
    if url.fragment().is_some() {
        return Err(FieldError::new(field, "must not have a fragment"));
    }
    Ok(url)
}

/// Normalises and checks an HTTP method name.
pub fn validate_method(field: &str, v: &str) -> Result<String, FieldError> {
    let up = v.to_ascii_uppercase();
    if METHODS.contains(&up.as_str()) {
        Ok(up)
    } else {
        Err(FieldError::new(
            field,
            format!("must be one of {}", METHODS.join(", ")),
        ))
    }
}

/// Checks a timeout; `0` means the default.
pub fn validate_timeout_ms(field: &str, v: u32) -> Result<u32, FieldError> {
    match v {
        0 => Ok(DEFAULT_TIMEOUT_MS),
        MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS => Ok(v),
        _ => Err(FieldError::new(
            field,
            format!("must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS} milliseconds"),
        )),
    }
}

/// A browser origin a route answers CORS for: `*` (any origin), or `http(s)://host[:port]`
/// without credentials, path, query or fragment (a single trailing `/` is tolerated).
/// Returns the origin as browsers send it in `Origin` (lowercase host, IDNA, no default
/// port), which is what the gateway compares with.
pub fn validate_cors_origin(field: &str, v: &str) -> Result<String, FieldError> {
    if v == "*" {
        return Ok(v.to_owned());
    }
    if v.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if v.len() > MAX_CORS_ORIGIN_LEN {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_CORS_ORIGIN_LEN} characters"),
        ));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError::new(field, "must not contain whitespace"));
    }
    if v.contains('*') {
        return Err(FieldError::new(
            field,
            "wildcards are not supported: use \"*\" alone, or exact origins",
        ));
    }
    let url = Url::parse(v).map_err(|e| {
        FieldError::new(
            field,
            format!("must be \"*\" or an origin such as https://app.example.com ({e})"),
        )
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(FieldError::new(field, "scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FieldError::new(field, "must not contain credentials"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FieldError::new(field, "must have a host"));
    }
    if url.path() != "/" {
        return Err(FieldError::new(
            field,
            "must not have a path (an origin is scheme://host[:port])",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(FieldError::new(
            field,
            "must not have a query or fragment (an origin is scheme://host[:port])",
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// Checks a rate limit in requests per minute (0: none): a route's per-token limit, and also
/// a token's own limit (the same bounds and message for both).
pub fn validate_rate_limit_per_minute(field: &str, v: u32) -> Result<u32, FieldError> {
    if v > MAX_RATE_LIMIT_PER_MINUTE {
        return Err(FieldError::new(
            field,
            format!("must be between 0 (no limit) and {MAX_RATE_LIMIT_PER_MINUTE}"),
        ));
    }
    Ok(v)
}

/// An HTTP header name for an API-key credential: an RFC 9110 token, not a hop-by-hop or
/// gateway-owned header.
pub fn validate_header_name(field: &str, v: &str) -> Result<(), FieldError> {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if v.is_empty() || v.len() > 100 || !v.bytes().all(is_tchar) {
        return Err(FieldError::new(
            field,
            "must be a valid HTTP header name (1-100 token characters)",
        ));
    }
    const RESERVED: &[&str] = &[
        "host",
        "connection",
        "content-length",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-request-id",
    ];
    if RESERVED.contains(&v.to_ascii_lowercase().as_str()) {
        return Err(FieldError::new(
            field,
            "must not be a hop-by-hop or gateway-managed header",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_prefix_table() {
        let ok = ["/", "/api", "/api/x", "/v1/pay-ments_2", "/a.b/~c"];
        for p in ok {
            assert!(validate_path_prefix("path_prefix", p).is_ok(), "{p}");
        }
        let bad = [
            "",
            "api",
            "/api/",
            "//api",
            "/api//x",
            "/api/../x",
            "/./x",
            "/api/x@evil.com",
            "/api%2fx",
            "/a b",
            "/a:b",
            "/a?b",
            "/a#b",
        ];
        for p in bad {
            assert!(validate_path_prefix("path_prefix", p).is_err(), "{p}");
        }
    }

    #[test]
    fn segment_matching() {
        assert!(prefix_matches("/api/x", "/api/x"));
        assert!(prefix_matches("/api/x", "/api/x/y"));
        assert!(!prefix_matches("/api/x", "/api/xy"));
        assert!(!prefix_matches("/api/x", "/api/x.evil.com"));
        assert!(!prefix_matches("/api/x", "/api"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn backend_url_table() {
        for ok in [
            "http://svc:8080",
            "https://api.example.com/base",
            "http://127.0.0.1/x/",
        ] {
            assert!(validate_backend_url("backend_url", ok).is_ok(), "{ok}");
        }
        let cases = [
            ("ftp://x", "scheme"),
            ("https://user:pw@x.com", "credentials"),
            ("https://user@x.com", "credentials"),
            ("/relative", "absolute"),
            ("https://x.com/?a=1", "query"),
            ("https://x.com/#f", "fragment"),
            ("https://x.com /a", "whitespace"),
            ("", "required"),
        ];
        for (url, rule) in cases {
            let e = validate_backend_url("backend_url", url).unwrap_err();
            assert_eq!(e.field, "backend_url");
            assert!(e.rule.contains(rule), "{url}: {}", e.rule);
        }
    }

    #[test]
    fn cors_origin_table() {
        let ok = [
            ("*", "*"),
            ("https://app.example.com", "https://app.example.com"),
            ("https://App.Example.COM/", "https://app.example.com"),
            ("http://localhost:5173", "http://localhost:5173"),
            ("https://x.com:443", "https://x.com"),
            ("http://127.0.0.1:80", "http://127.0.0.1"),
            ("https://bücher.example", "https://xn--bcher-kva.example"),
        ];
        for (v, want) in ok {
            assert_eq!(validate_cors_origin("o", v).unwrap(), want, "{v}");
        }
        let bad = [
            ("", "empty"),
            ("app.example.com", "origin"),
            ("ftp://x.com", "scheme"),
            ("https://u:p@x.com", "credentials"),
            ("https://x.com/app", "path"),
            ("https://x.com//", "path"),
            ("https://x.com?a=1", "query"),
            ("https://x.com#f", "query"),
            ("https://*.example.com", "wildcards"),
            ("https://x .com", "whitespace"),
            ("null", "origin"),
        ];
        for (v, rule) in bad {
            let e = validate_cors_origin("o", v).unwrap_err();
            assert!(e.rule.contains(rule), "{v}: {}", e.rule);
        }
        assert!(validate_cors_origin("o", &format!("https://{}.com", "a".repeat(300))).is_err());
        assert_eq!(validate_rate_limit_per_minute("r", 0).unwrap(), 0);
        assert_eq!(
            validate_rate_limit_per_minute("r", 1_000_000).unwrap(),
            1_000_000
        );
        assert!(validate_rate_limit_per_minute("r", 1_000_001).is_err());
    }

    #[test]
    fn methods_timeouts_headers() {
        assert_eq!(validate_method("methods[0]", "get").unwrap(), "GET");
        assert!(validate_method("methods[0]", "BREW").is_err());
        assert_eq!(
            validate_timeout_ms("timeout_ms", 0).unwrap(),
            DEFAULT_TIMEOUT_MS
        );
        assert!(validate_timeout_ms("timeout_ms", 300_001).is_err());
        assert!(validate_header_name("h", "X-API-Key").is_ok());
        assert!(validate_header_name("h", "Host").is_err());
        assert!(validate_header_name("h", "bad header").is_err());
    }
}
