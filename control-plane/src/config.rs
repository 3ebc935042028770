//! The control plane's one typed configuration, parsed once from flags and environment,
//! validated, and logged with secrets redacted.

use clap::Parser;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Parser, Clone)]
#[command(
    name = "keygate-control-plane",
    version,
    about = "Keygate control plane: gRPC + grpc-web API over SQLite or PostgreSQL"
)]
pub struct Config {
    /// Address to listen on for gRPC, grpc-web (HTTP/1.1) and health checks.
    #[arg(long, env = "KEYGATE_LISTEN", default_value = "127.0.0.1:7000")]
    pub listen: SocketAddr,

    /// Directory for the SQLite database, the generated master key and the bootstrap key file.
    #[arg(long, env = "KEYGATE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// `postgres://...` for PostgreSQL; default `sqlite://<data-dir>/keygate.db`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Base64 of 32 bytes sealing backend secrets at rest. Default: `<data-dir>/master.key`,
    /// generated on first start (mode 0600).
    #[arg(long, env = "KEYGATE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// Base64 of 32 bytes: the edge key, to which backend secrets are sealed for the gateways
    /// (they hold the same key). Default: `<data-dir>/edge.key`, generated on first start.
    #[arg(long, env = "KEYGATE_EDGE_KEY", hide_env_values = true)]
    pub edge_key: Option<String>,

    /// Create (once) SYNC and GATEWAY service accounts for the embedded stack and write their
    /// keys to `<data dir>/kv-sync.key` and `<data dir>/gateway.key` (mode 0600). The run
    /// command sets it; production deployments create their service accounts explicitly.
    #[arg(long, env = "KEYGATE_EMBEDDED_SERVICE_KEYS", default_value_t = false)]
    pub embedded_service_keys: bool,

    /// How long change events stay in the outbox; followers further behind resync.
    #[arg(long, env = "KEYGATE_OUTBOX_RETENTION_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u32).range(1..=8760))]
    pub outbox_retention_hours: u32,

    /// How long gateway usage events are kept, in days (1-3650); older ones are deleted with
    /// the periodic outbox compaction.
    #[arg(long, env = "KEYGATE_USAGE_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub usage_retention_days: u32,

    /// Origins allowed to call grpc-web from a browser, comma-separated, or `*`. Empty: none.
    #[arg(
        long,
        env = "KEYGATE_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_origins: Vec<String>,

    /// This control plane's public URL as browsers reach it (`https://keygate.example.com`).
    /// When https, the admin UI's session cookie is `Secure`; its origin may use the cookie
    /// besides the server's own. Empty: the cookie is `Secure` only on requests that came over
    /// TLS (`X-Forwarded-Proto: https` from a proxy). Not `KEYGATE_PUBLIC_URL`: that is the
    /// gateway's, and both often run from one environment (`scripts/run.sh`).
    #[arg(long, env = "KEYGATE_CONTROL_PLANE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Serve the admin UI from this directory (a built `admin-web/dist`, read at each
    /// request) instead of the files embedded in the binary. For UI development.
    #[arg(long, env = "KEYGATE_ADMIN_WEB_DIR")]
    pub admin_web_dir: Option<PathBuf>,

    /// Email of the first system admin, created on first start (with the password below)
    /// instead of printing a setup code.
    #[arg(long, env = "KEYGATE_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// Password of the first system admin (12-256 characters). Only read on first start.
    #[arg(long, env = "KEYGATE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Display name of the first system admin.
    #[arg(long, env = "KEYGATE_ADMIN_NAME", default_value = "Administrator")]
    pub admin_name: String,

    /// Session lifetime in hours (1-720).
    #[arg(long, env = "KEYGATE_SESSION_TTL_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub session_ttl_hours: u32,

