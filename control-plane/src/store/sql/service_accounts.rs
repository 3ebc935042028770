//! Service accounts in SQL.

use super::log::{Entry, Op, append};
use super::rows::{SA_COLUMNS, ServiceAccountRow};
use super::{Db, SqlStore, Tx, db_err};
use crate::context::RequestContext;
use crate::ids::{ServiceAccountId, TeamId};
use crate::service_accounts::{NewServiceAccount, ServiceAccount};
use crate::store::{ServiceAccountStore, StoreError, StoreResult};
use crate::time::now_ms;
use serde_json::json;
use sqlx::{AssertSqlSafe, QueryBuilder};

fn not_found(id: &ServiceAccountId) -> StoreError {
    StoreError::NotFound {
        entity: "service account",
        id: id.0.clone(),
    }
}

async fn load<'e, E>(exec: E, id: &ServiceAccountId) -> StoreResult<Option<ServiceAccount>>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let row: Option<ServiceAccountRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SA_COLUMNS} FROM service_accounts WHERE id = $1"
    )))
    .bind(id.as_str())
    .fetch_optional(exec)
    .await
    .map_err(db_err)?;
    row.map(ServiceAccount::try_from).transpose()
}

/// Revokes the account's keys and deletes it; returns the audit entries to append.
pub(super) async fn remove(
    tx: &mut Tx,
    sa: &ServiceAccount,
    reason: &str,
) -> StoreResult<Vec<Entry>> {
    let now = now_ms();
    let keys: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM management_keys WHERE service_account_id = $1 AND revoked_at IS NULL",
    )
    .bind(sa.id.as_str())
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query("UPDATE management_keys SET revoked_at = $1 WHERE service_account_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(sa.id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    // Keys stay as revoked history; detach them so the account row can go.
    sqlx::query(
        "UPDATE management_keys SET service_account_id = NULL WHERE service_account_id = $1",
    )
    .bind(sa.id.as_str())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query("DELETE FROM service_accounts WHERE id = $1")
        .bind(sa.id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    let mut entries: Vec<Entry> = keys
        .into_iter()
        .map(|(k,)| Entry {
            action: "management_key.revoke",
            entity_type: "management_key",
            entity_id: k,
            team_id: sa.team_id.0.clone(),
            diff: json!({"revoked_at": [null, now], "reason": [null, reason]}),
            op: Op::Delete,
            payload: json!({"service_account_id": sa.id}),
        })
        .collect();
    entries.push(Entry {
        action: "service_account.delete",
        entity_type: "service_account",
        entity_id: sa.id.0.clone(),
        team_id: sa.team_id.0.clone(),
        diff: json!({"name": [sa.name, null], "role": [sa.role.as_str(), null], "reason": [null, reason]}),
        op: Op::Delete,
        payload: json!({}),
    });
    Ok(entries)
}

#[async_trait::async_trait]
impl ServiceAccountStore for SqlStore {
    async fn create_service_account(
        &self,
        ctx: &RequestContext,
        s: NewServiceAccount,
    ) -> StoreResult<ServiceAccount> {
        let mut tx = self.begin().await?;
        super::teams::require_team(&mut tx, &s.team_id).await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO service_accounts (id, team_id, name, description, role, capability, created_at, updated_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $8, $6, $6, $7)",
        )
        .bind(s.id.as_str())
        .bind(s.team_id.as_str())
        .bind(&s.name)
        .bind(&s.description)
        .bind(s.role.as_str())
        .bind(now)
        .bind(ctx.actor.reference())
        .bind(s.capability.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let sa = load(&mut *tx, &s.id)
            .await?
            .ok_or_else(|| not_found(&s.id))?;
        append(
            &mut tx,
            ctx,
            vec![Entry {
                action: "service_account.create",
                entity_type: "service_account",
                entity_id: s.id.0.clone(),
                team_id: s.team_id.0.clone(),
                diff: json!({"name": [null, s.name], "role": [null, s.role.as_str()], "capability": [null, s.capability.as_str()]}),
                op: Op::Upsert,
                payload: json!({}),
            }],
        )
        .await?;
        self.commit(tx).await?;
        Ok(sa)
    }

    async fn get_service_account(&self, id: &ServiceAccountId) -> StoreResult<ServiceAccount> {
        load(&self.read, id).await?.ok_or_else(|| not_found(id))
    }

    async fn list_service_accounts(
        &self,
        teams: Option<&[TeamId]>,
    ) -> StoreResult<Vec<ServiceAccount>> {
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT {SA_COLUMNS} FROM service_accounts WHERE 1 = 1"
        ));
        if let Some(teams) = teams {
            super::push_in(&mut qb, "team_id", teams.iter().map(|t| t.0.clone()));
        }
        qb.push(" ORDER BY team_id, name, id LIMIT 1000");
        let rows: Vec<ServiceAccountRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(ServiceAccount::try_from).collect()
    }

    async fn delete_service_account(
        &self,
        ctx: &RequestContext,
        id: &ServiceAccountId,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let sa = load(&mut *tx, id).await?.ok_or_else(|| not_found(id))?;
        let entries = remove(&mut tx, &sa, "service account deleted").await?;
        append(&mut tx, ctx, entries).await?;
        self.commit(tx).await
    }
}
