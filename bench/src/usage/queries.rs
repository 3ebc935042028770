//! `usage-queries`: the analytics query RPCs over 30 days of hourly rollups for 10,000 tokens
//! on PostgreSQL.
//!
//! 1. **Seed** a fresh database: the history of [`super::history`] streamed with `COPY`
//!    (bypassing IngestUsage: its 2.3 million rollups, each a read-merge-write of 15 rows,
//!    would take over 20 minutes through the API on PostgreSQL), then the teams, routes and tokens (with the `last_used_at`
//!    ingestion would have set), then `VACUUM ANALYZE`, as autovacuum would after a bulk load.
//! 2. **Serve** the real control plane on `127.0.0.1:0` over it (`TestServer::start_on`).
//! 3. **Check** the first answer of each call against the generated totals, then **measure**
//!    each call through the generated client, one request at a time: a warm-up, then the
//!    measured requests in interleaved rounds (every call in turn, so the machine's drift
//!    hits all alike), each with its own random team, token or batch of ids.

use super::copy::{CopyBuffers, copy_chunks};
use super::db::{FreshDb, Measure, measure};
use super::history::{self, Generated, Shape};
use super::values::{MAX_CALLS, POOL_SIZE, ValuePool};
use super::{Rng, catalog};
use crate::BenchError;
use crate::control_plane::connect;
use crate::stats::{Summary, summarise};
use keygate_control_plane::policy::Role;
use keygate_control_plane::testing::{Backend, with_key};
use keygate_control_plane::time::{now_ms, to_timestamp};
use keygate_control_plane::usage::analytics::DAY_MS;
use keygate_proto::v1 as pb;
use keygate_proto::v1::usage_service_client::UsageServiceClient;
use serde::Serialize;
use sqlx::Connection;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Knobs of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub tokens: u32,
    pub days: u32,
    /// Measured requests per call.
    pub iterations: usize,
    pub rounds: usize,
    /// Unmeasured requests per call before the first round.
    pub warmup: usize,
    /// Token ids per BatchGetTokenUsage.
    pub batch: usize,
    /// Wall-time cap of one call's measured requests.
    pub budget: Duration,
    pub request_timeout: Duration,
}

/// The measured calls, with their targets (p99, ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    SummaryTeam,
    SummaryAll,
    SummaryMember,
    TokenUsage,
    BatchTokens,
    TopTokens,
    TopRoutes,
}

impl Call {
    pub const ALL: [Call; 7] = [
        Call::SummaryTeam,
        Call::SummaryAll,
        Call::SummaryMember,
        Call::TokenUsage,
        Call::BatchTokens,
        Call::TopTokens,
        Call::TopRoutes,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Call::SummaryTeam => "GetUsageSummary team, 30 d, step auto",
            Call::SummaryAll => "GetUsageSummary all, 30 d, step auto",
            Call::SummaryMember => "GetUsageSummary own 2 teams, 30 d",
            Call::TokenUsage => "GetTokenUsage, 30 d",
            Call::BatchTokens => "BatchGetTokenUsage 500 ids, 30 d",
            Call::TopTokens => "ListTopUsage tokens, 30 d",
            Call::TopRoutes => "ListTopUsage routes, 30 d",
        }
    }

    pub fn caller(self) -> &'static str {
        match self {
            Call::SummaryMember => "team member",
            _ => "system admin",
        }
    }

    /// The issue's p99 target in ms.
    pub fn target_ms(self) -> f64 {
        match self {
            Call::SummaryTeam | Call::SummaryAll | Call::SummaryMember | Call::TokenUsage => 50.0,
            Call::BatchTokens => 100.0,
            Call::TopTokens | Call::TopRoutes => 250.0,
        }
    }
}

/// One call's figures.
#[derive(Debug, Clone, Serialize)]
pub struct CallResult {
    pub call: &'static str,
    pub caller: &'static str,
    pub target_p99_ms: f64,
    pub latency: Summary,
    /// PASS or MISS (p99 against the target).
    pub verdict: &'static str,
    /// The first answer against the generated totals: `ok` or what differed.
    pub check: String,
    /// Fewer requests than asked for: the time budget ran out.
    pub truncated: bool,
    pub first_error: Option<String>,
}

