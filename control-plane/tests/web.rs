//! L3: the admin UI served from the control plane's own port (`control-plane/src/web.rs`),
//! from a temporary directory of built files, next to gRPC and grpc-web on the same port.

use keygate_control_plane::testing::{Backend, TestServer, grpc_web_call};
use keygate_control_plane::web::{AdminWebSource, CONTENT_SECURITY_POLICY};
use keygate_proto::v1 as pb;
use keygate_proto::v1::system_service_client::SystemServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INDEX: &str = "<!doctype html><title>Keygate</title><script type=\"module\" src=\"/assets/app-3f9a1c.js\"></script>";
const APP: &str = "console.log('keygate');";

/// A built UI: index.html, a hashed asset, a root file; and a secret beside the folder.
fn built_ui() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("secret.txt"), "do not serve").unwrap();
    let dist = root.path().join("dist");
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(dist.join("index.html"), INDEX).unwrap();
    std::fs::write(dist.join("assets/app-3f9a1c.js"), APP).unwrap();
    std::fs::write(dist.join("favicon.svg"), "<svg/>").unwrap();
    root
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn assert_security_headers(resp: &reqwest::Response) {
    let csp = header(resp, "content-security-policy");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert_eq!(csp, CONTENT_SECURITY_POLICY);
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(header(resp, "x-content-type-options"), "nosniff");
    assert_eq!(header(resp, "referrer-policy"), "no-referrer");
    assert_eq!(header(resp, "x-frame-options"), "DENY");
}

/// A raw HTTP/1.1 GET, so the path reaches the server exactly as written.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_ui_beside_grpc() {
    let ui = built_ui();
    let dist = ui.path().join("dist");
    let s = TestServer::start_adjusted(Backend::Sqlite, |p| {
        p.admin_web = AdminWebSource::Dir(dist.clone());
    })
    .await;
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    let get = |path: &str| http.get(format!("{}{path}", s.url())).send();

    // The app, and the single-page fallback for its routes.
    for path in [
        "/",
        "/tokens",
        "/tokens/tok_0123?team=core",
        "/users/ada@example.com",
    ] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(header(&resp, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&resp, "cache-control"), "no-cache", "{path}");
        assert_security_headers(&resp);
        assert_eq!(resp.text().await.unwrap(), INDEX, "{path}");
    }
    // Hashed assets are immutable; other files revalidate.
    let resp = get("/assets/app-3f9a1c.js").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        header(&resp, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_security_headers(&resp);
    assert_eq!(resp.text().await.unwrap(), APP);
    let resp = get("/favicon.svg").await.unwrap();
    assert_eq!(
        (
            header(&resp, "content-type").as_str(),
            header(&resp, "cache-control").as_str()
        ),
        ("image/svg+xml", "no-cache")
    );
    // Missing assets are 404, not the app.
    for path in [
        "/assets/app-000000.js",
        "/assets/gone",
        "/logo.png",
        "/robots.txt",
    ] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert_security_headers(&resp);
    }
    // HEAD: the same headers, no body.
    let resp = http.head(format!("{}/", s.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), INDEX.len().to_string());
    assert_security_headers(&resp);
    assert!(resp.bytes().await.unwrap().is_empty());
    // Nothing outside the folder, however the path is spelled.
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/.%2e/secret.txt",
    ] {
        let answer = raw_get(s.addr, path).await;
        assert!(!answer.contains("do not serve"), "{path}: {answer}");
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
    }

    // gRPC and grpc-web on the same port still reach tonic.
    let info = SystemServiceClient::new(s.channel().await)
        .get_server_info(pb::GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!info.version.is_empty());
    let answer = grpc_web_call(
        &http,
        &s.url(),
        "/keygate.v1.SystemService/GetServerInfo",
        &pb::GetServerInfoRequest {},
        &[("x-grpc-web", "1")],
    )
    .await;
    assert_eq!(answer.grpc_status, 0, "{}", answer.grpc_message);
    assert!(
        answer.headers.get("content-security-policy").is_none(),
        "API answers are not UI pages"
    );
    // A GET that says it is grpc-web is not the UI's.
    let resp = http
        .get(format!(
            "{}/keygate.v1.SystemService/GetServerInfo",
            s.url()
        ))
        .header("content-type", "application/grpc-web+proto")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), 200);
    assert!(resp.headers().get("content-security-policy").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn says_how_to_build_a_missing_ui() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_path_buf();
    let s = TestServer::start_adjusted(Backend::Sqlite, |p| {
        p.admin_web = AdminWebSource::Dir(dir);
    })
    .await;
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    for path in ["/", "/tokens"] {
        let resp = http.get(format!("{}{path}", s.url())).send().await.unwrap();
        assert_eq!(resp.status(), 503, "{path}");
        assert_eq!(header(&resp, "content-type"), "text/plain; charset=utf-8");
        assert_security_headers(&resp);
        let text = resp.text().await.unwrap();
        assert!(
            text.contains("not built") && text.contains("npm run build"),
            "{text}"
        );
        assert!(text.contains("KEYGATE_ADMIN_WEB_DIR"), "{text}");
    }
    // The API is unaffected.
    assert!(
        SystemServiceClient::new(s.channel().await)
            .get_server_info(pb::GetServerInfoRequest {})
            .await
            .is_ok()
    );
}
