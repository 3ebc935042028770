//! Routes and their sealed secrets in SQL.

use super::log::{Entry, Op, append};
use super::rows::{ROUTE_COLUMNS, RouteRow};
use super::teams::require_team;
use super::{SqlStore, Tx, db_err, json_list, like_pattern, snapshot};
use crate::audit::diff;
use crate::context::RequestContext;
use crate::ids::{RouteId, TeamId};
use crate::routes::{AuthChange, AuthKind, NewRoute, Route, RouteFilter, RoutePatch, secret_field};
use crate::store::{Page, RouteStore, StoreError, StoreResult};
use crate::time::now_ms;
use keygate_contracts::FieldError;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, QueryBuilder};

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        entity: "route",
        id: id.to_owned(),
    }
}

async fn fetch<'e, E>(exec: E, id_or_name: &str) -> StoreResult<Option<Route>>
where
    E: sqlx::Executor<'e, Database = super::Db>,
{
    let col = if id_or_name.starts_with("rte_") {
        "id"
    } else {
        "name"
    };
    let row: Option<RouteRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ROUTE_COLUMNS} FROM routes r WHERE r.{col} = $1"
    )))
    .bind(id_or_name)
    .fetch_optional(exec)
    .await
    .map_err(db_err)?;
    row.map(Route::try_from).transpose()
}

/// Reads the allowed-team lists of `routes` (one query for the page).
async fn fill_allowed<'e, E>(exec: E, routes: &mut [Route], restricted: &[bool]) -> StoreResult<()>
where
    E: sqlx::Executor<'e, Database = super::Db>,
{
    let ids: Vec<&str> = routes
        .iter()
        .zip(restricted)
        .filter(|(_, r)| **r)
        .map(|(route, _)| route.id.as_str())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut qb = QueryBuilder::<super::Db>::new(
        "SELECT route_id, team_id FROM route_allowed_teams WHERE route_id IN (",
    );
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id);
    }
    qb.push(") ORDER BY team_id");
    let pairs: Vec<(String, String)> = qb.build_query_as().fetch_all(exec).await.map_err(db_err)?;
    for (rid, team) in pairs {
        if let Some(r) = routes.iter_mut().find(|r| r.id.0 == rid) {
            r.allowed_team_ids.push(TeamId(team));
        }
    }
    Ok(())
}

/// A route with its allowed teams, inside a transaction.
async fn load(tx: &mut Tx, id_or_name: &str) -> StoreResult<Option<Route>> {
    let Some(mut route) = fetch(&mut **tx, id_or_name).await? else {
        return Ok(None);
    };
    let routes = std::slice::from_mut(&mut route);
    fill_allowed(&mut **tx, routes, &[true]).await?;
    Ok(Some(route))
}

