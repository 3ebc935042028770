//! The audit hash chain: `hash = sha256_hex(prev_hash || "\n" || canonical_json(row))`, where
//! the canonical form is a JSON array of the row's fields in a fixed order. Editing, deleting
//! or reordering any row breaks every later link.

use super::model::AuditEvent;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Fields of a row that the hash covers (everything but `hash` itself).
pub struct Link<'a> {
    pub seq: i64,
    pub at: i64,
    pub actor_type: &'a str,
    pub actor_id: &'a str,
    pub actor_name: &'a str,
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub team_id: &'a str,
    pub diff: &'a str,
    pub source_ip: &'a str,
    pub user_agent: &'a str,
    pub request_id: &'a str,
}

impl Link<'_> {
    /// Hash of this row chained to `prev_hash`.
    pub fn hash(&self, prev_hash: &str) -> String {
        let canonical = serde_json::json!([
            self.seq,
            self.at,
            self.actor_type,
            self.actor_id,
            self.actor_name,
            self.action,
            self.entity_type,
            self.entity_id,
            self.team_id,
            self.diff,
            self.source_ip,
            self.user_agent,
            self.request_id,
        ]);
        let mut h = Sha256::new();
        h.update(prev_hash.as_bytes());
        h.update(b"\n");
        h.update(canonical.to_string().as_bytes());
        hex::encode(h.finalize())
    }
}

impl<'a> From<&'a AuditEvent> for Link<'a> {
    fn from(e: &'a AuditEvent) -> Self {
        Self {
            seq: e.seq,
            at: e.at,
            actor_type: &e.actor_type,
            actor_id: &e.actor_id,
            actor_name: &e.actor_name,
            action: &e.action,
            entity_type: &e.entity_type,
            entity_id: &e.entity_id,
            team_id: &e.team_id,
            diff: &e.diff,
            source_ip: &e.source_ip,
            user_agent: &e.user_agent,
            request_id: &e.request_id,
        }
    }
}

/// Incremental verifier: feed rows in `seq` order from 1.
pub struct Verifier {
    prev_hash: String,
    next_seq: i64,
    pub checked: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            prev_hash: GENESIS.to_owned(),
            next_seq: 1,
            checked: 0,
        }
    }
}

impl Verifier {
    /// Hash of the last row checked ([`GENESIS`] before any).
    pub fn last_hash(&self) -> &str {
        &self.prev_hash
    }

    /// Checks one row; on failure returns the reason.
    pub fn check(&mut self, e: &AuditEvent) -> Result<(), String> {
        if e.seq != self.next_seq {
            return Err(format!(
                "expected seq {}, found {} (a row is missing)",
                self.next_seq, e.seq
            ));
        }
        if e.prev_hash != self.prev_hash {
            return Err("prev_hash does not match the previous row's hash".into());
        }
        let want = Link::from(e).hash(&self.prev_hash);
        if want != e.hash {
            return Err("hash does not match the row's contents (the row was altered)".into());
        }
        self.prev_hash = want;
        self.next_seq += 1;
        self.checked += 1;
        Ok(())
    }
}
