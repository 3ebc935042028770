//! The gateway's one typed configuration (flags and environment).

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Clone)]
#[command(
    name = "keygate-gateway",
    version,
    about = "Keygate's edge gateway: checks API keys and forwards to backends"
)]
pub struct Config {
    /// Where callers connect (HTTP/1.1 and h2c).
    #[arg(long, env = "KEYGATE_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served (keep it private).
    #[arg(
        long,
        env = "KEYGATE_GATEWAY_ADMIN_LISTEN",
        default_value = "127.0.0.1:9465"
    )]
    pub admin_listen: SocketAddr,
    /// The local KV file kv-sync writes.
    #[arg(long, env = "KEYGATE_KV_PATH", default_value = "./data/kv.db")]
    pub kv_path: PathBuf,
    /// The edge key (base64 of 32 bytes) that opens route secrets; overrides the file.
    #[arg(long, env = "KEYGATE_EDGE_KEY", hide_env_values = true)]
    pub edge_key: Option<String>,
    /// File holding the edge key (the control plane writes `data/edge.key`).
    #[arg(long, env = "KEYGATE_EDGE_KEY_FILE", default_value = "./data/edge.key")]
    pub edge_key_file: PathBuf,
    /// The gateway's public base URL, for rewriting backend redirects (default: from each
    /// request's Host header, scheme http).
    #[arg(long, env = "KEYGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How often the KV is checked for changes, in milliseconds.
    #[arg(long, env = "KEYGATE_GATEWAY_POLL_MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub poll_ms: u64,
    /// Control plane address (usage reports go there).
    #[arg(long, env = "KEYGATE_ADDR", default_value = "http://127.0.0.1:7000")]
    pub control_plane: String,
    /// Management key of a service account with the GATEWAY capability. Without one (or
    /// the file), usage is not reported: requests are counted in metrics only (no rollups,
    /// no events).
    #[arg(long, env = "KEYGATE_GATEWAY_KEY", hide_env_values = true)]
    pub gateway_key: Option<String>,
    /// File holding that key.
    #[arg(long, env = "KEYGATE_GATEWAY_KEY_FILE")]
    pub gateway_key_file: Option<PathBuf>,
    /// This instance's name in usage reports (`IngestUsageRequest.gateway`).
    #[arg(long, env = "KEYGATE_GATEWAY_NAME", default_value = "gateway")]
    pub name: String,
    /// Raw usage events (refusals, 5xx, each token's first success of a minute) held in
    /// memory while the control plane is unreachable; beyond it the oldest are dropped (and
    /// counted).
    #[arg(long, env = "KEYGATE_USAGE_BUFFER", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    pub usage_buffer: u64,
    /// How often, in milliseconds, each worker hands its request rollups to the usage
    /// sender, and the sender reports them (and the raw events) to the control plane.
    #[arg(long, env = "KEYGATE_USAGE_FLUSH_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub usage_flush_ms: u64,
    /// Raw events kept per second for refusals (status >= 400 answered by the gateway) and
    /// backend 5xx, over the whole gateway; the rest are counted as sampled out (their
    /// requests are in the rollups all the same). 0: none.
    #[arg(long, env = "KEYGATE_USAGE_EVENT_BUDGET", default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub usage_event_budget: u32,
    /// Rollup keys held in memory, not yet accepted by the control plane; beyond it the
    /// oldest minutes are dropped and their requests reported as `rollups_dropped`.
    #[arg(long, env = "KEYGATE_USAGE_MAX_PENDING_ROLLUPS", default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub usage_max_pending_rollups: u64,
    /// Legacy key prefixes (without `_`) accepted without checksum, comma separated.
    #[arg(long, env = "KEYGATE_LEGACY_PREFIXES", value_delimiter = ',')]
    pub legacy_prefixes: Vec<String>,
    /// Threads serving requests, each with its own event loop and listener (SO_REUSEPORT);
    /// 0: one per CPU.
    #[arg(long, env = "KEYGATE_GATEWAY_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Log output: `text` or `json`.
    #[arg(long, env = "KEYGATE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("kv_path", &self.kv_path)
            .field("edge_key", &self.edge_key.as_ref().map(|_| "<set>"))
            .field("edge_key_file", &self.edge_key_file)
            .field("public_url", &self.public_url)
            .field("poll_ms", &self.poll_ms)
            .field("control_plane", &self.control_plane)
            .field("gateway_key", &self.gateway_key.as_ref().map(|_| "<set>"))
            .field("gateway_key_file", &self.gateway_key_file)
            .field("name", &self.name)
            .field("usage_buffer", &self.usage_buffer)
            .field("usage_flush_ms", &self.usage_flush_ms)
            .field("usage_event_budget", &self.usage_event_budget)
            .field("usage_max_pending_rollups", &self.usage_max_pending_rollups)
            .field("legacy_prefixes", &self.legacy_prefixes)
            .finish()
    }
}

impl Config {
    /// Defaults for tests and embedding: every field as if no flag or variable was given.
    pub fn defaults() -> Self {
        Self::parse_from(["keygate-gateway"])
    }

    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }

    /// The edge key text from `--edge-key` or the key file.
    pub fn edge_key_text(&self) -> Result<String, String> {
        if let Some(k) = &self.edge_key {
            return Ok(k.trim().to_owned());
        }
        std::fs::read_to_string(&self.edge_key_file)
            .map(|s| s.trim().to_owned())
            .map_err(|e| {
                format!(
                    "edge key file {}: {e} (set KEYGATE_EDGE_KEY or KEYGATE_EDGE_KEY_FILE; the control plane writes data/edge.key)",
                    self.edge_key_file.display()
                )
            })
    }

    /// The gateway key, if configured.
    pub fn gateway_key_text(&self) -> Result<Option<String>, String> {
        if let Some(k) = &self.gateway_key {
            return Ok(Some(k.trim().to_owned()));
        }
        match &self.gateway_key_file {
            Some(p) => std::fs::read_to_string(p)
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|e| format!("gateway key file {}: {e}", p.display())),
            None => Ok(None),
        }
    }
}
