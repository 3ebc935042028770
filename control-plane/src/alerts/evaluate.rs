//! The evaluator: every `KEYGATE_ALERT_EVAL_SECONDS` it evaluates each enabled rule, records
//! what it concluded per subject (token, route, follower, gateway) and queues an alert when a
//! condition starts to hold, then makes the tries that are due. On PostgreSQL one replica at
//! a time runs it (an advisory lock; a run that cannot take it is skipped).
//!
//! Firing rules: `token_expiring` fires once per token and rule; `token_unused` once per
//! token until the token is used again; the threshold conditions (route error rate and
//! latency, traffic spike, sync lag, gateway health) fire when they start to hold and again
//! only after they stopped holding at some evaluation (the state records both edges).

use super::AlertSettings;
use super::deliver::{self, Allow};
use super::model::{Alert, AlertRule, AlertState, AlertTokenQuery, Condition};
use crate::context::RequestContext;
use crate::ids::{TeamId, TokenId};
use crate::secrets::MasterKey;
use crate::store::{DynStore, StoreResult};
use crate::time::{Millis, now_ms, rfc3339};
use crate::usage::analytics::{self, AnalyticsStore, HOUR_MS, MINUTE_MS, Tier, UsageScope};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;

const DAY_MS: Millis = 86_400_000;
/// Most tries made per run (the rest wait for the next run).
const MAX_TRIES_PER_RUN: u32 = 500;
/// Tries made at the same time.
const PARALLEL_TRIES: usize = 8;
/// Finished alerts and their delivery rows are kept this long.
pub const HISTORY_RETENTION_MS: Millis = 30 * DAY_MS;
/// A token needs this much history before the last hour to be judged for a traffic spike.
const SPIKE_MIN_HISTORY_MS: Millis = DAY_MS;
const SPIKE_BASELINE_MS: Millis = 7 * DAY_MS;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Another replica was evaluating: nothing was done.
    pub skipped: bool,
    pub rules: usize,
    /// Alerts queued by this run.
    pub fired: usize,
    /// Delivery tries made (new alerts and retries).
    pub tries: usize,
    pub delivered: usize,
}

/// Starts the periodic evaluator.
pub fn spawn(
    store: DynStore,
    key: MasterKey,
    settings: AlertSettings,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(settings.eval_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match run_once(&store, &key, &settings.allow, now_ms()).await {
                Ok(r) if r.skipped => {
                    tracing::debug!("alert evaluation skipped: another replica is evaluating")
                }
                Ok(r) => tracing::debug!(
                    rules = r.rules,
                    fired = r.fired,
                    tries = r.tries,
                    delivered = r.delivered,
                    "alerts evaluated"
                ),
                Err(e) => tracing::warn!(error = %e, "alert evaluation failed"),
            }
        }
    })
}

/// One run at time `now`: evaluate every enabled rule, queue what fired, make the due tries,
/// drop old history. Tests call it directly with a clock of their choosing.
pub async fn run_once(
    store: &DynStore,
    key: &MasterKey,
    allow: &Allow,
    now: Millis,
) -> StoreResult<RunReport> {
    let Some(lock) = store.lock_alert_evaluation().await? else {
        return Ok(RunReport {
            skipped: true,
            ..RunReport::default()
        });
    };
    let result = run_locked(store, key, allow, now).await;
    // Released now, not whenever the guard's connection goes back to the pool: the next
    // run (here or on another replica) must find it free.
    if let Err(e) = store.release_alert_evaluation(lock).await {
        tracing::warn!(error = %e, "could not release the alert evaluation lock");
    }
    result
}

