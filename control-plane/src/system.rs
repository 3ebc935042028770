//! Facts about the installation and its health for the admin UI: `SystemService`.
//!
//! Owns: `GetServerInfo` (public: version, the gateway's public URL, the token prefix,
//! whether usage is collected, whether first-start setup is due) and `GetSystemStatus`
//! (system admins: database reachability, round trip and schema version, the change feed's
//! followers, the gateways and their config revisions). Must not: write anything, or reveal
//! more than those facts before sign-in.

pub mod service;

pub use service::SystemApi;

/// Settings `GetServerInfo` reports.
#[derive(Debug, Clone)]
pub struct SystemSettings {
    /// The gateway's public base URL, without a trailing `/`.
    pub gateway_public_url: String,
    /// Whether `UsageService.IngestUsage` accepts reports.
    pub usage_enabled: bool,
}

/// The gateway URL of the embedded stack (`scripts/run.sh`).
pub const DEFAULT_GATEWAY_PUBLIC_URL: &str = "http://127.0.0.1:8080";

impl Default for SystemSettings {
    fn default() -> Self {
        Self {
            gateway_public_url: DEFAULT_GATEWAY_PUBLIC_URL.into(),
            usage_enabled: true,
        }
    }
}

/// Checks and normalises a gateway public URL: absolute `http(s)`, a host, no credentials,
/// query or fragment; returned without a trailing `/`.
pub fn normalize_gateway_url(raw: &str) -> Result<String, String> {
    let u = url::Url::parse(raw.trim()).map_err(|e| format!("must be an absolute URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("scheme must be http or https".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("must have a host".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(u.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls() {
        assert_eq!(
            normalize_gateway_url("https://GW.example.com/").unwrap(),
            "https://gw.example.com"
        );
        assert_eq!(
            normalize_gateway_url("http://127.0.0.1:8080/edge/").unwrap(),
            "http://127.0.0.1:8080/edge"
        );
        for bad in [
            "gw.example.com",
            "ftp://gw",
            "https://u:p@gw",
            "https://gw/?a=1",
            "https://gw/#x",
        ] {
            assert!(normalize_gateway_url(bad).is_err(), "{bad}");
        }
    }
}