/// How the database was seeded.
#[derive(Debug, Clone, Serialize)]
pub struct SeedFigures {
    pub shape: Shape,
    pub generated: Generated,
    /// Generating the history and COPYing it in (overlapped).
    pub history_secs: f64,
    pub catalog_secs: f64,
    pub vacuum_analyze_secs: f64,
    pub total_secs: f64,
    pub sizes: Measure,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct QueriesResult {
    pub seed: SeedFigures,
    pub calls: Vec<CallResult>,
}

/// Seeds a fresh database on `pg_admin_url`, measures, drops it (unless `keep_db`).
pub async fn run(
    pg_admin_url: &str,
    o: &Options,
    keep_db: bool,
) -> Result<QueriesResult, BenchError> {
    let db = FreshDb::create(Backend::Postgres, Some(pg_admin_url), None).await?;
    eprintln!("  database {}", redact(&db.url));
    let outcome = seed_and_measure(&db, o).await;
    if let Some(url) = db.finish(keep_db).await? {
        eprintln!("  kept the database: {}", redact(&url));
    }
    outcome
}

/// `url` without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<url>".into(),
    }
}

async fn seed_and_measure(db: &FreshDb, o: &Options) -> Result<QueriesResult, BenchError> {
    let shape = Shape::issue(o.tokens, o.days);
    let seed = seed(db, shape).await?;
    let g = &seed.generated;
    eprintln!(
        "  seeded in {:.1} s: {} rollups ({} calls), {} hour rows, {} day rows, {} hour series \
         rows; bypassing IngestUsage (see bench/README.md)",
        seed.total_secs,
        g.rollups,
        g.calls,
        g.rows["usage_rollup_hour"],
        g.rows["usage_rollup_day"],
        g.rows["usage_series_hour"],
    );
    let server = db.serve().await?;
    eprintln!("  control plane on {}", server.url());
    let members = [3u32, 17];
    let member = server
        .user(
            "member@bench.test",
            &[
                (catalog::team_id(members[0]).as_str(), Role::Viewer),
                (catalog::team_id(members[1]).as_str(), Role::Viewer),
            ],
        )
        .await;
    let outcome = async {
        let channel = connect(&server.url(), o.request_timeout).await?;
        let m = Measurer {
            client: UsageServiceClient::new(channel),
            admin: server.admin_key.clone(),
            member: member.token.clone(),
            members,
            o: o.clone(),
            tokens: o.tokens,
            teams: seed.shape.catalog.teams,
        };
        m.measure_all(&seed.generated).await
    }
    .await;
    server.stop().await;
    Ok(QueriesResult {
        seed,
        calls: outcome?,
    })
}

/// Writes the history, the catalog and statistics.
async fn seed(db: &FreshDb, shape: Shape) -> Result<SeedFigures, BenchError> {
    let started = Instant::now();
    let now = now_ms();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let gen_shape = shape.clone();
    let generator = tokio::task::spawn_blocking(move || {
        let pool = ValuePool::new(gen_shape.seed ^ 0x706f_6f6c, POOL_SIZE, MAX_CALLS);
        let mut bufs = CopyBuffers::new(tx);
        let g = history::generate(&gen_shape, &pool, now, &mut |row| bufs.push(row));
        bufs.finish();
        g
    });
    let mut conn = sqlx::PgConnection::connect(&db.url).await?;
    let copied = copy_chunks(&mut conn, rx).await;
    let generated = generator
        .await
        .map_err(|e| BenchError::Setup(format!("history generator: {e}")))?;
    let copied = copied?;
    let expected: u64 = generated.rows.values().sum();
    if copied != expected {
        return Err(BenchError::Setup(format!(
            "COPY wrote {copied} rows, the generator made {expected}"
        )));
    }
    let history_secs = started.elapsed().as_secs_f64();
    eprintln!("  history: {copied} rows in {history_secs:.1} s");
    let t = Instant::now();
    db.execute_all(&shape.catalog.statements(now, &generated.last_used))
        .await?;
    let catalog_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    sqlx::query("VACUUM ANALYZE").execute(&mut conn).await?;
    let vacuum_analyze_secs = t.elapsed().as_secs_f64();
    conn.close().await?;
    let sizes = measure(db).await?;
    Ok(SeedFigures {
        shape,
        generated,
        history_secs,
        catalog_secs,
        vacuum_analyze_secs,
        total_secs: started.elapsed().as_secs_f64(),
        sizes,
    })
}

struct Measurer {
    client: UsageServiceClient<Channel>,
    admin: String,
    member: String,
    members: [u32; 2],
    o: Options,
    tokens: u32,
    teams: u32,
}

/// One request's parameters (drawn per request).
struct Params {
    team: u32,
    token: u32,
    batch: Vec<u32>,
}

