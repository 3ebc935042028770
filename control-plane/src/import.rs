//! `keygate import old-system`: moves an installation of the old system (its PostgreSQL
//! database, optionally its Cloudflare KV namespace and its identity provider's user export)
//! into Keygate without re-issuing a key. docs/migrating.md is the user's guide.
//!
//! Flow: [`old`] reads the old installation into plain structs (read-only, one snapshot);
//! [`plan`] maps them against this installation's mapping table into creates, updates and
//! deletes, with every problem found (naming the old row and the rule); [`run`] prints the
//! plan and, unless it is a dry run or a problem is left unresolved, hands the batch to the
//! store, which applies it in one transaction through the RPCs' own transaction functions.
//!
//! Must not: need or store an old key's plaintext (tokens keep their SHA-256), write secrets
//! anywhere but sealed, or write anything when a problem is unresolved.

mod model;
pub mod old;
pub mod plan;
pub mod run;

pub use model::*;
