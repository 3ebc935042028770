//! Reads from Workers KV: the revision marker, the route table (compiled once per isolate and
//! reused while `v1/meta/revision` is unchanged) and one token record per request.
//!
//! Every read uses `cacheTtl` [`CACHE_TTL_SECS`]: a location serves a value (or a miss) it
//! read up to that long ago, so a new token can be refused and a revoked one accepted for up
//! to `cacheTtl` plus KV's own propagation (README "Freshness"). On top of that, an isolate
//! keeps what it read for a moment, so a busy isolate does not pay two KV reads per request:
//! the revision marker is re-read at most every [`REVISION_CHECK_MS`], a token record (or its
//! absence) is kept [`TOKEN_KEEP_MS`]. Both add to the freshness bound above.

use keygate_gateway_core::{EdgeKey, EdgeToken, Routes, TokenHash};
use keygate_kv_record as rec;
use std::cell::RefCell;
use std::rc::Rc;
use worker::kv::KvStore;

/// Seconds a location caches a KV read (Cloudflare's minimum is 30).
pub const CACHE_TTL_SECS: u64 = 30;
/// How often an isolate re-reads `v1/meta/revision` (ms).
pub const REVISION_CHECK_MS: i64 = 1_000;
/// How long an isolate keeps a token record or a miss it read (ms).
pub const TOKEN_KEEP_MS: i64 = 5_000;
/// Token answers an isolate keeps at most.
const TOKENS_KEPT: usize = 20_000;

/// A route table compiled for one revision.
pub struct Compiled {
    pub revision: i64,
    /// The marker's text: the table is reused while it reads the same.
    marker: Vec<u8>,
    /// When the marker was last read (ms).
    checked_at: std::cell::Cell<i64>,
    pub routes: Routes,
}

/// Why no route table can be used.
#[derive(Debug)]
pub enum TableError {
    /// No revision marker or no route table in KV yet (kv-sync has not written).
    Missing,
    /// The edge key is not valid base64 of 32 bytes.
    EdgeKey,
    /// KV failed or a record did not decode, or the table was refused; the text is for logs.
    Broken(String),
}

/// Token answers this isolate read: (when, the record or `None` for a miss).
type Kept = rustc_hash::FxHashMap<TokenHash, (i64, Option<EdgeToken>)>;

thread_local! {
    static COMPILED: RefCell<Option<Rc<Compiled>>> = const { RefCell::new(None) };
    static TOKENS: RefCell<Kept> = RefCell::new(Kept::default());
}

async fn get(kv: &KvStore, key: &str) -> Result<Option<Vec<u8>>, String> {
    kv.get(key)
        .cache_ttl(CACHE_TTL_SECS)
        .bytes()
        .await
        .map_err(|e| format!("KV read of {key}: {e}"))
}

/// The route table for the current revision: this isolate's compiled table when the marker
/// is unchanged, else the table read and compiled anew. A table that does not compile keeps
/// the previous one in force (as in the native gateway).
pub async fn routes(kv: &KvStore, edge_key: &str, now_ms: i64) -> Result<Rc<Compiled>, TableError> {
    let current = COMPILED.with(|c| c.borrow().clone());
    if let Some(c) = &current
        && now_ms - c.checked_at.get() < REVISION_CHECK_MS
    {
        return Ok(c.clone());
    }
    let marker = get(kv, rec::REVISION_KEY)
        .await
        .map_err(TableError::Broken)?
        .ok_or(TableError::Missing)?;
    if let Some(c) = &current
        && c.marker == marker
    {
        c.checked_at.set(now_ms);
        return Ok(c.clone());
    }
    let revision: rec::RevisionRecord =
        rec::decode(rec::REVISION_KEY, &marker).map_err(|e| TableError::Broken(e.to_string()))?;
    let table_bytes = get(kv, rec::ROUTES_KEY)
        .await
        .map_err(TableError::Broken)?
        .ok_or(TableError::Missing)?;
    let table: rec::RouteTable = rec::decode(rec::ROUTES_KEY, &table_bytes)
        .map_err(|e| TableError::Broken(e.to_string()))?;
    let key = EdgeKey::from_base64(edge_key).map_err(|_| TableError::EdgeKey)?;
    match Routes::compile(&table, &key) {
        Ok(routes) => {
            let c = Rc::new(Compiled {
                revision: revision.revision,
                marker,
                checked_at: std::cell::Cell::new(now_ms),
                routes,
            });
            COMPILED.with(|slot| *slot.borrow_mut() = Some(c.clone()));
            Ok(c)
        }
        Err(problems) => {
            let text = problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            match current {
                Some(previous) => {
                    worker::console_error!(
                        "route table of revision {} refused, the previous table stays in force: {text}",
                        revision.revision
                    );
                    Ok(previous)
                }
                None => Err(TableError::Broken(format!("route table refused: {text}"))),
            }
        }
    }
}

/// The live token whose key hashes to `hash`, if KV has one: this isolate's answer when it
/// read it less than [`TOKEN_KEEP_MS`] ago, else read from KV (and kept). A record that does
/// not decode counts as no token (and is logged).
pub async fn token(
    kv: &KvStore,
    hash: &TokenHash,
    now_ms: i64,
) -> Result<Option<EdgeToken>, String> {
    let kept = TOKENS.with(|t| {
        t.borrow()
            .get(hash)
            .filter(|(at, _)| now_ms - at < TOKEN_KEEP_MS)
            .map(|(_, token)| token.clone())
    });
    if let Some(token) = kept {
        return Ok(token);
    }
    let token = read_token(kv, hash).await?;
    TOKENS.with(|t| {
        let mut t = t.borrow_mut();
        if t.len() >= TOKENS_KEPT {
            t.retain(|_, (at, _)| now_ms - *at < TOKEN_KEEP_MS);
        }
        if t.len() < TOKENS_KEPT {
            t.insert(*hash, (now_ms, token.clone()));
        }
    });
    Ok(token)
}

async fn read_token(kv: &KvStore, hash: &TokenHash) -> Result<Option<EdgeToken>, String> {
    let hex = hash.hex();
    let key = rec::token_key(&hex).map_err(|e| e.to_string())?;
    let Some(bytes) = get(kv, &key).await? else {
        return Ok(None);
    };
    match rec::decode::<rec::TokenRecord>(&key, &bytes) {
        Ok(r) => Ok(Some(EdgeToken::from_record(&r))),
        Err(e) => {
            worker::console_error!("token record refused: {e}");
            Ok(None)
        }
    }
}
