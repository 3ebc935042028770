//! kv-sync's one typed configuration (flags and environment).

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KvKind {
    /// A local SQLite file (the native gateway reads it).
    Sqlite,
    /// Cloudflare Workers KV over its REST API.
    Cloudflare,
}

#[derive(Parser, Clone)]
#[command(
    name = "keygate-kv-sync",
    version,
    about = "Follows the Keygate change feed into a KV store"
)]
pub struct Config {
    /// Control plane address.
    #[arg(long, env = "KEYGATE_ADDR", default_value = "http://127.0.0.1:7000")]
    pub control_plane: String,
    /// Management key of a service account with the SYNC capability.
    #[arg(long, env = "KEYGATE_SYNC_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// File holding that key.
    #[arg(long, env = "KEYGATE_SYNC_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Name reported to the control plane.
    #[arg(long, env = "KEYGATE_SYNC_FOLLOWER")]
    pub follower: Option<String>,
    #[arg(long, env = "KEYGATE_KV", value_enum, default_value = "sqlite")]
    pub kv: KvKind,
    /// The local KV file (kv = sqlite).
    #[arg(long, env = "KEYGATE_KV_PATH", default_value = "./data/kv.db")]
    pub kv_path: PathBuf,
    /// Cloudflare account id (kv = cloudflare).
    #[arg(long, env = "CLOUDFLARE_ACCOUNT_ID")]
    pub cf_account: Option<String>,
    /// Workers KV namespace id (kv = cloudflare).
    #[arg(long, env = "CLOUDFLARE_KV_NAMESPACE_ID")]
    pub cf_namespace: Option<String>,
    /// API token with "Workers KV Storage: Edit" (kv = cloudflare).
    #[arg(long, env = "CLOUDFLARE_API_TOKEN", hide_env_values = true)]
    pub cf_api_token: Option<String>,
    /// API base URL (tests point it at the local stand-in).
    #[arg(
        long,
        env = "CLOUDFLARE_API_BASE_URL",
        default_value = "https://api.cloudflare.com/client/v4"
    )]
    pub cf_base_url: String,
    /// Where `/metrics` and `/healthz` are served.
    #[arg(
        long,
        env = "KEYGATE_SYNC_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: SocketAddr,
    /// Full reconciliation every this many seconds (0: only on start and on request).
    #[arg(long, env = "KEYGATE_SYNC_RECONCILE_SECS", default_value_t = 3600)]
    pub reconcile_secs: u64,
    /// Status report to the control plane every this many seconds.
    #[arg(long, env = "KEYGATE_SYNC_REPORT_SECS", default_value_t = 10)]
    pub report_secs: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("control_plane", &self.control_plane)
            .field("key", &self.key.as_ref().map(|_| "<set>"))
            .field("key_file", &self.key_file)
            .field("follower", &self.follower_name())
            .field("kv", &self.kv)
            .field("kv_path", &self.kv_path)
            .field("cf_account", &self.cf_account)
            .field("cf_namespace", &self.cf_namespace)
            .field("cf_api_token", &self.cf_api_token.as_ref().map(|_| "<set>"))
            .field("cf_base_url", &self.cf_base_url)
            .field("metrics_listen", &self.metrics_listen)
            .finish()
    }
}

impl Config {
    pub fn follower_name(&self) -> String {
        self.follower.clone().unwrap_or_else(|| match self.kv {
            KvKind::Sqlite => "kv-sync/local".into(),
            KvKind::Cloudflare => "kv-sync/cloudflare".into(),
        })
    }

    /// The sync key from `--key` or `--key-file`.
    pub fn sync_key(&self) -> Result<String, String> {
        if let Some(k) = &self.key {
            return Ok(k.trim().to_owned());
        }
        if let Some(p) = &self.key_file {
            return std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("--key-file {}: {e}", p.display()));
        }
        Err("a sync key is required: --key / KEYGATE_SYNC_KEY or --key-file / KEYGATE_SYNC_KEY_FILE".into())
    }
}
