//! The token store as the decision reads it: records compiled from KV's [`TokenRecord`]s,
//! keyed by the binary SHA-256 of the key.
//!
//! Built for the per-request lookup, which is most of the decision's memory traffic:
//! - Keys are the 32 hash bytes ([`TokenHash`]), not 64-character hex strings, so a lookup
//!   neither formats hex nor chases a `String` to compare keys.
//! - The table hashes a key by its first 8 bytes ([`KeyPrefixHash`]). They are already
//!   uniformly random (SHA-256 output), and the table's contents are not chosen by callers
//!   (tokens are created by admins with random keys; requests only look up), so there is no
//!   HashDoS to defend against: a flood of lookups for keys that share bucket bits walks the
//!   same short probe sequences the real tokens made.
//! - A record ([`EdgeToken`]) holds its team and scope set as shared values interned by
//!   [`Interner`]: a few hundred distinct teams and scope sets serve 100,000 tokens, so they
//!   stay in cache, and scopes are parsed once (at load), not per request.
//! - [`TokenTable`] is a large immutable base map plus a small overlay of recent changes
//!   (tombstones for revocations). A new snapshot after a change copies only the overlay;
//!   when the overlay grows past an eighth of the base, the two are merged into a new base.
//!   A lookup checks the overlay first (skipped when empty), then the base.

use crate::routes::Route;
use keygate_contracts::scope::Scope;
use keygate_kv_record::TokenRecord;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

/// SHA-256 of a presented key: what the token store is keyed by.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The hash of a key string.
    pub fn of(key: &str) -> Self {
        Self(keygate_contracts::token::sha256(key))
    }

    /// Lowercase hex, the form KV keys, usage events and the control plane use.
    pub fn hex(&self) -> String {
        keygate_contracts::token::hex32(&self.0)
    }

    /// Parses 64 hex digits (either case); `None` otherwise.
    pub fn from_hex(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (nibble(b[2 * i])? << 4) | nibble(b[2 * i + 1])?;
        }
        Some(Self(out))
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({})", self.hex())
    }
}

impl std::fmt::Display for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl Hash for TokenHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// Hashes a [`TokenHash`] by its first 8 bytes (see the module documentation for why that is
/// safe here). Only meant for `TokenHash` keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyPrefixHash;

impl BuildHasher for KeyPrefixHash {
    type Hasher = KeyPrefixHasher;
    fn build_hasher(&self) -> KeyPrefixHasher {
        KeyPrefixHasher(0)
    }
}

#[derive(Debug, Default)]
pub struct KeyPrefixHasher(u64);

impl Hasher for KeyPrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `TokenHash` (it writes one u64); a plain FNV-1a keeps other keys correct.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A token's scopes, parsed: what a request's route is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet {
    /// `*`.
    pub all: bool,
    /// Route names.
    pub routes: Vec<String>,
    /// Tags (without `tag:`).
    pub tags: Vec<String>,
}

impl ScopeSet {
    /// Parses scopes with the contract's rule ([`Scope::parse`]); malformed scopes grant
    /// nothing and are dropped (KV only holds validated scopes: defence in depth).
    pub fn parse(scopes: &[String]) -> Self {
        let mut set = Self::default();
        for s in scopes {
            match Scope::parse("scope", s) {
                Ok(Scope::All) => set.all = true,
                Ok(Scope::Route(name)) => set.routes.push(name),
                Ok(Scope::Tag(tag)) => set.tags.push(tag),
                Err(_) => {}
            }
        }
        set
    }

    /// Whether one of the scopes grants `route` (same answer as [`Scope::grants`] on each).
    pub fn grants(&self, route: &Route) -> bool {
        self.all
            || self.routes.contains(&route.name)
            || self.tags.iter().any(|t| route.tags.contains(t))
    }
}

/// A token as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeToken {
    /// Token id (usage events and logs; not a secret).
    pub id: Arc<str>,
    pub team: Arc<str>,
    pub scopes: Arc<ScopeSet>,
    /// Expiry, Unix milliseconds; `None`: never.
    pub exp: Option<i64>,
    /// Requests per minute; 0: no per-token limit.
    pub rpm: u32,
}

