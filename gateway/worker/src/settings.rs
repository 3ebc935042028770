//! The Worker's settings: vars (plain configuration in `wrangler.toml`) and secrets (secret
//! bindings set with `wrangler secret put`, or `.dev.vars` locally), read once per request
//! from the environment. Secrets never come from vars or KV, and are never logged.

use keygate_gateway_core as core;
use worker::Env;

/// The Workers KV namespace binding that kv-sync's `cloudflare` backend writes.
pub const KV_BINDING: &str = "KEYGATE_KV";
/// Secret: the edge key (base64, 32 bytes) that opens sealed backend credentials.
pub const EDGE_KEY_SECRET: &str = "KEYGATE_EDGE_KEY";
/// Secret: the GATEWAY-capability service-account key usage is sent with.
pub const GATEWAY_KEY_SECRET: &str = "KEYGATE_GATEWAY_KEY";
/// Var: the control plane's base URL (grpc-web), e.g. `https://keygate.example.com`.
pub const CONTROL_PLANE_VAR: &str = "KEYGATE_CONTROL_PLANE_URL";
/// Var: the gateway's public base URL (redirect `Location` rewriting); default the request's
/// own scheme and host.
pub const PUBLIC_URL_VAR: &str = "KEYGATE_PUBLIC_URL";
/// Var: legacy key prefixes accepted without a checksum, comma-separated (e.g. `ntk`).
pub const LEGACY_PREFIXES_VAR: &str = "KEYGATE_LEGACY_PREFIXES";
/// Var: usage flush interval in ms (default 10,000; at most 25,000 so a flush scheduled from
/// `waitUntil` ends before the 30 s cut).
pub const USAGE_FLUSH_VAR: &str = "KEYGATE_USAGE_FLUSH_MS";
/// Var: `"off"` turns usage reporting off (no control plane needed).
pub const USAGE_VAR: &str = "KEYGATE_USAGE";
/// Var: `"on"` asks the control plane about a key KV has no record of (src/lookup.rs); needs
/// the control plane URL and the GATEWAY key.
pub const LOOKUP_VAR: &str = "KEYGATE_LOOKUP_ON_MISS";

pub const DEFAULT_FLUSH_MS: u64 = 10_000;
pub const MAX_FLUSH_MS: u64 = 25_000;

/// Usage reporting: where and with which key.
#[derive(Clone)]
pub struct UsageTarget {
    /// The control plane's base URL, no trailing `/`.
    pub base_url: String,
    /// The GATEWAY service-account key (secret).
    pub key: String,
    pub flush_ms: u64,
}

impl std::fmt::Debug for UsageTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageTarget")
            .field("base_url", &self.base_url)
            .field("key", &"<redacted>")
            .field("flush_ms", &self.flush_ms)
            .finish()
    }
}

/// Everything the Worker reads from its environment.
pub struct Settings {
    /// The edge key's text (secret); parsed when the route table is compiled.
    pub edge_key: String,
    pub usage: Option<UsageTarget>,
    /// Ask the control plane on a KV miss (with `usage`'s URL and key).
    pub lookup_on_miss: bool,
    pub public_url: Option<String>,
    pub core: core::Config,
}

/// A setting that is missing or invalid: the Worker answers 503 and forwards nothing. Names
/// the binding, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unconfigured {
    pub binding: &'static str,
    pub rule: &'static str,
}

impl std::fmt::Display for Unconfigured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.binding, self.rule)
    }
}

fn secret(env: &Env, name: &'static str) -> Result<String, Unconfigured> {
    let value = env
        .secret(name)
        .map(|s| s.to_string())
        .map_err(|_| Unconfigured {
            binding: name,
            rule: "secret binding missing (wrangler secret put, or .dev.vars locally)",
        })?;
    if value.trim().is_empty() {
        return Err(Unconfigured {
            binding: name,
            rule: "secret is empty",
        });
    }
    Ok(value.trim().to_owned())
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string().trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, Unconfigured> {
        let edge_key = secret(env, EDGE_KEY_SECRET)?;
        let usage_off = var(env, USAGE_VAR).is_some_and(|v| v.eq_ignore_ascii_case("off"));
        let usage = if usage_off {
            None
        } else {
            let base_url = var(env, CONTROL_PLANE_VAR).ok_or(Unconfigured {
                binding: CONTROL_PLANE_VAR,
                rule: "var missing (or set KEYGATE_USAGE = \"off\")",
            })?;
            if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
                return Err(Unconfigured {
                    binding: CONTROL_PLANE_VAR,
                    rule: "must be an http:// or https:// URL",
                });
            }
            let flush_ms = match var(env, USAGE_FLUSH_VAR) {
                None => DEFAULT_FLUSH_MS,
                Some(v) => match v.parse::<u64>() {
                    Ok(ms) if (100..=MAX_FLUSH_MS).contains(&ms) => ms,
                    _ => {
                        return Err(Unconfigured {
                            binding: USAGE_FLUSH_VAR,
                            rule: "must be a whole number of ms from 100 to 25000",
                        });
                    }
                },
            };
            Some(UsageTarget {
                base_url: base_url.trim_end_matches('/').to_owned(),
                key: secret(env, GATEWAY_KEY_SECRET)?,
                flush_ms,
            })
        };
        let lookup_on_miss = match var(env, LOOKUP_VAR).as_deref() {
            None | Some("off") => false,
            Some("on") if usage.is_some() => true,
            Some("on") => {
                return Err(Unconfigured {
                    binding: LOOKUP_VAR,
                    rule: "needs usage on (KEYGATE_CONTROL_PLANE_URL and the GATEWAY key)",
                });
            }
            Some(_) => {
                return Err(Unconfigured {
                    binding: LOOKUP_VAR,
                    rule: "must be \"on\" or \"off\"",
                });
            }
        };
        let legacy_prefixes = var(env, LEGACY_PREFIXES_VAR)
            .map(|v| {
                v.split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            edge_key,
            usage,
            lookup_on_miss,
            public_url: var(env, PUBLIC_URL_VAR).map(|u| u.trim_end_matches('/').to_owned()),
            core: core::Config { legacy_prefixes },
        })
    }
}
