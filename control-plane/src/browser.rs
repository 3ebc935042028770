//! Browser sessions: the one place for the session cookie (its name and attributes) and the
//! rule that keeps a cookie-authenticated request safe from cross-site request forgery.
//!
//! - A grpc-web call that carries the `x-grpc-web` header is a *browser* call. When SignIn,
//!   CompleteSetup or AcceptInvitation answer one, the session token goes into an `HttpOnly;
//!   SameSite=Strict; Path=/` cookie (`Secure` over TLS or when the public URL is https) and
//!   is left out of the response body: no credential ever reaches the page's JavaScript.
//!   Other clients (the CLI, gRPC services) get the token in the body as before.
//! - [`crate::auth`] accepts the cookie like `authorization: Bearer` (a bearer, when present,
//!   wins), but only on a request that carries `x-grpc-web` (a custom header: a cross-origin
//!   page cannot send it without a CORS preflight, which only configured origins pass) and
//!   whose `Origin`, when present, is the server's own (its `Host`), the configured public
//!   URL's, or one of the configured CORS origins (`*` never counts).
//! - SignOut revokes the session and, for a browser call, clears the cookie (`Max-Age=0`).
//!
//! Must not: log or echo a cookie's value.

use crate::error::{ApiError, ErrorCode};
use http::{HeaderMap, HeaderValue, Uri};
use std::time::Duration;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "keygate_session";
/// The header every grpc-web client sends (connect-web and grpc-web both do): what marks a
/// call as a browser's, and half of the CSRF rule.
pub const GRPC_WEB_HEADER: &str = "x-grpc-web";

/// Browser settings from the configuration.
#[derive(Debug, Clone, Default)]
pub struct BrowserSettings {
    /// Mark every session cookie `Secure` (the control plane's public URL is https).
    pub secure_cookies: bool,
    /// Origins besides the server's own whose pages may use the cookie: the public URL's
    /// origin and the CORS origins, normalised (`scheme://host[:port]`, lowercase).
    pub allowed_origins: Vec<String>,
}

impl BrowserSettings {
    /// From the public URL (if any) and the CORS origins (`*` is left out: a wildcard is never
    /// enough for credentials).
    pub fn new(public_url: Option<&str>, cors_origins: &[String]) -> Self {
        let mut allowed_origins: Vec<String> = cors_origins
            .iter()
            .filter(|o| o.as_str() != "*")
            .filter_map(|o| origin_of(o))
            .collect();
        let public = public_url.and_then(origin_of);
        let secure_cookies = public.as_deref().is_some_and(|o| o.starts_with("https://"));
        allowed_origins.extend(public);
        allowed_origins.sort();
        allowed_origins.dedup();
        Self {
            secure_cookies,
            allowed_origins,
        }
    }
}

/// How a request reached us, as far as the browser rules care. The auth layer puts it in
/// [`crate::context::RequestMeta`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transport {
    /// The request carries `x-grpc-web`: a browser's grpc-web call.
    pub browser: bool,
    /// A cookie set in its answer must be `Secure`.
    pub secure: bool,
}

impl Transport {
    pub fn of(uri: &Uri, headers: &HeaderMap, settings: &BrowserSettings) -> Self {
        let forwarded_https = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
        Self {
            browser: headers.contains_key(GRPC_WEB_HEADER),
            secure: settings.secure_cookies || uri.scheme_str() == Some("https") || forwarded_https,
        }
    }
}

/// The `Set-Cookie` value that holds a new session for `max_age`.
pub fn session_cookie(token: &str, max_age: Duration, secure: bool) -> HeaderValue {
    cookie_header(token, max_age.as_secs(), secure)
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    cookie_header("", 0, secure)
}

fn cookie_header(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    // Session tokens are base62 with a `_`: always a valid header value.
    .unwrap_or_else(|_| HeaderValue::from_static("keygate_session=; Max-Age=0"))
}

/// The session cookie's value, if the request carries one (empty values ignored).
pub fn session_from_cookies(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value.trim().to_owned())
}

/// The CSRF rule for a request authenticated by the cookie (see the module docs).
pub fn check_cookie_request(
    uri: &Uri,
    headers: &HeaderMap,
    settings: &BrowserSettings,
) -> Result<(), ApiError> {
    if !headers.contains_key(GRPC_WEB_HEADER) {
        return Err(ApiError::unauthenticated(
            "the session cookie is accepted only on grpc-web calls with the x-grpc-web \
             header; other clients send \"authorization: Bearer <session token>\"",
        ));
    }
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        // Browsers send Origin on every cross-origin request (and on same-origin POSTs);
        // without one, this is not a cross-site request.
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let own = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let allowed = match origin_of(origin) {
        Some(o) => {
            own.is_some_and(|host| same_authority(&o, host))
                || settings.allowed_origins.contains(&o)
        }
        None => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "this page's origin may not use the session cookie (it is not this server's \
             origin, the public URL's or a configured CORS origin)",
        ))
    }
}

