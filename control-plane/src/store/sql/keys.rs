//! Management keys in SQL (hashes only).

use super::log::{Entry, Op, append};
use super::rows::{KEY_COLUMNS, KeyRow};
use super::{SqlStore, Tx, db_err};
use crate::context::RequestContext;
use crate::ids::{KeyId, ServiceAccountId};
use crate::store::{KeyStore, ManagementKey, NewManagementKey, StoreError, StoreResult};
use crate::time::now_ms;
use serde_json::json;
use sqlx::AssertSqlSafe;

fn not_found(id: &KeyId) -> StoreError {
    StoreError::NotFound {
        entity: "management key",
        id: id.0.clone(),
    }
}

async fn load(tx: &mut Tx, id: &KeyId) -> StoreResult<ManagementKey> {
    let row: Option<KeyRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM management_keys WHERE id = $1"
    )))
    .bind(id.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    row.map(ManagementKey::from).ok_or_else(|| not_found(id))
}

/// Team of the key's service account, for audit rows.
async fn team_of(tx: &mut Tx, sa: Option<&ServiceAccountId>) -> StoreResult<String> {
    let Some(sa) = sa else {
        return Ok(String::new());
    };
    let row: Option<(String,)> =
        sqlx::query_as("SELECT team_id FROM service_accounts WHERE id = $1")
            .bind(sa.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
    Ok(row.map(|r| r.0).unwrap_or_default())
}

pub(super) async fn insert_key(
    tx: &mut Tx,
    ctx: &RequestContext,
    k: &NewManagementKey,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO management_keys (id, service_account_id, name, key_hash, preview, is_bootstrap, created_at, \
         expires_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(k.id.as_str())
    .bind(k.service_account_id.as_ref().map(ServiceAccountId::as_str))
    .bind(&k.name)
    .bind(&k.key_hash)
    .bind(&k.preview)
    .bind(k.is_bootstrap)
    .bind(now_ms())
    .bind(k.expires_at)
    .bind(ctx.actor.reference())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn key_entry(
    action: &'static str,
    key: &ManagementKey,
    team: String,
    diff: serde_json::Value,
) -> Entry {
    Entry {
        action,
        entity_type: "management_key",
        entity_id: key.id.0.clone(),
        team_id: team,
        diff,
        op: if key.revoked_at.is_some() {
            Op::Delete
        } else {
            Op::Upsert
        },
        payload: json!({"service_account_id": key.service_account_id}),
    }
}

#[async_trait::async_trait]
impl KeyStore for SqlStore {
    async fn create_management_key(
        &self,
        ctx: &RequestContext,
        k: NewManagementKey,
    ) -> StoreResult<ManagementKey> {
        let mut tx = self.begin().await?;
        insert_key(&mut tx, ctx, &k).await?;
        let key = load(&mut tx, &k.id).await?;
        let team = team_of(&mut tx, k.service_account_id.as_ref()).await?;
        let diff = json!({"name": [null, k.name], "preview": [null, k.preview],
            "service_account_id": [null, k.service_account_id], "expires_at": [null, k.expires_at]});
        append(
            &mut tx,
            ctx,
            vec![key_entry("management_key.create", &key, team, diff)],
        )
        .await?;
        self.commit(tx).await?;
        Ok(key)
    }

    async fn find_management_key(&self, key_hash: &str) -> StoreResult<Option<ManagementKey>> {
        let row: Option<KeyRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM management_keys WHERE key_hash = $1"
        )))
        .bind(key_hash)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        Ok(row.map(ManagementKey::from))
    }

    async fn get_management_key(&self, id: &KeyId) -> StoreResult<ManagementKey> {
        let row: Option<KeyRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM management_keys WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.map(ManagementKey::from).ok_or_else(|| not_found(id))
    }

    async fn list_management_keys(
        &self,
        account: &ServiceAccountId,
    ) -> StoreResult<Vec<ManagementKey>> {
        let rows: Vec<KeyRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM management_keys WHERE service_account_id = $1 ORDER BY created_at DESC, id DESC"
        )))
        .bind(account.as_str())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(ManagementKey::from).collect())
    }

    async fn revoke_management_key(
        &self,
        ctx: &RequestContext,
        id: &KeyId,
    ) -> StoreResult<ManagementKey> {
        let mut tx = self.begin().await?;
        let before = load(&mut tx, id).await?;
        if before.revoked_at.is_some() {
            return Ok(before);
        }
        let now = now_ms();
        sqlx::query("UPDATE management_keys SET revoked_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let after = load(&mut tx, id).await?;
        let team = team_of(&mut tx, after.service_account_id.as_ref()).await?;
        append(
            &mut tx,
            ctx,
            vec![key_entry(
                "management_key.revoke",
                &after,
                team,
                json!({"revoked_at": [null, now]}),
            )],
        )
        .await?;
        self.commit(tx).await?;
        Ok(after)
    }

    async fn rotate_management_key(
        &self,
        ctx: &RequestContext,
        id: &KeyId,
        new: NewManagementKey,
        grace_until: i64,
    ) -> StoreResult<(ManagementKey, ManagementKey)> {
        let mut tx = self.begin().await?;
        let old = load(&mut tx, id).await?;
        let now = now_ms();
        if old.revoked_at.is_some() || old.expires_at.is_some_and(|e| e <= now) {
            return Err(StoreError::Precondition(format!(
                "management key \"{id}\" is revoked or expired"
            )));
        }
        if let Some(next) = &old.replaced_by_id {
            return Err(StoreError::Precondition(format!(
                "management key \"{id}\" was already rotated to \"{next}\""
            )));
        }
        let new = NewManagementKey {
            service_account_id: old.service_account_id.clone(),
            expires_at: old.expires_at,
            ..new
        };
        insert_key(&mut tx, ctx, &new).await?;
        let revoke_now = grace_until <= now;
        let cut = old.expires_at.map_or(grace_until, |e| e.min(grace_until));
        sqlx::query("UPDATE management_keys SET replaced_by_id = $1, expires_at = $2, revoked_at = $3 WHERE id = $4")
            .bind(new.id.as_str())
            .bind(if revoke_now { old.expires_at } else { Some(cut) })
            .bind(revoke_now.then_some(now))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let created = load(&mut tx, &new.id).await?;
        let previous = load(&mut tx, id).await?;
        let team = team_of(&mut tx, old.service_account_id.as_ref()).await?;
        append(
            &mut tx,
            ctx,
            vec![
                key_entry("management_key.rotate", &created, team.clone(), json!({"rotated_from": [null, id], "preview": [null, created.preview]})),
                key_entry(
                    if revoke_now { "management_key.revoke" } else { "management_key.update" },
                    &previous,
                    team,
                    json!({"expires_at": [old.expires_at, previous.expires_at], "replaced_by_id": [null, new.id]}),
                ),
            ],
        )
        .await?;
        self.commit(tx).await?;
        Ok((created, previous))
    }

    async fn touch_management_key(&self, id: &KeyId) -> StoreResult<()> {
        let now = now_ms();
        sqlx::query("UPDATE management_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
            .bind(now)
            .bind(id.as_str())
            .bind(now - 60_000)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn count_management_keys(&self) -> StoreResult<u64> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM management_keys")
            .fetch_one(&self.write)
            .await
            .map_err(db_err)?;
        u64::try_from(n).map_err(|_| StoreError::Internal("negative count".into()))
    }
}
