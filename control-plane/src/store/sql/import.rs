//! `keygate import old-system` in SQL: the mapping table and the one-transaction apply. Every
//! entity goes through the same transaction-level functions as its RPC (`create_in`,
//! `update_in`, ...), so the rules, audit diffs and change events are the RPCs' own; only the
//! action names differ (`<entity>.import`).

use super::log::{Entry, Op, append};
use super::{Db, SqlStore, Tx, db_err};
use crate::context::RequestContext;
use crate::import::{Applied, ImportBatch, MapRow, Progress, RouteOp, TeamOp, TokenOp, UsageFeed};
use crate::store::{ImportStore, StoreError, StoreResult};
use crate::time::now_ms;
use serde_json::json;
use sqlx::QueryBuilder;

/// How often a long step reports progress, in entities.
const PROGRESS_EVERY: usize = 1000;

fn report(progress: Progress<'_>, what: &str, done: usize, total: usize) {
    if done.is_multiple_of(PROGRESS_EVERY) || done == total {
        progress(what, done, total);
    }
}

async fn write_map(tx: &mut Tx, b: &ImportBatch) -> StoreResult<()> {
    let now = now_ms();
    for m in &b.map {
        sqlx::query(
            "INSERT INTO import_map (source, kind, old_id, new_id, fingerprint, secret, run_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (source, kind, old_id) DO UPDATE SET new_id = excluded.new_id, \
             fingerprint = excluded.fingerprint, secret = excluded.secret, run_id = excluded.run_id, \
             updated_at = excluded.updated_at",
        )
        .bind(&b.source)
        .bind(&m.kind)
        .bind(&m.old_id)
        .bind(&m.new_id)
        .bind(&m.fingerprint)
        .bind(&m.secret)
        .bind(&b.run_id)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    for (kind, old_id) in &b.unmap {
        sqlx::query("DELETE FROM import_map WHERE source = $1 AND kind = $2 AND old_id = $3")
            .bind(&b.source)
            .bind(kind)
            .bind(old_id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    sqlx::query(
        "INSERT INTO import_runs (id, source, started_at, finished_at, summary) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&b.run_id)
    .bind(&b.source)
    .bind(b.started_at)
    .bind(now)
    .bind(b.summary.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Sets created tokens' `last_used_at` and `legacy_prefix`, `(id, last used, prefix)`, a few
/// hundred per statement (one UPDATE per token was a tenth of the tokens' time).
async fn set_imported_token_fields(
    tx: &mut Tx,
    rows: &[(&str, Option<i64>, &str)],
) -> StoreResult<()> {
    for chunk in rows.chunks(500) {
        let mut qb = QueryBuilder::<Db>::new(if super::IS_POSTGRES {
            "UPDATE tokens SET last_used_at = v.last_used_at, legacy_prefix = v.legacy_prefix FROM ("
        } else {
            "UPDATE tokens SET last_used_at = v.column2, legacy_prefix = v.column3 FROM ("
        });
        qb.push_values(chunk, |mut sep, (id, last_used, prefix)| {
            sep.push_bind(*id).push_bind(*last_used).push_bind(*prefix);
        });
        qb.push(if super::IS_POSTGRES {
            ") AS v (id, last_used_at, legacy_prefix) WHERE tokens.id = v.id"
        } else {
            ") AS v WHERE tokens.id = v.column1"
        });
        qb.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl ImportStore for SqlStore {
    async fn import_map(&self, source: &str) -> StoreResult<Vec<MapRow>> {
        let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT kind, old_id, new_id, fingerprint, secret FROM import_map WHERE source = $1 \
             ORDER BY kind, old_id",
        )
        .bind(source)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(kind, old_id, new_id, fingerprint, secret)| MapRow {
                kind,
                old_id,
                new_id,
                fingerprint,
                secret,
            })
            .collect())
    }

    async fn apply_import(
        &self,
        ctx: &RequestContext,
        b: &ImportBatch,
        mut usage: Option<&mut dyn UsageFeed>,
        progress: Progress<'_>,
    ) -> StoreResult<Applied> {
        let mut tx = self.begin().await?;
        if super::IS_POSTGRES && usage.is_some() {
            // The same lock usage ingestion takes: rollup rows are read, merged and written.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(super::rollups::USAGE_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        // The marker first, then the old system's audit rows, then what this run changed.
        let mut entries = vec![Entry {
            action: "import.run",
            entity_type: "import",
            entity_id: b.run_id.clone(),
            team_id: String::new(),
            diff: b.summary.clone(),
            op: Op::NoChange,
            payload: json!({}),
        }];
        for h in &b.history {
            entries.push(Entry {
                action: "history.import",
                entity_type: "history",
                entity_id: h.entity_id.clone(),
                team_id: String::new(),
                diff: h.diff.clone(),
                op: Op::NoChange,
                payload: json!({}),
            });
        }
        for (i, op) in b.teams.iter().enumerate() {
            match op {
                TeamOp::Create(t) => {
                    let (_, e) =
                        super::teams::create_in(&mut tx, ctx, t.clone(), None, "team.import")
                            .await?;
                    entries.extend(e);
                }
                TeamOp::Update(id, p) => {
                    let (_, e) =
                        super::teams::update_in(&mut tx, id, p.clone(), "team.import").await?;
                    entries.extend(e);
                }
            }
            report(progress, "teams", i + 1, b.teams.len());
        }
        let mut deletes = Vec::new();
        for (i, op) in b.routes.iter().enumerate() {
            match op {
                RouteOp::Create(r) => {
                    let (_, e) =
                        super::routes::create_in(&mut tx, ctx, r.clone(), "route.import").await?;
                    entries.push(e);
                }
                RouteOp::Update(id, p) => {
                    let (_, e) =
                        super::routes::update_in(&mut tx, id, p.clone(), "route.import").await?;
                    entries.extend(e);
                }
                // After the tokens: their scopes may still name the route until then.
                RouteOp::Delete(id) => deletes.push(id),
            }
            report(progress, "routes", i + 1, b.routes.len());
        }
        // What the RPC's insert does not set (last use, legacy prefix), set in bulk after.
        let mut imported: Vec<(&str, Option<i64>, &str)> = Vec::new();
        for (i, op) in b.tokens.iter().enumerate() {
            match op {
                TokenOp::Create {
                    record,
                    created_at,
                    last_used_at,
                    legacy_prefix,
                } => {
                    let (_, mut e) =
                        super::tokens::create_in(&mut tx, ctx, record, *created_at, "token.import")
                            .await?;
                    imported.push((record.id.as_str(), *last_used_at, legacy_prefix.as_str()));
                    if !legacy_prefix.is_empty() {
                        e.diff["legacy_prefix"] = json!([null, legacy_prefix]);
                    }
                    entries.push(e);
                }
                TokenOp::Update(id, p) => {
                    let (_, e) =
                        super::tokens::update_in(&mut tx, id, p.clone(), "token.import").await?;
                    entries.extend(e);
                }
                TokenOp::Revoke(id) => {
                    let (_, e) = super::tokens::revoke_in(
                        &mut tx,
                        id,
                        "deleted in the old system",
                        "token.import",
                    )
                    .await?;
                    entries.extend(e);
                }
            }
            report(progress, "tokens", i + 1, b.tokens.len());
        }
        set_imported_token_fields(&mut tx, &imported).await?;
        for id in deletes {
            let (_, e) = super::routes::delete_in(&mut tx, id, "route.import").await?;
            entries.push(e);
        }
        for inv in &b.invitations {
            let (_, e) =
                super::invitations::create_in(&mut tx, ctx, inv, "invitation.import").await?;
            entries.push(e);
        }
        if let Some(feed) = usage.as_deref_mut() {
            let gateway = format!("import:{}", b.source);
            let at = |f: &dyn UsageFeed| {
                let (done, total) = f.position();
                (
                    usize::try_from(done).unwrap_or(usize::MAX),
                    usize::try_from(total).unwrap_or(usize::MAX),
                )
            };
            let (_, total) = at(feed);
            progress("usage log rows", 0, total);
            while let Some(chunk) = feed
                .next_chunk()
                .await
                .map_err(|e| StoreError::Internal(format!("reading the usage to import: {e}")))?
            {
                super::rollups::write(&mut tx, &gateway, &chunk).await?;
                let (done, total) = at(feed);
                progress("usage log rows", done, total);
            }
        }
        write_map(&mut tx, b).await?;
        let audit_rows = entries.len() as u64;
        let change_events = entries.iter().filter(|e| e.op != Op::NoChange).count() as u64;
        progress("audit rows and change events", 0, entries.len());
        append(&mut tx, ctx, entries).await?;
        let (head_revision,): (i64,) = sqlx::query_as("SELECT revision FROM log_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        progress("commit", 0, 1);
        self.commit(tx).await?;
        if usage.is_some() {
            self.usage_stored();
        }
        Ok(Applied {
            audit_rows,
            change_events,
            head_revision,
        })
    }
}
