//! Alert rules, their recorded states, alerts waiting for delivery and delivery attempts in
//! SQL. Rules are audited like teams (one change event each, empty payload: no edge record);
//! delivery attempts are audited without a change event; states and alerts are evaluator
//! bookkeeping and write no audit row.

use super::log::{Entry, Op, append};
use super::rows::TOKEN_COLUMNS;
use super::rows::TokenRow;
use super::teams::require_team;
use super::{IS_POSTGRES, SqlStore, db_err, snapshot};
use crate::alerts::{
    Alert, AlertDelivery, AlertRule, AlertRuleFilter, AlertRulePatch, AlertState, AlertTokenQuery,
    Condition, DeliveryFilter, DeliveryStatus, NewAlertRule,
};
use crate::audit::diff;
use crate::context::RequestContext;
use crate::ids::{AlertId, AlertRuleId, DeliveryId, TeamId};
use crate::store::{AlertStore, EvaluationLock, Page, StoreError, StoreResult};
use crate::time::{Millis, now_ms};
use crate::tokens::Token;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, QueryBuilder};

/// Key of the PostgreSQL advisory lock one evaluator holds per run ("kgalerts" in ASCII).
const EVALUATION_LOCK_KEY: i64 = 0x6b67_616c_6572_7473;
/// Most tokens one token condition looks at per evaluation.
const MAX_TOKENS_PER_RULE: i64 = 10_000;
/// Rows deleted per statement by the history retention.
const RETENTION_BATCH: i64 = 1000;

const RULE_COLUMNS: &str = "id, team_id, name, enabled, webhook_url, secret_issued_at, \
    condition, created_at, updated_at, created_by, updated_by";

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: String,
    team_id: String,
    name: String,
    enabled: bool,
    webhook_url: String,
    secret_issued_at: i64,
    condition: String,
    created_at: i64,
    updated_at: i64,
    created_by: String,
    updated_by: String,
}

impl TryFrom<RuleRow> for AlertRule {
    type Error = StoreError;

    fn try_from(r: RuleRow) -> Result<Self, StoreError> {
        let condition: Condition = serde_json::from_str(&r.condition).map_err(|e| {
            StoreError::Internal(format!("corrupt alert_rules.condition of {}: {e}", r.id))
        })?;
        Ok(Self {
            id: AlertRuleId(r.id),
            team_id: TeamId(r.team_id),
            name: r.name,
            enabled: r.enabled,
            webhook_url: r.webhook_url,
            condition,
            created_at: r.created_at,
            updated_at: r.updated_at,
            created_by: r.created_by,
            updated_by: r.updated_by,
            secret_issued_at: r.secret_issued_at,
        })
    }
}

const ALERT_COLUMNS: &str = "id, rule_id, team_id, kind, subject, message, details, fired_at, \
    test, attempts, next_attempt_at";

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: String,
    rule_id: String,
    team_id: String,
    kind: String,
    subject: String,
    message: String,
    details: String,
    fired_at: i64,
    test: bool,
    attempts: i64,
    next_attempt_at: Option<i64>,
}

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;

    fn try_from(r: AlertRow) -> Result<Self, StoreError> {
        Ok(Self {
            details: serde_json::from_str(&r.details).map_err(|e| {
                StoreError::Internal(format!("corrupt alerts.details of {}: {e}", r.id))
            })?,
            id: AlertId(r.id),
            rule_id: AlertRuleId(r.rule_id),
            team_id: TeamId(r.team_id),
            kind: r.kind,
            subject: r.subject,
            message: r.message,
            fired_at: r.fired_at,
            test: r.test,
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            next_attempt_at: r.next_attempt_at,
        })
    }
}

const DELIVERY_COLUMNS: &str = "id, alert_id, rule_id, team_id, kind, subject, message, test, \
    attempt, status, http_status, error, duration_ms, attempted_at, next_attempt_at";

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    alert_id: String,
    rule_id: String,
    team_id: String,
    kind: String,
    subject: String,
    message: String,
    test: bool,
    attempt: i64,
    status: String,
    http_status: i64,
    error: String,
    duration_ms: i64,
    attempted_at: i64,
    next_attempt_at: Option<i64>,
}

impl TryFrom<DeliveryRow> for AlertDelivery {
    type Error = StoreError;

