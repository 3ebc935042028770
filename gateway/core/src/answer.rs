//! Answers the gateway gives itself — a refusal, a CORS preflight, a backend failure — as
//! plain data every host writes out its own way (an HTTP/1.1 head, an `http::Response`, a
//! Worker `Response`). The headers are the rules of [`crate::headers`]; the body is
//! [`crate::Reject::body`].

use crate::decide::Preflight;
use crate::error::Reject;
use crate::headers::{AnswerHeaders, HeaderSink, put_error_headers};

/// A host-neutral answer: status, headers (names lower-case, in order), body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: String,
}

impl Answer {
    /// The JSON error answer for `reject`, with the gateway's headers `answer` (its request id,
    /// revision, rate-limit headers; the reject's CORS origin when `answer` has none).
    pub fn error(reject: &Reject, answer: &AnswerHeaders) -> Self {
        let mut headers = Vec::with_capacity(8);
        put_error_headers(&mut headers, reject, answer);
        Self {
            status: reject.status,
            headers,
            body: reject.body(answer.request_id),
        }
    }

    /// A CORS preflight's answer: its headers, then the request id.
    pub fn preflight(p: &Preflight, request_id: &str) -> Self {
        let mut headers: Vec<(String, Vec<u8>)> = p
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        AnswerHeaders {
            request_id,
            ..Default::default()
        }
        .put(&mut headers);
        Self {
            status: p.status,
            headers,
            body: String::new(),
        }
    }

    /// Writes the headers into a host's sink.
    pub fn put_headers(&self, sink: &mut impl HeaderSink) {
        for (k, v) in &self.headers {
            sink.put(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GatewayError;

    #[test]
    fn error_and_preflight_answers() {
        let mut reject = Reject::new(GatewayError::MethodNotAllowed, "no");
        reject.allow = Some("GET, POST".into());
        reject.cors_origin = Some("https://app.example".into());
        let rate = [("retry-after", "1".to_owned())];
        let a = Answer::error(
            &reject,
            &AnswerHeaders {
                request_id: "gw-1",
                revision: Some(b"9"),
                extra: &rate,
                cors_origin: None,
            },
        );
        assert_eq!(a.status, 405);
        let names: Vec<&str> = a.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "cache-control",
                "allow",
                "x-request-id",
                "x-keygate-revision",
                "retry-after",
                "access-control-allow-origin",
                "vary",
                "access-control-expose-headers",
            ]
        );
        let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["error"], "method_not_allowed");
        assert_eq!(body["request_id"], "gw-1");

        let unauthorized = Answer::error(
            &Reject::of(GatewayError::MissingKey),
            &AnswerHeaders::default(),
        );
        assert!(
            unauthorized
                .headers
                .iter()
                .any(|(k, v)| k == "www-authenticate" && v == b"Bearer realm=\"keygate\"")
        );

        let p = Preflight {
            status: 204,
            headers: vec![("access-control-allow-origin".into(), "https://a".into())],
            route: "r".into(),
        };
        let a = Answer::preflight(&p, "gw-2");
        assert_eq!(
            a.headers,
            vec![
                (
                    "access-control-allow-origin".to_owned(),
                    b"https://a".to_vec()
                ),
                ("x-request-id".to_owned(), b"gw-2".to_vec()),
            ]
        );
        assert!(a.body.is_empty());
    }
}