impl EdgeToken {
    /// Compiles one record without sharing (a Worker that fetched a single record).
    pub fn from_record(rec: &TokenRecord) -> Self {
        Self {
            id: rec.id.as_str().into(),
            team: rec.team.as_str().into(),
            scopes: Arc::new(ScopeSet::parse(&rec.scopes)),
            exp: rec.exp,
            rpm: rec.rpm,
        }
    }
}

/// Shares equal teams and scope sets between records. Keep one per loader: it only grows
/// by distinct values (teams, scope sets), which are few.
#[derive(Debug, Default)]
pub struct Interner {
    teams: HashSet<Arc<str>>,
    scopes: HashMap<Vec<String>, Arc<ScopeSet>>,
}

impl Interner {
    /// Compiles a record, sharing its team and scope set with earlier records.
    pub fn token(&mut self, rec: &TokenRecord) -> EdgeToken {
        let team = match self.teams.get(rec.team.as_str()) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = rec.team.as_str().into();
                self.teams.insert(t.clone());
                t
            }
        };
        let scopes = match self.scopes.get(&rec.scopes) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(ScopeSet::parse(&rec.scopes));
                self.scopes.insert(rec.scopes.clone(), s.clone());
                s
            }
        };
        EdgeToken {
            id: rec.id.as_str().into(),
            team,
            scopes,
            exp: rec.exp,
            rpm: rec.rpm,
        }
    }

    /// Distinct teams and scope sets held.
    pub fn len(&self) -> (usize, usize) {
        (self.teams.len(), self.scopes.len())
    }
}

type Map<V> = HashMap<TokenHash, V, KeyPrefixHash>;

/// Every live token, by hash; cheap to clone (two `Arc`s). See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct TokenTable {
    base: Arc<Map<EdgeToken>>,
    /// Changes since `base` was built: `None` is a removed (revoked, expired, deleted) token.
    overlay: Arc<Map<Option<EdgeToken>>>,
    /// Live tokens (base plus overlay).
    live: usize,
}

impl TokenTable {
    /// A table of these tokens (later duplicates win).
    pub fn from_tokens(tokens: impl IntoIterator<Item = (TokenHash, EdgeToken)>) -> Self {
        let iter = tokens.into_iter();
        let mut base = Map::with_capacity_and_hasher(iter.size_hint().0, KeyPrefixHash);
        base.extend(iter);
        Self {
            live: base.len(),
            base: Arc::new(base),
            overlay: Arc::default(),
        }
    }

    /// The live token with this hash.
    #[inline]
    pub fn get(&self, hash: &TokenHash) -> Option<&EdgeToken> {
        if !self.overlay.is_empty()
            && let Some(change) = self.overlay.get(hash)
        {
            return change.as_ref();
        }
        self.base.get(hash)
    }

    /// Live tokens.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// A new table with these changes (`None`: remove); `self` is unchanged. Copies the
    /// overlay, or merges everything into a new base once the overlay is large.
    pub fn with_changes(
        &self,
        changes: impl IntoIterator<Item = (TokenHash, Option<EdgeToken>)>,
    ) -> Self {
        let mut overlay: Map<Option<EdgeToken>> = (*self.overlay).clone();
        let mut live = self.live;
        for (hash, token) in changes {
            let was = self.get_in(&overlay, &hash).is_some();
            live = live + usize::from(token.is_some()) - usize::from(was);
            overlay.insert(hash, token);
        }
        if overlay.len() > (self.base.len() / 8).max(1024) {
            let mut base: Map<EdgeToken> = (*self.base).clone();
            for (hash, token) in overlay {
                match token {
                    Some(t) => base.insert(hash, t),
                    None => base.remove(&hash),
                };
            }
            debug_assert_eq!(base.len(), live);
            return Self {
                base: Arc::new(base),
                overlay: Arc::default(),
                live,
            };
        }
        Self {
            base: self.base.clone(),
            overlay: Arc::new(overlay),
            live,
        }
    }