    fn try_from(r: DeliveryRow) -> Result<Self, StoreError> {
        let status = DeliveryStatus::parse(&r.status).ok_or_else(|| {
            StoreError::Internal(format!("corrupt alert_deliveries.status {:?}", r.status))
        })?;
        Ok(Self {
            id: DeliveryId(r.id),
            alert_id: AlertId(r.alert_id),
            rule_id: AlertRuleId(r.rule_id),
            team_id: TeamId(r.team_id),
            kind: r.kind,
            subject: r.subject,
            message: r.message,
            test: r.test,
            attempt: u32::try_from(r.attempt).unwrap_or(u32::MAX),
            status,
            http_status: u16::try_from(r.http_status).unwrap_or(0),
            error: r.error,
            duration_ms: u32::try_from(r.duration_ms).unwrap_or(u32::MAX),
            attempted_at: r.attempted_at,
            next_attempt_at: r.next_attempt_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct StateRow {
    subject: String,
    firing: bool,
    fired_at: Option<i64>,
    resolved_at: Option<i64>,
    marker: Option<i64>,
    marker_at: Option<i64>,
}

fn not_found(id: &AlertRuleId) -> StoreError {
    StoreError::NotFound {
        entity: "alert rule",
        id: id.0.clone(),
    }
}

async fn fetch<'e, E>(exec: E, id: &AlertRuleId) -> StoreResult<Option<AlertRule>>
where
    E: sqlx::Executor<'e, Database = super::Db>,
{
    let row: Option<RuleRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1"
    )))
    .bind(id.as_str())
    .fetch_optional(exec)
    .await
    .map_err(db_err)?;
    row.map(AlertRule::try_from).transpose()
}

fn condition_json(c: &Condition) -> String {
    serde_json::to_string(c).expect("conditions serialise")
}

/// Audit diff without bookkeeping noise.
fn rule_diff(before: Option<&AlertRule>, after: Option<&AlertRule>) -> Value {
    let mut d = diff(before.map(snapshot).as_ref(), after.map(snapshot).as_ref());
    if let (Some(_), Some(_), Some(o)) = (before, after, d.as_object_mut()) {
        o.remove("updated_at");
        o.remove("updated_by");
        o.remove("secret_issued_at");
    }
    d
}

fn rule_entry(action: &'static str, rule: &AlertRule, diff: Value, op: Op) -> Entry {
    Entry {
        action,
        entity_type: "alert_rule",
        entity_id: rule.id.0.clone(),
        team_id: rule.team_id.0.clone(),
        diff,
        op,
        payload: json!({}),
    }
}

#[async_trait::async_trait]
impl AlertStore for SqlStore {
    async fn create_alert_rule(
        &self,
        ctx: &RequestContext,
        r: NewAlertRule,
    ) -> StoreResult<AlertRule> {
        let mut tx = self.begin().await?;
        require_team(&mut tx, &r.team_id).await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO alert_rules (id, team_id, name, enabled, webhook_url, secret_sealed, \
             secret_issued_at, condition_kind, condition, created_at, updated_at, created_by, \
             updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $7, $7, $10, $10)",
        )
        .bind(r.id.as_str())
        .bind(r.team_id.as_str())
        .bind(&r.name)
        .bind(r.enabled)
        .bind(&r.webhook_url)
        .bind(&r.secret_sealed)
        .bind(now)
        .bind(r.condition.kind())
        .bind(condition_json(&r.condition))
        .bind(ctx.actor.reference())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let rule = fetch(&mut *tx, &r.id)
            .await?
            .ok_or_else(|| not_found(&r.id))?;
        let mut d = rule_diff(None, Some(&rule));
        d["webhook_secret"] = json!([null, "issued"]);
        append(
            &mut tx,
            ctx,
            vec![rule_entry("alert_rule.create", &rule, d, Op::Upsert)],
        )
        .await?;
        self.commit(tx).await?;
        Ok(rule)
    }

    async fn get_alert_rule(&self, id: &AlertRuleId) -> StoreResult<AlertRule> {
        fetch(&self.read, id).await?.ok_or_else(|| not_found(id))
    }