    /// Hosts or networks alert webhooks may call although private, loopback, link-local or
    /// unspecified, comma-separated (`127.0.0.1`, `10.0.0.0/8`, `hooks.internal`). Empty: none.
    #[arg(
        long,
        env = "KEYGATE_ALERT_WEBHOOK_ALLOW",
        value_delimiter = ',',
        default_value = ""
    )]
    pub alert_webhook_allow: Vec<String>,

    /// Seconds between alert rule evaluations (10-3600).
    #[arg(long, env = "KEYGATE_ALERT_EVAL_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(10..=3600))]
    pub alert_eval_seconds: u32,

    /// The gateway's public base URL, as workflows call it: the admin UI's cURL and n8n
    /// snippets start with it (`SystemService.GetServerInfo`).
    #[arg(
        long,
        env = "KEYGATE_GATEWAY_PUBLIC_URL",
        default_value = crate::system::DEFAULT_GATEWAY_PUBLIC_URL
    )]
    pub gateway_public_url: String,

    /// Accept gateways' usage reports (`UsageService.IngestUsage`). Off: every report is
    /// refused (FAILED_PRECONDITION) and GetServerInfo says usage is off.
    #[arg(long, env = "KEYGATE_USAGE_INGESTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub usage_ingestion: bool,

    /// Log format: `text` or `json`.
    #[arg(long, env = "KEYGATE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database_display())
            .field("master_key", &self.master_key.as_ref().map(|_| "<set>"))
            .field("edge_key", &self.edge_key.as_ref().map(|_| "<set>"))
            .field("outbox_retention_hours", &self.outbox_retention_hours)
            .field("usage_retention_days", &self.usage_retention_days)
            .field("cors_origins", &self.cors())
            .field("public_url", &self.public_url)
            .field("admin_web_dir", &self.admin_web_dir)
            .field("admin_email", &self.admin_email)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<set>"),
            )
            .field("session_ttl_hours", &self.session_ttl_hours)
            .field("alert_webhook_allow", &self.alert_webhook_allow)
            .field("alert_eval_seconds", &self.alert_eval_seconds)
            .field("gateway_public_url", &self.gateway_public_url)
            .field("usage_ingestion", &self.usage_ingestion)
            .field("log_format", &self.log_format)
            .finish()
    }
}

impl Config {
    /// The database URL to open.
    pub fn database_url(&self) -> String {
        database_url_for(&self.data_dir, self.database_url.as_deref())
    }

    /// The database URL without any password, for logs.
    pub fn database_display(&self) -> String {
        redact_url(&self.database_url())
    }

    /// The first admin from configuration, if both email and password are set.
    pub fn first_admin(&self) -> Option<crate::bootstrap::FirstAdmin> {
        match (&self.admin_email, &self.admin_password) {
            (Some(email), Some(password)) => Some(crate::bootstrap::FirstAdmin {
                email: email.clone(),
                display_name: self.admin_name.clone(),
                password: password.clone(),
            }),
            _ => None,
        }
    }

    /// Where the admin UI's files come from.
    pub fn admin_web(&self) -> crate::web::AdminWebSource {
        match &self.admin_web_dir {
            Some(dir) => crate::web::AdminWebSource::Dir(dir.clone()),
            None => crate::web::AdminWebSource::Embedded,
        }
    }

    /// The public URL, if set and not empty.
    pub fn public_url(&self) -> Option<String> {
        self.public_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
    }

    /// Non-empty CORS origins.
    pub fn cors(&self) -> Vec<String> {
        self.cors_origins
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The alert settings (allow-list parsed).
    pub fn alerts(&self) -> Result<crate::alerts::AlertSettings, String> {
        Ok(crate::alerts::AlertSettings {
            allow: crate::alerts::Allow::parse(&self.alert_webhook_allow)
                .map_err(|e| format!("KEYGATE_ALERT_WEBHOOK_ALLOW: {e}"))?,
            eval_interval: std::time::Duration::from_secs(u64::from(self.alert_eval_seconds)),
        })
    }

    /// What GetServerInfo reports.
    pub fn system(&self) -> Result<crate::system::SystemSettings, String> {
        Ok(crate::system::SystemSettings {
            gateway_public_url: crate::system::normalize_gateway_url(&self.gateway_public_url)
                .map_err(|e| format!("KEYGATE_GATEWAY_PUBLIC_URL: {e}"))?,
            usage_enabled: self.usage_ingestion,
        })
    }

    /// Checks combinations clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        let url = self.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(
                "DATABASE_URL: must start with sqlite:, postgres:// or postgresql://".into(),
            );
        }
        if self.admin_email.is_some() != self.admin_password.is_some() {
            return Err(
                "KEYGATE_ADMIN_EMAIL and KEYGATE_ADMIN_PASSWORD must be set together".into(),
            );
        }
        for o in self.cors() {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(format!(
                    "KEYGATE_CORS_ORIGINS: \"{o}\" must be \"*\" or an http(s) origin"
                ));
            }
        }
        self.alerts()?;
        self.system()?;
        if let Some(dir) = &self.admin_web_dir
            && !dir.is_dir()
        {
            return Err(format!(
                "KEYGATE_ADMIN_WEB_DIR: {} is not a directory",
                dir.display()
            ));
        }
        if let Some(u) = self.public_url() {
            let origin = crate::browser::origin_of(&u);
            if origin.is_none() {
                return Err(format!(
                    "KEYGATE_CONTROL_PLANE_PUBLIC_URL: \"{u}\" must be an absolute http(s) URL"
                ));
            }
        }
        Ok(())
    }
}

