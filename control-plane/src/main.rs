//! `keygate-control-plane`: parse config, open storage, bootstrap, serve.

use anyhow::Context;
use clap::Parser;
use keygate_control_plane::bootstrap::{
    Bootstrap, ensure_embedded_service_keys, ensure_first_admin,
};
use keygate_control_plane::config::Config;
use keygate_control_plane::secrets::MasterKey;
use keygate_control_plane::server::{ServerParts, serve};
use keygate_control_plane::sessions::service::AuthSettings;
use keygate_control_plane::store;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    init_tracing(&config.log_format);
    config.validate().map_err(anyhow::Error::msg)?;
    tracing::info!(config = ?config, "starting");

    create_private_dir(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let master_key = match &config.master_key {
        Some(b64) => MasterKey::from_base64(b64).context("KEYGATE_MASTER_KEY")?,
        None => {
            let (key, created) = MasterKey::load_or_create(&config.data_dir)?;
            if created {
                tracing::warn!(
                    path = %config.data_dir.join("master.key").display(),
                    "generated a new master key; back it up: sealed route secrets cannot be opened without it"
                );
            }
            key
        }
    };
    let edge_key = match &config.edge_key {
        Some(b64) => MasterKey::from_base64(b64).context("KEYGATE_EDGE_KEY")?,
        None => {
            let path = config.data_dir.join("edge.key");
            let (key, created) = MasterKey::load_or_create_file(&path)?;
            if created {
                tracing::info!(path = %path.display(), "generated a new edge key; gateways need the same key");
            }
            key
        }
    };
    let store = store::open(&config.database_url())
        .await
        .with_context(|| format!("opening database {}", config.database_display()))?;

    match ensure_first_admin(&store, &config.data_dir, config.first_admin().as_ref()).await? {
        Bootstrap::Existing => {}
        Bootstrap::AdminCreated(user) => {
            tracing::info!(email = %user.email, "first system admin created from configuration");
            println!(
                "keygate: first system admin {} created; sign in with `keygate login`",
                user.email
            );
        }
        Bootstrap::SetupCode { code, file } => {
            println!("================================================================");
            println!(" Keygate first start: no users yet. One-time setup code (24 h):");
            println!();
            println!("   {}", code.expose());
            println!();
            println!(
                " Also saved to {} (mode 0600). Create the first system admin:",
                file.display()
            );
            println!(
                "   keygate setup --code-file {} --email you@example.com --name \"Your Name\"",
                file.display()
            );
            println!("================================================================");
        }
    }

    if config.embedded_service_keys {
        for file in ensure_embedded_service_keys(&store, &config.data_dir).await? {
            tracing::info!(file = %file.display(), "wrote an embedded service-account key");
        }
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening (gRPC over HTTP/2, grpc-web over HTTP/1.1)");
    println!("keygate control plane listening on http://{addr} (gRPC, grpc-web)");
    let admin_web = config.admin_web();
    if admin_web.is_built().await {
        println!("keygate admin UI: http://{addr}/");
    } else {
        tracing::warn!(
            source = ?admin_web,
            "the admin UI is not built (cd admin-web && npm ci && npm run build); its paths answer how to build it"
        );
    }

    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
    };
    // Outbox compaction: followers further behind than the retention resync from a snapshot.
    // Usage retention runs on the same tick.
    {
        let store = store.clone();
        let retention_ms = i64::from(config.outbox_retention_hours) * 3_600_000;
        let usage_retention_ms = i64::from(config.usage_retention_days) * 86_400_000;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
            loop {
                tick.tick().await;
                let now = keygate_control_plane::time::now_ms();
                match store.compact_changes(now - retention_ms).await {
                    Ok(rev) => tracing::debug!(compacted_revision = rev, "outbox compacted"),
                    Err(e) => tracing::warn!(error = %e, "outbox compaction failed"),
                }
                match store.delete_usage_before(now - usage_retention_ms).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "usage events past retention deleted"),
                    Err(e) => tracing::warn!(error = %e, "usage retention failed"),
                }
                // Rollup tiers: minutes 48 h, hours 90 days, days 400 days.
                match store.apply_rollup_retention(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "usage rollups past retention deleted"),
                    Err(e) => tracing::warn!(error = %e, "usage rollup retention failed"),
                }
            }
        });
    }
    // Alert rules: evaluated on their own timer (one replica at a time on PostgreSQL).
    let alerts = config.alerts().map_err(anyhow::Error::msg)?;
    keygate_control_plane::alerts::evaluate::spawn(
        store.clone(),
        master_key.clone(),
        alerts.clone(),
    );
    serve(
        listener,
        ServerParts {
            store,
            master_key,
            cors_origins: config.cors(),
            edge_key,
            alerts,
            system: config.system().map_err(anyhow::Error::msg)?,
            public_url: config.public_url(),
            admin_web,
            auth: AuthSettings {
                session_ttl: std::time::Duration::from_secs(
                    u64::from(config.session_ttl_hours) * 3600,
                ),
                ..AuthSettings::default()
            },
        },
        shutdown,
    )
    .await?;
    Ok(())
}

/// Creates the data directory readable only by its owner (it holds the database, the master
/// key and the bootstrap key).
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

fn init_tracing(format: &str) {
    keygate_logging::init("info,sqlx=warn", keygate_logging::Format::from_name(format));
}
