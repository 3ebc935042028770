//! The audit log in SQL: filtered pages, batched export, chain verification.

use super::log::{Entry, Op, append};
use super::rows::{AUDIT_COLUMNS, AuditRow};
use super::{Db, SqlStore, db_err};
use crate::audit::chain::Verifier;
use crate::audit::{AuditEvent, AuditFilter, AuditPage, ChainReport};
use crate::context::RequestContext;
use crate::store::{AuditRecord, AuditStore, Page, StoreResult};
use futures::StreamExt;
use futures::stream::BoxStream;
use sqlx::{Pool, QueryBuilder};

/// Rows read per round trip when exporting or verifying.
const BATCH: i64 = 1000;

fn push_filter(qb: &mut QueryBuilder<Db>, f: &AuditFilter) {
    let mut eq = |col: &str, v: &Option<String>| {
        if let Some(v) = v {
            qb.push(format!(" AND {col} = "));
            qb.push_bind(v.clone());
        }
    };
    eq("actor_id", &f.actor_id);
    eq("action", &f.action);
    eq("entity_type", &f.entity_type);
    eq("entity_id", &f.entity_id);
    eq("team_id", &f.team_id);
    if let Some(s) = f.start {
        qb.push(" AND at >= ");
        qb.push_bind(s);
    }
    if let Some(e) = f.end {
        qb.push(" AND at < ");
        qb.push_bind(e);
    }
    if let Some(teams) = &f.visible_teams {
        super::push_in(qb, "team_id", teams.iter().cloned());
    }
}

/// Up to [`BATCH`] rows with `seq > after`, oldest first.
async fn batch_after(pool: &Pool<Db>, f: &AuditFilter, after: i64) -> StoreResult<Vec<AuditEvent>> {
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq > "
    ));
    qb.push_bind(after);
    push_filter(&mut qb, f);
    qb.push(" ORDER BY seq LIMIT ");
    qb.push_bind(BATCH);
    let rows: Vec<AuditRow> = qb.build_query_as().fetch_all(pool).await.map_err(db_err)?;
    Ok(rows.into_iter().map(AuditEvent::from).collect())
}

#[async_trait::async_trait]
impl AuditStore for SqlStore {
    async fn list_audit(&self, p: &AuditPage) -> StoreResult<(Page<AuditEvent>, u64)> {
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE 1 = 1"
        ));
        push_filter(&mut qb, &p.filter);
        if let Some(before) = p.before_seq {
            qb.push(" AND seq < ");
            qb.push_bind(before);
        }
        qb.push(" ORDER BY seq DESC LIMIT ");
        qb.push_bind(i64::from(p.limit) + 1);
        let rows: Vec<AuditRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let more = rows.len() > p.limit as usize;
        let items = rows
            .into_iter()
            .take(p.limit as usize)
            .map(AuditEvent::from)
            .collect();

        let mut count = QueryBuilder::<Db>::new("SELECT count(*) FROM audit_events WHERE 1 = 1");
        push_filter(&mut count, &p.filter);
        let (total,): (i64,) = count
            .build_query_as()
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        Ok((Page { items, more }, u64::try_from(total).unwrap_or(0)))
    }

    fn export_audit(&self, filter: AuditFilter) -> BoxStream<'static, StoreResult<AuditEvent>> {
        let pool = self.read.clone();
        futures::stream::unfold(Some(0i64), move |state| {
            let pool = pool.clone();
            let filter = filter.clone();
            async move {
                let after = state?;
                match batch_after(&pool, &filter, after).await {
                    Ok(rows) if rows.is_empty() => None,
                    Ok(rows) => {
                        let next = rows.last().map(|r| r.seq);
                        let full = rows.len() as i64 == BATCH;
                        let items: Vec<StoreResult<AuditEvent>> =
                            rows.into_iter().map(Ok).collect();
                        Some((futures::stream::iter(items), if full { next } else { None }))
                    }
                    Err(e) => Some((futures::stream::iter(vec![Err(e)]), None)),
                }
            }
        })
        .flatten()
        .boxed()
    }

    async fn verify_audit_chain(&self) -> StoreResult<ChainReport> {
        let mut v = Verifier::default();
        let all = AuditFilter::default();
        let mut after = 0;
        loop {
            let rows = batch_after(&self.read, &all, after).await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                if let Err(reason) = v.check(r) {
                    return Ok(ChainReport {
                        checked: v.checked,
                        first_bad: Some((r.seq, reason)),
                    });
                }
            }
            after = rows.last().map_or(after, |r| r.seq);
        }
        // The head records the newest hash: a truncated tail shows up here.
        let (head_seq, head_hash): (i64, String) =
            sqlx::query_as("SELECT audit_seq, audit_hash FROM log_head WHERE id = 1")
                .fetch_one(&self.read)
                .await
                .map_err(db_err)?;
        if head_seq != after || (head_seq > 0 && v.last_hash() != head_hash) {
            return Ok(ChainReport {
                checked: v.checked,
                first_bad: Some((
                    after + 1,
                    format!(
                        "log head is at seq {head_seq}, rows end at {after} (rows were removed)"
                    ),
                )),
            });
        }
        Ok(ChainReport {
            checked: v.checked,
            first_bad: None,
        })
    }

    async fn record_event(&self, ctx: &RequestContext, e: AuditRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        append(
            &mut tx,
            ctx,
            vec![Entry {
                action: e.action,
                entity_type: e.entity_type,
                entity_id: e.entity_id,
                team_id: e.team_id,
                diff: e.detail,
                op: Op::NoChange,
                payload: serde_json::Value::Null,
            }],
        )
        .await?;
        self.commit(tx).await
    }
}