/// `scheme://host[:port]` of an http(s) URL or origin, lowercase, without a default port.
pub fn origin_of(raw: &str) -> Option<String> {
    let u = url::Url::parse(raw.trim()).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    })
}

/// Whether `origin` (normalised) names the same host and port as the `Host` header value.
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = if scheme == "https" { "443" } else { "80" };
    let normalise = |a: &str| -> String {
        let a = a.trim().to_ascii_lowercase();
        let (h, p) = split_port(&a);
        format!("{h}:{}", p.unwrap_or(default_port))
    };
    normalise(authority) == normalise(host)
}

/// `host[:port]` or `[v6][:port]` -> host and port.
fn split_port(a: &str) -> (&str, Option<&str>) {
    if a.starts_with('[') {
        return match a.split_once("]:") {
            Some((h, p)) => (h, Some(p)),
            None => (a.trim_end_matches(']'), None),
        };
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (a, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn cookie_attributes() {
        let c = session_cookie("kgs_abc", Duration::from_secs(3600), false);
        assert_eq!(
            c,
            "keygate_session=kgs_abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600"
        );
        let c = clear_cookie(true);
        assert_eq!(
            c,
            "keygate_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
        );
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[("cookie", "a=1; keygate_session=kgs_x ; b=2")]);
        assert_eq!(session_from_cookies(&h).as_deref(), Some("kgs_x"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "keygate_session=kgs_y")]);
        assert_eq!(session_from_cookies(&h).as_deref(), Some("kgs_y"));
        assert_eq!(
            session_from_cookies(&headers(&[("cookie", "keygate_session=")])),
            None
        );
        assert_eq!(session_from_cookies(&headers(&[])), None);
    }

    #[test]
    fn csrf_rule() {
        let settings = BrowserSettings::new(
            Some("https://keygate.example.com/"),
            &["http://localhost:5173".into(), "*".into()],
        );
        assert!(settings.secure_cookies);
        assert_eq!(
            settings.allowed_origins,
            ["http://localhost:5173", "https://keygate.example.com"]
        );
        let uri: Uri = "/keygate.v1.TokenService/ListTokens".parse().unwrap();
        let check = |pairs: &[(&str, &str)]| check_cookie_request(&uri, &headers(pairs), &settings);
        let web = ("x-grpc-web", "1");
        let host = ("host", "127.0.0.1:7000");
        assert!(check(&[web, host]).is_ok(), "no Origin: not cross-site");
        assert!(check(&[web, host, ("origin", "http://127.0.0.1:7000")]).is_ok());
        assert!(
            check(&[
                web,
                ("host", "cp.example"),
                ("origin", "https://cp.example")
            ])
            .is_ok()
        );
        assert!(
            check(&[
                web,
                ("host", "cp.example:443"),
                ("origin", "https://cp.example")
            ])
            .is_ok()
        );
        assert!(check(&[web, host, ("origin", "http://localhost:5173")]).is_ok());
        assert!(check(&[web, host, ("origin", "https://keygate.example.com")]).is_ok());
        let e = check(&[web, host, ("origin", "http://evil.test")]).unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        assert!(check(&[web, host, ("origin", "http://127.0.0.1:7001")]).is_err());
        assert!(check(&[web, host, ("origin", "null")]).is_err());
        let v6 = ("host", "[::1]:7000");
        assert!(check(&[web, v6, ("origin", "http://[::1]:7000")]).is_ok());
        assert!(check(&[web, v6, ("origin", "http://[::1]:7001")]).is_err());
        let e = check(&[host]).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthenticated);
        assert!(e.message.contains("x-grpc-web"));
    }

    #[test]
    fn transport() {
        let s = BrowserSettings::default();
        let uri: Uri = "/x".parse().unwrap();
        let t = Transport::of(&uri, &headers(&[("x-grpc-web", "1")]), &s);
        assert_eq!((t.browser, t.secure), (true, false));
        let t = Transport::of(&uri, &headers(&[("x-forwarded-proto", "https")]), &s);
        assert_eq!((t.browser, t.secure), (false, true));
        let t = Transport::of(
            &uri,
            &headers(&[]),
            &BrowserSettings::new(Some("https://a.example"), &[]),
        );
        assert!(t.secure);
    }
}