async fn write_allowed(tx: &mut Tx, id: &RouteId, teams: &[TeamId]) -> StoreResult<()> {
    sqlx::query("DELETE FROM route_allowed_teams WHERE route_id = $1")
        .bind(id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    for t in teams {
        require_team(tx, t).await.map_err(|_| {
            StoreError::Invalid(FieldError::new(
                "allowed_team_ids",
                format!("no team \"{t}\""),
            ))
        })?;
        sqlx::query("INSERT INTO route_allowed_teams (route_id, team_id) VALUES ($1, $2)")
            .bind(id.as_str())
            .bind(t.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Name and path prefix must be unique; say which route holds them.
async fn check_unique(
    tx: &mut Tx,
    name: &str,
    path: &str,
    except: Option<&RouteId>,
) -> StoreResult<()> {
    let except = except.map(RouteId::as_str).unwrap_or("");
    let by_name: Option<(String,)> =
        sqlx::query_as("SELECT id FROM routes WHERE name = $1 AND id <> $2")
            .bind(name)
            .bind(except)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
    if by_name.is_some() {
        return Err(StoreError::AlreadyExists(format!(
            "name: a route named \"{name}\" already exists"
        )));
    }
    let by_path: Option<(String,)> =
        sqlx::query_as("SELECT name FROM routes WHERE path_prefix = $1 AND id <> $2")
            .bind(path)
            .bind(except)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
    if let Some((other,)) = by_path {
        return Err(StoreError::AlreadyExists(format!(
            "path_prefix: \"{path}\" is already used by route \"{other}\""
        )));
    }
    Ok(())
}

async fn write_tags(tx: &mut Tx, id: &RouteId, tags: &[String]) -> StoreResult<()> {
    sqlx::query("DELETE FROM route_tags WHERE route_id = $1")
        .bind(id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    for t in tags {
        sqlx::query("INSERT INTO route_tags (route_id, tag) VALUES ($1, $2)")
            .bind(id.as_str())
            .bind(t)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Applies a credential change: stores the new sealed secret, or keeps the stored one when
/// the kind is unchanged, and removes secrets of other slots. Returns whether a new secret
/// value was written.
async fn apply_auth(
    tx: &mut Tx,
    id: &RouteId,
    current: Option<AuthKind>,
    ch: &AuthChange,
) -> StoreResult<bool> {
    let keep_slot = ch.kind.secret_slot();
    match (&ch.secret, keep_slot) {
        (Some(s), _) => {
            sqlx::query(
                "INSERT INTO route_secrets (route_id, slot, sealed, key_id, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (route_id, slot) DO UPDATE SET sealed = excluded.sealed, key_id = excluded.key_id, \
                 updated_at = excluded.updated_at",
            )
            .bind(id.as_str())
            .bind(s.slot)
            .bind(&s.sealed)
            .bind(&s.key_id)
            .bind(now_ms())
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        }
        (None, Some(slot)) => {
            let stored: Option<(String,)> =
                sqlx::query_as("SELECT slot FROM route_secrets WHERE route_id = $1 AND slot = $2")
                    .bind(id.as_str())
                    .bind(slot)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(db_err)?;
            if current != Some(ch.kind) || stored.is_none() {
                return Err(StoreError::Invalid(FieldError::new(
                    secret_field(ch.kind),
                    "is required when the backend auth type changes (leave empty only to keep a stored value)",
                )));
            }
        }
        (None, None) => {}
    }
    sqlx::query("DELETE FROM route_secrets WHERE route_id = $1 AND slot <> $2")
        .bind(id.as_str())
        .bind(keep_slot.unwrap_or(""))
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(ch.secret.is_some())
}

/// Inserts a route (its team, unique name and path checked in the transaction) and returns
/// it with the audit entry to append as `action`.
pub(super) async fn create_in(
    tx: &mut Tx,
    ctx: &RequestContext,
    r: NewRoute,
    action: &'static str,
) -> StoreResult<(Route, Entry)> {
    require_team(tx, &r.team_id).await?;
    check_unique(tx, &r.name, &r.path_prefix, None).await?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO routes (id, team_id, name, path_prefix, backend_url, description, tags, methods, \
         strip_prefix, timeout_ms, auth_type, auth_header_name, auth_username, created_at, updated_at, created_by, \
         cors_origins, rate_limit_per_minute) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16, $17)",
    )
    .bind(r.id.as_str())
    .bind(r.team_id.as_str())
    .bind(&r.name)
    .bind(&r.path_prefix)
    .bind(&r.backend_url)
    .bind(&r.description)
    .bind(json_list(&r.tags))
    .bind(json_list(&r.methods))
    .bind(r.strip_prefix)
    .bind(i64::from(r.timeout_ms))
    .bind(r.auth.kind.as_str())
    .bind(&r.auth.header_name)
    .bind(&r.auth.username)
    .bind(now)
    .bind(ctx.actor.reference())
    .bind(json_list(&r.cors_origins))
    .bind(i64::from(r.rate_limit_per_minute))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    write_tags(tx, &r.id, &r.tags).await?;
    write_allowed(tx, &r.id, &r.allowed_team_ids).await?;
    let secret_changed = apply_auth(tx, &r.id, Some(r.auth.kind), &r.auth).await?;
    let route = load(tx, r.id.as_str())
        .await?
        .ok_or_else(|| not_found(r.id.as_str()))?;
    let entry = Entry {
        action,
        entity_type: "route",
        entity_id: r.id.0.clone(),
        team_id: r.team_id.0.clone(),
        diff: route_diff(None, Some(&route), secret_changed),
        op: Op::Upsert,
        payload: json!({"name": route.name}),
    };
    Ok((route, entry))
}

/// Applies `p`; `None` for the entry when nothing changed (the caller rolls back: the
/// statement did run and bumped `updated_at`).
pub(super) async fn update_in(
    tx: &mut Tx,
    id: &RouteId,
    p: RoutePatch,
    action: &'static str,
) -> StoreResult<(Route, Option<Entry>)> {
    let before = load(tx, id.as_str())
        .await?
        .ok_or_else(|| not_found(id.as_str()))?;
    let name = p.name.unwrap_or_else(|| before.name.clone());
    let path = p.path_prefix.unwrap_or_else(|| before.path_prefix.clone());
    if name != before.name || path != before.path_prefix {
        check_unique(tx, &name, &path, Some(id)).await?;
    }
    let tags = p.tags.unwrap_or_else(|| before.tags.clone());
    let methods = p.methods.unwrap_or_else(|| before.methods.clone());
    let (kind, header, user) = match &p.auth {
        Some(a) => (a.kind, a.header_name.clone(), a.username.clone()),
        None => (
            before.backend_auth.kind,
            before.backend_auth.header_name.clone(),
            before.backend_auth.username.clone(),
        ),
    };
    sqlx::query(
        "UPDATE routes SET name = $1, path_prefix = $2, backend_url = $3, description = $4, tags = $5, \
         methods = $6, strip_prefix = $7, timeout_ms = $8, auth_type = $9, auth_header_name = $10, \
         auth_username = $11, updated_at = $12, cors_origins = $14, rate_limit_per_minute = $15 \
         WHERE id = $13",
    )
    .bind(&name)
    .bind(&path)
    .bind(p.backend_url.as_ref().unwrap_or(&before.backend_url))
    .bind(p.description.as_ref().unwrap_or(&before.description))
    .bind(json_list(&tags))
    .bind(json_list(&methods))
    .bind(p.strip_prefix.unwrap_or(before.strip_prefix))
    .bind(i64::from(p.timeout_ms.unwrap_or(before.timeout_ms)))
    .bind(kind.as_str())
    .bind(&header)
    .bind(&user)
    .bind(now_ms())
    .bind(id.as_str())
    .bind(json_list(
        p.cors_origins.as_ref().unwrap_or(&before.cors_origins),
    ))
    .bind(i64::from(
        p.rate_limit_per_minute
            .unwrap_or(before.rate_limit_per_minute),
    ))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    if tags != before.tags {
        write_tags(tx, id, &tags).await?;
    }
    if let Some(allowed) = &p.allowed_team_ids
        && *allowed != before.allowed_team_ids
    {
        write_allowed(tx, id, allowed).await?;
    }
    let secret_changed = match &p.auth {
        Some(a) => apply_auth(tx, id, Some(before.backend_auth.kind), a).await?,
        None => false,
    };
    let after = load(tx, id.as_str())
        .await?
        .ok_or_else(|| not_found(id.as_str()))?;
    let mut unchanged = before.clone();
    unchanged.updated_at = after.updated_at;
    if unchanged == after && !secret_changed {
        return Ok((before, None));
    }
    let entry = Entry {
        action,
        entity_type: "route",
        entity_id: id.0.clone(),
        team_id: after.team_id.0.clone(),
        diff: route_diff(Some(&before), Some(&after), secret_changed),
        op: Op::Upsert,
        payload: json!({"name": after.name}),
    };
    Ok((after, Some(entry)))
}

/// Deletes a route and its secrets; returns it as it was with the audit entry.
pub(super) async fn delete_in(
    tx: &mut Tx,
    id: &RouteId,
    action: &'static str,
) -> StoreResult<(Route, Entry)> {
    let before = load(tx, id.as_str())
        .await?
        .ok_or_else(|| not_found(id.as_str()))?;
    for stmt in [
        "DELETE FROM route_allowed_teams WHERE route_id = $1",
        "DELETE FROM route_secrets WHERE route_id = $1",
        "DELETE FROM route_tags WHERE route_id = $1",
        "DELETE FROM routes WHERE id = $1",
    ] {
        sqlx::query(stmt)
            .bind(id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    let entry = Entry {
        action,
        entity_type: "route",
        entity_id: id.0.clone(),
        team_id: before.team_id.0.clone(),
        diff: route_diff(Some(&before), None, false),
        op: Op::Delete,
        payload: json!({"name": before.name}),
    };
    Ok((before, entry))
}

fn route_diff(before: Option<&Route>, after: Option<&Route>, secret_changed: bool) -> Value {
    let mut d = diff(before.map(snapshot).as_ref(), after.map(snapshot).as_ref());
    if let Some(o) = d.as_object_mut() {
        if before.is_some() && after.is_some() {
            o.remove("updated_at");
        }
        if secret_changed {
            // Record that the secret changed, never its value.
            o.insert("backend_auth_secret".into(), json!([null, "changed"]));
        }
    }
    d
}

/// `<select> FROM routes r WHERE <f's filters>` (no page position, order or limit).
fn from_filtered(f: &RouteFilter, select: &str) -> QueryBuilder<super::Db> {
    let mut qb = QueryBuilder::<super::Db>::new(format!("{select} FROM routes r WHERE 1 = 1"));
    if let Some(team) = &f.team_id {
        qb.push(" AND r.team_id = ");
        qb.push_bind(team.0.clone());
    }
    if let Some(tag) = &f.tag {
        qb.push(" AND r.id IN (SELECT route_id FROM route_tags WHERE tag = ");
        qb.push_bind(tag.clone());
        qb.push(")");
    }
    if let Some(q) = &f.query {
        qb.push(" AND lower(r.name || ' ' || r.path_prefix || ' ' || r.backend_url || ' ' || r.description) LIKE ");
        qb.push_bind(like_pattern(q));
        qb.push(" ESCAPE '\\'");
    }
    qb
}

#[async_trait::async_trait]
impl RouteStore for SqlStore {
    async fn create_route(&self, ctx: &RequestContext, r: NewRoute) -> StoreResult<Route> {
        let mut tx = self.begin().await?;
        let (route, entry) = create_in(&mut tx, ctx, r, "route.create").await?;
        append(&mut tx, ctx, vec![entry]).await?;
        self.commit(tx).await?;
        Ok(route)
    }

    async fn get_route(&self, id_or_name: &str) -> StoreResult<Route> {
        let mut route = fetch(&self.read, id_or_name)
            .await?
            .ok_or_else(|| not_found(id_or_name))?;
        fill_allowed(&self.read, std::slice::from_mut(&mut route), &[true]).await?;
        Ok(route)
    }

    async fn list_routes(&self, f: &RouteFilter) -> StoreResult<Page<Route>> {
        let mut qb = from_filtered(f, &format!("SELECT {ROUTE_COLUMNS}"));
        let col = f.sort.column();
        let (cmp, dir) = if f.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some((v, id)) = &f.after {
            qb.push(format!(" AND (r.{col}, r.id) {cmp} ("));
            if f.sort.is_numeric() {
                qb.push_bind(v.parse::<i64>().unwrap_or_default());
            } else {
                qb.push_bind(v.clone());
            }
            qb.push(", ");
            qb.push_bind(id.as_str());
            qb.push(")");
        }
        qb.push(format!(" ORDER BY r.{col} {dir}, r.id {dir} LIMIT "));
        qb.push_bind(i64::from(f.limit) + 1);
        let rows: Vec<RouteRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let more = rows.len() > f.limit as usize;
        let rows: Vec<RouteRow> = rows.into_iter().take(f.limit as usize).collect();
        let restricted: Vec<bool> = rows.iter().map(RouteRow::restricted).collect();
        let mut items: Vec<Route> = rows
            .into_iter()
            .map(Route::try_from)
            .collect::<Result<_, _>>()?;
        fill_allowed(&self.read, &mut items, &restricted).await?;
        Ok(Page { items, more })
    }

    async fn count_routes(&self, f: &RouteFilter) -> StoreResult<u64> {
        let mut qb = from_filtered(f, "SELECT count(*)");
        let (n,): (i64,) = qb
            .build_query_as()
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn update_route(
        &self,
        ctx: &RequestContext,
        id: &RouteId,
        p: RoutePatch,
    ) -> StoreResult<Route> {
        let mut tx = self.begin().await?;
        let (route, entry) = update_in(&mut tx, id, p, "route.update").await?;
        let Some(entry) = entry else {
            // Nothing changed: leave no trace.
            tx.rollback().await.map_err(db_err)?;
            return Ok(route);
        };
        append(&mut tx, ctx, vec![entry]).await?;
        self.commit(tx).await?;
        Ok(route)
    }

    async fn delete_route(&self, ctx: &RequestContext, id: &RouteId) -> StoreResult<Route> {
        let mut tx = self.begin().await?;
        let (before, entry) = delete_in(&mut tx, id, "route.delete").await?;
        append(&mut tx, ctx, vec![entry]).await?;
        self.commit(tx).await?;
        Ok(before)
    }

    async fn list_route_tags(&self) -> StoreResult<Vec<(String, u32)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT tag, count(*) FROM route_tags GROUP BY tag ORDER BY tag")
                .fetch_all(&self.read)
                .await
                .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(t, n)| (t, u32::try_from(n).unwrap_or(u32::MAX)))
            .collect())
    }

    async fn route_secrets(&self, id: &RouteId) -> StoreResult<Vec<(String, String)>> {
        sqlx::query_as("SELECT slot, sealed FROM route_secrets WHERE route_id = $1 ORDER BY slot")
            .bind(id.as_str())
            .fetch_all(&self.read)
            .await
            .map_err(db_err)
    }
}
