//! The request headers the core's decision reads, gathered by every host the same way.

use keygate_gateway_core as core;

/// Every value of one request header, on the stack for the usual zero to two values.
pub type Values<'a> = smallvec::SmallVec<[&'a [u8]; 2]>;

/// The request headers the decision reads: every `X-API-Key` and `Authorization` value, the
/// first `Origin` and `Access-Control-Request-Method`.
#[derive(Default, Debug)]
pub struct DecisionHeaders<'a> {
    pub api_key: Values<'a>,
    pub authorization: Values<'a>,
    /// The first value, as `HeaderMap::get` gives.
    pub origin: Option<&'a [u8]>,
    pub preflight_method: Option<&'a [u8]>,
}

impl<'a> DecisionHeaders<'a> {
    /// Takes one header value (`name` in any case) if the decision reads it; whether it did.
    pub fn offer(&mut self, name: &str, v: &'a [u8]) -> bool {
        match name.len() {
            9 if name.eq_ignore_ascii_case("x-api-key") => self.api_key.push(v),
            13 if name.eq_ignore_ascii_case("authorization") => self.authorization.push(v),
            6 if name.eq_ignore_ascii_case("origin") => {
                self.origin.get_or_insert(v);
            }
            29 if name.eq_ignore_ascii_case("access-control-request-method") => {
                self.preflight_method.get_or_insert(v);
            }
            _ => return false,
        }
        true
    }

    /// The request as the core wants it.
    pub fn incoming<'s>(
        &'s self,
        method: &'s str,
        path: &'s str,
        query: Option<&'s str>,
    ) -> core::Incoming<'s> {
        core::Incoming {
            method,
            path,
            query,
            api_key: self.api_key.as_slice(),
            authorization: self.authorization.as_slice(),
            origin: self.origin,
            preflight_method: self.preflight_method,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_decisions_headers_are_taken_in_any_case() {
        let mut d = DecisionHeaders::default();
        assert!(d.offer("X-Api-Key", b"a"));
        assert!(d.offer("x-api-key", b"b"));
        assert!(d.offer("AUTHORIZATION", b"Bearer k"));
        assert!(d.offer("origin", b"https://a"));
        assert!(d.offer("Origin", b"https://b"));
        assert!(d.offer("access-control-request-method", b"PUT"));
        assert!(!d.offer("accept", b"*/*"));
        let i = d.incoming("GET", "/x", None);
        assert_eq!(i.api_key, [&b"a"[..], b"b"]);
        assert_eq!(i.authorization, [&b"Bearer k"[..]]);
        assert_eq!(i.origin, Some(&b"https://a"[..]));
        assert_eq!(i.preflight_method, Some(&b"PUT"[..]));
    }
}