    async fn list_alert_rules(&self, f: &AlertRuleFilter) -> StoreResult<Page<AlertRule>> {
        let mut qb = QueryBuilder::<super::Db>::new(format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE 1 = 1"
        ));
        if let Some(team) = &f.team_id {
            qb.push(" AND team_id = ");
            qb.push_bind(team.as_str());
        }
        if let Some(teams) = &f.visible_teams {
            super::push_in(&mut qb, "team_id", teams.iter().map(|t| t.0.clone()));
        }
        if let Some((created, id)) = &f.after {
            qb.push(" AND (created_at, id) < (");
            qb.push_bind(*created);
            qb.push(", ");
            qb.push_bind(id.as_str());
            qb.push(")");
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ");
        qb.push_bind(i64::from(f.limit) + 1);
        let rows: Vec<RuleRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let more = rows.len() > f.limit as usize;
        let items = rows
            .into_iter()
            .take(f.limit as usize)
            .map(AlertRule::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, more })
    }

    async fn update_alert_rule(
        &self,
        ctx: &RequestContext,
        id: &AlertRuleId,
        p: AlertRulePatch,
    ) -> StoreResult<AlertRule> {
        let mut tx = self.begin().await?;
        let before = fetch(&mut *tx, id).await?.ok_or_else(|| not_found(id))?;
        let name = p.name.unwrap_or_else(|| before.name.clone());
        let enabled = p.enabled.unwrap_or(before.enabled);
        let webhook_url = p.webhook_url.unwrap_or_else(|| before.webhook_url.clone());
        let condition = p.condition.unwrap_or_else(|| before.condition.clone());
        let rotated = p.secret_sealed.is_some();
        if name == before.name
            && enabled == before.enabled
            && webhook_url == before.webhook_url
            && condition == before.condition
            && !rotated
        {
            return Ok(before);
        }
        let now = now_ms();
        sqlx::query(
            "UPDATE alert_rules SET name = $1, enabled = $2, webhook_url = $3, \
             condition_kind = $4, condition = $5, updated_at = $6, updated_by = $7 WHERE id = $8",
        )
        .bind(&name)
        .bind(enabled)
        .bind(&webhook_url)
        .bind(condition.kind())
        .bind(condition_json(&condition))
        .bind(now)
        .bind(ctx.actor.reference())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some(sealed) = &p.secret_sealed {
            sqlx::query(
                "UPDATE alert_rules SET secret_sealed = $1, secret_issued_at = $2 WHERE id = $3",
            )
            .bind(sealed)
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        if condition != before.condition {
            // What was recorded about the old condition says nothing about the new one.
            sqlx::query("DELETE FROM alert_states WHERE rule_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let after = fetch(&mut *tx, id).await?.ok_or_else(|| not_found(id))?;
        let mut d = rule_diff(Some(&before), Some(&after));
        if rotated {
            d["webhook_secret"] = json!([null, "rotated"]);
        }
        append(
            &mut tx,
            ctx,
            vec![rule_entry("alert_rule.update", &after, d, Op::Upsert)],
        )
        .await?;
        self.commit(tx).await?;
        Ok(after)
    }

    async fn delete_alert_rule(
        &self,
        ctx: &RequestContext,
        id: &AlertRuleId,
    ) -> StoreResult<AlertRule> {
        let mut tx = self.begin().await?;
        let before = fetch(&mut *tx, id).await?.ok_or_else(|| not_found(id))?;
        // Explicitly, not only by cascade: the order matters to the foreign keys.
        for table in ["alert_deliveries", "alerts", "alert_states"] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE rule_id = $1"
            )))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        sqlx::query("DELETE FROM alert_rules WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        append(
            &mut tx,
            ctx,
            vec![rule_entry(
                "alert_rule.delete",
                &before,
                rule_diff(Some(&before), None),
                Op::Delete,
            )],
        )
        .await?;
        self.commit(tx).await?;
        Ok(before)
    }

    async fn alert_rule_secret(&self, id: &AlertRuleId) -> StoreResult<String> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT secret_sealed FROM alert_rules WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.read)
                .await
                .map_err(db_err)?;
        row.map(|(s,)| s).ok_or_else(|| not_found(id))
    }

    async fn enabled_alert_rules(&self) -> StoreResult<Vec<AlertRule>> {
        let rows: Vec<RuleRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE enabled ORDER BY created_at, id"
        )))
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(AlertRule::try_from).collect()
    }

    async fn alert_states(&self, rule: &AlertRuleId) -> StoreResult<Vec<AlertState>> {
        // From the writer: the evaluator reads what it wrote in its previous run.
        let rows: Vec<StateRow> = sqlx::query_as(
            "SELECT subject, firing, fired_at, resolved_at, marker, marker_at \
             FROM alert_states WHERE rule_id = $1",
        )
        .bind(rule.as_str())
        .fetch_all(&self.write)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|r| AlertState {
                subject: r.subject,
                firing: r.firing,
                fired_at: r.fired_at,
                resolved_at: r.resolved_at,
                marker: r.marker,
                marker_at: r.marker_at,
            })
            .collect())
    }

    async fn record_evaluation(
        &self,
        rule: &AlertRuleId,
        states: &[AlertState],
        alerts: &[Alert],
    ) -> StoreResult<()> {
        if states.is_empty() && alerts.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for s in states {
            sqlx::query(
                "INSERT INTO alert_states (rule_id, subject, firing, fired_at, resolved_at, \
                 marker, marker_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (rule_id, subject) DO UPDATE SET firing = excluded.firing, \
                 fired_at = excluded.fired_at, resolved_at = excluded.resolved_at, \
                 marker = excluded.marker, marker_at = excluded.marker_at",
            )
            .bind(rule.as_str())
            .bind(&s.subject)
            .bind(s.firing)
            .bind(s.fired_at)
            .bind(s.resolved_at)
            .bind(s.marker)
            .bind(s.marker_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        for a in alerts {
            sqlx::query(
                "INSERT INTO alerts (id, rule_id, team_id, kind, subject, message, details, \
                 fired_at, test, attempts, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(a.id.as_str())
            .bind(a.rule_id.as_str())
            .bind(a.team_id.as_str())
            .bind(&a.kind)
            .bind(&a.subject)
            .bind(&a.message)
            .bind(a.details.to_string())
            .bind(a.fired_at)
            .bind(a.test)
            .bind(i64::from(a.attempts))
            .bind(a.next_attempt_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        // Bookkeeping only: no audit row, no change event, no need to wake feed watchers.
        tx.commit().await.map_err(db_err)
    }

    async fn due_alerts(&self, now: Millis, limit: u32) -> StoreResult<Vec<Alert>> {
        let rows: Vec<AlertRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE next_attempt_at IS NOT NULL \
             AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
        )))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.write)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(Alert::try_from).collect()
    }

    async fn record_delivery(&self, ctx: &RequestContext, d: &AlertDelivery) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let updated =
            sqlx::query("UPDATE alerts SET attempts = $1, next_attempt_at = $2 WHERE id = $3")
                .bind(i64::from(d.attempt))
                .bind(d.next_attempt_at)
                .bind(d.alert_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if updated.rows_affected() == 0 {
            // The rule (and with it the alert) was deleted while the try was under way.
            return Err(StoreError::NotFound {
                entity: "alert",
                id: d.alert_id.0.clone(),
            });
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO alert_deliveries ({DELIVERY_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        )))
        .bind(d.id.as_str())
        .bind(d.alert_id.as_str())
        .bind(d.rule_id.as_str())
        .bind(d.team_id.as_str())
        .bind(&d.kind)
        .bind(&d.subject)
        .bind(&d.message)
        .bind(d.test)
        .bind(i64::from(d.attempt))
        .bind(d.status.as_str())
        .bind(i64::from(d.http_status))
        .bind(&d.error)
        .bind(i64::from(d.duration_ms))
        .bind(d.attempted_at)
        .bind(d.next_attempt_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let action = if d.status == DeliveryStatus::Succeeded {
            "alert.delivered"
        } else {
            "alert.delivery_failed"
        };
        let mut detail = json!({
            "alert_id": [null, d.alert_id],
            "rule_id": [null, d.rule_id],
            "kind": [null, d.kind],
            "subject": [null, d.subject],
            "attempt": [null, d.attempt],
            "status": [null, d.status.as_str()],
            "http_status": [null, d.http_status],
            "duration_ms": [null, d.duration_ms],
        });
        if d.test {
            detail["test"] = json!([null, true]);
        }
        if !d.error.is_empty() {
            detail["error"] = json!([null, d.error]);
        }
        if let Some(next) = d.next_attempt_at {
            detail["next_attempt_at"] = json!([null, next]);
        }
        append(
            &mut tx,
            ctx,
            vec![Entry {
                action,
                entity_type: "alert_delivery",
                entity_id: d.id.0.clone(),
                team_id: d.team_id.0.clone(),
                diff: detail,
                // A delivery changes no configuration: nothing for followers.
                op: Op::NoChange,
                payload: Value::Null,
            }],
        )
        .await?;
        tx.commit().await.map_err(db_err)
    }

    async fn list_alert_deliveries(&self, f: &DeliveryFilter) -> StoreResult<Page<AlertDelivery>> {
        let mut qb = QueryBuilder::<super::Db>::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE 1 = 1"
        ));
        if let Some(rule) = &f.rule_id {
            qb.push(" AND rule_id = ");
            qb.push_bind(rule.as_str());
        }
        if let Some(team) = &f.team_id {
            qb.push(" AND team_id = ");
            qb.push_bind(team.as_str());
        }
        if let Some(teams) = &f.visible_teams {
            super::push_in(&mut qb, "team_id", teams.iter().map(|t| t.0.clone()));
        }
        if let Some(status) = f.status {
            qb.push(" AND status = ");
            qb.push_bind(status.as_str());
        }
        if let Some((at, id)) = &f.after {
            qb.push(" AND (attempted_at, id) < (");
            qb.push_bind(*at);
            qb.push(", ");
            qb.push_bind(id.as_str());
            qb.push(")");
        }
        qb.push(" ORDER BY attempted_at DESC, id DESC LIMIT ");
        qb.push_bind(i64::from(f.limit) + 1);
        let rows: Vec<DeliveryRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let more = rows.len() > f.limit as usize;
        let items = rows
            .into_iter()
            .take(f.limit as usize)
            .map(AlertDelivery::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, more })
    }

    async fn alert_tokens(
        &self,
        team: &TeamId,
        q: AlertTokenQuery,
        now: Millis,
    ) -> StoreResult<Vec<Token>> {
        let mut qb = QueryBuilder::<super::Db>::new(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE team_id = "
        ));
        qb.push_bind(team.as_str());
        qb.push(" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ");
        qb.push_bind(now);
        qb.push(")");
        match q {
            AlertTokenQuery::Live => {}
            AlertTokenQuery::ExpiringBefore(t) => {
                qb.push(" AND expires_at IS NOT NULL AND expires_at <= ");
                qb.push_bind(t);
            }
            AlertTokenQuery::UnusedSince {
                before,
                include_never_used,
            } => {
                qb.push(" AND ((last_used_at IS NOT NULL AND last_used_at < ");
                qb.push_bind(before);
                qb.push(")");
                if include_never_used {
                    qb.push(" OR (last_used_at IS NULL AND created_at < ");
                    qb.push_bind(before);
                    qb.push(")");
                }
                qb.push(")");
            }
        }
        qb.push(" ORDER BY created_at, id LIMIT ");
        qb.push_bind(MAX_TOKENS_PER_RULE);
        let rows: Vec<TokenRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(Token::try_from).collect()
    }

    async fn team_route_names(&self, team: &TeamId) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM routes WHERE team_id = $1 ORDER BY name")
                .bind(team.as_str())
                .fetch_all(&self.read)
                .await
                .map_err(db_err)?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    async fn lock_alert_evaluation(&self) -> StoreResult<Option<EvaluationLock>> {
        if !IS_POSTGRES {
            // One process per SQLite file: nothing to coordinate.
            return Ok(Some(EvaluationLock::default()));
        }
        // Held by this open transaction and released when it ends (the guard is dropped,
        // which rolls it back), so a crashed evaluator cannot keep it.
        let mut tx = self.begin().await?;
        let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
            .bind(EVALUATION_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        Ok(got.then(|| EvaluationLock::new(Box::new(tx))))
    }

    async fn release_alert_evaluation(&self, lock: EvaluationLock) -> StoreResult<()> {
        match lock.into_guard().map(|g| g.downcast::<super::Tx>()) {
            // Ending the transaction releases the transaction-level advisory lock.
            Some(Ok(tx)) => tx.rollback().await.map_err(db_err),
            Some(Err(_)) => Err(StoreError::Internal(
                "an evaluation lock from another store".into(),
            )),
            None => Ok(()),
        }
    }

    async fn delete_alert_history_before(&self, before: Millis) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.begin().await?;
            let ids: Vec<(String,)> = sqlx::query_as(
                "SELECT id FROM alerts WHERE next_attempt_at IS NULL AND fired_at < $1 \
                 ORDER BY fired_at LIMIT $2",
            )
            .bind(before)
            .bind(RETENTION_BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            if ids.is_empty() {
                return Ok(total);
            }
            for (id,) in &ids {
                sqlx::query("DELETE FROM alert_deliveries WHERE alert_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                sqlx::query("DELETE FROM alerts WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
            total += ids.len() as u64;
            if (ids.len() as i64) < RETENTION_BATCH {
                return Ok(total);
            }
        }
    }
}
