//! Criterion bench: ListTokens (page of 100) through the real gRPC server and client over a
//! seeded 100k-token SQLite database, with no filter and with a team filter, against the
//! server as shipped and the TCP_NODELAY what-if (see README.md). Short by design (20
//! samples, a few seconds each); `keygate-bench control-plane` is the full benchmark.

use criterion::{Criterion, criterion_group, criterion_main};
use keygate_bench::control_plane::{connect, setup};
use keygate_bench::dataset;
use keygate_control_plane::testing::{Backend, with_key};
use keygate_proto::v1 as pb;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use std::time::Duration;

const TOKENS: u64 = 100_000;

fn list_tokens(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let seeded = rt
        .block_on(setup::seed(
            Backend::Sqlite,
            TOKENS,
            &setup::Place::default(),
        ))
        .expect("seed");
    let server = rt
        .block_on(seeded.serve(setup::Serve::AsShipped))
        .expect("serve");
    bench_server(c, &rt, "shipped", &server);
    rt.block_on(server.stop());
    rt.block_on(seeded.finish(false))
        .expect("remove the database");
}

fn bench_server(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    mode: &str,
    server: &setup::Running,
) {
    let key = server.admin_key().to_owned();
    let channel = rt
        .block_on(connect(&server.url(), Duration::from_secs(30)))
        .expect("connect");
    let client = TokenServiceClient::new(channel);

    let mut group = c.benchmark_group(format!("list_tokens/sqlite-100k/{mode}"));
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let cases = [
        (
            "no_filter",
            pb::ListTokensRequest {
                page_size: 100,
                ..Default::default()
            },
        ),
        (
            "team_id",
            pb::ListTokensRequest {
                page_size: 100,
                team_id: dataset::team_id(42),
                ..Default::default()
            },
        ),
    ];
    for (name, req) in cases {
        group.bench_function(name, |b| {
            b.to_async(rt).iter(|| {
                let mut client = client.clone();
                let req = with_key(&key, req.clone());
                async move {
                    let page = client.list_tokens(req).await.expect("ListTokens");
                    assert_eq!(page.get_ref().tokens.len(), 100);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, list_tokens);
criterion_main!(benches);
