//! Identifier newtypes. Ids are `<kind>_` + a UUIDv7 in hex: unique, time-ordered, opaque.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Prefix that every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new random, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// An API token's id (not its secret).
    TokenId,
    "tok"
);
id_type!(
    /// A route's id.
    RouteId,
    "rte"
);
id_type!(
    /// A management key's id.
    KeyId,
    "mk"
);

id_type!(
    /// A person's account.
    UserId,
    "usr"
);
id_type!(
    /// A signed-in session (not its bearer token).
    SessionId,
    "ses"
);
id_type!(
    /// A service account.
    ServiceAccountId,
    "sa"
);
id_type!(
    /// An invitation (not its code).
    InvitationId,
    "inv"
);
id_type!(
    /// An alert rule.
    AlertRuleId,
    "alr"
);
id_type!(
    /// One alert to deliver (a firing or a test), the same for each of its delivery tries.
    AlertId,
    "alt"
);
id_type!(
    /// One delivery try of an alert (sent as `Keygate-Delivery`).
    DeliveryId,
    "dlv"
);

/// A team's id is its slug, chosen by the creator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TeamId(pub String);

impl TeamId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TeamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
