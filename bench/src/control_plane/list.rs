//! ListTokens latency per filter: one page of `page_size` (100), newest first, through the
//! generated client. Each filter gets a checked first call (how many rows it returns), a
//! warm-up, then its measured requests spread over interleaved rounds.

use super::{Driven, Options, Step, connect, drive};
use crate::BenchError;
use crate::dataset::{self, COMMON_WORD, DAY_MS, RARE_WORD};
use crate::stats::Summary;
use futures::future::BoxFuture;
use keygate_control_plane::testing::with_key;
use keygate_control_plane::time::{now_ms, to_timestamp};
use keygate_proto::v1 as pb;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use serde::Serialize;
use std::sync::Arc;

use tonic::transport::Channel;

/// Pages walked before the deep-page request.
pub const DEEP_PAGES: usize = 20;

/// Number of measured filters (including the deep page).
pub const FILTER_COUNT: usize = 10;

/// One filter's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ListResult {
    pub filter: String,
    /// Rows on the checked first call, and whether it said more follow.
    pub rows: usize,
    pub more: bool,
    pub latency: Summary,
    /// p50 of this filter over p50 of `none`, measured in the same rounds.
    pub p50_vs_none: f64,
    /// Fewer requests than asked for: the time budget ran out.
    pub truncated: bool,
    pub first_error: Option<String>,
}

/// The requests measured, by name. `deep_token` is the page token after [`DEEP_PAGES`] pages.
fn filters(page_size: u32, deep_token: String) -> Vec<(String, pb::ListTokensRequest)> {
    let base = pb::ListTokensRequest {
        page_size,
        ..Default::default()
    };
    let with = |f: &dyn Fn(&mut pb::ListTokensRequest)| {
        let mut r = base.clone();
        f(&mut r);
        r
    };
    let v = vec![
        ("none".to_owned(), base.clone()),
        (
            "team_id".into(),
            with(&|r| r.team_id = dataset::team_id(42)),
        ),
        (
            "scope (route)".into(),
            with(&|r| r.scope = dataset::route_name(3)),
        ),
        ("tag".into(), with(&|r| r.tag = dataset::tag(0).to_owned())),
        (
            "status=ACTIVE".into(),
            with(&|r| r.status = pb::TokenStatus::Active as i32),
        ),
        (
            "status=REVOKED".into(),
            with(&|r| r.status = pb::TokenStatus::Revoked as i32),
        ),
        (
            "expiring_before +30d".into(),
            with(&|r| r.expiring_before = Some(to_timestamp(now_ms() + 30 * DAY_MS))),
        ),
        (
            format!("query '{COMMON_WORD}' (many)"),
            with(&|r| r.query = COMMON_WORD.into()),
        ),
        (
            format!("query '{RARE_WORD}' (few)"),
            with(&|r| r.query = RARE_WORD.into()),
        ),
        (
            format!("page {} (page_token)", DEEP_PAGES + 1),
            with(&|r| r.page_token = deep_token.clone()),
        ),
    ];
    debug_assert_eq!(v.len(), FILTER_COUNT);
    v
}

async fn list(
    client: &mut TokenServiceClient<Channel>,
    key: &str,
    req: pb::ListTokensRequest,
) -> Result<pb::ListTokensResponse, BenchError> {
    Ok(client
        .list_tokens(with_key(key, req))
        .await
        .map_err(|s| BenchError::Rpc(Box::new(s)))?
        .into_inner())
}

fn step(clients: &[TokenServiceClient<Channel>], key: &str, req: pb::ListTokensRequest) -> Step {
    let clients = clients.to_vec();
    let key: Arc<str> = key.into();
    Arc::new(move |c, _n| -> BoxFuture<'static, Result<(), String>> {
        let mut client = clients[c % clients.len()].clone();
        let req = with_key(&key, req.clone());
        Box::pin(async move {
            client
                .list_tokens(req)
                .await
                .map(|_| ())
                .map_err(|s| format!("{}: {}", s.code(), s.message()))
        })
    })
}

/// One server, connected and warmed up.
struct Prepared {
    clients: Vec<TokenServiceClient<Channel>>,
    key: String,
    cases: Vec<(String, pb::ListTokensRequest)>,
    /// Rows on each filter's checked first call, and whether more follow.
    shape: Vec<(usize, bool)>,
}