async fn run_locked(
    store: &DynStore,
    key: &MasterKey,
    allow: &Allow,
    now: Millis,
) -> StoreResult<RunReport> {
    let mut report = RunReport::default();
    for rule in store.enabled_alert_rules().await? {
        report.rules += 1;
        match evaluate_rule(store, &rule, now).await {
            Ok(Some((states, alerts))) => {
                report.fired += alerts.len();
                for a in &alerts {
                    tracing::info!(rule_id = %rule.id, kind = %a.kind, subject = %a.subject, "alert fired");
                }
                if let Err(e) = store.record_evaluation(&rule.id, &states, &alerts).await {
                    tracing::warn!(rule_id = %rule.id, error = %e, "could not record an alert evaluation");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(rule_id = %rule.id, error = %e, "could not evaluate an alert rule")
            }
        }
    }
    let ctx = RequestContext::system("alert-evaluator");
    let due = store.due_alerts(now, MAX_TRIES_PER_RUN).await?;
    // Each try owns what it needs (futures borrowing the loop's data are not `Send` enough
    // for a spawned task).
    let tries = due.into_iter().map(|a| {
        let (store, key, allow, ctx) = (store.clone(), key.clone(), allow.clone(), ctx.clone());
        async move { deliver::attempt(&store, &key, &allow, &a, now, &ctx).await }
    });
    let results: Vec<_> = futures::stream::iter(tries)
        .buffer_unordered(PARALLEL_TRIES)
        .collect()
        .await;
    for r in results {
        match r {
            Ok(d) => {
                report.tries += 1;
                if d.status == super::DeliveryStatus::Succeeded {
                    report.delivered += 1;
                }
            }
            // The rule was deleted meanwhile, or the database is unwell: the alert stays due
            // (or is gone with its rule).
            Err(e) => tracing::warn!(error = %e, "could not record an alert delivery"),
        }
    }
    match store
        .delete_alert_history_before(now - HISTORY_RETENTION_MS)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "alert history past retention deleted"),
        Err(e) => tracing::warn!(error = %e, "alert history retention failed"),
    }
    Ok(report)
}

/// What one rule's evaluation concluded: states to write and alerts to queue.
struct Book<'a> {
    rule: &'a AlertRule,
    now: Millis,
    prior: HashMap<String, AlertState>,
    states: Vec<AlertState>,
    alerts: Vec<Alert>,
}

impl<'a> Book<'a> {
    fn new(rule: &'a AlertRule, now: Millis, prior: Vec<AlertState>) -> Self {
        Self {
            rule,
            now,
            prior: prior.into_iter().map(|s| (s.subject.clone(), s)).collect(),
            states: Vec::new(),
            alerts: Vec::new(),
        }
    }

    fn fire(&mut self, subject: &str, message: String, details: Value) {
        self.alerts.push(Alert::new(
            self.rule, subject, message, details, self.now, false,
        ));
    }

    /// Fires unless it fired for `subject` before with the same `marker`.
    fn once(
        &mut self,
        subject: &str,
        marker: Option<i64>,
        describe: impl FnOnce() -> (String, Value),
    ) {
        if self
            .prior
            .get(subject)
            .is_some_and(|prev| prev.fired_at.is_some() && prev.marker == marker)
        {
            return;
        }
        let (message, details) = describe();
        self.fire(subject, message, details);
        let mut s = AlertState::new(subject);
        s.firing = true;
        s.fired_at = Some(self.now);
        s.marker = marker;
        s.marker_at = Some(self.now);
        self.states.push(s);
    }

    /// Fires when `holds` starts; records when it stops.
    fn threshold(
        &mut self,
        subject: &str,
        holds: bool,
        describe: impl FnOnce() -> (String, Value),
    ) {
        let prev = self.prior.get(subject).cloned();
        let was = prev.as_ref().is_some_and(|s| s.firing);
        let mut s = prev.unwrap_or_else(|| AlertState::new(subject));
        match (holds, was) {
            (true, false) => {
                let (message, details) = describe();
                self.fire(subject, message, details);
                s.firing = true;
                s.fired_at = Some(self.now);
                self.states.push(s);
            }
            (false, true) => {
                s.firing = false;
                s.resolved_at = Some(self.now);
                self.states.push(s);
            }
            _ => {}
        }
    }

    fn done(self) -> Option<(Vec<AlertState>, Vec<Alert>)> {
        (!self.states.is_empty() || !self.alerts.is_empty()).then_some((self.states, self.alerts))
    }
}

fn days_between(from: Millis, to: Millis) -> i64 {
    (to - from).max(0) / DAY_MS
}

