//! The rollup key, owned and borrowed.
//!
//! [`RollupKeyRef`] and [`RollupKey`] hash identically (the owned key's `Hash` goes through
//! the borrowed one), which is what lets the [`Accumulator`](crate::Accumulator) look an owned
//! key up by a borrowed one without building a `String`.

use std::hash::{Hash, Hasher};

/// The rollup key: one rollup per (minute, token, team, route, status, error code).
/// Empty strings mean "none" (no token presented, no route matched, no error).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RollupKey {
    /// Start of the UTC minute, in milliseconds since the Unix epoch ([`crate::minute_of`]).
    pub minute: i64,
    pub token_id: String,
    pub team_id: String,
    pub route: String,
    /// HTTP status returned to the client.
    pub status: u16,
    /// Stable error code (`rate_limited`, ...), empty when the request succeeded.
    pub error: String,
}

/// The rollup key, borrowed: what the request path builds (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RollupKeyRef<'a> {
    pub minute: i64,
    pub token_id: &'a str,
    pub team_id: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub error: &'a str,
}

impl RollupKeyRef<'_> {
    /// The owned key (allocates the strings).
    // Not `ToOwned`: that would need `RollupKey: Borrow<RollupKeyRef>`, which cannot be
    // written (a borrow has to return a reference into `self`).
    #[allow(clippy::wrong_self_convention, clippy::should_implement_trait)]
    pub fn to_owned(&self) -> RollupKey {
        RollupKey {
            minute: self.minute,
            token_id: self.token_id.to_owned(),
            team_id: self.team_id.to_owned(),
            route: self.route.to_owned(),
            status: self.status,
            error: self.error.to_owned(),
        }
    }
}

impl RollupKey {
    /// The borrowed view of this key.
    // Not `AsRef`: that returns a reference, this returns a view by value.
    #[allow(clippy::should_implement_trait)]
    pub fn as_ref(&self) -> RollupKeyRef<'_> {
        RollupKeyRef {
            minute: self.minute,
            token_id: &self.token_id,
            team_id: &self.team_id,
            route: &self.route,
            status: self.status,
            error: &self.error,
        }
    }
}

/// Same hash as the borrowed key, by construction (required by [`hashbrown::Equivalent`]).
impl Hash for RollupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

impl hashbrown::Equivalent<RollupKey> for RollupKeyRef<'_> {
    fn equivalent(&self, key: &RollupKey) -> bool {
        *self == key.as_ref()
    }
}

impl From<&RollupKeyRef<'_>> for RollupKey {
    fn from(key: &RollupKeyRef<'_>) -> Self {
        key.to_owned()
    }
}

impl From<RollupKeyRef<'_>> for RollupKey {
    fn from(key: RollupKeyRef<'_>) -> Self {
        key.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashbrown::Equivalent;
    use std::hash::BuildHasher;

    fn keys() -> Vec<RollupKey> {
        let key = |minute, token: &str, team: &str, route: &str, status, error: &str| RollupKey {
            minute,
            token_id: token.into(),
            team_id: team.into(),
            route: route.into(),
            status,
            error: error.into(),
        };
        vec![
            key(0, "", "", "", 0, ""),
            key(60_000, "tok_1", "team_a", "/v1/users", 200, ""),
            key(-60_000, "tok_1", "team_a", "/v1/users", 429, "rate_limited"),
            key(i64::MAX, "ü", "", "/", u16::MAX, "x"),
            // Field boundaries must matter: "ab" + "" differs from "a" + "b".
            key(0, "ab", "", "", 200, ""),
            key(0, "a", "b", "", 200, ""),
            key(0, "", "ab", "", 200, ""),
        ]
    }

    #[test]
    fn owned_and_borrowed_round_trip() {
        for key in keys() {
            let borrowed = key.as_ref();
            assert_eq!(borrowed.to_owned(), key);
            assert_eq!(RollupKey::from(borrowed), key);
            assert_eq!(RollupKey::from(&borrowed), key);
            assert_eq!(borrowed.to_owned().as_ref(), borrowed);
        }
    }

    #[test]
    fn borrowed_and_owned_hash_alike_and_are_equivalent() {
        let hashers = (rustc_hash::FxBuildHasher, std::hash::RandomState::new());
        let all = keys();
        for key in &all {
            let borrowed = key.as_ref();
            assert_eq!(
                hashers.0.hash_one(key),
                hashers.0.hash_one(borrowed),
                "{key:?}"
            );
            assert_eq!(
                hashers.1.hash_one(key),
                hashers.1.hash_one(borrowed),
                "{key:?}"
            );
            for other in &all {
                assert_eq!(
                    borrowed.equivalent(other),
                    key == other,
                    "{key:?} vs {other:?}"
                );
            }
        }
    }

    #[test]
    fn keys_order_by_minute_first() {
        let mut sorted = keys();
        sorted.sort();
        let minutes: Vec<i64> = sorted.iter().map(|k| k.minute).collect();
        let mut expected = minutes.clone();
        expected.sort();
        assert_eq!(minutes, expected);
    }
}
