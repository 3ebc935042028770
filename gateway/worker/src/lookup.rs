//! Opt-in narrowing of the KV freshness window (`KEYGATE_LOOKUP_ON_MISS = "on"`): when KV has
//! no record for a well-formed key (a token created moments ago, at a location that cached
//! the miss), ask the control plane once (`SyncService.LookupEdgeToken`, GATEWAY key).
//!
//! Bounded so that random checksum-valid keys cannot flood the control plane: each hash is
//! asked at most once per [`PER_HASH_MS`] (the answer, found or not, is kept that long), and
//! an isolate asks at most [`PER_SECOND`] times per second (a token bucket); beyond either,
//! the KV answer stands. The control plane bounds the RPC over all gateways as well.

use crate::grpc_web;
use crate::settings::UsageTarget;
use keygate_gateway_core::{EdgeToken, TokenHash};
use keygate_proto::v1 as pb;
use prost::Message;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// How long an answer for one hash is kept (a hash is asked at most this often).
pub const PER_HASH_MS: i64 = 30_000;
/// Lookups per second per isolate (and the bucket's size).
pub const PER_SECOND: f64 = 5.0;
/// Answers kept at most; older ones are forgotten first.
const MAX_KEPT: usize = 10_000;

/// What to do about a KV miss.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// This hash was asked recently: its answer.
    Known(Option<EdgeToken>),
    /// Ask the control plane (the budget was charged).
    Ask,
    /// The isolate's budget is spent: the KV answer stands.
    Skip,
}

/// One isolate's lookups: recent answers by hash and the per-second budget.
#[derive(Default)]
pub struct Lookups {
    answers: RefCell<HashMap<TokenHash, (i64, Option<EdgeToken>)>>,
    /// (tokens left, when last refilled in ms).
    bucket: Cell<(f64, i64)>,
    pub asked: Cell<u64>,
}

impl Lookups {
    pub fn plan(&self, hash: &TokenHash, now_ms: i64) -> Plan {
        if let Some((at, token)) = self.answers.borrow().get(hash)
            && now_ms - at < PER_HASH_MS
        {
            return Plan::Known(token.clone());
        }
        let (left, at) = self.bucket.get();
        let left = if at == 0 {
            PER_SECOND
        } else {
            (left + (now_ms - at).max(0) as f64 / 1000.0 * PER_SECOND).min(PER_SECOND)
        };
        if left < 1.0 {
            self.bucket.set((left, now_ms));
            return Plan::Skip;
        }
        self.bucket.set((left - 1.0, now_ms));
        // Marked as asked at once: concurrent misses of the same hash do not ask again.
        self.remember(hash, now_ms, None);
        Plan::Ask
    }

    pub fn remember(&self, hash: &TokenHash, now_ms: i64, token: Option<EdgeToken>) {
        let mut answers = self.answers.borrow_mut();
        if answers.len() >= MAX_KEPT {
            answers.retain(|_, (at, _)| now_ms - *at < PER_HASH_MS);
        }
        if answers.len() < MAX_KEPT {
            answers.insert(*hash, (now_ms, token));
        }
    }

    /// Asks the control plane; a failure counts as "no token" (logged) and is kept like an
    /// answer, so a down control plane is not asked again for that hash within the window.
    pub async fn ask(
        &self,
        target: &UsageTarget,
        hash: &TokenHash,
        now_ms: i64,
    ) -> Option<EdgeToken> {
        self.asked.set(self.asked.get() + 1);
        let req = pb::LookupEdgeTokenRequest {
            token_hash: hash.hex(),
        };
        let token = match grpc_web::call(
            &target.base_url,
            &target.key,
            "keygate.v1.SyncService/LookupEdgeToken",
            &req.encode_to_vec(),
        )
        .await
        .and_then(|bytes| {
            pb::LookupEdgeTokenResponse::decode(bytes.as_slice()).map_err(|e| e.to_string())
        }) {
            Ok(answer) => answer
                .token
                .filter(|t| t.token_hash == req.token_hash)
                .map(|t| EdgeToken::from_record(&keygate_kv_record::token_record(&t))),
            Err(e) => {
                worker::console_warn!("token lookup at the control plane failed: {e}");
                None
            }
        };
        self.remember(hash, now_ms, token.clone());
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hash_is_asked_once_per_window_and_the_isolate_within_its_budget() {
        let l = Lookups::default();
        let h = |i: u8| TokenHash::of(&format!("key-{i}"));
        let t0 = 1_000_000;
        assert_eq!(l.plan(&h(0), t0), Plan::Ask);
        // Asked: the same hash is not asked again within the window, found or not.
        assert_eq!(l.plan(&h(0), t0 + 10), Plan::Known(None));
        assert_eq!(l.plan(&h(0), t0 + PER_HASH_MS - 1), Plan::Known(None));
        // The budget: 5 at once, then none until it refills.
        for i in 1..5 {
            assert_eq!(l.plan(&h(i), t0), Plan::Ask, "{i}");
        }
        assert_eq!(l.plan(&h(9), t0), Plan::Skip);
        assert_eq!(l.plan(&h(9), t0 + 100), Plan::Skip);
        assert_eq!(l.plan(&h(9), t0 + 200), Plan::Ask);
        // After the window a hash may be asked again.
        assert_eq!(l.plan(&h(0), t0 + PER_HASH_MS + 10_000), Plan::Ask);
    }
}