async fn prepare(url: &str, key: &str, opts: &Options) -> Result<Prepared, BenchError> {
    let mut clients = Vec::with_capacity(opts.list_concurrency.max(1));
    for _ in 0..opts.list_concurrency.max(1) {
        clients.push(TokenServiceClient::new(
            connect(url, opts.request_timeout).await?,
        ));
    }
    let mut first = clients[0].clone();

    // Walk to the deep page once; its token is then requested over and over.
    let mut token = String::new();
    for _ in 0..DEEP_PAGES {
        let page = list(
            &mut first,
            key,
            pb::ListTokensRequest {
                page_size: opts.page_size,
                page_token: token,
                ..Default::default()
            },
        )
        .await?;
        token = page.next_page_token;
        if token.is_empty() {
            return Err(BenchError::Setup(format!(
                "fewer than {DEEP_PAGES} pages of tokens: seed more"
            )));
        }
    }
    let cases = filters(opts.page_size, token);

    // Check each filter once and warm it up (at most a quarter of its time budget).
    let warmup = (opts.lists / 10).clamp(5, 50);
    let mut shape = Vec::with_capacity(cases.len());
    for (name, req) in &cases {
        let page = list(&mut first, key, req.clone()).await?;
        shape.push((page.tokens.len(), !page.next_page_token.is_empty()));
        let w = drive(
            clients.len(),
            warmup,
            opts.list_budget / 4,
            step(&clients, key, req.clone()),
        )
        .await;
        if let Some(e) = w.first_error {
            return Err(BenchError::Setup(format!(
                "ListTokens {name} fails during warm-up ({} errors): {e}",
                w.errors
            )));
        }
    }
    Ok(Prepared {
        clients,
        key: key.to_owned(),
        cases,
        shape,
    })
}

/// Measures every filter against each server (`(url, key)`), interleaved: in each of
/// `opts.rounds` rounds every filter runs on every server in turn (the server order rotates
/// per round), so drift of a noisy machine hits all filters and servers alike. Returns one
/// list of results per server.
pub async fn run(
    servers: &[(String, String)],
    opts: &Options,
) -> Result<Vec<Vec<ListResult>>, BenchError> {
    let mut prepared = Vec::with_capacity(servers.len());
    for (url, key) in servers {
        prepared.push(prepare(url, key, opts).await?);
    }
    let rounds = opts.rounds.max(1);
    let budget = opts.list_budget / rounds as u32;
    // measured[filter][server]
    let mut measured: Vec<Vec<Driven>> = (0..FILTER_COUNT)
        .map(|_| prepared.iter().map(|_| Driven::default()).collect())
        .collect();
    for round in 0..rounds {
        let n = opts.lists / rounds + usize::from(round < opts.lists % rounds);
        for (i, by_server) in measured.iter_mut().enumerate() {
            for k in 0..prepared.len() {
                let s = (k + round) % prepared.len();
                let p = &prepared[s];
                let d = drive(
                    p.clients.len(),
                    n,
                    budget,
                    step(&p.clients, &p.key, p.cases[i].1.clone()),
                )
                .await;
                by_server[s].merge(d);
            }
        }
    }
    let mut per_server: Vec<Vec<Driven>> = prepared.iter().map(|_| Vec::new()).collect();
    for by_server in measured {
        for (s, d) in by_server.into_iter().enumerate() {
            per_server[s].push(d);
        }
    }
    Ok(prepared
        .into_iter()
        .zip(per_server)
        .map(|(p, m)| results(p, m, opts.lists))
        .collect())
}

fn results(p: Prepared, measured: Vec<Driven>, asked: usize) -> Vec<ListResult> {
    let mut out = Vec::with_capacity(p.cases.len());
    for ((filter, _), (d, (rows, more))) in
        p.cases.into_iter().zip(measured.into_iter().zip(p.shape))
    {
        let first_error = d.first_error.clone();
        let latency = d.summary();
        out.push(ListResult {
            filter,
            rows,
            more,
            truncated: latency.count + latency.errors < asked,
            latency,
            p50_vs_none: 0.0,
            first_error,
        });
    }
    let base = out[0].latency.p50_ms;
    for r in &mut out {
        r.p50_vs_none = if base > 0.0 {
            r.latency.p50_ms / base
        } else {
            0.0
        };
    }
    out
}
