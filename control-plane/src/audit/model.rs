//! Audit domain types, filters and the before/after diff.

use crate::pagination;
use crate::time::{Millis, from_timestamp, to_timestamp};
use keygate_contracts::{FieldError, names};
use keygate_proto::v1 as pb;
use serde::Serialize;
use serde_json::{Map, Value};

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: Millis,
    pub actor_type: String,
    pub actor_id: String,
    pub actor_name: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub team_id: String,
    /// JSON object `{field: [before, after]}`.
    pub diff: String,
    pub source_ip: String,
    pub user_agent: String,
    pub request_id: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditEvent> for pb::AuditEvent {
    fn from(e: AuditEvent) -> Self {
        Self {
            seq: e.seq,
            time: Some(to_timestamp(e.at)),
            actor_type: e.actor_type,
            actor_id: e.actor_id,
            actor_name: e.actor_name,
            action: e.action,
            entity_type: e.entity_type,
            entity_id: e.entity_id,
            team_id: e.team_id,
            diff_json: e.diff,
            source_ip: e.source_ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// Filters for listing and exporting.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub team_id: Option<String>,
    pub start: Option<Millis>,
    pub end: Option<Millis>,
    /// Only rows of these teams (`None`: all rows). Set from the caller, not the request.
    pub visible_teams: Option<Vec<String>>,
}

impl TryFrom<Option<pb::AuditFilter>> for AuditFilter {
    type Error = FieldError;

    fn try_from(f: Option<pb::AuditFilter>) -> Result<Self, FieldError> {
        let f = f.unwrap_or_default();
        let opt = |field: &str, v: String| -> Result<Option<String>, FieldError> {
            names::validate_text(field, &v, 200, false, false)?;
            Ok((!v.is_empty()).then_some(v))
        };
        let start = f.start_time.as_ref().map(from_timestamp);
        let end = f.end_time.as_ref().map(from_timestamp);
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            {
                return Err(FieldError::new(
                    "filter.end_time",
                    "must not be before start_time",
                ));
            }
        }
        Ok(Self {
            actor_id: opt("filter.actor_id", f.actor_id)?,
            action: opt("filter.action", f.action)?,
            entity_type: opt("filter.entity_type", f.entity_type)?,
            entity_id: opt("filter.entity_id", f.entity_id)?,
            team_id: opt("filter.team_id", f.team_id)?,
            start,
            end,
            visible_teams: None,
        })
    }
}

/// A page request over the audit log (newest first).
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    pub filter: AuditFilter,
    pub limit: u32,
    /// List rows with `seq` below this.
    pub before_seq: Option<i64>,
}

pub const PAGE_KIND: &str = "audit";

impl TryFrom<pb::ListAuditEventsRequest> for AuditPage {
    type Error = FieldError;

    fn try_from(r: pb::ListAuditEventsRequest) -> Result<Self, FieldError> {
        Ok(Self {
            filter: AuditFilter::try_from(r.filter)?,
            limit: pagination::page_size(r.page_size)?,
            before_seq: pagination::decode(PAGE_KIND, &r.page_token, 1)?
                .map(|p| pagination::int_part(&p[0]))
                .transpose()?,
        })
    }
}

/// Result of verifying the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub checked: u64,
    /// First row whose `prev_hash` or `hash` does not match, with the reason.
    pub first_bad: Option<(i64, String)>,
}

/// `{field: [before, after]}` for every top-level field that differs. `before` is `None` for a
/// creation, `after` for a deletion. Callers pass snapshots that hold no secrets.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Value {
    let empty = Map::new();
    let b = before.and_then(Value::as_object).unwrap_or(&empty);
    let a = after.and_then(Value::as_object).unwrap_or(&empty);
    let mut out = Map::new();
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let bv = b.get(k).cloned().unwrap_or(Value::Null);
        let av = a.get(k).cloned().unwrap_or(Value::Null);
        if bv != av {
            out.insert(k.clone(), Value::Array(vec![bv, av]));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_lists_only_changes() {
        let b = json!({"name": "a", "scopes": ["x"], "same": 1});
        let a = json!({"name": "b", "scopes": ["x"], "same": 1, "new": true});
        assert_eq!(
            diff(Some(&b), Some(&a)),
            json!({"name": ["a", "b"], "new": [null, true]})
        );
        assert_eq!(diff(None, Some(&json!({"k": 1}))), json!({"k": [null, 1]}));
        assert_eq!(diff(Some(&json!({"k": 1})), None), json!({"k": [1, null]}));
    }
}
