//! The store-facing contract lives in `keygate-kv`; re-exported here for this crate's users.

pub use keygate_kv::{KvBackend, KvError, KvStats};
