//! The append step every mutation ends with: audit rows (hash-chained) and change events,
//! numbered under the `log_head` row lock.

use super::{Tx, db_err};
use crate::audit::chain::Link;
use crate::context::RequestContext;
use crate::store::StoreResult;
use crate::time::now_ms;
use serde_json::Value;

/// What a change does to its edge record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Upsert,
    Delete,
    /// An audit-only event (a refused call, a failed sign-in): no change event is appended.
    NoChange,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Upsert => "upsert",
            Self::Delete => "delete",
            Self::NoChange => "none",
        }
    }
}

/// One audited change and its change event.
pub struct Entry {
    pub action: &'static str,
    pub entity_type: &'static str,
    pub entity_id: String,
    pub team_id: String,
    pub diff: Value,
    pub op: Op,
    pub payload: Value,
}

/// Appends `entries` in order. Must be the last statement group of the transaction: the
/// `log_head` row lock it takes is held until commit, which makes revision order equal commit
/// order, and taking it last keeps the lock short and deadlock-free.
pub async fn append(tx: &mut Tx, ctx: &RequestContext, entries: Vec<Entry>) -> StoreResult<()> {
    let (mut revision, mut seq, mut hash): (i64, i64, String) = sqlx::query_as(
        "UPDATE log_head SET id = id WHERE id = 1 RETURNING revision, audit_seq, audit_hash",
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    let at = now_ms();
    for e in entries {
        seq += 1;
        let diff = e.diff.to_string();
        let link = Link {
            seq,
            at,
            actor_type: ctx.actor.kind,
            actor_id: &ctx.actor.id,
            actor_name: &ctx.actor.name,
            action: e.action,
            entity_type: e.entity_type,
            entity_id: &e.entity_id,
            team_id: &e.team_id,
            diff: &diff,
            source_ip: &ctx.source_ip,
            user_agent: &ctx.user_agent,
            request_id: &ctx.request_id,
        };
        let next = link.hash(&hash);
        sqlx::query(
            "INSERT INTO audit_events (seq, at, actor_type, actor_id, actor_name, action, \
             entity_type, entity_id, team_id, diff, source_ip, user_agent, request_id, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(seq)
        .bind(at)
        .bind(ctx.actor.kind)
        .bind(&ctx.actor.id)
        .bind(&ctx.actor.name)
        .bind(e.action)
        .bind(e.entity_type)
        .bind(&e.entity_id)
        .bind(&e.team_id)
        .bind(&diff)
        .bind(&ctx.source_ip)
        .bind(&ctx.user_agent)
        .bind(&ctx.request_id)
        .bind(&hash)
        .bind(&next)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        if e.op == Op::NoChange {
            hash = next;
            continue;
        }
        revision += 1;
        sqlx::query(
            "INSERT INTO change_events (revision, at, entity_type, entity_id, op, payload, audit_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(revision)
        .bind(at)
        .bind(e.entity_type)
        .bind(&e.entity_id)
        .bind(e.op.as_str())
        .bind(e.payload.to_string())
        .bind(seq)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        hash = next;
    }
    if super::IS_POSTGRES {
        // Delivered to every listening replica when this transaction commits.
        sqlx::query("SELECT pg_notify('keygate_changes', '')")
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    sqlx::query("UPDATE log_head SET revision = $1, audit_seq = $2, audit_hash = $3 WHERE id = 1")
        .bind(revision)
        .bind(seq)
        .bind(&hash)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}