    fn get_in<'a>(
        &'a self,
        overlay: &'a Map<Option<EdgeToken>>,
        hash: &TokenHash,
    ) -> Option<&'a EdgeToken> {
        match overlay.get(hash) {
            Some(change) => change.as_ref(),
            None => self.base.get(hash),
        }
    }

    /// Every live token (order unspecified).
    pub fn iter(&self) -> impl Iterator<Item = (&TokenHash, &EdgeToken)> {
        let overlay = &self.overlay;
        self.base
            .iter()
            .filter(move |(h, _)| !overlay.contains_key(*h))
            .chain(
                overlay
                    .iter()
                    .filter_map(|(h, t)| t.as_ref().map(|t| (h, t))),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, team: &str, scopes: &[&str]) -> TokenRecord {
        TokenRecord {
            v: 1,
            id: id.into(),
            team: team.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            exp: None,
            rpm: 0,
        }
    }

    #[test]
    fn hex_round_trip() {
        let h = TokenHash::of("kg_example");
        assert_eq!(h.hex(), keygate_contracts::token::sha256_hex("kg_example"));
        assert_eq!(TokenHash::from_hex(&h.hex()), Some(h));
        assert_eq!(TokenHash::from_hex(&h.hex().to_uppercase()), Some(h));
        assert_eq!(TokenHash::from_hex("abc"), None);
        assert_eq!(TokenHash::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn interner_shares_teams_and_scope_sets() {
        let mut i = Interner::default();
        let a = i.token(&rec("a", "t1", &["*"]));
        let b = i.token(&rec("b", "t1", &["*"]));
        let c = i.token(&rec("c", "t2", &["pay", "tag:billing", "Not A Scope"]));
        assert!(Arc::ptr_eq(&a.team, &b.team) && Arc::ptr_eq(&a.scopes, &b.scopes));
        assert_eq!(i.len(), (2, 2));
        assert_eq!(
            *c.scopes,
            ScopeSet {
                all: false,
                routes: vec!["pay".into()],
                tags: vec!["billing".into()],
            }
        );
        assert_eq!(
            c,
            EdgeToken::from_record(&rec("c", "t2", &["pay", "tag:billing", "Not A Scope"]))
        );
    }

    /// The overlay and the merge give the same answers as a plain map with the same changes.
    #[test]
    fn changes_agree_with_a_plain_map() {
        let mut i = Interner::default();
        let h = |n: u32| TokenHash::of(&format!("key-{n}"));
        let tok = |n: u32, i: &mut Interner| i.token(&rec(&format!("tok{n}"), "t", &["*"]));
        let mut reference: HashMap<TokenHash, EdgeToken> = HashMap::new();
        let mut table = TokenTable::from_tokens((0..3000).map(|n| (h(n), tok(n, &mut i))));
        for n in 0..3000 {
            reference.insert(h(n), tok(n, &mut i));
        }
        // Enough rounds to cross the merge threshold several times.
        let mut seed = 7u32;
        for round in 0..40 {
            let mut changes = Vec::new();
            for _ in 0..200 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let n = (seed >> 8) % 4000;
                let t = (!seed.is_multiple_of(3)).then(|| tok(n + round, &mut i));
                changes.push((h(n), t));
            }
            for (k, v) in &changes {
                match v {
                    Some(t) => reference.insert(*k, t.clone()),
                    None => reference.remove(k),
                };
            }
            let before = table.clone();
            table = table.with_changes(changes);
            assert_eq!(table.len(), reference.len(), "round {round}");
            assert_eq!(table.iter().count(), reference.len());
            for n in 0..4000 {
                assert_eq!(
                    table.get(&h(n)),
                    reference.get(&h(n)),
                    "round {round} key {n}"
                );
            }
            // The old snapshot still answers as before (readers keep their view).
            let _ = before.get(&h(0));
        }
        assert!(
            table.overlay.len() <= (table.base.len() / 8).max(1024),
            "merged along the way"
        );
    }
}
