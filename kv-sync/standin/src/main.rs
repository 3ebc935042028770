//! `keygate-kv-standin`: runs the Cloudflare KV REST stand-in for manual use and prints its
//! base URL. Point a client's base URL at it with the same token, account and namespace.

use std::net::SocketAddr;

use clap::Parser;
use keygate_kv_standin::{StandIn, StandInConfig};

#[derive(Parser)]
#[command(
    version,
    about = "Local stand-in of the Cloudflare Workers KV REST API (v4)"
)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// API token accepted as `Authorization: Bearer <token>`.
    #[arg(long, env = "KV_STANDIN_TOKEN")]
    token: String,
    /// Account ID in the paths.
    #[arg(long, default_value = "0123456789abcdef0123456789abcdef")]
    account: String,
    /// ID of the namespace created at start.
    #[arg(long, default_value = "fedcba9876543210fedcba9876543210")]
    namespace: String,
    /// Turn the API rate limit (1,200 requests per 5 minutes) off.
    #[arg(long)]
    no_rate_limit: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keygate_logging::init_stderr("keygate_kv_standin=info", keygate_logging::Format::Text);
    let args = Args::parse();
    let mut cfg = StandInConfig::new(args.token, args.account, args.namespace);
    cfg.listen = args.listen;
    if args.no_rate_limit {
        cfg.rate_limit = None;
    }
    let standin = StandIn::start(cfg).await?;
    println!("{}", standin.url());
    println!(
        "account {}  namespace {}",
        standin.account_id(),
        standin.namespace_id()
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = terminate.recv() => {}
    }
    standin.shutdown().await;
    Ok(())
}
