//! One worker's idle keep-alive connections to `http://` backends, for the fast path.
//!
//! A connection is parked only after a complete exchange (request fully sent, response fully
//! read, nothing left over, neither side asked to close), so a parked connection is between
//! messages. Checkout takes the most recently parked one that is still open: a connection
//! whose backend closed it while parked became readable (end of file), and tokio knows that
//! from the event loop without a system call. Idle connections are closed after
//! [`IDLE_TIMEOUT`]; at most [`MAX_IDLE`] are kept per backend.

use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long a connection may stay idle in the pool (hyper-util's legacy client: 90 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most idle connections kept per backend authority.
pub const MAX_IDLE: usize = 1024;
/// How long a new connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive time on backend connections.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// The pool. Not `Sync`: each worker thread owns one, shared by its connection tasks
/// (`spawn_local`).
#[derive(Default)]
pub struct Pool {
    /// FxHash: authorities come from the route table, not from callers.
    idle: RefCell<FxHashMap<Box<str>, Vec<Idle>>>,
}

impl Pool {
    /// The newest idle connection to `authority` that is still open.
    pub fn checkout(&self, authority: &str) -> Option<TcpStream> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(authority)?;
        while let Some(c) = list.pop() {
            if c.since.elapsed() < IDLE_TIMEOUT && is_quiet(&c.stream) {
                return Some(c.stream);
            }
        }
        None
    }

    /// Parks `stream` (between messages) for the next request to `authority`.
    pub fn park(&self, authority: &str, stream: TcpStream) {
        let mut idle = self.idle.borrow_mut();
        let entry = match idle.get_mut(authority) {
            Some(e) => e,
            None => idle.entry(authority.into()).or_default(),
        };
        if entry.len() < MAX_IDLE {
            entry.push(Idle {
                stream,
                since: Instant::now(),
            });
        }
    }

    /// Closes connections idle for longer than [`IDLE_TIMEOUT`] or closed by their backend.
    pub fn sweep(&self) {
        self.idle.borrow_mut().retain(|_, list| {
            list.retain(|c| c.since.elapsed() < IDLE_TIMEOUT && is_quiet(&c.stream));
            !list.is_empty()
        });
    }

    /// Idle connections held, over all backends.
    pub fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }
}

/// Whether an idle connection is still open and silent. No system call unless the event loop
/// saw it become readable (then one `read`: end of file or unexpected bytes mean it cannot
/// carry a request).
fn is_quiet(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// A new connection to `authority` (`host[:port]`, port 80 by default), TCP_NODELAY and
/// keepalive set, within `deadline` and [`CONNECT_TIMEOUT`].
pub async fn connect(
    authority: &str,
    deadline: tokio::time::Instant,
) -> std::io::Result<TcpStream> {
    let (host, port) = split_authority(authority);
    let deadline = deadline.min(tokio::time::Instant::now() + CONNECT_TIMEOUT);
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect((host, port))).await {
        Ok(r) => r?,
        Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
    };
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream)
        .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
    Ok(stream)
}

/// `host` (brackets of an IPv6 literal removed) and port of an authority.
pub fn split_authority(authority: &str) -> (&str, u16) {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty() => {
            (h, p.parse().unwrap_or(0))
        }
        _ => (authority, 80),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (host, port)
}

/// The `Host` value for `authority`: the port is left out when it is 80 (as hyper-util's
/// client does).
pub fn host_value(authority: &str) -> &str {
    authority.strip_suffix(":80").unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn authorities() {
        assert_eq!(split_authority("127.0.0.1:8080"), ("127.0.0.1", 8080));
        assert_eq!(split_authority("example.com"), ("example.com", 80));
        assert_eq!(split_authority("[::1]:9000"), ("::1", 9000));
        assert_eq!(split_authority("[::1]"), ("::1", 80));
        assert_eq!(host_value("a.example:80"), "a.example");
        assert_eq!(host_value("a.example:8080"), "a.example:8080");
    }

    /// A parked connection the backend closed is not handed out; a live one is, newest first.
    #[tokio::test]
    async fn checkout_skips_connections_the_backend_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let pool = Pool::default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let a = connect(&addr, deadline).await.unwrap();
        let (mut server_a, _) = listener.accept().await.unwrap();
        let b = connect(&addr, deadline).await.unwrap();
        let (_server_b, _) = listener.accept().await.unwrap();
        let b_port = b.local_addr().unwrap().port();
        pool.park(&addr, b);
        pool.park(&addr, a);
        // The backend closes `a` (the newest parked); wait until the event loop has seen it.
        server_a.shutdown().await.unwrap();
        drop(server_a);
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            tokio::task::yield_now().await;
            let closed_seen = {
                let idle = pool.idle.borrow();
                !is_quiet(&idle[addr.as_str()].last().unwrap().stream)
            };
            if closed_seen || tokio::time::Instant::now() > until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let got = pool.checkout(&addr).expect("the live connection");
        assert_eq!(got.local_addr().unwrap().port(), b_port);
        assert!(pool.checkout(&addr).is_none());
        assert_eq!(pool.idle_count(), 0);
    }
}