/// What an answer said, for the check.
enum Answer {
    Stats { calls: u64, errors: u64 },
    Batch(Vec<(String, u64, u64)>),
    Top(Vec<(String, u64)>),
}

impl Measurer {
    fn params(&self, rng: &mut Rng, call: Call) -> Params {
        let batch = if call == Call::BatchTokens {
            let mut ids = std::collections::BTreeSet::new();
            let want = self.o.batch.min(self.tokens as usize);
            while ids.len() < want {
                ids.insert(rng.below(u64::from(self.tokens)) as u32);
            }
            ids.into_iter().collect()
        } else {
            Vec::new()
        };
        Params {
            team: rng.below(u64::from(self.teams)) as u32,
            token: rng.below(u64::from(self.tokens)) as u32,
            batch,
        }
    }

    fn query(team: Option<u32>) -> pb::UsageQuery {
        pb::UsageQuery {
            team_id: team.map(catalog::team_id).unwrap_or_default(),
            start_time: Some(to_timestamp(now_ms() - 30 * DAY_MS)),
            ..Default::default()
        }
    }

    async fn call(&self, call: Call, p: &Params) -> Result<Answer, tonic::Status> {
        let mut c = self.client.clone();
        let start = Some(to_timestamp(now_ms() - 30 * DAY_MS));
        let stats = |s: Option<pb::UsageStats>| {
            let s = s.unwrap_or_default();
            Answer::Stats {
                calls: s.calls,
                errors: s.errors,
            }
        };
        let top = |entries: Vec<pb::TopUsageEntry>| {
            Answer::Top(entries.into_iter().map(|e| (e.key, e.calls)).collect())
        };
        Ok(match call {
            Call::SummaryTeam | Call::SummaryAll | Call::SummaryMember => {
                let (key, team) = match call {
                    Call::SummaryTeam => (&self.admin, Some(p.team)),
                    Call::SummaryAll => (&self.admin, None),
                    _ => (&self.member, None),
                };
                let r = c
                    .get_usage_summary(with_key(
                        key,
                        pb::GetUsageSummaryRequest {
                            query: Some(Self::query(team)),
                            step_seconds: 0,
                        },
                    ))
                    .await?
                    .into_inner();
                stats(r.total)
            }
            Call::TokenUsage => {
                let r = c
                    .get_token_usage(with_key(
                        &self.admin,
                        pb::GetTokenUsageRequest {
                            token_id: catalog::token_id(p.token),
                            start_time: start,
                            ..Default::default()
                        },
                    ))
                    .await?
                    .into_inner();
                stats(r.total)
            }
            Call::BatchTokens => {
                let r = c
                    .batch_get_token_usage(with_key(
                        &self.admin,
                        pb::BatchGetTokenUsageRequest {
                            token_ids: p.batch.iter().map(|&i| catalog::token_id(i)).collect(),
                            start_time: start,
                            end_time: None,
                        },
                    ))
                    .await?
                    .into_inner();
                Answer::Batch(
                    r.usage
                        .into_iter()
                        .map(|u| (u.token_id, u.calls, u.errors))
                        .collect(),
                )
            }
            Call::TopTokens | Call::TopRoutes => {
                let by = if call == Call::TopTokens {
                    pb::TopDimension::Token
                } else {
                    pb::TopDimension::Route
                };
                let r = c
                    .list_top_usage(with_key(
                        &self.admin,
                        pb::ListTopUsageRequest {
                            query: Some(Self::query(None)),
                            by: by as i32,
                            order: pb::TopOrder::Calls as i32,
                            limit: 10,
                        },
                    ))
                    .await?
                    .into_inner();
                top(r.entries)
            }
        })
    }

