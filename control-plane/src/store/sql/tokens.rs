//! Tokens in SQL.

use super::log::{Entry, Op, append};
use super::rows::{TOKEN_COLUMNS, TOKEN_COLUMNS_T, TokenRow};
use super::teams::require_team;
use super::{SqlStore, Tx, db_err, like_pattern, snapshot};
use crate::audit::diff;
use crate::context::RequestContext;
use crate::ids::{TeamId, TokenId};
use crate::store::{Page, RotatedToken, StoreError, StoreResult, TokenStore};
use crate::time::now_ms;
use crate::tokens::{
    NEVER_EXPIRES_KEY, NEVER_USED_KEY, NewTokenRecord, SortKey, Token, TokenFilter, TokenPatch,
    TokenSort, TokenStatus,
};
use keygate_contracts::FieldError;
use keygate_contracts::scope::Scope;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, QueryBuilder};

fn not_found(id: &TokenId) -> StoreError {
    StoreError::NotFound {
        entity: "token",
        id: id.0.clone(),
    }
}

async fn fetch<'e, E>(exec: E, id: &TokenId) -> StoreResult<Option<Token>>
where
    E: sqlx::Executor<'e, Database = super::Db>,
{
    let row: Option<TokenRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"
    )))
    .bind(id.as_str())
    .fetch_optional(exec)
    .await
    .map_err(db_err)?;
    row.map(Token::try_from).transpose()
}