/// Evaluates one rule at `now`; `None` when nothing changed.
async fn evaluate_rule(
    store: &DynStore,
    rule: &AlertRule,
    now: Millis,
) -> StoreResult<Option<(Vec<AlertState>, Vec<Alert>)>> {
    let team = &rule.team_id;
    let prior = store.alert_states(&rule.id).await?;
    let mut book = Book::new(rule, now, prior);
    match &rule.condition {
        Condition::TokenExpiring { days } => {
            let until = now + i64::from(*days) * DAY_MS;
            for t in store
                .alert_tokens(team, AlertTokenQuery::ExpiringBefore(until), now)
                .await?
            {
                let expires = t.expires_at.unwrap_or(until);
                book.once(t.id.as_str(), None, || {
                    let left = days_between(now, expires);
                    (
                        format!(
                            "Token \"{}\" ({}) of team \"{team}\" expires in {}, at {}",
                            t.name,
                            t.id,
                            match left {
                                0 => "less than a day".to_owned(),
                                1 => "1 day".to_owned(),
                                n => format!("{n} days"),
                            },
                            rfc3339(expires)
                        ),
                        json!({"token_id": t.id, "token_name": t.name, "expires_at": rfc3339(expires), "days_left": left}),
                    )
                });
            }
        }
        Condition::TokenUnused {
            days,
            include_never_used,
        } => {
            let before = now - i64::from(*days) * DAY_MS;
            let query = AlertTokenQuery::UnusedSince {
                before,
                include_never_used: *include_never_used,
            };
            for t in store.alert_tokens(team, query, now).await? {
                // Keyed by the last use it fired for: a later use (and new silence) fires again.
                book.once(t.id.as_str(), t.last_used_at, || {
                    let (message, last) = match t.last_used_at {
                        Some(at) => (
                            format!(
                                "Token \"{}\" ({}) of team \"{team}\" has not been used for {} days (last used at {})",
                                t.name,
                                t.id,
                                days_between(at, now),
                                rfc3339(at)
                            ),
                            json!(rfc3339(at)),
                        ),
                        None => (
                            format!(
                                "Token \"{}\" ({}) of team \"{team}\" has never been used since it was created {} days ago",
                                t.name,
                                t.id,
                                days_between(t.created_at, now)
                            ),
                            Value::Null,
                        ),
                    };
                    (
                        message,
                        json!({"token_id": t.id, "token_name": t.name, "last_used_at": last, "created_at": rfc3339(t.created_at)}),
                    )
                });
            }
        }
        Condition::RouteErrorRate {
            route,
            percent,
            window_minutes,
            min_calls,
        } => {
            let usage: &dyn AnalyticsStore = store.as_ref();
            let (start, end) = window(now, *window_minutes);
            for name in routes(store, team, route.as_deref()).await? {
                let stats = route_stats(usage, &name, start, end).await?;
                let rate = if stats.calls == 0 {
                    0.0
                } else {
                    stats.errors as f64 * 100.0 / stats.calls as f64
                };
                let holds = stats.calls >= u64::from(*min_calls) && rate > *percent;
                book.threshold(&name, holds, || {
                    (
                        format!(
                            "Route \"{name}\": {rate:.1} % of {} calls failed in the last {window_minutes} minutes (threshold {percent} %)",
                            stats.calls
                        ),
                        json!({"route": name, "calls": stats.calls, "errors": stats.errors, "error_rate_percent": rate, "threshold_percent": percent, "window_minutes": window_minutes}),
                    )
                });
            }
        }
        Condition::RouteLatency {
            route,
            p99_ms,
            window_minutes,
            min_calls,
        } => {
            let usage: &dyn AnalyticsStore = store.as_ref();
            let (start, end) = window(now, *window_minutes);
            for name in routes(store, team, route.as_deref()).await? {
                let stats = route_stats(usage, &name, start, end).await?;
                let p99_us = stats.sketch.quantile(0.99).unwrap_or(0);
                let holds =
                    stats.calls >= u64::from(*min_calls) && p99_us > u64::from(*p99_ms) * 1000;
                book.threshold(&name, holds, || {
                    let p99 = p99_us as f64 / 1000.0;
                    (
                        format!(
                            "Route \"{name}\": p99 latency {p99:.1} ms over {} calls in the last {window_minutes} minutes (threshold {p99_ms} ms)",
                            stats.calls
                        ),
                        json!({"route": name, "calls": stats.calls, "p99_ms": p99, "threshold_ms": p99_ms, "window_minutes": window_minutes}),
                    )
                });
            }
        }
        Condition::TokenTrafficSpike { factor, min_calls } => {
            let usage: &dyn AnalyticsStore = store.as_ref();
            let tokens = store.alert_tokens(team, AlertTokenQuery::Live, now).await?;
            let hour_end = Tier::Minute.ceil(now);
            let hour_start = hour_end - HOUR_MS;
            let judged: Vec<_> = tokens
                .iter()
                .filter(|t| t.created_at <= hour_start - SPIKE_MIN_HISTORY_MS)
                .collect();
            let ids: Vec<TokenId> = judged.iter().map(|t| t.id.clone()).collect();
            let recent = token_calls(usage, &ids, hour_start, hour_end).await?;
            let baseline =
                token_calls(usage, &ids, hour_start - SPIKE_BASELINE_MS, hour_start).await?;
            for t in judged {
                let calls = recent.get(&t.id).copied().unwrap_or(0);
                let since = t.created_at.max(hour_start - SPIKE_BASELINE_MS);
                let hours = ((hour_start - since) / HOUR_MS).clamp(1, 24 * 7);
                let average = baseline.get(&t.id).copied().unwrap_or(0) as f64 / hours as f64;
                let holds = calls >= u64::from(*min_calls) && calls as f64 > factor * average;
                book.threshold(t.id.as_str(), holds, || {
                    (
                        format!(
                            "Token \"{}\" ({}) of team \"{team}\" made {calls} calls in the last hour, {:.1} times its hourly average of {average:.1} (threshold {factor}x): a leaked key?",
                            t.name,
                            t.id,
                            if average > 0.0 { calls as f64 / average } else { f64::INFINITY },
                        ),
                        json!({"token_id": t.id, "token_name": t.name, "calls_last_hour": calls, "hourly_average": average, "factor": factor}),
                    )
                });
            }
        }
        Condition::SyncLag { seconds } => {
            let head = store.head_revision().await?;
            for f in store.list_followers().await? {
                let lag_ms = if f.applied_revision >= head {
                    Some(0)
                } else {
                    // The commit time of the first change the follower has not applied; gone
                    // when it is further behind than the outbox retention.
                    store
                        .list_changes(f.applied_revision, 1)
                        .await?
                        .first()
                        .map(|c| (now - c.at).max(0))
                };
                let holds = lag_ms.is_none_or(|l| l > i64::from(*seconds) * 1000);
                book.threshold(&f.follower, holds, || {
                    let behind = head - f.applied_revision;
                    let message = match lag_ms {
                        Some(l) => format!(
                            "Follower \"{}\" is {} s behind ({behind} changes; threshold {seconds} s)",
                            f.follower,
                            l / 1000
                        ),
                        None => format!(
                            "Follower \"{}\" is behind the outbox retention ({behind} changes): it needs a resync",
                            f.follower
                        ),
                    };
                    (
                        message,
                        json!({"follower": f.follower, "applied_revision": f.applied_revision, "head_revision": head, "lag_seconds": lag_ms.map(|l| l / 1000), "last_report_at": rfc3339(f.reported_at), "last_error": f.last_error}),
                    )
                });
            }
        }
        Condition::GatewaySilent { minutes } => {
            for g in store.list_gateways().await? {
                let silent_ms = (now - g.last_seen_at).max(0);
                let holds = silent_ms > i64::from(*minutes) * MINUTE_MS;
                book.threshold(&g.name, holds, || {
                    (
                        format!(
                            "Gateway \"{}\" has not reported for {} minutes (last report at {})",
                            g.name,
                            silent_ms / MINUTE_MS,
                            rfc3339(g.last_seen_at)
                        ),
                        json!({"gateway": g.name, "last_seen_at": rfc3339(g.last_seen_at), "silent_minutes": silent_ms / MINUTE_MS}),
                    )
                });
            }
        }
        Condition::GatewayDropping => {
            for g in store.list_gateways().await? {
                let h = &g.last_hour;
                let holds = h.events_dropped > 0 || h.rollups_dropped > 0;
                book.threshold(&g.name, holds, || {
                    (
                        format!(
                            "Gateway \"{}\" dropped usage data in the last hour: {} events and the rollups of {} requests",
                            g.name, h.events_dropped, h.rollups_dropped
                        ),
                        json!({"gateway": g.name, "events_dropped_last_hour": h.events_dropped, "rollups_dropped_last_hour": h.rollups_dropped, "dropped_total": g.dropped_total}),
                    )
                });
            }
        }
    }
    Ok(book.done())
}