    /// The first answer against what was generated.
    fn check(&self, call: Call, p: &Params, a: &Answer, g: &Generated) -> String {
        let want_stats = |calls: u64, errors: Option<u64>, got_c: u64, got_e: u64| {
            if got_c == calls && errors.is_none_or(|e| e == got_e) {
                "ok".to_owned()
            } else {
                format!("calls {got_c}, errors {got_e}; generated {calls}, {errors:?}")
            }
        };
        match (call, a) {
            (Call::SummaryAll, Answer::Stats { calls, errors }) => {
                want_stats(g.calls, Some(g.errors), *calls, *errors)
            }
            (Call::SummaryTeam, Answer::Stats { calls, errors }) => {
                want_stats(g.team_calls[p.team as usize], None, *calls, *errors)
            }
            (Call::SummaryMember, Answer::Stats { calls, errors }) => want_stats(
                self.members.iter().map(|&t| g.team_calls[t as usize]).sum(),
                None,
                *calls,
                *errors,
            ),
            (Call::TokenUsage, Answer::Stats { calls, errors }) => {
                let (c, e) = g.token_calls[p.token as usize];
                want_stats(c, Some(e), *calls, *errors)
            }
            (Call::BatchTokens, Answer::Batch(rows)) => {
                if rows.len() != p.batch.len() {
                    return format!("{} entries for {} ids", rows.len(), p.batch.len());
                }
                let bad = rows
                    .iter()
                    .zip(&p.batch)
                    .filter(|(row, i)| {
                        let (id, c, e) = row;
                        *id != catalog::token_id(**i) || (*c, *e) != g.token_calls[**i as usize]
                    })
                    .count();
                if bad == 0 {
                    "ok".into()
                } else {
                    format!(
                        "{bad} of {} entries differ from the generated totals",
                        rows.len()
                    )
                }
            }
            (Call::TopTokens, Answer::Top(rows)) => {
                let max = g.token_calls.iter().map(|t| t.0).max().unwrap_or(0);
                match rows.first() {
                    Some((_, c)) if *c == max && rows.len() == 10 => "ok".into(),
                    other => format!(
                        "{} entries, first {other:?}; generated top calls {max}",
                        rows.len()
                    ),
                }
            }
            (Call::TopRoutes, Answer::Top(rows)) => {
                let sorted = rows.windows(2).all(|w| w[0].1 >= w[1].1);
                if rows.len() == 10 && sorted && rows.iter().all(|r| r.1 > 0) {
                    "ok (10 routes, by calls)".into()
                } else {
                    format!("{} entries: {rows:?}", rows.len())
                }
            }
            _ => "unexpected answer".into(),
        }
    }

    async fn measure_all(&self, g: &Generated) -> Result<Vec<CallResult>, BenchError> {
        let mut rng = Rng::new(0x7175_6572);
        let mut checks = Vec::new();
        for call in Call::ALL {
            let p = self.params(&mut rng, call);
            let a = self
                .call(call, &p)
                .await
                .map_err(|s| BenchError::Rpc(Box::new(s)))?;
            let check = self.check(call, &p, &a, g);
            eprintln!("  check {}: {check}", call.label());
            checks.push(check);
        }
        for call in Call::ALL {
            for _ in 0..self.o.warmup {
                let p = self.params(&mut rng, call);
                let _ = self.call(call, &p).await;
            }
        }
        let rounds = self.o.rounds.max(1);
        let per_round = self.o.iterations.div_ceil(rounds);
        let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); Call::ALL.len()];
        let mut spent = vec![Duration::ZERO; Call::ALL.len()];
        let mut errors = vec![0usize; Call::ALL.len()];
        let mut first_error: Vec<Option<String>> = vec![None; Call::ALL.len()];
        for round in 0..rounds {
            for (ci, call) in Call::ALL.into_iter().enumerate() {
                let round_start = Instant::now();
                for _ in 0..per_round {
                    if samples[ci].len() + errors[ci] >= self.o.iterations
                        || spent[ci] + round_start.elapsed() >= self.o.budget
                    {
                        break;
                    }
                    let p = self.params(&mut rng, call);
                    let t0 = Instant::now();
                    match self.call(call, &p).await {
                        Ok(_) => samples[ci].push(t0.elapsed()),
                        Err(s) => {
                            errors[ci] += 1;
                            first_error[ci].get_or_insert(format!("{}: {}", s.code(), s.message()));
                        }
                    }
                }
                spent[ci] += round_start.elapsed();
            }
            eprintln!("  round {}/{rounds} done", round + 1);
        }
        Ok(Call::ALL
            .into_iter()
            .enumerate()
            .map(|(ci, call)| {
                let n = samples[ci].len();
                let latency = summarise(std::mem::take(&mut samples[ci]), errors[ci], spent[ci]);
                let pass = errors[ci] == 0 && n > 0 && latency.p99_ms < call.target_ms();
                CallResult {
                    call: call.label(),
                    caller: call.caller(),
                    target_p99_ms: call.target_ms(),
                    latency,
                    verdict: if pass { "PASS" } else { "MISS" },
                    check: checks[ci].clone(),
                    truncated: n + errors[ci] < self.o.iterations,
                    first_error: first_error[ci].take(),
                }
            })
            .collect())
    }
}
