//! Sessions in SQL.

use super::log::{Entry, Op, append};
use super::rows::{SESSION_COLUMNS, SessionRow};
use super::users::load as load_user;
use super::{SqlStore, db_err};
use crate::context::RequestContext;
use crate::ids::{SessionId, UserId};
use crate::sessions::{NewSession, Session};
use crate::store::{SessionStore, StoreError, StoreResult};
use crate::time::now_ms;
use crate::users::User;
use serde_json::json;
use sqlx::AssertSqlSafe;

#[async_trait::async_trait]
impl SessionStore for SqlStore {
    async fn create_session(&self, ctx: &RequestContext, s: NewSession) -> StoreResult<Session> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sessions (id, user_id, token_hash, created_at, expires_at, source_ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(s.id.as_str())
        .bind(s.user_id.as_str())
        .bind(&s.token_hash)
        .bind(now)
        .bind(s.expires_at)
        .bind(&ctx.source_ip)
        .bind(&ctx.user_agent)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("UPDATE users SET last_sign_in_at = $1 WHERE id = $2")
            .bind(now)
            .bind(s.user_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let row: SessionRow = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.id = $1"
        )))
        .bind(s.id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        append(
            &mut tx,
            ctx,
            vec![Entry {
                action: "auth.sign_in",
                entity_type: "session",
                entity_id: s.id.0.clone(),
                team_id: String::new(),
                diff: json!({"user_id": [null, s.user_id], "expires_at": [null, s.expires_at]}),
                op: Op::Upsert,
                payload: json!({}),
            }],
        )
        .await?;
        self.commit(tx).await?;
        Ok(row.into())
    }

    async fn find_session(&self, token_hash: &str) -> StoreResult<Option<(Session, User)>> {
        let row: Option<SessionRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.token_hash = $1"
        )))
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let session = Session::from(row);
        let user = load_user(&self.read, &session.user_id).await?;
        Ok(user.map(|u| (session, u)))
    }

    async fn list_sessions(&self, user: &UserId) -> StoreResult<Vec<Session>> {
        let rows: Vec<SessionRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = $1 AND s.revoked_at IS NULL \
             AND s.expires_at > $2 ORDER BY s.created_at DESC"
        )))
        .bind(user.as_str())
        .bind(now_ms())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(Session::from).collect())
    }

    async fn revoke_session(
        &self,
        ctx: &RequestContext,
        user: &UserId,
        id: &SessionId,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let r = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id.as_str())
            .bind(user.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                entity: "session",
                id: id.0.clone(),
            });
        }
        append(
            &mut tx,
            ctx,
            vec![Entry {
                action: "auth.sign_out",
                entity_type: "session",
                entity_id: id.0.clone(),
                team_id: String::new(),
                diff: json!({"user_id": [user, user], "revoked": [false, true]}),
                op: Op::Delete,
                payload: json!({}),
            }],
        )
        .await?;
        self.commit(tx).await
    }

    async fn touch_session(&self, id: &SessionId) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id.as_str())
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
