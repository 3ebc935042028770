//! Invitations in SQL (codes only as hashes).

use super::log::{Entry, Op, append};
use super::rows::{INVITATION_COLUMNS, InvitationRow, roles_json};
use super::users::insert_user;
use super::{Db, SqlStore, Tx, db_err};
use crate::context::{Actor, RequestContext};
use crate::ids::{InvitationId, TeamId};
use crate::invitations::{Invitation, NewInvitation};
use crate::store::{InvitationStore, StoreError, StoreResult};
use crate::time::now_ms;
use crate::users::{NewUser, User};
use serde_json::json;
use sqlx::{AssertSqlSafe, QueryBuilder};

fn not_found(id: &InvitationId) -> StoreError {
    StoreError::NotFound {
        entity: "invitation",
        id: id.0.clone(),
    }
}

async fn load(tx: &mut Tx, id: &InvitationId) -> StoreResult<Invitation> {
    let row: Option<InvitationRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = $1"
    )))
    .bind(id.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    row.map(Invitation::try_from)
        .transpose()?
        .ok_or_else(|| not_found(id))
}

fn entry(action: &'static str, inv: &Invitation, diff: serde_json::Value, op: Op) -> Entry {
    Entry {
        action,
        entity_type: "invitation",
        entity_id: inv.id.0.clone(),
        // Indexed under its first team so that team's admins see it in their audit log.
        team_id: inv
            .roles
            .first()
            .map(|(t, _)| t.0.clone())
            .unwrap_or_default(),
        diff,
        op,
        payload: json!({}),
    }
}

/// Inserts an invitation (refused for an email that has an account; its teams must exist)
/// and returns it with the audit entry to append as `action`.
pub(super) async fn create_in(
    tx: &mut Tx,
    ctx: &RequestContext,
    i: &NewInvitation,
    action: &'static str,
) -> StoreResult<(Invitation, Entry)> {
    let taken: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE lower(email) = $1")
        .bind(i.email.to_lowercase())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    if taken.is_some() {
        return Err(StoreError::AlreadyExists(format!(
            "email: \"{}\" already has an account; add them as a member instead",
            i.email
        )));
    }
    for (team, _) in &i.roles {
        super::teams::require_team(tx, team).await?;
    }
    sqlx::query(
        "INSERT INTO invitations (id, email, code_hash, roles, created_at, expires_at, created_by, system_admin) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(i.id.as_str())
    .bind(&i.email)
    .bind(&i.code_hash)
    .bind(roles_json(&i.roles))
    .bind(now_ms())
    .bind(i.expires_at)
    .bind(ctx.actor.reference())
    .bind(i.system_admin)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    for (team, _) in &i.roles {
        sqlx::query("INSERT INTO invitation_teams (invitation_id, team_id) VALUES ($1, $2)")
            .bind(i.id.as_str())
            .bind(team.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    let inv = load(tx, &i.id).await?;
    let roles: Vec<String> = inv
        .roles
        .iter()
        .map(|(t, r)| format!("{t}:{}", r.as_str()))
        .collect();
    let mut diff = json!({"email": [null, inv.email], "roles": [null, roles], "expires_at": [null, inv.expires_at]});
    if inv.system_admin {
        diff["system_admin"] = json!([null, true]);
    }
    let e = entry(action, &inv, diff, Op::Upsert);
    Ok((inv, e))
}

#[async_trait::async_trait]
impl InvitationStore for SqlStore {
    async fn create_invitation(
        &self,
        ctx: &RequestContext,
        i: NewInvitation,
    ) -> StoreResult<Invitation> {
        let mut tx = self.begin().await?;
        let (inv, entry) = create_in(&mut tx, ctx, &i, "invitation.create").await?;
        append(&mut tx, ctx, vec![entry]).await?;
        self.commit(tx).await?;
        Ok(inv)
    }

    async fn get_invitation(&self, id: &InvitationId) -> StoreResult<Invitation> {
        let row: Option<InvitationRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.map(Invitation::try_from)
            .transpose()?
            .ok_or_else(|| not_found(id))
    }

    async fn list_invitations(&self, teams: Option<&[TeamId]>) -> StoreResult<Vec<Invitation>> {
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE accepted_at IS NULL AND revoked_at IS NULL AND expires_at > "
        ));
        qb.push_bind(now_ms());
        if let Some(teams) = teams {
            if teams.is_empty() {
                qb.push(" AND 1 = 0");
            } else {
                qb.push(
                    " AND id IN (SELECT invitation_id FROM invitation_teams WHERE team_id IN (",
                );
                let mut sep = qb.separated(", ");
                for t in teams {
                    sep.push_bind(t.0.clone());
                }
                qb.push("))");
            }
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT 1000");
        let rows: Vec<InvitationRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(Invitation::try_from).collect()
    }

    async fn revoke_invitation(
        &self,
        ctx: &RequestContext,
        id: &InvitationId,
    ) -> StoreResult<Invitation> {
        let mut tx = self.begin().await?;
        let before = load(&mut tx, id).await?;
        if before.revoked_at.is_some() {
            return Ok(before);
        }
        if before.accepted_at.is_some() {
            return Err(StoreError::Precondition(format!(
                "invitation \"{id}\" was already accepted"
            )));
        }
        let now = now_ms();
        sqlx::query("UPDATE invitations SET revoked_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let after = load(&mut tx, id).await?;
        append(
            &mut tx,
            ctx,
            vec![entry(
                "invitation.revoke",
                &after,
                json!({"revoked_at": [null, now]}),
                Op::Delete,
            )],
        )
        .await?;
        self.commit(tx).await?;
        Ok(after)
    }

    async fn accept_invitation(
        &self,
        ctx: &RequestContext,
        code_hash: &str,
        u: NewUser,
    ) -> StoreResult<User> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let invalid =
            || StoreError::Precondition("invalid, used, revoked or expired invitation code".into());
        let id: Option<(String,)> =
            sqlx::query_as("SELECT id FROM invitations WHERE code_hash = $1")
                .bind(code_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let Some((id,)) = id else {
            return Err(invalid());
        };
        let id = InvitationId(id);
        // Consume first: a concurrent accept blocks on this row and then finds it used.
        let consumed = sqlx::query(
            "UPDATE invitations SET accepted_at = $1, accepted_user_id = $2 \
             WHERE id = $3 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(u.id.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if consumed.rows_affected() != 1 {
            return Err(invalid());
        }
        let inv = load(&mut tx, &id).await?;
        // The call is anonymous (the code is the credential); what it does is done by the
        // person it creates, so both audit rows name the new user as actor.
        let ctx = &ctx.as_actor(Actor {
            kind: "user",
            id: u.id.0.clone(),
            name: inv.email.clone(),
        });
        let user = insert_user(
            &mut tx,
            ctx,
            &NewUser {
                email: inv.email.clone(),
                system_admin: inv.system_admin,
                ..u
            },
            &inv.roles,
            "user.accept_invitation",
        )
        .await?;
        append(
            &mut tx,
            ctx,
            vec![entry(
                "invitation.accept",
                &inv,
                json!({"accepted_user_id": [null, user.id]}),
                Op::Delete,
            )],
        )
        .await?;
        self.commit(tx).await?;
        Ok(user)
    }
}