/// The last `minutes` up to the end of the current minute, on minute boundaries.
fn window(now: Millis, minutes: u32) -> (Millis, Millis) {
    let end = Tier::Minute.ceil(now + 1);
    (end - i64::from(minutes) * MINUTE_MS, end)
}

async fn routes(store: &DynStore, team: &TeamId, one: Option<&str>) -> StoreResult<Vec<String>> {
    match one {
        Some(r) => Ok(vec![r.to_owned()]),
        None => store.team_route_names(team).await,
    }
}

async fn route_stats(
    usage: &dyn AnalyticsStore,
    route: &str,
    start: Millis,
    end: Millis,
) -> StoreResult<analytics::Stats> {
    let scope = UsageScope {
        route: Some(route.to_owned()),
        start,
        end,
        ..UsageScope::default()
    };
    Ok(usage.usage_series(&scope, end - start).await?.total)
}

async fn token_calls(
    usage: &dyn AnalyticsStore,
    ids: &[TokenId],
    start: Millis,
    end: Millis,
) -> StoreResult<HashMap<TokenId, u64>> {
    let (start, end) = analytics::align_range(start, end, end);
    let mut out = HashMap::new();
    for chunk in ids.chunks(analytics::MAX_BATCH_TOKENS) {
        for t in usage.token_totals(chunk, start, end).await? {
            out.insert(t.token_id, t.calls);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AlertRuleId;

    fn rule() -> AlertRule {
        AlertRule {
            id: AlertRuleId("alr_1".into()),
            team_id: TeamId("a".into()),
            name: "r".into(),
            enabled: true,
            webhook_url: "https://h.example/x".into(),
            condition: Condition::GatewaySilent { minutes: 5 },
            created_at: 0,
            updated_at: 0,
            created_by: String::new(),
            updated_by: String::new(),
            secret_issued_at: 0,
        }
    }

    /// Runs `f` on a book over `prior`, returns (states written, subjects fired).
    fn step(
        prior: Vec<AlertState>,
        now: Millis,
        f: impl FnOnce(&mut Book<'_>),
    ) -> (Vec<AlertState>, Vec<String>) {
        let r = rule();
        let mut b = Book::new(&r, now, prior);
        f(&mut b);
        let fired = b.alerts.iter().map(|a| a.subject.clone()).collect();
        (b.states, fired)
    }

    #[test]
    fn thresholds_fire_on_crossing_and_again_only_after_resolving() {
        let msg = || ("m".to_owned(), Value::Null);
        let (s1, f1) = step(vec![], 1, |b| b.threshold("g", true, msg));
        assert_eq!(f1, vec!["g"]);
        assert!(s1[0].firing);
        // Still holding: nothing new.
        let (s2, f2) = step(s1.clone(), 2, |b| b.threshold("g", true, msg));
        assert!(s2.is_empty() && f2.is_empty());
        // Resolves: recorded, no alert.
        let (s3, f3) = step(s1, 3, |b| b.threshold("g", false, msg));
        assert!(f3.is_empty());
        assert!(!s3[0].firing);
        assert_eq!(s3[0].resolved_at, Some(3));
        // Holds again: fires again.
        let (_, f4) = step(s3, 4, |b| b.threshold("g", true, msg));
        assert_eq!(f4, vec!["g"]);
        // Never held: nothing written.
        let (s5, f5) = step(vec![], 5, |b| b.threshold("g", false, msg));
        assert!(s5.is_empty() && f5.is_empty());
    }

    #[test]
    fn once_fires_once_per_marker() {
        let msg = || ("m".to_owned(), Value::Null);
        let (s1, f1) = step(vec![], 1, |b| b.once("tok_1", Some(10), msg));
        assert_eq!(f1, vec!["tok_1"]);
        let (_, f2) = step(s1.clone(), 2, |b| b.once("tok_1", Some(10), msg));
        assert!(f2.is_empty(), "same marker: fired already");
        let (_, f3) = step(s1, 3, |b| b.once("tok_1", Some(20), msg));
        assert_eq!(f3, vec!["tok_1"], "used again since: fires again");
    }

    #[test]
    fn windows_end_after_the_current_minute() {
        let now = 10 * MINUTE_MS + 5;
        assert_eq!(window(now, 5), (6 * MINUTE_MS, 11 * MINUTE_MS));
        assert_eq!(window(10 * MINUTE_MS, 1), (10 * MINUTE_MS, 11 * MINUTE_MS));
    }
}
