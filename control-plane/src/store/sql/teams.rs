//! Teams in SQL.

use super::log::{Entry, Op, append};
use super::rows::TeamRow;
use super::{SqlStore, Tx, db_err, like_pattern, snapshot};
use crate::audit::diff;
use crate::context::RequestContext;
use crate::ids::{RouteId, TeamId, TokenId, UserId};
use crate::policy::Role;
use crate::service_accounts::ServiceAccount;
use crate::store::{Page, StoreError, StoreResult, TeamStore};
use crate::teams::{NewTeam, Team, TeamDeletion, TeamFilter, TeamPatch};
use crate::time::now_ms;
use serde_json::json;
use sqlx::QueryBuilder;

const TEAM_SELECT: &str = "SELECT t.id, t.name, t.description, t.color, t.icon, t.created_at, \
    t.updated_at, t.created_by, \
    (SELECT count(*) FROM team_members m WHERE m.team_id = t.id) AS member_count, \
    (SELECT count(*) FROM tokens k WHERE k.team_id = t.id AND k.revoked_at IS NULL \
        AND (k.expires_at IS NULL OR k.expires_at > ";
const TEAM_SELECT_TAIL: &str = ")) AS token_count, \
    (SELECT count(*) FROM routes r WHERE r.team_id = t.id) AS route_count FROM teams t";

async fn fetch_team<'e, E>(exec: E, id: &TeamId) -> StoreResult<Option<Team>>
where
    E: sqlx::Executor<'e, Database = super::Db>,
{
    let mut qb = QueryBuilder::<super::Db>::new(TEAM_SELECT);
    qb.push_bind(now_ms());
    qb.push(TEAM_SELECT_TAIL);
    qb.push(" WHERE t.id = ");
    qb.push_bind(id.as_str());
    let row: Option<TeamRow> = qb
        .build_query_as()
        .fetch_optional(exec)
        .await
        .map_err(db_err)?;
    Ok(row.map(Team::from))
}

fn not_found(id: &TeamId) -> StoreError {
    StoreError::NotFound {
        entity: "team",
        id: id.0.clone(),
    }
}

