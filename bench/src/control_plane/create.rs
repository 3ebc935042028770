//! CreateToken throughput: `create_concurrency` clients, each on its own HTTP/2 connection,
//! share a counter of requests; a warm-up of the same shape runs first, then `creates`
//! measured requests in interleaved rounds. Each token
//! names a seeded team, one route and one tag (so the route check runs), and expires in 90
//! days.

use super::{Driven, Options, Step, connect, drive};
use crate::BenchError;
use crate::dataset;
use crate::stats::Summary;
use futures::future::BoxFuture;
use keygate_control_plane::testing::with_key;
use keygate_proto::v1 as pb;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use serde::Serialize;
use std::sync::Arc;
use tonic::transport::Channel;

/// The create figures.
#[derive(Debug, Clone, Serialize)]
pub struct CreateResult {
    pub concurrency: usize,
    pub warmup: usize,
    pub latency: Summary,
    /// Fewer creates than asked for: the time budget ran out.
    pub truncated: bool,
    pub first_error: Option<String>,
}

fn request(n: usize) -> pb::CreateTokenRequest {
    let i = n as u64;
    pb::CreateTokenRequest {
        name: format!("bench-create-{n}"),
        team_id: dataset::team_id(i),
        description: "created by keygate-bench".into(),
        scopes: vec![
            dataset::route_name(i),
            format!("tag:{}", dataset::tag(i / 3)),
        ],
        expiry: Some(pb::create_token_request::Expiry::ExpiresInDays(90)),
        rate_limit_per_minute: 0,
    }
}

/// One server's create clients.
struct Prepared {
    clients: Vec<TokenServiceClient<Channel>>,
    key: Arc<str>,
}

impl Prepared {
    fn step(&self, offset: usize) -> Step {
        let clients = self.clients.clone();
        let key = self.key.clone();
        Arc::new(move |c, n| -> BoxFuture<'static, Result<(), String>> {
            let mut client = clients[c].clone();
            let req = with_key(&key, request(offset + n));
            Box::pin(async move {
                client
                    .create_token(req)
                    .await
                    .map(|_| ())
                    .map_err(|s| format!("{}: {}", s.code(), s.message()))
            })
        })
    }
}

/// Runs a warm-up, then the measured creates against each server (`(url, key)`), split
/// into `opts.rounds` rounds that alternate between the servers (order rotating per round).
/// Returns one result per server.
pub async fn run(
    servers: &[(String, String)],
    opts: &Options,
) -> Result<Vec<CreateResult>, BenchError> {
    let concurrency = opts.create_concurrency.max(1);
    let warmup = (opts.creates / 10).clamp(concurrency, 500);
    let mut prepared = Vec::with_capacity(servers.len());
    for (url, key) in servers {
        let mut clients = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            clients.push(TokenServiceClient::new(
                connect(url, opts.request_timeout).await?,
            ));
        }
        let p = Prepared {
            clients,
            key: key.as_str().into(),
        };
        let w = drive(concurrency, warmup, opts.create_budget, p.step(0)).await;
        if let Some(e) = w.first_error {
            return Err(BenchError::Setup(format!(
                "CreateToken fails during warm-up ({} errors): {e}",
                w.errors
            )));
        }
        prepared.push(p);
    }
    let rounds = opts.rounds.max(1);
    let budget = opts.create_budget / rounds as u32;
    let mut measured: Vec<Driven> = prepared.iter().map(|_| Driven::default()).collect();
    let mut done = 0;
    for round in 0..rounds {
        let n = opts.creates / rounds + usize::from(round < opts.creates % rounds);
        for k in 0..prepared.len() {
            let s = (k + round) % prepared.len();
            let d = drive(concurrency, n, budget, prepared[s].step(warmup + done)).await;
            measured[s].merge(d);
        }
        done += n;
    }
    Ok(measured
        .into_iter()
        .map(|d| {
            let first_error = d.first_error.clone();
            let latency = d.summary();
            CreateResult {
                concurrency,
                warmup,
                truncated: latency.count + latency.errors < opts.creates,
                latency,
                first_error,
            }
        })
        .collect())
}
