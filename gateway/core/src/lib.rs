//! The gateway's decision core: request parts + KV records in, a decision out.
//!
//! Owns: which key a request presents and whether it is valid ([`key_hash_of`]), path and
//! query safety ([`normalize_path`]), the compiled route table and its longest-prefix index
//! ([`Routes`]), scopes and team allow-lists, the backend URL, CORS preflights ([`decide`]);
//! the header rules in both directions, written through a [`HeaderSink`] so each exists once
//! for every host ([`forward_headers`], [`AnswerHeaders`], [`put_error_headers`]) and
//! redirects ([`rewrite_location`]); rate-limit arithmetic ([`gcra`]); the stable error codes and body
//! ([`GatewayError`], [`error_body`]); and the runner of the shared JSON test vectors
//! ([`vectors`]).
//!
//! Must not: do IO, read a clock (callers pass `now_ms`), depend on tokio, hyper, worker or
//! sqlx, or put `Send` bounds on its traits. It builds for `wasm32-unknown-unknown`, and both
//! front ends (the native hyper gateway and the Cloudflare Worker) hold no rule of their own:
//! they gather request parts, call in here, and carry out the decision.
//!
//! # Error codes
//!
//! | code | status | when |
//! |---|---|---|
//! | `missing_key` | 401 | no `X-API-Key`, no `Authorization: Bearer` |
//! | `invalid_key` | 401 | malformed or bad checksum (no lookup), unknown or revoked |
//! | `expired_key` | 401 | `exp <= now_ms` |
//! | `ambiguous_key` | 401 | several `X-API-Key` or Bearer values, or both and they differ |
//! | `bad_request` | 400 | unsafe path or query; forwarded URL would leave the backend |
//! | `route_not_found` | 404 | no prefix matches |
//! | `forbidden` | 403 | team not in the route's allow-list, no scope grants the route, or a refused CORS preflight (the message never lists scopes) |
//! | `method_not_allowed` | 405 | method not in the route's list (`Allow` set) |
//! | `rate_limited` | 429 | host side, after [`gcra_all`] refuses |
//! | `bad_gateway` | 502 | host side: backend unreachable or broken |
//! | `gateway_timeout` | 504 | host side: backend slower than the route's timeout |
//! | `not_ready` | 503 | host side: no route table loaded yet |
//!
//! The order of checks is documented in [`decide`](mod@decide); the path rules in
//! [`path`](mod@path); the vector format in `gateway/core/vectors/README.md`.

pub mod answer;
pub mod decide;
pub mod error;
pub mod headers;
pub mod key;
pub mod path;
pub mod rate;
pub mod redirect;
pub mod routes;
pub mod tokens;
pub mod vectors;

pub use answer::Answer;
pub use decide::{
    CORS_ALLOW_HEADERS, CORS_MAX_AGE_SECS, Config, Decision, Forward, Incoming, Preflight,
    TokenSource, decide, decide_with, key_hash_of,
};
pub use error::{GatewayError, Reject, code, error_body};
pub use headers::{
    AnswerHeaders, Client, HOP_BY_HOP, HeaderSink, NOT_FORWARDED, check_host_fields,
    connection_named, forward_headers, forwards_request_header, is_hop_by_hop, public_base,
    put_error_headers, put_forward_additions,
};
pub use path::{PathError, check_query, normalize_path};
pub use rate::{Limit, RateDecision, RateState, default_burst, gcra, gcra_all, ratelimit_headers};
pub use redirect::rewrite_location;
pub use routes::{AuthKind, EdgeKey, Route, RouteProblem, Routes};
pub use tokens::{EdgeToken, Interner, ScopeSet, TokenHash, TokenTable};

/// Re-exported so hosts need no direct dependency for the records they hand in.
pub use keygate_kv_record::{RouteTable, TokenRecord};
