//! `keygate-kv-sync`: parse config, open the KV, serve metrics, follow until SIGTERM.

use anyhow::Context;
use clap::Parser;
use keygate_kv::KvBackend;
use keygate_kv_sync::config::{Config, KvKind};
use keygate_kv_sync::follow::Follower;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    keygate_logging::init("info", keygate_logging::Format::Text);
    tracing::info!(config = ?config, "starting");
    let key = config.sync_key().map_err(anyhow::Error::msg)?;
    let kv: Arc<dyn KvBackend> = match config.kv {
        KvKind::Sqlite => {
            if let Some(dir) = config.kv_path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            Arc::new(keygate_kv::SqliteKv::open(&config.kv_path).await?)
        }
        KvKind::Cloudflare => {
            let need = |v: &Option<String>, name: &str| {
                v.clone()
                    .with_context(|| format!("{name} is required with --kv cloudflare"))
            };
            let mut cf = keygate_kv_cloudflare::CloudflareConfig::new(
                need(&config.cf_account, "CLOUDFLARE_ACCOUNT_ID")?,
                need(&config.cf_namespace, "CLOUDFLARE_KV_NAMESPACE_ID")?,
                need(&config.cf_api_token, "CLOUDFLARE_API_TOKEN")?,
            );
            cf.base_url = config.cf_base_url.clone();
            Arc::new(keygate_kv_cloudflare::CloudflareKv::new(cf)?)
        }
    };
    let follower = Arc::new(
        Follower::new(
            &config.control_plane,
            &key,
            kv.clone(),
            config.follower_name(),
            Duration::from_secs(config.report_secs.max(1)),
            (config.reconcile_secs > 0).then(|| Duration::from_secs(config.reconcile_secs)),
        )?
        .with_batch_window(match config.kv {
            KvKind::Sqlite => Duration::from_millis(20),
            // Workers KV: at most one write per second per key, and the checkpoint is one key.
            KvKind::Cloudflare => Duration::from_secs(1),
        }),
    );

    let listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("binding metrics on {}", config.metrics_listen))?;
    let addr = listener.local_addr()?;
    println!("keygate kv-sync metrics on http://{addr}/metrics");
    let state = follower.state.clone();
    let kv_for_metrics = kv.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let state = state.clone();
                let kv = kv_for_metrics.clone();
                async move { state.render(&kv.stats()) }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
        tracing::info!("stopping");
        let _ = stop_tx.send(true);
    });
    follower.run(stop_rx).await;
    Ok(())
}
