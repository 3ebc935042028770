//! How a measured follower runs: the real `keygate-kv-sync` binary as a child process
//! ([`ChildFollower`]), or the same `keygate_kv_sync::follow::Follower` on the benchmark's
//! own tokio runtime. The child shares nothing with the benchmark but the KV file and the
//! two cores; the in-process follower also shares the runtime's worker threads with the
//! control plane (which runs in this process too).

use crate::BenchError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// How the follower runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum FollowerKind {
    /// The `keygate-kv-sync` binary at this path, as a child process.
    Binary(PathBuf),
    /// `keygate_kv_sync::follow::Follower` on this process's runtime.
    InProcess,
}

impl FollowerKind {
    /// `binary` or `in-process`.
    pub fn label(&self) -> &'static str {
        match self {
            FollowerKind::Binary(_) => "binary",
            FollowerKind::InProcess => "in-process",
        }
    }

    /// A longer description for tables.
    pub fn describe(&self) -> String {
        match self {
            FollowerKind::Binary(p) => format!("keygate-kv-sync binary ({})", p.display()),
            FollowerKind::InProcess => "in-process Follower".into(),
        }
    }
}

/// A running `keygate-kv-sync` writing the SQLite KV at a path.
pub struct ChildFollower {
    child: tokio::process::Child,
    metrics: SocketAddr,
}

impl ChildFollower {
    /// Starts `bin` following `plane_url` into the SQLite KV at `kv_path`, with the shipped
    /// defaults otherwise (batch window 20 ms); waits (at most 10 s) for it to print where its
    /// metrics are served.
    pub async fn spawn(
        bin: &Path,
        plane_url: &str,
        sync_key: &str,
        kv_path: &Path,
        name: &str,
    ) -> Result<Self, BenchError> {
        let mut child = tokio::process::Command::new(bin)
            .env("KEYGATE_ADDR", plane_url)
            .env("KEYGATE_SYNC_KEY", sync_key)
            .env("KEYGATE_KV", "sqlite")
            .env("KEYGATE_KV_PATH", kv_path)
            .env("KEYGATE_SYNC_FOLLOWER", name)
            .env("KEYGATE_SYNC_METRICS_LISTEN", "127.0.0.1:0")
            .env("KEYGATE_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", bin.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Setup("no stdout from keygate-kv-sync".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| BenchError::Setup("keygate-kv-sync printed nothing for 10 s".into()))?
            .map_err(|e| BenchError::Setup(format!("reading keygate-kv-sync's stdout: {e}")))?
            .unwrap_or_default();
        // "keygate kv-sync metrics on http://127.0.0.1:PORT/metrics"
        let metrics = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| {
                BenchError::Setup(format!(
                    "unexpected first line from keygate-kv-sync: {line:?}"
                ))
            })?;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, metrics })
    }

    /// The follower's `/metrics`, as `name -> value` (HELP/TYPE lines left out).
    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>, BenchError> {
        let text = tokio::time::timeout(Duration::from_secs(5), async {
            let mut s = tokio::net::TcpStream::connect(self.metrics).await?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .await?;
            let mut body = String::new();
            s.read_to_string(&mut body).await?;
            Ok::<_, std::io::Error>(body)
        })
        .await
        .map_err(|_| BenchError::Setup("keygate-kv-sync /metrics timed out".into()))?
        .map_err(|e| BenchError::Setup(format!("keygate-kv-sync /metrics: {e}")))?;
        Ok(parse_metrics(&text))
    }

    /// The child's PID (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM (the binary's clean stop) and up to 5 s to exit, then SIGKILL.
    pub async fn stop(mut self) {
        crate::process::terminate(&mut self.child, Duration::from_secs(5)).await;
    }
}

/// `name value` lines of the Prometheus text format (body of an HTTP response or not).
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with("keygate_"))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_lines() {
        let m = parse_metrics(
            "HTTP/1.0 200 OK\r\n\r\n# HELP keygate_sync_batches_total Batches.\n\
             # TYPE keygate_sync_batches_total counter\nkeygate_sync_batches_total 42\n\
             keygate_sync_lag_seconds 0.250\n",
        );
        assert_eq!(m.get("keygate_sync_batches_total"), Some(&42.0));
        assert_eq!(m.get("keygate_sync_lag_seconds"), Some(&0.25));
        assert_eq!(m.len(), 2);
    }
}
