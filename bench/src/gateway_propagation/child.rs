//! The gateway under measurement: the real `keygate-gateway` binary as a child process
//! ([`ChildGateway`]), and the keep-alive HTTP/1.1 client the benchmark calls it with
//! ([`GatewayClient`]).

use crate::BenchError;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running `keygate-gateway`.
pub struct ChildGateway {
    child: tokio::process::Child,
    /// The public listener.
    pub addr: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub admin_addr: SocketAddr,
}

impl ChildGateway {
    /// Starts `bin` over the local KV at `kv_path` with only what this benchmark sets in its
    /// environment: both listeners on `127.0.0.1:0` (the kernel picks free ports; the gateway
    /// prints them), the edge key, the KV poll interval, `KEYGATE_LOG=warn`, and no gateway key
    /// (usage events counted, not sent). Waits (at most 10 s) for the line that says where it
    /// listens; its other output is copied to stderr as `[gateway] ...`.
    pub async fn spawn(
        bin: &Path,
        kv_path: &Path,
        edge_key_b64: &str,
        poll_ms: u64,
    ) -> Result<Self, BenchError> {
        let mut child = tokio::process::Command::new(bin)
            .env_clear()
            .env("KEYGATE_GATEWAY_LISTEN", "127.0.0.1:0")
            .env("KEYGATE_GATEWAY_ADMIN_LISTEN", "127.0.0.1:0")
            .env("KEYGATE_KV_PATH", kv_path)
            .env("KEYGATE_EDGE_KEY", edge_key_b64)
            .env("KEYGATE_GATEWAY_POLL_MS", poll_ms.to_string())
            .env("KEYGATE_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", bin.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Setup("no stdout from keygate-gateway".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        // "keygate-gateway listening on http://A (admin: http://B/readyz, /metrics)"
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addrs) = parse_listening(&line) {
                    return Ok(Some(addrs));
                }
                eprintln!("  [gateway] {line}");
            }
            Ok::<_, std::io::Error>(None)
        })
        .await;
        let (addr, admin_addr) = match found {
            Ok(Ok(Some(a))) => a,
            Ok(Ok(None)) => {
                let status = child.wait().await.ok();
                return Err(BenchError::Setup(format!(
                    "keygate-gateway exited before listening ({status:?})"
                )));
            }
            Ok(Err(e)) => {
                return Err(BenchError::Setup(format!(
                    "reading keygate-gateway's stdout: {e}"
                )));
            }
            Err(_) => {
                return Err(BenchError::Setup(
                    "keygate-gateway did not say where it listens within 10 s".into(),
                ));
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("  [gateway] {line}");
            }
        });
        Ok(Self {
            child,
            addr,
            admin_addr,
        })
    }

    /// The child's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM to its PID (the binary's clean stop) and up to 12 s to exit (it lets requests
    /// in flight finish for up to 10 s), then SIGKILL.
    pub async fn stop(mut self) {
        crate::process::terminate(&mut self.child, Duration::from_secs(12)).await;
    }
}

fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.strip_prefix("keygate-gateway listening on ")?;
    let mut parts = rest.split("http://").skip(1);
    let public = parts.next()?.split([' ', '/']).next()?.parse().ok()?;
    let admin = parts.next()?.split([' ', '/']).next()?.parse().ok()?;
    Some((public, admin))
}

/// What `/readyz` says (the fields this benchmark reads).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub revision: i64,
    pub tokens: usize,
    pub routes: usize,
}

/// A pooled HTTP/1.1 client (`TCP_NODELAY`, connections kept alive): one connection serves
/// every sequential request to one listener.
#[derive(Clone)]
pub struct GatewayClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl GatewayClient {
    /// `timeout` bounds each request, body included.
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self { client, timeout }
    }

    /// `GET url`, with `X-API-Key: key` when given; the status and the body (read in full, so
    /// the connection is reused).
    pub async fn get(&self, url: &str, key: Option<&str>) -> Result<(StatusCode, Bytes), String> {
        let mut req = Request::get(url);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| format!("GET {url}: {e}"))?;
        tokio::time::timeout(self.timeout, async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("GET {url}: reading the body: {e}"))?
                .to_bytes();
            Ok((status, body))
        })
        .await
        .map_err(|_| {
            format!(
                "GET {url}: no answer within {:.1} s",
                self.timeout.as_secs_f64()
            )
        })?
    }

    /// The gateway's `/readyz` (200 when ready, 503 before its first load; both have a body).
    pub async fn readiness(&self, admin: SocketAddr) -> Result<Readiness, String> {
        let url = format!("http://{admin}/readyz");
        let (status, body) = self.get(&url, None).await?;
        let r: Readiness =
            serde_json::from_slice(&body).map_err(|e| format!("{url}: {status}: {e}"))?;
        if r.ready != (status == StatusCode::OK) {
            return Err(format!("{url}: status {status} but ready = {}", r.ready));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_line() {
        let (a, b) = parse_listening(
            "keygate-gateway listening on http://127.0.0.1:41234 (admin: \
             http://127.0.0.1:41235/readyz, /metrics)",
        )
        .unwrap();
        assert_eq!(a, "127.0.0.1:41234".parse().unwrap());
        assert_eq!(b, "127.0.0.1:41235".parse().unwrap());
        assert!(parse_listening("WARN no gateway key").is_none());
    }
}
