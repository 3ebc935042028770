use clap::Parser;
use keygate_gateway::Config;

// Many small, short-lived allocations per request (headers, ids): mimalloc serves them from
// thread-local pages, measurably cheaper than glibc malloc on the proxy path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    // Before any thread starts: it reads and clears LISTEN_FDS / LISTEN_PID.
    let inherited = keygate_gateway::server::inherited_listener()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(config, inherited))
}

async fn run(
    config: Config,
    inherited: Option<keygate_gateway::server::Inherited>,
) -> anyhow::Result<()> {
    keygate_logging::init(
        "info",
        keygate_logging::Format::from_name(&config.log_format),
    );
    tracing::info!(config = ?config, "starting");
    let running = keygate_gateway::server::start_with(config, inherited).await?;
    println!(
        "keygate-gateway listening on http://{} (admin: http://{}/readyz, /metrics)",
        running.addr, running.admin_addr
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
