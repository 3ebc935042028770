//! Users and the first-start setup code in SQL.

use super::log::{Entry, Op, append};
use super::rows::{USER_COLUMNS, UserRow};
use super::{Db, SqlStore, Tx, db_err, like_pattern};
use crate::context::RequestContext;
use crate::ids::{SessionId, TeamId, UserId};
use crate::policy::Role;
use crate::store::{Page, StoreError, StoreResult, UserStore};
use crate::time::now_ms;
use crate::users::{NewUser, User, UserFilter, UserPatch};
use serde_json::json;
use sqlx::{AssertSqlSafe, QueryBuilder};

fn not_found(id: &UserId) -> StoreError {
    StoreError::NotFound {
        entity: "user",
        id: id.0.clone(),
    }
}

pub(super) async fn load<'e, E>(exec: E, id: &UserId) -> StoreResult<Option<User>>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let row: Option<UserRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
    )))
    .bind(id.as_str())
    .fetch_optional(exec)
    .await
    .map_err(db_err)?;
    Ok(row.map(User::from))
}

/// Inserts a user and its memberships (teams that no longer exist are skipped) and audits it.
pub(super) async fn insert_user(
    tx: &mut Tx,
    ctx: &RequestContext,
    u: &NewUser,
    roles: &[(TeamId, Role)],
    action: &'static str,
) -> StoreResult<User> {
    let taken: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE lower(email) = $1")
        .bind(u.email.to_lowercase())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    if taken.is_some() {
        return Err(StoreError::AlreadyExists(format!(
            "email: an account for \"{}\" already exists",
            u.email
        )));
    }
    let now = now_ms();
    sqlx::query(
        "INSERT INTO users (id, email, display_name, password_hash, is_system_admin, disabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6)",
    )
    .bind(u.id.as_str())
    .bind(&u.email)
    .bind(&u.display_name)
    .bind(&u.password_hash)
    .bind(u.system_admin)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    let mut entries = vec![Entry {
        action,
        entity_type: "user",
        entity_id: u.id.0.clone(),
        team_id: String::new(),
        diff: json!({"email": [null, u.email], "display_name": [null, u.display_name], "system_admin": [null, u.system_admin]}),
        op: Op::Upsert,
        payload: json!({}),
    }];
    for (team, role) in roles {
        let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM teams WHERE id = $1")
            .bind(team.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            continue;
        }
        sqlx::query("INSERT INTO team_members (team_id, user_id, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
            .bind(team.as_str())
            .bind(u.id.as_str())
            .bind(role.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        entries.push(Entry {
            action: "member.add",
            entity_type: "member",
            entity_id: u.id.0.clone(),
            team_id: team.0.clone(),
            diff: json!({"role": [null, role.as_str()]}),
            op: Op::Upsert,
            payload: json!({}),
        });
    }
    append(tx, ctx, entries).await?;
    load(&mut **tx, &u.id)
        .await?
        .ok_or_else(|| not_found(&u.id))
}

/// Ends every unrevoked session of `user` except `keep`. Returns how many.
pub(super) async fn end_sessions(
    tx: &mut Tx,
    user: &UserId,
    keep: Option<&SessionId>,
) -> StoreResult<u64> {
    let r = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND id <> $3")
        .bind(now_ms())
        .bind(user.as_str())
        .bind(keep.map(SessionId::as_str).unwrap_or(""))
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(r.rows_affected())
}

#[async_trait::async_trait]
impl UserStore for SqlStore {
    async fn count_users(&self) -> StoreResult<u64> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
            .fetch_one(&self.write)
            .await
            .map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_user(
        &self,
        ctx: &RequestContext,
        u: NewUser,
        roles: &[(TeamId, Role)],
    ) -> StoreResult<User> {
        let mut tx = self.begin().await?;
        let user = insert_user(&mut tx, ctx, &u, roles, "user.create").await?;
        self.commit(tx).await?;
        Ok(user)
    }

    async fn get_user(&self, id: &UserId) -> StoreResult<User> {
        load(&self.read, id).await?.ok_or_else(|| not_found(id))
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<(User, String)>> {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT id, password_hash FROM users WHERE lower(email) = $1")
                .bind(email.to_lowercase())
                .fetch_optional(&self.read)
                .await
                .map_err(db_err)?;
        let Some((id, hash)) = row else {
            return Ok(None);
        };
        let user = load(&self.read, &UserId(id)).await?;
        Ok(user.map(|u| (u, hash.unwrap_or_default())))
    }

    async fn password_hash(&self, id: &UserId) -> StoreResult<String> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.read)
                .await
                .map_err(db_err)?;
        row.map(|(h,)| h.unwrap_or_default())
            .ok_or_else(|| not_found(id))
    }

    async fn list_users(&self, f: &UserFilter) -> StoreResult<Page<User>> {
        let mut qb =
            QueryBuilder::<Db>::new(format!("SELECT {USER_COLUMNS} FROM users u WHERE 1 = 1"));
        if let Some(q) = &f.query {
            qb.push(" AND lower(u.email || ' ' || u.display_name) LIKE ");
            qb.push_bind(like_pattern(q));
            qb.push(" ESCAPE '\\'");
        }
        if let Some(team) = &f.team_id {
            qb.push(" AND u.id IN (SELECT user_id FROM team_members WHERE team_id = ");
            qb.push_bind(team.0.clone());
            qb.push(")");
        }
        if let Some(teams) = &f.visible_teams {
            if teams.is_empty() {
                qb.push(" AND 1 = 0");
            } else {
                qb.push(" AND u.id IN (SELECT user_id FROM team_members WHERE team_id IN (");
                let mut sep = qb.separated(", ");
                for t in teams {
                    sep.push_bind(t.0.clone());
                }
                qb.push("))");
            }
        }
        if let Some((email, id)) = &f.after {
            qb.push(" AND (u.email, u.id) > (");
            qb.push_bind(email.clone());
            qb.push(", ");
            qb.push_bind(id.0.clone());
            qb.push(")");
        }
        qb.push(" ORDER BY u.email, u.id LIMIT ");
        qb.push_bind(i64::from(f.limit) + 1);
        let rows: Vec<UserRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let more = rows.len() > f.limit as usize;
        Ok(Page {
            items: rows
                .into_iter()
                .take(f.limit as usize)
                .map(User::from)
                .collect(),
            more,
        })
    }

    async fn update_user(
        &self,
        ctx: &RequestContext,
        id: &UserId,
        p: UserPatch,
    ) -> StoreResult<User> {
        let mut tx = self.begin().await?;
        let before = load(&mut *tx, id).await?.ok_or_else(|| not_found(id))?;
        let name = p
            .display_name
            .unwrap_or_else(|| before.display_name.clone());
        let admin = p.system_admin.unwrap_or(before.system_admin);
        if name == before.display_name && admin == before.system_admin {
            return Ok(before);
        }
        if before.system_admin && !admin {
            let (others,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM users WHERE is_system_admin AND NOT disabled AND id <> $1",
            )
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if others == 0 {
                return Err(StoreError::Precondition(
                    "cannot remove the last active system admin".into(),
                ));
            }
        }
        sqlx::query("UPDATE users SET display_name = $1, is_system_admin = $2, updated_at = $3 WHERE id = $4")
            .bind(&name)
            .bind(admin)
            .bind(now_ms())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let after = load(&mut *tx, id).await?.ok_or_else(|| not_found(id))?;
        let mut diff = serde_json::Map::new();
        if name != before.display_name {
            diff.insert("display_name".into(), json!([before.display_name, name]));
        }
        if admin != before.system_admin {
            diff.insert("system_admin".into(), json!([before.system_admin, admin]));
        }
        append(
            &mut tx,
            ctx,
            vec![Entry {
                action: "user.update",
                entity_type: "user",
                entity_id: id.0.clone(),
                team_id: String::new(),
                diff: serde_json::Value::Object(diff),
                op: Op::Upsert,
                payload: json!({}),
            }],
        )
        .await?;
        self.commit(tx).await?;
        Ok(after)
    }

    async fn set_user_disabled(
        &self,
        ctx: &RequestContext,
        id: &UserId,
        disabled: bool,
    ) -> StoreResult<User> {
        let mut tx = self.begin().await?;
        let before = load(&mut *tx, id).await?.ok_or_else(|| not_found(id))?;
        if before.disabled == disabled {
            return Ok(before);
        }
        if disabled && before.system_admin {
            let (others,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM users WHERE is_system_admin AND NOT disabled AND id <> $1",
            )
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if others == 0 {
                return Err(StoreError::Precondition(
                    "cannot disable the last active system admin".into(),
                ));
            }
        }
        sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3")
            .bind(disabled)
            .bind(now_ms())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let ended = if disabled {
            end_sessions(&mut tx, id, None).await?
        } else {
            0
        };
        let after = load(&mut *tx, id).await?.ok_or_else(|| not_found(id))?;
        append(
            &mut tx,
            ctx,
            vec![Entry {
                action: if disabled {
                    "user.disable"
                } else {
                    "user.enable"
                },
                entity_type: "user",
                entity_id: id.0.clone(),
                team_id: String::new(),
                diff: json!({"disabled": [!disabled, disabled], "sessions_ended": [null, ended]}),
                op: Op::Upsert,
                payload: json!({}),
            }],
        )
        .await?;
        self.commit(tx).await?;
        Ok(after)
    }

    async fn set_password(
        &self,
        ctx: &RequestContext,
        id: &UserId,
        hash: String,
        keep: Option<&SessionId>,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let r = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(&hash)
            .bind(now_ms())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(not_found(id));
        }
        let ended = end_sessions(&mut tx, id, keep).await?;
        append(
            &mut tx,
            ctx,
            vec![Entry {
                action: "user.change_password",
                entity_type: "user",
                entity_id: id.0.clone(),
                team_id: String::new(),
                diff: json!({"password": [null, "changed"], "sessions_ended": [null, ended]}),
                op: Op::Upsert,
                payload: json!({}),
            }],
        )
        .await?;
        self.commit(tx).await
    }

    async fn set_setup_code(&self, code_hash: &str, expires_at: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO setup_code (id, code_hash, expires_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at",
        )
        .bind(code_hash)
        .bind(expires_at)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn complete_setup(
        &self,
        ctx: &RequestContext,
        code_hash: &str,
        u: NewUser,
    ) -> StoreResult<User> {
        let mut tx = self.begin().await?;
        let invalid = || StoreError::Precondition("invalid or expired setup code".into());
        let (users,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if users > 0 {
            return Err(StoreError::Precondition(
                "setup is already complete; sign in instead".into(),
            ));
        }
        // Consuming the code is the atomic step: a concurrent setup blocks on this row and
        // then finds it gone.
        let consumed = sqlx::query(
            "DELETE FROM setup_code WHERE id = 1 AND code_hash = $1 AND expires_at > $2",
        )
        .bind(code_hash)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if consumed.rows_affected() != 1 {
            return Err(invalid());
        }
        let user = insert_user(
            &mut tx,
            ctx,
            &NewUser {
                system_admin: true,
                ..u
            },
            &[],
            "user.setup",
        )
        .await?;
        self.commit(tx).await?;
        Ok(user)
    }
}