async fn hash_of(tx: &mut Tx, id: &TokenId) -> StoreResult<String> {
    let (h,): (String,) = sqlx::query_as("SELECT token_hash FROM tokens WHERE id = $1")
        .bind(id.as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(h)
}

/// Every route named by a scope must exist and allow tokens of `team` (checked in the
/// writing transaction).
async fn check_route_scopes(tx: &mut Tx, team: &TeamId, scopes: &[Scope]) -> StoreResult<()> {
    for s in scopes {
        if let Scope::Route(name) = s {
            let found: Option<(String,)> = sqlx::query_as("SELECT id FROM routes WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **tx)
                .await
                .map_err(db_err)?;
            let Some((route_id,)) = found else {
                return Err(StoreError::Invalid(FieldError::new(
                    "scopes",
                    format!("no route named \"{name}\" (use a route name, \"tag:<tag>\" or \"*\")"),
                )));
            };
            let allowed: Vec<(String,)> =
                sqlx::query_as("SELECT team_id FROM route_allowed_teams WHERE route_id = $1")
                    .bind(&route_id)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(db_err)?;
            if !allowed.is_empty() && !allowed.iter().any(|(t,)| t == team.as_str()) {
                return Err(StoreError::Invalid(FieldError::new(
                    "scopes",
                    format!("route \"{name}\" does not allow tokens of team \"{team}\""),
                )));
            }
        }
    }
    Ok(())
}

/// Writes the scope index rows of a token. They carry the token's `created_at`, so listing
/// by scope walks `token_scopes_scope_created` in list order (bench/README.md, finding 2).
async fn write_scopes(
    tx: &mut Tx,
    id: &TokenId,
    scopes: &[String],
    created_at: i64,
    fresh: bool,
) -> StoreResult<()> {
    if !fresh {
        sqlx::query("DELETE FROM token_scopes WHERE token_id = $1")
            .bind(id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    for s in scopes {
        sqlx::query("INSERT INTO token_scopes (token_id, scope, created_at) VALUES ($1, $2, $3)")
            .bind(id.as_str())
            .bind(s)
            .bind(created_at)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

async fn insert(
    tx: &mut Tx,
    ctx: &RequestContext,
    t: &NewTokenRecord,
    scopes: &[String],
    rotated_from: Option<&TokenId>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tokens (id, team_id, name, description, scopes, token_hash, preview, \
         created_at, updated_at, expires_at, created_by, rotated_from_id, rate_limit_per_minute) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12)",
    )
    .bind(t.id.as_str())
    .bind(t.team_id.as_str())
    .bind(&t.name)
    .bind(&t.description)
    .bind(super::json_list(scopes))
    .bind(&t.token_hash)
    .bind(&t.preview)
    .bind(now)
    .bind(t.expires_at)
    .bind(ctx.actor.reference())
    .bind(rotated_from.map(TokenId::as_str))
    .bind(i64::from(t.rate_limit_per_minute))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    write_scopes(tx, &t.id, scopes, now, true).await
}

/// Inserts a token created at `created_at` (its team and the routes its scopes name are
/// checked in the transaction) and returns it with the audit entry to append as `action`.
pub(super) async fn create_in(
    tx: &mut Tx,
    ctx: &RequestContext,
    t: &NewTokenRecord,
    created_at: i64,
    action: &'static str,
) -> StoreResult<(Token, Entry)> {
    require_team(tx, &t.team_id).await?;
    check_route_scopes(tx, &t.team_id, &t.scopes).await?;
    let scopes: Vec<String> = t.scopes.iter().map(Scope::to_string).collect();
    insert(tx, ctx, t, &scopes, None, created_at).await?;
    let token = fetch(&mut **tx, &t.id)
        .await?
        .ok_or_else(|| not_found(&t.id))?;
    let entry = Entry {
        action,
        entity_type: "token",
        entity_id: t.id.0.clone(),
        team_id: t.team_id.0.clone(),
        diff: token_diff(None, Some(&token)),
        op: Op::Upsert,
        payload: json!({"token_hash": t.token_hash}),
    };
    Ok((token, entry))
}

/// Applies `p` to a live token; `None` for the entry when nothing changed (nothing written).
pub(super) async fn update_in(
    tx: &mut Tx,
    id: &TokenId,
    p: TokenPatch,
    action: &'static str,
) -> StoreResult<(Token, Option<Entry>)> {
    let before = fetch(&mut **tx, id).await?.ok_or_else(|| not_found(id))?;
    if before.revoked_at.is_some() {
        return Err(StoreError::Precondition(format!(
            "token \"{id}\" is revoked and cannot be changed"
        )));
    }
    if let Some(scopes) = &p.scopes {
        check_route_scopes(tx, &before.team_id, scopes).await?;
    }
    let name = p.name.unwrap_or_else(|| before.name.clone());
    let description = p.description.unwrap_or_else(|| before.description.clone());
    let scopes: Vec<String> = match &p.scopes {
        Some(s) => s.iter().map(Scope::to_string).collect(),
        None => before.scopes.clone(),
    };
    let expires_at = p.expires_at.unwrap_or(before.expires_at);
    let rpm = p
        .rate_limit_per_minute
        .unwrap_or(before.rate_limit_per_minute);
    if name == before.name
        && description == before.description
        && scopes == before.scopes
        && expires_at == before.expires_at
        && rpm == before.rate_limit_per_minute
    {
        return Ok((before, None));
    }
    sqlx::query(
        "UPDATE tokens SET name = $1, description = $2, scopes = $3, expires_at = $4, updated_at = $5, \
         rate_limit_per_minute = $7 WHERE id = $6",
    )
    .bind(&name)
    .bind(&description)
    .bind(super::json_list(&scopes))
    .bind(expires_at)
    .bind(now_ms())
    .bind(id.as_str())
    .bind(i64::from(rpm))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    if scopes != before.scopes {
        write_scopes(tx, id, &scopes, before.created_at, false).await?;
    }
    let after = fetch(&mut **tx, id).await?.ok_or_else(|| not_found(id))?;
    let hash = hash_of(tx, id).await?;
    let entry = Entry {
        action,
        entity_type: "token",
        entity_id: id.0.clone(),
        team_id: after.team_id.0.clone(),
        diff: token_diff(Some(&before), Some(&after)),
        op: Op::Upsert,
        payload: json!({"token_hash": hash}),
    };
    Ok((after, Some(entry)))
}

/// Revokes a token; `None` for the entry when it was already revoked (nothing written).
pub(super) async fn revoke_in(
    tx: &mut Tx,
    id: &TokenId,
    reason: &str,
    action: &'static str,
) -> StoreResult<(Token, Option<Entry>)> {
    let before = fetch(&mut **tx, id).await?.ok_or_else(|| not_found(id))?;
    if before.revoked_at.is_some() {
        return Ok((before, None));
    }
    let now = now_ms();
    sqlx::query("UPDATE tokens SET revoked_at = $1, updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    let after = fetch(&mut **tx, id).await?.ok_or_else(|| not_found(id))?;
    let hash = hash_of(tx, id).await?;
    let mut d = token_diff(Some(&before), Some(&after));
    if !reason.is_empty() {
        d["revoke_reason"] = json!([null, reason]);
    }
    let entry = Entry {
        action,
        entity_type: "token",
        entity_id: id.0.clone(),
        team_id: after.team_id.0.clone(),
        diff: d,
        op: Op::Delete,
        payload: json!({"token_hash": hash}),
    };
    Ok((after, Some(entry)))
}

/// Audit diff without bookkeeping noise.
fn token_diff(before: Option<&Token>, after: Option<&Token>) -> Value {
    let mut d = diff(before.map(snapshot).as_ref(), after.map(snapshot).as_ref());
    if let (Some(_), Some(_), Some(o)) = (before, after, d.as_object_mut()) {
        o.remove("updated_at");
    }
    d
}

/// `<select> FROM ... WHERE <f's filters>` (no page position, order or limit), with the
/// sort-key and id expressions of `f`'s order. With a scope filter the query is driven from
/// the scope index, whose rows carry `created_at` in list order; otherwise from `tokens`.
/// The sort keys of nullable columns are the expressions the `0010_token_list` indexes hold:
/// never used sorts as the oldest use, never expiring after every expiry.
fn from_filtered(
    f: &TokenFilter,
    select: &str,
    text: TextPlan,
) -> (QueryBuilder<super::Db>, String, &'static str) {
    let now = now_ms();
    let (mut qb, by_scope) = match &f.scope {
        Some(scope) => {
            let mut qb = QueryBuilder::<super::Db>::new(format!(
                "{select} FROM token_scopes s JOIN tokens t ON t.id = s.token_id WHERE s.scope = "
            ));
            qb.push_bind(scope.clone());
            (qb, true)
        }
        None => (
            QueryBuilder::<super::Db>::new(format!("{select} FROM tokens t WHERE 1 = 1")),
            false,
        ),
    };
    let (key, id) = match (f.sort, by_scope) {
        (TokenSort::CreatedAt, true) => ("s.created_at".to_owned(), "s.token_id"),
        (TokenSort::CreatedAt, false) => ("t.created_at".to_owned(), "t.id"),
        (TokenSort::Name, _) => ("t.name".to_owned(), "t.id"),
        (TokenSort::LastUsedAt, _) => (
            format!("COALESCE(t.last_used_at, {NEVER_USED_KEY})"),
            "t.id",
        ),
        (TokenSort::ExpiresAt, _) => (
            format!("COALESCE(t.expires_at, {NEVER_EXPIRES_KEY})"),
            "t.id",
        ),
    };
    if let Some(team) = &f.team_id {
        qb.push(" AND t.team_id = ");
        qb.push_bind(team.0.clone());
    }
    if let Some(teams) = &f.visible_teams {
        super::push_in(&mut qb, "t.team_id", teams.iter().map(|t| t.0.clone()));
    }
    match f.status {
        None => {}
        Some(TokenStatus::Active) => {
            qb.push(" AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ");
            qb.push_bind(now);
            qb.push(")");
        }
        Some(TokenStatus::Expired) => {
            qb.push(" AND t.revoked_at IS NULL AND t.expires_at <= ");
            qb.push_bind(now);
        }
        Some(TokenStatus::Revoked) => {
            qb.push(" AND t.revoked_at IS NOT NULL");
        }
    }
    if let Some(before) = f.expiring_before {
        qb.push(" AND t.expires_at < ");
        qb.push_bind(before);
    }
    if let Some(before) = f.last_used_before {
        qb.push(" AND t.last_used_at < ");
        qb.push_bind(before);
    }
    if f.never_used {
        qb.push(" AND t.last_used_at IS NULL");
    }
    if f.legacy {
        qb.push(" AND t.legacy_prefix <> ''");
    }
    if let Some(q) = &f.query {
        push_text_filter(&mut qb, q, text);
    }
    (qb, key, id)
}

/// Shortest query the SQLite trigram index answers (shorter ones keep the LIKE).
const TRIGRAM: usize = 3;

/// Matches from which SQLite's trigram index no longer pays: reading and sorting every match
/// costs more than walking the list's order index with the LIKE until a page is full
/// (bench/README.md, control plane, finding 4: at 1M tokens a word in 8 % of them took 454 ms
/// from the index, 280 ms by the walk; a word in 11 took 3 ms against 833).
const INDEX_MAX_MATCHES: i64 = 1000;

/// How the text filter is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TextPlan {
    /// `lower(name || ' ' || description) LIKE '%q%'` (PostgreSQL: from its pg_trgm index).
    Like,
    /// SQLite: the FTS5 trigram table `token_search`.
    Index,
}

impl SqlStore {
    /// The plan for `f`'s text filter: on SQLite, the trigram index for a query of 3 or more
    /// characters with fewer than [`INDEX_MAX_MATCHES`] matches (counted from the index,
    /// stopping at the cap); the LIKE otherwise.
    async fn text_plan(&self, f: &TokenFilter) -> StoreResult<TextPlan> {
        let Some(q) = &f.query else {
            return Ok(TextPlan::Like);
        };
        if super::IS_POSTGRES || q.chars().count() < TRIGRAM {
            return Ok(TextPlan::Like);
        }
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM \
             (SELECT 1 FROM token_search WHERE token_search MATCH $1 LIMIT $2)",
        )
        .bind(fts_phrase(q))
        .bind(INDEX_MAX_MATCHES)
        .fetch_one(&self.read)
        .await
        .map_err(db_err)?;
        Ok(if n < INDEX_MAX_MATCHES {
            TextPlan::Index
        } else {
            TextPlan::Like
        })
    }
}

/// ` AND <t matches q>`: `q` is a substring of `name || ' ' || description`, any case.
/// PostgreSQL answers the LIKE from its pg_trgm index on that expression (`tokens_search`,
/// migration 0001); SQLite from the FTS5 trigram table `token_search` (migration 0013), as a
/// quoted phrase, when [`SqlStore::text_plan`] says so.
fn push_text_filter(qb: &mut QueryBuilder<super::Db>, q: &str, text: TextPlan) {
    if text == TextPlan::Index {
        qb.push(
            " AND t.id IN (SELECT s.token_id FROM token_search_ids s WHERE s.rowid IN \
             (SELECT rowid FROM token_search WHERE token_search MATCH ",
        );
        qb.push_bind(fts_phrase(q));
        qb.push("))");
    } else {
        qb.push(" AND lower(t.name || ' ' || t.description) LIKE ");
        qb.push_bind(like_pattern(q));
        qb.push(" ESCAPE '\\'");
    }
}

/// `q` as one FTS5 string (a phrase): every character literal, `"` doubled.
fn fts_phrase(q: &str) -> String {
    format!("\"{}\"", q.replace('"', "\"\""))
}

#[async_trait::async_trait]
impl TokenStore for SqlStore {
    async fn create_token(&self, ctx: &RequestContext, t: NewTokenRecord) -> StoreResult<Token> {
        let mut tx = self.begin().await?;
        let (token, entry) = create_in(&mut tx, ctx, &t, now_ms(), "token.create").await?;
        append(&mut tx, ctx, vec![entry]).await?;
        self.commit(tx).await?;
        Ok(token)
    }

    async fn get_token(&self, id: &TokenId) -> StoreResult<Token> {
        fetch(&self.read, id).await?.ok_or_else(|| not_found(id))
    }

    async fn list_tokens(&self, f: &TokenFilter) -> StoreResult<Page<Token>> {
        let text = self.text_plan(f).await?;
        let (mut qb, key, id) = from_filtered(f, &format!("SELECT {TOKEN_COLUMNS_T}"), text);
        let (cmp, dir) = if f.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some((after, after_id)) = &f.after {
            let bind = |qb: &mut QueryBuilder<super::Db>| {
                match after {
                    SortKey::Int(v) => qb.push_bind(*v),
                    SortKey::Text(v) => qb.push_bind(v.clone()),
                };
            };
            // The redundant single-key bound lets SQLite seek the expression indexes (it
            // does not seek them on the row value alone).
            qb.push(format!(" AND {key} {cmp}= "));
            bind(&mut qb);
            qb.push(format!(" AND ({key}, {id}) {cmp} ("));
            bind(&mut qb);
            qb.push(", ");
            qb.push_bind(after_id.as_str());
            qb.push(")");
        }
        qb.push(format!(" ORDER BY {key} {dir}, {id} {dir} LIMIT "));
        qb.push_bind(i64::from(f.limit) + 1);
        let rows: Vec<TokenRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let more = rows.len() > f.limit as usize;
        let items = rows
            .into_iter()
            .take(f.limit as usize)
            .map(Token::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, more })
    }

    async fn count_tokens(&self, f: &TokenFilter) -> StoreResult<u64> {
        let text = self.text_plan(f).await?;
        let (mut qb, _, _) = from_filtered(f, "SELECT count(*)", text);
        let (n,): (i64,) = qb
            .build_query_as()
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn update_token(
        &self,
        ctx: &RequestContext,
        id: &TokenId,
        p: TokenPatch,
    ) -> StoreResult<Token> {
        let mut tx = self.begin().await?;
        let (after, entry) = update_in(&mut tx, id, p, "token.update").await?;
        let Some(entry) = entry else {
            return Ok(after);
        };
        append(&mut tx, ctx, vec![entry]).await?;
        self.commit(tx).await?;
        Ok(after)
    }

    async fn revoke_token(
        &self,
        ctx: &RequestContext,
        id: &TokenId,
        reason: &str,
    ) -> StoreResult<Token> {
        let mut tx = self.begin().await?;
        let (after, entry) = revoke_in(&mut tx, id, reason, "token.revoke").await?;
        let Some(entry) = entry else {
            return Ok(after);
        };
        append(&mut tx, ctx, vec![entry]).await?;
        self.commit(tx).await?;
        Ok(after)
    }

    async fn rotate_token(
        &self,
        ctx: &RequestContext,
        id: &TokenId,
        new: RotatedToken,
    ) -> StoreResult<(Token, Token)> {
        let mut tx = self.begin().await?;
        let old = fetch(&mut *tx, id).await?.ok_or_else(|| not_found(id))?;
        let now = now_ms();
        match old.status(now) {
            TokenStatus::Revoked => {
                return Err(StoreError::Precondition(format!(
                    "token \"{id}\" is revoked; create a new token instead"
                )));
            }
            TokenStatus::Expired => {
                return Err(StoreError::Precondition(format!(
                    "token \"{id}\" has expired; create a new token instead"
                )));
            }
            TokenStatus::Active => {}
        }
        if let Some(next) = &old.replaced_by_id {
            return Err(StoreError::Precondition(format!(
                "token \"{id}\" was already rotated to \"{next}\"; rotate that one instead"
            )));
        }
        let scopes: Vec<Scope> = old
            .scopes
            .iter()
            .map(|s| Scope::parse("scopes", s))
            .collect::<Result<_, _>>()
            .map_err(StoreError::Invalid)?;
        let record = NewTokenRecord {
            id: new.id.clone(),
            team_id: old.team_id.clone(),
            name: old.name.clone(),
            description: old.description.clone(),
            scopes,
            token_hash: new.token_hash.clone(),
            preview: new.preview,
            expires_at: old.expires_at,
            rate_limit_per_minute: old.rate_limit_per_minute,
        };
        insert(&mut tx, ctx, &record, &old.scopes, Some(id), now).await?;
        let cut = old
            .expires_at
            .map_or(new.grace_until, |e| e.min(new.grace_until));
        let revoke_now = new.grace_until <= now;
        sqlx::query(
            "UPDATE tokens SET replaced_by_id = $1, expires_at = $2, revoked_at = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(new.id.as_str())
        .bind(if revoke_now { old.expires_at } else { Some(cut) })
        .bind(revoke_now.then_some(now))
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let new_token = fetch(&mut *tx, &new.id)
            .await?
            .ok_or_else(|| not_found(&new.id))?;
        let old_after = fetch(&mut *tx, id).await?.ok_or_else(|| not_found(id))?;
        let old_hash = hash_of(&mut tx, id).await?;
        append(
            &mut tx,
            ctx,
            vec![
                Entry {
                    action: "token.rotate",
                    entity_type: "token",
                    entity_id: new.id.0.clone(),
                    team_id: new_token.team_id.0.clone(),
                    diff: token_diff(None, Some(&new_token)),
                    op: Op::Upsert,
                    payload: json!({"token_hash": new.token_hash}),
                },
                Entry {
                    action: if revoke_now {
                        "token.revoke"
                    } else {
                        "token.update"
                    },
                    entity_type: "token",
                    entity_id: id.0.clone(),
                    team_id: old_after.team_id.0.clone(),
                    diff: token_diff(Some(&old), Some(&old_after)),
                    op: if revoke_now { Op::Delete } else { Op::Upsert },
                    payload: json!({"token_hash": old_hash}),
                },
            ],
        )
        .await?;
        self.commit(tx).await?;
        Ok((new_token, old_after))
    }
}
