//! The KV record format, version 1: key names and value encodings for everything the edge
//! reads. kv-sync writes with it; both gateway front ends read with it. Nothing else may
//! build KV keys or values.
//!
//! Owns: the key layout (`v1/token/<sha256>`, `v1/routes`, `v1/meta/revision`) and compact JSON
//! values. Must not do IO, know about gRPC, or hold secrets in plaintext: backend secrets
//! arrive sealed to the edge key and stay sealed here.
//!
//! Versioning: every key starts with `v1/`; a value carries `"v": 1`. A v2 layout is written
//! under `v2/` next to v1 until every reader understands it.

use serde::{Deserialize, Serialize};

/// Prefix of every key this format owns.
pub const PREFIX: &str = "v1/";
/// Prefix of token records.
pub const TOKEN_PREFIX: &str = "v1/token/";
/// The route table record.
pub const ROUTES_KEY: &str = "v1/routes";
/// The revision the KV content is consistent with (kv-sync's checkpoint).
pub const REVISION_KEY: &str = "v1/meta/revision";

/// Format errors. Never include values (they may be large); keys are fine.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{key}: not a valid v1 record ({reason})")]
    Invalid { key: String, reason: String },
    #[error("{0}: not a well-formed token hash (64 lowercase hex digits)")]
    BadHash(String),
}

/// `v1/token/<hash>` for a lowercase hex SHA-256.
pub fn token_key(token_hash: &str) -> Result<String, RecordError> {
    let ok = token_hash.len() == 64
        && token_hash
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(format!("{TOKEN_PREFIX}{token_hash}"))
    } else {
        Err(RecordError::BadHash(token_hash.to_owned()))
    }
}

/// A token as the gateway needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Format version, 1.
    pub v: u32,
    /// Token id (for usage events and logs; not a secret).
    pub id: String,
    pub team: String,
    /// `*`, route names, `tag:<tag>`.
    pub scopes: Vec<String>,
    /// Expiry, Unix milliseconds; `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Requests per minute; 0: no per-token limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rpm: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Backend credential, secret sealed to the edge key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendAuth {
    /// `none`, `bearer`, `api_key`, `basic`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub header: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// `v1.<key id>.<base64url>`; AAD `<route_id>/<slot>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sealed: String,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    pub id: String,
    pub name: String,
    pub team: String,
    pub prefix: String,
    pub backend: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strip: bool,
    pub timeout_ms: u32,
    pub auth: BackendAuth,
    /// Teams whose tokens may use the route; empty: every team.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_teams: Vec<String>,
    /// Browser origins allowed to call the route (`https://app.example.com`, or `*`); empty:
    /// the gateway does no CORS handling for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors_origins: Vec<String>,
    /// Requests per minute per token on this route; 0: no per-route limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rpm: u32,
}

/// The route table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTable {
    pub v: u32,
    pub routes: Vec<RouteRecord>,
}

/// The checkpoint record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionRecord {
    pub v: u32,
    pub revision: i64,
    /// When kv-sync wrote it, Unix milliseconds.
    pub at: i64,
}

/// Encodes a record as compact JSON.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise")
}

/// Decodes a record, checking its version.
pub fn decode<T: for<'de> Deserialize<'de> + Versioned>(
    key: &str,
    bytes: &[u8],
) -> Result<T, RecordError> {
    let v: T = serde_json::from_slice(bytes).map_err(|e| RecordError::Invalid {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    if v.version() != 1 {
        return Err(RecordError::Invalid {
            key: key.to_owned(),
            reason: format!("version {} is not 1", v.version()),
        });
    }
    Ok(v)
}

/// Records that carry a format version.
pub trait Versioned {
    fn version(&self) -> u32;
}

impl Versioned for TokenRecord {
    fn version(&self) -> u32 {
        self.v
    }
}

impl Versioned for RouteTable {
    fn version(&self) -> u32 {
        self.v
    }
}

impl Versioned for RevisionRecord {
    fn version(&self) -> u32 {
        self.v
    }
}

/// The KV record of a token as the control plane describes it (`EdgeToken`): what kv-sync
/// writes, and what a Worker builds from a `LookupEdgeToken` answer.
#[cfg(feature = "proto")]
pub fn token_record(t: &keygate_proto::v1::EdgeToken) -> TokenRecord {
    TokenRecord {
        v: 1,
        id: t.token_id.clone(),
        team: t.team_id.clone(),
        scopes: t.scopes.clone(),
        exp: t
            .expires_at
            .as_ref()
            .map(|ts| ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000),
        rpm: t.rate_limit_per_minute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_records_round_trip_compactly() {
        let t = TokenRecord {
            v: 1,
            id: "tok_1".into(),
            team: "a".into(),
            scopes: vec!["*".into()],
            exp: None,
            rpm: 0,
        };
        let bytes = encode(&t);
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"v":1,"id":"tok_1","team":"a","scopes":["*"]}"#
        );
        assert_eq!(decode::<TokenRecord>("k", &bytes).unwrap(), t);
        assert!(decode::<TokenRecord>("k", br#"{"v":2,"id":"x","team":"a","scopes":[]}"#).is_err());
        assert!(decode::<TokenRecord>("k", b"garbage").is_err());
    }

    #[test]
    fn keys() {
        let h = "a".repeat(64);
        assert_eq!(token_key(&h).unwrap(), format!("v1/token/{h}"));
        assert!(token_key("ABC").is_err());
        assert!(token_key(&"A".repeat(64)).is_err());
    }

    #[test]
    fn route_table_round_trip() {
        let t = RouteTable {
            v: 1,
            routes: vec![RouteRecord {
                id: "rte_1".into(),
                name: "pay".into(),
                team: "a".into(),
                prefix: "/pay".into(),
                backend: "http://127.0.0.1:9/".into(),
                tags: vec![],
                methods: vec!["GET".into()],
                strip: true,
                timeout_ms: 1000,
                auth: BackendAuth {
                    kind: "bearer".into(),
                    header: String::new(),
                    username: String::new(),
                    sealed: "v1.k.x".into(),
                },
                allowed_teams: vec![],
                cors_origins: vec!["https://app.example.com".into()],
                rpm: 120,
            }],
        };
        assert_eq!(decode::<RouteTable>(ROUTES_KEY, &encode(&t)).unwrap(), t);
    }

    #[test]
    fn routes_without_the_newer_fields_still_decode() {
        let old = br#"{"v":1,"routes":[{"id":"rte_1","name":"pay","team":"a","prefix":"/pay","backend":"http://127.0.0.1:9/","timeout_ms":1000,"auth":{"type":"none"}}]}"#;
        let t = decode::<RouteTable>(ROUTES_KEY, old).unwrap();
        assert!(t.routes[0].cors_origins.is_empty());
        assert_eq!(t.routes[0].rpm, 0);
        // Empty and zero values are not written, so older readers see the same bytes.
        assert_eq!(encode(&t), old.to_vec());
    }
}
