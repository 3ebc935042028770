//! `Location` rewriting: a backend's redirects into its own URL space are turned into the
//! gateway's public URLs, so callers never learn (or follow) internal backend addresses.

use crate::routes::Route;
use url::Url;

/// Rewrites a backend `Location` for the caller, or `None` to leave it as is.
///
/// Rewritten: an absolute URL (or a network-path reference `//host/…`) on the backend's
/// scheme, host and port, and an absolute-path reference (`/x`), when their path is under the
/// backend's base path. The result is `public_base` (the gateway's `scheme://host[:port]` as
/// the caller used it; a trailing `/` is ignored) + the route prefix (only when the route
/// strips it) + the rest of the path after the base path, + the query and fragment.
/// Left alone: other hosts, paths outside the base path, relative references (`x`, `../x`),
/// anything unparsable.
pub fn rewrite_location(location: &str, route: &Route, public_base: &str) -> Option<String> {
    let loc = location.trim();
    let backend = &route.backend_url;
    let target = if loc.starts_with('/') {
        // Absolute-path or network-path reference (`//h`, and `/\h` which URL parsers
        // read as `//h`), resolved against the backend; the origin check below decides.
        backend.join(loc).ok()?
    } else {
        Url::parse(loc).ok()?
    };
    let same_origin = target.scheme() == backend.scheme()
        && target.host() == backend.host()
        && target.port_or_known_default() == backend.port_or_known_default()
        && target.username().is_empty()
        && target.password().is_none();
    if !same_origin {
        return None;
    }
    let path = target.path();
    let rest = match path.strip_prefix(route.base_path.as_str()) {
        Some(r) if r.is_empty() || r.starts_with('/') => r,
        _ => return None,
    };
    let mut out = public_base.trim_end_matches('/').to_owned();
    if route.strip && route.prefix != "/" {
        out.push_str(&route.prefix);
    }
    if rest.is_empty() && !(route.strip && route.prefix != "/") {
        out.push('/');
    } else {
        out.push_str(rest);
    }
    if let Some(q) = target.query() {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = target.fragment() {
        out.push('#');
        out.push_str(f);
    }
    Some(out)
}