/// Fails with NotFound unless the team exists (inside a write transaction).
pub(super) async fn require_team(tx: &mut Tx, id: &TeamId) -> StoreResult<()> {
    let found: Option<(String,)> = sqlx::query_as("SELECT id FROM teams WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    found.map(|_| ()).ok_or_else(|| not_found(id))
}

/// "a, b, c and 4 more" for error messages.
fn name_list(items: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}

/// Inserts a team (`creator`, if any, becomes its ADMIN) and returns it with the audit
/// entries to append (the team's as `action`).
pub(super) async fn create_in(
    tx: &mut Tx,
    ctx: &RequestContext,
    t: NewTeam,
    creator: Option<&UserId>,
    action: &'static str,
) -> StoreResult<(Team, Vec<Entry>)> {
    if fetch_team(&mut **tx, &t.id).await?.is_some() {
        return Err(StoreError::AlreadyExists(format!(
            "team \"{}\" already exists",
            t.id
        )));
    }
    let now = now_ms();
    sqlx::query(
        "INSERT INTO teams (id, name, description, color, icon, created_at, updated_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
    )
    .bind(t.id.as_str())
    .bind(&t.name)
    .bind(&t.description)
    .bind(&t.color)
    .bind(&t.icon)
    .bind(now)
    .bind(ctx.actor.reference())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    if let Some(user) = creator {
        super::members::insert_member(tx, &t.id, user, Role::Admin).await?;
    }
    let team = fetch_team(&mut **tx, &t.id)
        .await?
        .ok_or_else(|| not_found(&t.id))?;
    let mut entries = vec![Entry {
        action,
        entity_type: "team",
        entity_id: t.id.0.clone(),
        team_id: t.id.0.clone(),
        diff: diff(None, Some(&snapshot(&team))),
        op: Op::Upsert,
        payload: json!({}),
    }];
    if let Some(user) = creator {
        entries.push(Entry {
            action: "member.add",
            entity_type: "member",
            entity_id: user.0.clone(),
            team_id: t.id.0.clone(),
            diff: json!({"role": [null, "ADMIN"], "reason": [null, "team creator"]}),
            op: Op::Upsert,
            payload: json!({}),
        });
    }
    Ok((team, entries))
}

/// Applies `p`; `None` for the entry when nothing changed (nothing written).
pub(super) async fn update_in(
    tx: &mut Tx,
    id: &TeamId,
    p: TeamPatch,
    action: &'static str,
) -> StoreResult<(Team, Option<Entry>)> {
    let before = fetch_team(&mut **tx, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let name = p.name.unwrap_or_else(|| before.name.clone());
    let description = p.description.unwrap_or_else(|| before.description.clone());
    let color = p.color.unwrap_or_else(|| before.color.clone());
    let icon = p.icon.unwrap_or_else(|| before.icon.clone());
    if (&name, &description, &color, &icon)
        == (
            &before.name,
            &before.description,
            &before.color,
            &before.icon,
        )
    {
        return Ok((before, None));
    }
    sqlx::query(
        "UPDATE teams SET name = $1, description = $2, color = $3, icon = $4, updated_at = $5 \
         WHERE id = $6",
    )
    .bind(&name)
    .bind(&description)
    .bind(&color)
    .bind(&icon)
    .bind(now_ms())
    .bind(id.as_str())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    let after = fetch_team(&mut **tx, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let mut d = diff(Some(&snapshot(&before)), Some(&snapshot(&after)));
    d.as_object_mut().map(|o| o.remove("updated_at"));
    let entry = Entry {
        action,
        entity_type: "team",
        entity_id: id.0.clone(),
        team_id: id.0.clone(),
        diff: d,
        op: Op::Upsert,
        payload: json!({}),
    };
    Ok((after, Some(entry)))
}

#[async_trait::async_trait]
impl TeamStore for SqlStore {
    async fn create_team(
        &self,
        ctx: &RequestContext,
        t: NewTeam,
        creator: Option<&UserId>,
    ) -> StoreResult<Team> {
        let mut tx = self.begin().await?;
        let (team, entries) = create_in(&mut tx, ctx, t, creator, "team.create").await?;
        append(&mut tx, ctx, entries).await?;
        self.commit(tx).await?;
        Ok(team)
    }

    async fn get_team(&self, id: &TeamId) -> StoreResult<Team> {
        fetch_team(&self.read, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    async fn list_teams(&self, f: &TeamFilter) -> StoreResult<Page<Team>> {
        let mut qb = QueryBuilder::<super::Db>::new(TEAM_SELECT);
        qb.push_bind(now_ms());
        qb.push(TEAM_SELECT_TAIL);
        qb.push(" WHERE 1 = 1");
        if let Some(q) = &f.query {
            qb.push(" AND lower(t.id || ' ' || t.name || ' ' || t.description) LIKE ");
            qb.push_bind(like_pattern(q));
            qb.push(" ESCAPE '\\'");
        }
        if let Some(after) = &f.after {
            qb.push(" AND t.id > ");
            qb.push_bind(after.as_str());
        }
        qb.push(" ORDER BY t.id LIMIT ");
        qb.push_bind(i64::from(f.limit) + 1);
        let rows: Vec<TeamRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let more = rows.len() > f.limit as usize;
        let items = rows
            .into_iter()
            .take(f.limit as usize)
            .map(Team::from)
            .collect();
        Ok(Page { items, more })
    }

    async fn update_team(
        &self,
        ctx: &RequestContext,
        id: &TeamId,
        p: TeamPatch,
    ) -> StoreResult<Team> {
        let mut tx = self.begin().await?;
        let (team, entry) = update_in(&mut tx, id, p, "team.update").await?;
        let Some(entry) = entry else {
            return Ok(team);
        };
        append(&mut tx, ctx, vec![entry]).await?;
        self.commit(tx).await?;
        Ok(team)
    }

    async fn delete_team(
        &self,
        ctx: &RequestContext,
        id: &TeamId,
        cascade: bool,
    ) -> StoreResult<TeamDeletion> {
        let mut tx = self.begin().await?;
        let team = fetch_team(&mut *tx, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let live: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT id, name, token_hash FROM tokens WHERE team_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
        )
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let routes: Vec<(String, String)> =
            sqlx::query_as("SELECT id, name FROM routes WHERE team_id = $1 ORDER BY name")
                .bind(id.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        let accounts: Vec<ServiceAccount> = {
            let rows: Vec<super::rows::ServiceAccountRow> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM service_accounts WHERE team_id = $1 ORDER BY name",
                    super::rows::SA_COLUMNS
                )))
                .bind(id.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
            rows.into_iter()
                .map(ServiceAccount::try_from)
                .collect::<Result<_, _>>()?
        };
        if !cascade && (!live.is_empty() || !routes.is_empty() || !accounts.is_empty()) {
            let mut parts = Vec::new();
            if !live.is_empty() {
                let names: Vec<String> =
                    live.iter().map(|(i, n, _)| format!("{n} ({i})")).collect();
                parts.push(format!(
                    "{} unrevoked token(s): {}",
                    live.len(),
                    name_list(&names)
                ));
            }
            if !routes.is_empty() {
                let names: Vec<String> = routes.iter().map(|(_, n)| n.clone()).collect();
                parts.push(format!("{} route(s): {}", routes.len(), name_list(&names)));
            }
            if !accounts.is_empty() {
                let names: Vec<String> = accounts.iter().map(|a| a.name.clone()).collect();
                parts.push(format!(
                    "{} service account(s): {}",
                    accounts.len(),
                    name_list(&names)
                ));
            }
            return Err(StoreError::Precondition(format!(
                "team \"{id}\" still owns {}; revoke and delete them first, or delete with cascade",
                parts.join(" and ")
            )));
        }
        let now = now_ms();
        let mut entries = Vec::new();
        for (tid, _, hash) in &live {
            entries.push(Entry {
                action: "token.revoke",
                entity_type: "token",
                entity_id: tid.clone(),
                team_id: id.0.clone(),
                diff: json!({"revoked_at": [null, now], "revoke_reason": [null, format!("team {id} deleted")]}),
                op: Op::Delete,
                payload: json!({"token_hash": hash}),
            });
        }
        for (rid, name) in &routes {
            entries.push(Entry {
                action: "route.delete",
                entity_type: "route",
                entity_id: rid.clone(),
                team_id: id.0.clone(),
                diff: json!({"name": [name, null], "reason": [null, format!("team {id} deleted")]}),
                op: Op::Delete,
                payload: json!({"name": name}),
            });
        }
        for sa in &accounts {
            entries.extend(
                super::service_accounts::remove(&mut tx, sa, &format!("team {id} deleted")).await?,
            );
        }
        // Secrets, tags and scopes go with their parents (ON DELETE CASCADE); the explicit
        // deletes keep that true even where foreign keys were disabled by an operator.
        for stmt in [
            "DELETE FROM route_secrets WHERE route_id IN (SELECT id FROM routes WHERE team_id = $1)",
            "DELETE FROM route_allowed_teams WHERE route_id IN (SELECT id FROM routes WHERE team_id = $1)",
            "DELETE FROM route_tags WHERE route_id IN (SELECT id FROM routes WHERE team_id = $1)",
            "DELETE FROM routes WHERE team_id = $1",
            "DELETE FROM token_scopes WHERE token_id IN (SELECT id FROM tokens WHERE team_id = $1)",
            "DELETE FROM tokens WHERE team_id = $1",
            "DELETE FROM team_members WHERE team_id = $1",
            "DELETE FROM route_allowed_teams WHERE team_id = $1",
            "DELETE FROM invitation_teams WHERE team_id = $1",
            "DELETE FROM teams WHERE id = $1",
        ] {
            sqlx::query(stmt)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        entries.push(Entry {
            action: "team.delete",
            entity_type: "team",
            entity_id: id.0.clone(),
            team_id: id.0.clone(),
            diff: {
                let mut d = diff(Some(&snapshot(&team)), None);
                if cascade {
                    d["cascade"] = json!([null, true]);
                }
                d
            },
            op: Op::Delete,
            payload: json!({}),
        });
        append(&mut tx, ctx, entries).await?;
        self.commit(tx).await?;
        Ok(TeamDeletion {
            revoked_token_ids: live.into_iter().map(|(i, _, _)| TokenId(i)).collect(),
            deleted_route_ids: routes.into_iter().map(|(i, _)| RouteId(i)).collect(),
        })
    }
}
