//! Team membership in SQL. Every change first locks the team row, so "last ADMIN" and "team
//! has no members" checks hold under concurrent writers.

use super::log::{Entry, Op, append};
use super::rows::{MemberRow, parse_role};
use super::{SqlStore, Tx, db_err};
use crate::context::RequestContext;
use crate::ids::{TeamId, UserId};
use crate::policy::Role;
use crate::store::{MemberStore, StoreError, StoreResult};
use crate::teams::Member;
use crate::time::now_ms;
use serde_json::json;

const MEMBER_SELECT: &str = "SELECT m.user_id, u.email, u.display_name, m.role, m.created_at \
    FROM team_members m JOIN users u ON u.id = m.user_id";

/// Locks the team row for the rest of the transaction (NotFound if it does not exist).
async fn lock_team(tx: &mut Tx, team: &TeamId) -> StoreResult<()> {
    let r = sqlx::query("UPDATE teams SET updated_at = updated_at WHERE id = $1")
        .bind(team.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    if r.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            entity: "team",
            id: team.0.clone(),
        });
    }
    Ok(())
}

async fn member(tx: &mut Tx, team: &TeamId, user: &UserId) -> StoreResult<Option<Member>> {
    let row: Option<MemberRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MEMBER_SELECT} WHERE m.team_id = $1 AND m.user_id = $2"
    )))
    .bind(team.as_str())
    .bind(user.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    row.map(Member::try_from).transpose()
}

async fn admin_count(tx: &mut Tx, team: &TeamId) -> StoreResult<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM team_members WHERE team_id = $1 AND role = 'ADMIN'")
            .bind(team.as_str())
            .fetch_one(&mut **tx)
            .await
            .map_err(db_err)?;
    Ok(n)
}

fn not_member(team: &TeamId, user: &UserId) -> StoreError {
    StoreError::NotFound {
        entity: "member",
        id: format!("{user} in team {team}"),
    }
}

fn entry(
    action: &'static str,
    team: &TeamId,
    user: &UserId,
    diff: serde_json::Value,
    op: Op,
) -> Entry {
    Entry {
        action,
        entity_type: "member",
        entity_id: user.0.clone(),
        team_id: team.0.clone(),
        diff,
        op,
        payload: json!({}),
    }
}

pub(super) async fn insert_member(
    tx: &mut Tx,
    team: &TeamId,
    user: &UserId,
    role: Role,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO team_members (team_id, user_id, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
        .bind(team.as_str())
        .bind(user.as_str())
        .bind(role.as_str())
        .bind(now_ms())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[async_trait::async_trait]
impl MemberStore for SqlStore {
    async fn list_members(&self, team: &TeamId) -> StoreResult<Vec<Member>> {
        let rows: Vec<MemberRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{MEMBER_SELECT} WHERE m.team_id = $1 ORDER BY CASE m.role WHEN 'ADMIN' THEN 0 WHEN 'MANAGER' THEN 1 \
             WHEN 'DEVELOPER' THEN 2 ELSE 3 END, u.email"
        )))
        .bind(team.as_str())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(Member::try_from).collect()
    }

    async fn user_roles(&self, user: &UserId) -> StoreResult<Vec<(TeamId, Role)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT team_id, role FROM team_members WHERE user_id = $1 ORDER BY team_id",
        )
        .bind(user.as_str())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(t, r)| Ok((TeamId(t), parse_role(&r)?)))
            .collect()
    }

    async fn add_member(
        &self,
        ctx: &RequestContext,
        team: &TeamId,
        user: &UserId,
        role: Role,
    ) -> StoreResult<Member> {
        let mut tx = self.begin().await?;
        lock_team(&mut tx, team).await?;
        let exists: Option<(bool,)> = sqlx::query_as("SELECT disabled FROM users WHERE id = $1")
            .bind(user.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(StoreError::NotFound {
                entity: "user",
                id: user.0.clone(),
            });
        }
        if member(&mut tx, team, user).await?.is_some() {
            return Err(StoreError::AlreadyExists(format!(
                "user \"{user}\" is already a member of team \"{team}\"; change their role instead"
            )));
        }
        insert_member(&mut tx, team, user, role).await?;
        let m = member(&mut tx, team, user)
            .await?
            .ok_or_else(|| not_member(team, user))?;
        append(
            &mut tx,
            ctx,
            vec![entry(
                "member.add",
                team,
                user,
                json!({"role": [null, role.as_str()]}),
                Op::Upsert,
            )],
        )
        .await?;
        self.commit(tx).await?;
        Ok(m)
    }

    async fn update_member_role(
        &self,
        ctx: &RequestContext,
        team: &TeamId,
        user: &UserId,
        role: Role,
    ) -> StoreResult<Member> {
        let mut tx = self.begin().await?;
        lock_team(&mut tx, team).await?;
        let before = member(&mut tx, team, user)
            .await?
            .ok_or_else(|| not_member(team, user))?;
        if before.role == role {
            return Ok(before);
        }
        if before.role == Role::Admin && admin_count(&mut tx, team).await? <= 1 {
            return Err(StoreError::Precondition(format!(
                "\"{}\" is the last ADMIN of team \"{team}\"; make someone else ADMIN first",
                before.email
            )));
        }
        sqlx::query("UPDATE team_members SET role = $1, updated_at = $2 WHERE team_id = $3 AND user_id = $4")
            .bind(role.as_str())
            .bind(now_ms())
            .bind(team.as_str())
            .bind(user.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let after = member(&mut tx, team, user)
            .await?
            .ok_or_else(|| not_member(team, user))?;
        append(
            &mut tx,
            ctx,
            vec![entry(
                "member.update_role",
                team,
                user,
                json!({"role": [before.role.as_str(), role.as_str()]}),
                Op::Upsert,
            )],
        )
        .await?;
        self.commit(tx).await?;
        Ok(after)
    }

    async fn remove_member(
        &self,
        ctx: &RequestContext,
        team: &TeamId,
        user: &UserId,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock_team(&mut tx, team).await?;
        let before = member(&mut tx, team, user)
            .await?
            .ok_or_else(|| not_member(team, user))?;
        if before.role == Role::Admin && admin_count(&mut tx, team).await? <= 1 {
            return Err(StoreError::Precondition(format!(
                "\"{}\" is the last ADMIN of team \"{team}\"; make someone else ADMIN first",
                before.email
            )));
        }
        sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team.as_str())
            .bind(user.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        append(
            &mut tx,
            ctx,
            vec![entry(
                "member.remove",
                team,
                user,
                json!({"role": [before.role.as_str(), null]}),
                Op::Delete,
            )],
        )
        .await?;
        self.commit(tx).await
    }

    async fn claim_team(
        &self,
        ctx: &RequestContext,
        team: &TeamId,
        user: &UserId,
    ) -> StoreResult<Member> {
        let mut tx = self.begin().await?;
        lock_team(&mut tx, team).await?;
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM team_members WHERE team_id = $1")
            .bind(team.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if n > 0 {
            return Err(StoreError::Precondition(format!(
                "team \"{team}\" has members and cannot be claimed"
            )));
        }
        insert_member(&mut tx, team, user, Role::Admin).await?;
        let m = member(&mut tx, team, user)
            .await?
            .ok_or_else(|| not_member(team, user))?;
        append(
            &mut tx,
            ctx,
            vec![entry(
                "team.claim",
                team,
                user,
                json!({"role": [null, "ADMIN"]}),
                Op::Upsert,
            )],
        )
        .await?;
        self.commit(tx).await?;
        Ok(m)
    }
}