/// Replaces the password in `scheme://user:password@host/...` with `***`.
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => u.to_owned(),
    }
}

/// Writes `contents` to a new file readable only by its owner (0600 on Unix). Fails if the
/// file exists, so a secret is never silently replaced.
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

/// The database a control plane with this data directory and `DATABASE_URL` uses: the URL
/// if set, else `keygate.db` in the data directory (SQLite).
pub fn database_url_for(data_dir: &std::path::Path, database_url: Option<&str>) -> String {
    match database_url {
        Some(u) if !u.is_empty() => u.to_owned(),
        _ => format!("sqlite://{}", data_dir.join("keygate.db").display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_and_defaults_to_sqlite() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        let c = Config::parse_from(["x", "--data-dir", "/tmp/kg"]);
        assert_eq!(c.database_url(), "sqlite:///tmp/kg/keygate.db");
        assert!(c.validate().is_ok());
        let c = Config::parse_from([
            "x",
            "--master-key",
            "c2VjcmV0",
            "--database-url",
            "postgres://u:pw@h/d",
        ]);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("pw@"),
            "{shown}"
        );
        assert_eq!(c.usage_retention_days, 30);
        assert!(Config::try_parse_from(["x", "--usage-retention-days", "0"]).is_err());
        let c = Config::parse_from(["x", "--database-url", "mysql://x"]);
        assert!(c.validate().unwrap_err().starts_with("DATABASE_URL"));
    }

    #[test]
    fn system_settings() {
        let c = Config::parse_from(["x"]);
        let s = c.system().unwrap();
        assert_eq!(s.gateway_public_url, "http://127.0.0.1:8080");
        assert!(s.usage_enabled);
        let c = Config::parse_from([
            "x",
            "--gateway-public-url",
            "https://gw.example.com/",
            "--usage-ingestion",
            "false",
        ]);
        let s = c.system().unwrap();
        assert_eq!(s.gateway_public_url, "https://gw.example.com");
        assert!(!s.usage_enabled);
        let c = Config::parse_from(["x", "--gateway-public-url", "gw.example.com"]);
        assert!(
            c.validate()
                .unwrap_err()
                .starts_with("KEYGATE_GATEWAY_PUBLIC_URL")
        );
    }

    #[test]
    fn alert_settings() {
        let c = Config::parse_from(["x"]);
        let a = c.alerts().unwrap();
        assert!(a.allow.is_empty());
        assert_eq!(a.eval_interval, std::time::Duration::from_secs(60));
        let c = Config::parse_from([
            "x",
            "--alert-webhook-allow",
            "127.0.0.1,10.0.0.0/8,hooks.internal",
            "--alert-eval-seconds",
            "10",
        ]);
        assert!(c.validate().is_ok());
        assert!(!c.alerts().unwrap().allow.is_empty());
        assert_eq!(c.alerts().unwrap().eval_interval.as_secs(), 10);
        let c = Config::parse_from(["x", "--alert-webhook-allow", "10.0.0.0/99"]);
        assert!(
            c.validate()
                .unwrap_err()
                .starts_with("KEYGATE_ALERT_WEBHOOK_ALLOW")
        );
        assert!(Config::try_parse_from(["x", "--alert-eval-seconds", "9"]).is_err());
        assert!(Config::try_parse_from(["x", "--alert-eval-seconds", "3601"]).is_err());
    }
}
