//! L3: the real control plane on 127.0.0.1:0, called through the generated tonic clients,
//! over grpc-web (HTTP/1.1) and through server reflection.

use keygate_contracts::token::{API_TOKEN_PREFIX, TokenKind, check_format};
use keygate_control_plane::testing::{Backend, TestServer, with_key};
use keygate_proto::v1 as pb;
use keygate_proto::v1::audit_service_client::AuditServiceClient;
use keygate_proto::v1::route_service_client::RouteServiceClient;
use keygate_proto::v1::service_account_service_client::ServiceAccountServiceClient;
use keygate_proto::v1::team_service_client::TeamServiceClient;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use keygate_proto::v1::usage_service_client::UsageServiceClient;
use prost::Message;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use tonic::Code;

/// Everything the server logs during this test process, at debug level.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static SINK: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    SINK.get_or_init(|| {
        let sink = Arc::new(Mutex::new(Vec::new()));
        let writer = sink.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,h2=info,hyper=info,tower=info")
            .with_writer(move || SinkWriter(writer.clone()))
            .with_ansi(false)
            .try_init();
        sink
    })
    .clone()
}

struct SinkWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn seed_team(s: &TestServer, id: &str) {
    TeamServiceClient::new(s.channel().await)
        .create_team(s.request(pb::CreateTeamRequest {
            id: id.into(),
            name: format!("Team {id}"),
            ..Default::default()
        }))
        .await
        .unwrap();
}

fn create_token_req(team: &str, name: &str, scopes: &[&str]) -> pb::CreateTokenRequest {
    pb::CreateTokenRequest {
        name: name.into(),
        team_id: team.into(),
        description: String::new(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        expiry: Some(pb::create_token_request::Expiry::ExpiresInDays(30)),
        rate_limit_per_minute: 0,
    }
}

#[tokio::test]
async fn unauthenticated_calls_are_refused_with_a_request_id() {
    let s = TestServer::start(Backend::Sqlite).await;
    let mut teams = TeamServiceClient::new(s.channel().await);
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing credentials"),
        (Some("Basic abc".into()), "Bearer"),
        (Some("Bearer kgm_short".into()), "invalid"),
        // Well-formed API token (wrong prefix for the management API).
        (
            Some(format!(
                "Bearer {}",
                keygate_contracts::token::NewToken::generate("kg").expose()
            )),
            "invalid",
        ),
        // Well-formed management key that does not exist.
        (
            Some(format!(
                "Bearer {}",
                keygate_contracts::token::NewToken::generate("kgm").expose()
            )),
            "invalid",
        ),
    ];
    for (auth, expect) in cases {
        let mut req = tonic::Request::new(pb::ListTeamsRequest::default());
        if let Some(a) = &auth {
            req.metadata_mut()
                .insert("authorization", a.parse().unwrap());
        }
        let err = teams.list_teams(req).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{auth:?}");
        assert!(
            err.message().contains(expect),
            "{auth:?}: {}",
            err.message()
        );
        assert!(
            err.metadata().get("x-request-id").is_some(),
            "error carries a request id"
        );
    }
    // A client-chosen request id is echoed; successful responses carry one too.
    let mut req = s.request(pb::ListTeamsRequest::default());
    req.metadata_mut()
        .insert("x-request-id", "trace-abc-123".parse().unwrap());
    let ok = teams.list_teams(req).await.unwrap();
    assert_eq!(ok.metadata().get("x-request-id").unwrap(), "trace-abc-123");
    // Health needs no credentials.
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel().await);
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "keygate.v1.TokenService".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        resp.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

async fn plaintext_shown_once(backend: Backend) {
    let logs = logs();
    let s = TestServer::start(backend).await;
    seed_team(&s, "core").await;
    let mut tokens = TokenServiceClient::new(s.channel().await);
    let created = tokens
        .create_token(s.request(create_token_req("core", "ci", &["*"])))
        .await
        .unwrap()
        .into_inner();
    let plaintext = created.plaintext.clone();
    assert_eq!(
        check_format(&plaintext, API_TOKEN_PREFIX, &[]),
        Ok(TokenKind::Checksummed)
    );
    let id = created.token.as_ref().unwrap().id.clone();

    // Every later RPC response, encoded, must not contain the plaintext.
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    encoded.push(
        tokens
            .get_token(s.request(pb::GetTokenRequest { id: id.clone() }))
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );
    encoded.push(
        tokens
            .list_tokens(s.request(pb::ListTokensRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );
    encoded.push(
        tokens
            .update_token(s.request(pb::UpdateTokenRequest {
                id: id.clone(),
                description: Some("updated".into()),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );
    let rotated = tokens
        .rotate_token(s.request(pb::RotateTokenRequest {
            id: id.clone(),
            grace_period_seconds: 60,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.plaintext, plaintext);
    assert_eq!(
        rotated.previous.as_ref().unwrap().replaced_by_id,
        rotated.token.as_ref().unwrap().id
    );
    encoded.push(rotated.encode_to_vec());
    encoded.push(
        tokens
            .revoke_token(s.request(pb::RevokeTokenRequest {
                id: id.clone(),
                reason: "test".into(),
            }))
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );
    let mut audit = AuditServiceClient::new(s.channel().await);
    encoded.push(
        audit
            .list_audit_events(s.request(pb::ListAuditEventsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );
    let mut stream = audit
        .export_audit_events(s.request(pb::ExportAuditEventsRequest {
            filter: None,
            format: pb::ExportFormat::Ndjson as i32,
        }))
        .await
        .unwrap()
        .into_inner();
    let mut export = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        export.extend_from_slice(&chunk.data);
    }
    assert!(contains(&export, &id), "the export covers the token");
    encoded.push(export);
    // encoded[3] is the rotate response: it carries the new plaintext (once) and only that.
    assert!(contains(&encoded[3], &rotated.plaintext));
    for (i, bytes) in encoded.iter().enumerate() {
        assert!(
            !contains(bytes, &plaintext),
            "response {i} leaks the first plaintext"
        );
        if i != 3 {
            assert!(
                !contains(bytes, &rotated.plaintext),
                "response {i} leaks the rotated plaintext"
            );
        }
    }
    // Nor in the database (every table, every column), nor in the logs.
    let dump = database_dump(&s).await;
    assert!(
        contains(&dump, &id),
        "the dump is real: it holds the token id"
    );
    for secret in [&plaintext, &rotated.plaintext, &s.admin_key] {
        assert!(
            !contains(&dump, secret),
            "database holds a plaintext secret"
        );
    }
    let log = logs.lock().unwrap().clone();
    assert!(contains(&log, "token created"), "logs were captured");
    for secret in [&plaintext, &rotated.plaintext, &s.admin_key] {
        assert!(!contains(&log, secret), "logs hold a plaintext secret");
    }
}

/// All rows of all tables as text (PostgreSQL), or the raw database files (SQLite).
async fn database_dump(s: &TestServer) -> Vec<u8> {
    match s.db.backend {
        Backend::Sqlite => {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(s.db.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("keygate.db")
                {
                    out.extend(std::fs::read(path).unwrap());
                }
            }
            out
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&s.db.url).await.unwrap();
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            let mut out = Vec::new();
            for t in tables {
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT t::text FROM \"{t}\" t"
                )))
                .fetch_all(&pool)
                .await
                .unwrap();
                for r in rows {
                    out.extend(r.into_bytes());
                    out.push(b'\n');
                }
            }
            out
        }
    }
}

#[tokio::test]
async fn validation_errors_name_the_field_and_rule() {
    let s = TestServer::start(Backend::Sqlite).await;
    seed_team(&s, "core").await;
    let mut routes = RouteServiceClient::new(s.channel().await);
    let mut tokens = TokenServiceClient::new(s.channel().await);
    let base = pb::CreateRouteRequest {
        name: "pay".into(),
        team_id: "core".into(),
        path_prefix: "/api/pay".into(),
        backend_url: "https://pay.internal".into(),
        ..Default::default()
    };
    let route_cases = vec![
        (
            pb::CreateRouteRequest {
                path_prefix: "api/pay".into(),
                ..base.clone()
            },
            Code::InvalidArgument,
            "path_prefix: must start with \"/\"",
        ),
        (
            pb::CreateRouteRequest {
                backend_url: "https://u:p@evil.com".into(),
                ..base.clone()
            },
            Code::InvalidArgument,
            "backend_url: must not contain credentials",
        ),
        (
            pb::CreateRouteRequest {
                backend_url: "gopher://x".into(),
                ..base.clone()
            },
            Code::InvalidArgument,
            "backend_url: scheme must be http or https",
        ),
        (
            pb::CreateRouteRequest {
                description: "x".repeat(1001),
                ..base.clone()
            },
            Code::InvalidArgument,
            "description: must be at most 1000 characters",
        ),
        (
            pb::CreateRouteRequest {
                team_id: "ghost".into(),
                ..base.clone()
            },
            Code::NotFound,
            "team \"ghost\" not found",
        ),
    ];
    for (req, code, msg) in route_cases {
        let e = routes.create_route(s.request(req)).await.unwrap_err();
        assert_eq!(
            (e.code(), e.message().starts_with(msg)),
            (code, true),
            "{}",
            e.message()
        );
    }
    routes.create_route(s.request(base.clone())).await.unwrap();
    let e = routes
        .create_route(s.request(pb::CreateRouteRequest {
            name: "pay2".into(),
            ..base.clone()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert_eq!(
        e.message(),
        "path_prefix: \"/api/pay\" is already used by route \"pay\""
    );

    let token_cases = vec![
        (
            create_token_req("core", "t", &["tag:"]),
            "scopes[0]: tag scope must be",
        ),
        (
            create_token_req("core", "t", &["nope"]),
            "scopes: no route named \"nope\"",
        ),
        (create_token_req("core", "", &["*"]), "name: is required"),
        (
            pb::CreateTokenRequest {
                expiry: None,
                ..create_token_req("core", "t", &["*"])
            },
            "expiry: is required",
        ),
        (
            pb::CreateTokenRequest {
                expiry: Some(pb::create_token_request::Expiry::ExpiresInDays(99999)),
                ..create_token_req("core", "t", &["*"])
            },
            "expires_in_days: must be between 1 and 3650",
        ),
    ];
    for (req, msg) in token_cases {
        let e = tokens.create_token(s.request(req)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
        assert!(e.message().starts_with(msg), "{}", e.message());
    }
    let e = tokens
        .list_tokens(s.request(pb::ListTokensRequest {
            page_token: "garbage".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert!(e.message().starts_with("page_token:"), "{}", e.message());
    let e = tokens
        .rotate_token(s.request(pb::RotateTokenRequest {
            id: "tok_x".into(),
            grace_period_seconds: 0,
        }))
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("id: must be a token id"),
        "{}",
        e.message()
    );
    // Nothing above reached the audit log except the team and the one route.
    let (_, total) = {
        let mut audit = AuditServiceClient::new(s.channel().await);
        let r = audit
            .list_audit_events(s.request(pb::ListAuditEventsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        (r.events, r.total_size)
    };
    // admin user + its session (test setup), team + its creator's membership, the route.
    assert_eq!(total, 5, "nothing refused above reached the audit log");
}

#[tokio::test]
async fn storage_failures_do_not_leak_internals() {
    let s = TestServer::start(Backend::Sqlite).await;
    let raw = sqlx::SqlitePool::connect(&s.db.url).await.unwrap();
    sqlx::query("DROP TABLE token_scopes")
        .execute(&raw)
        .await
        .unwrap();
    sqlx::query("DROP TABLE tokens")
        .execute(&raw)
        .await
        .unwrap();
    let mut tokens = TokenServiceClient::new(s.channel().await);
    let e = tokens
        .list_tokens(s.request(pb::ListTokensRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Internal);
    assert_eq!(
        e.message(),
        "internal error; see server logs for this request id"
    );
    assert!(e.metadata().get("x-request-id").is_some());
}

#[tokio::test]
async fn grpc_web_over_http1_with_cors() {
    let s = TestServer::start(Backend::Sqlite).await;
    seed_team(&s, "web-team").await;
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    let url = format!("{}/keygate.v1.TeamService/ListTeams", s.url());
    let msg = pb::ListTeamsRequest::default().encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(&msg);

    let resp = http
        .post(&url)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", "http://admin.test")
        .header("authorization", format!("Bearer {}", s.admin_key))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://admin.test"
    );
    assert!(resp.headers().contains_key("x-request-id"));
    let bytes = resp.bytes().await.unwrap();
    // Frames: 0x00 = message, 0x80 = trailers.
    let (mut i, mut teams, mut trailers) = (0usize, None, String::new());
    while i + 5 <= bytes.len() {
        let flag = bytes[i];
        let len = u32::from_be_bytes(bytes[i + 1..i + 5].try_into().unwrap()) as usize;
        let frame = &bytes[i + 5..i + 5 + len];
        if flag & 0x80 == 0 {
            teams = Some(pb::ListTeamsResponse::decode(frame).unwrap());
        } else {
            trailers = String::from_utf8_lossy(frame).to_lowercase();
        }
        i += 5 + len;
    }
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    assert_eq!(teams.unwrap().teams[0].id, "web-team");

    // Without credentials: the grpc-web status says so.
    let resp = http
        .post(&url)
        .header("content-type", "application/grpc-web+proto")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["grpc-status"], "16");

    // Preflight from an allowed origin; a foreign origin gets no CORS grant.
    let pre = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://admin.test")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "http://admin.test"
    );
    let foreign = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://evil.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn reflection_lists_keygate_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let s = TestServer::start(Backend::Sqlite).await;
    let mut client = ServerReflectionClient::new(s.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "keygate.v1.TokenService",
        "keygate.v1.RouteService",
        "keygate.v1.TeamService",
        "keygate.v1.AuditService",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    // And a symbol lookup returns its file descriptor.
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "keygate.v1.TokenService".into(),
        )),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    assert!(
        matches!(resp.message_response, Some(MessageResponse::FileDescriptorResponse(f)) if !f.file_descriptor_proto.is_empty())
    );
}

#[tokio::test]
async fn routes_teams_audit_end_to_end() {
    let s = TestServer::start(Backend::Sqlite).await;
    seed_team(&s, "core").await;
    let mut routes = RouteServiceClient::new(s.channel().await);
    let mut tokens = TokenServiceClient::new(s.channel().await);
    let mut teams = TeamServiceClient::new(s.channel().await);
    let mut audit = AuditServiceClient::new(s.channel().await);
    let route = routes
        .create_route(s.request(pb::CreateRouteRequest {
            name: "billing".into(),
            team_id: "core".into(),
            path_prefix: "/api/billing".into(),
            backend_url: "http://127.0.0.1:9/v1".into(),
            tags: vec!["money".into()],
            backend_auth: Some(pb::BackendAuth {
                kind: Some(pb::backend_auth::Kind::Bearer(pb::BearerAuth {
                    token: "backend-secret-value".into(),
                })),
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .route
        .unwrap();
    let info = route.backend_auth.clone().unwrap();
    assert_eq!(
        (info.r#type, info.secret_set),
        (pb::BackendAuthType::Bearer as i32, true)
    );
    // The secret is stored sealed, bound to the route: it opens only for it.
    let id = keygate_control_plane::ids::RouteId(route.id.clone());
    let sealed = s.store.route_secrets(&id).await.unwrap();
    assert!(!sealed[0].1.contains("backend-secret-value"));
    let opened = s
        .master_key
        .open(&format!("{}/bearer_token", route.id), &sealed[0].1)
        .unwrap();
    assert_eq!(opened.expose(), "backend-secret-value");
    // Update keeping the secret (empty value, same type).
    let updated = routes
        .update_route(s.request(pb::UpdateRouteRequest {
            id: "billing".into(),
            timeout_ms: Some(5000),
            backend_auth: Some(pb::BackendAuth {
                kind: Some(pb::backend_auth::Kind::Bearer(pb::BearerAuth {
                    token: String::new(),
                })),
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .route
        .unwrap();
    assert_eq!(updated.timeout_ms, 5000);
    assert!(updated.backend_auth.unwrap().secret_set);

    for i in 0..5 {
        tokens
            .create_token(s.request(create_token_req("core", &format!("t{i}"), &["billing"])))
            .await
            .unwrap();
    }
    // Cursor pagination over the API.
    let mut names = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = tokens
            .list_tokens(s.request(pb::ListTokensRequest {
                page_size: 2,
                page_token,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        names.extend(r.tokens.into_iter().map(|t| t.name));
        if r.next_page_token.is_empty() {
            break;
        }
        page_token = r.next_page_token;
    }
    assert_eq!(names, vec!["t4", "t3", "t2", "t1", "t0"]);
    let team = teams
        .get_team(s.request(pb::GetTeamRequest { id: "core".into() }))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    assert_eq!((team.token_count, team.route_count), (5, 1));

    let e = teams
        .delete_team(s.request(pb::DeleteTeamRequest {
            id: "core".into(),
            cascade: false,
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("5 unrevoked token(s)") && e.message().contains("billing"),
        "{}",
        e.message()
    );
    let done = teams
        .delete_team(s.request(pb::DeleteTeamRequest {
            id: "core".into(),
            cascade: true,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (done.revoked_token_ids.len(), done.deleted_route_ids.len()),
        (5, 1)
    );

    // CSV export is RFC 4180 and includes the cascade's revocations.
    let mut stream = audit
        .export_audit_events(s.request(pb::ExportAuditEventsRequest {
            filter: Some(pb::AuditFilter {
                action: "token.revoke".into(),
                ..Default::default()
            }),
            format: pb::ExportFormat::Csv as i32,
        }))
        .await
        .unwrap()
        .into_inner();
    let mut csv = Vec::new();
    while let Some(c) = stream.message().await.unwrap() {
        csv.extend(c.data);
    }
    let text = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("seq,time,actor_type"));
    assert_eq!(lines.len(), 1 + 5);
    assert!(
        lines[1].contains("\"{\"\"revoke_reason\"\""),
        "diff JSON is quoted and escaped: {}",
        lines[1]
    );
    let v = audit
        .verify_audit_chain(s.request(pb::VerifyAuditChainRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(v.ok, "{}", v.message);
    let listed = audit
        .list_audit_events(s.request(pb::ListAuditEventsRequest {
            filter: Some(pb::AuditFilter {
                entity_type: "route".into(),
                ..Default::default()
            }),
            page_size: 10,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_size, 3, "create, update, delete");
    assert!(
        listed
            .events
            .iter()
            .all(|e| !e.diff_json.contains("backend-secret-value"))
    );
    assert!(
        listed
            .events
            .iter()
            .any(|e| e.diff_json.contains("backend_auth_secret"))
    );
}

#[tokio::test]
async fn expired_or_orphaned_management_keys_are_refused() {
    use keygate_control_plane::context::RequestContext;
    use keygate_control_plane::ids::{KeyId, ServiceAccountId, TeamId};
    use keygate_control_plane::policy::Role;
    use keygate_control_plane::service_accounts::NewServiceAccount;
    use keygate_control_plane::store::NewManagementKey;
    let s = TestServer::start(Backend::Sqlite).await;
    seed_team(&s, "core").await;
    let sa = s
        .store
        .create_service_account(
            &RequestContext::system("test"),
            NewServiceAccount {
                id: ServiceAccountId::generate(),
                team_id: TeamId("core".into()),
                name: "ci".into(),
                description: String::new(),
                role: Role::Viewer,
                capability: keygate_control_plane::service_accounts::Capability::None,
            },
        )
        .await
        .unwrap();
    let mut keys = Vec::new();
    for (sa_id, expires_at) in [
        (Some(sa.id.clone()), Some(1)),
        (None, None),
        (Some(sa.id.clone()), None),
    ] {
        let k = keygate_contracts::token::NewToken::generate("kgm");
        s.store
            .create_management_key(
                &RequestContext::system("test"),
                NewManagementKey {
                    id: KeyId::generate(),
                    service_account_id: sa_id,
                    name: "k".into(),
                    key_hash: k.hash(),
                    preview: k.preview(),
                    is_bootstrap: false,
                    expires_at,
                },
            )
            .await
            .unwrap();
        keys.push(k);
    }
    let mut teams = TeamServiceClient::new(s.channel().await);
    for k in &keys[..2] {
        let e = teams
            .list_teams(with_key(k.expose(), pb::ListTeamsRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            Code::Unauthenticated,
            "expired key / key without account"
        );
    }
    // The live key works with its account's role.
    teams
        .list_teams(with_key(keys[2].expose(), pb::ListTeamsRequest::default()))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Usage ingestion (UsageService)

fn ts(ms: i64) -> prost_types::Timestamp {
    keygate_control_plane::time::to_timestamp(ms)
}

/// A service account of `team` with `capability`, made through the ServiceAccount RPCs as
/// the system admin; returns its management key.
async fn service_account_key(
    s: &TestServer,
    team: &str,
    name: &str,
    capability: pb::ServiceAccountCapability,
) -> String {
    let mut accounts = ServiceAccountServiceClient::new(s.channel().await);
    let sa = accounts
        .create_service_account(s.request(pb::CreateServiceAccountRequest {
            team_id: team.into(),
            name: name.into(),
            description: String::new(),
            role: pb::Role::Viewer as i32,
            capability: capability as i32,
        }))
        .await
        .unwrap()
        .into_inner()
        .service_account
        .unwrap();
    assert_eq!(sa.capability, capability as i32);
    accounts
        .create_key(s.request(pb::CreateKeyRequest {
            service_account_id: sa.id,
            name: "k".into(),
            expiry: Some(pb::create_key_request::Expiry::NeverExpires(true)),
        }))
        .await
        .unwrap()
        .into_inner()
        .plaintext
}

fn usage_ev(id: &str, at: i64, token: Option<(&str, &str)>, status: u32) -> pb::UsageEvent {
    pb::UsageEvent {
        event_id: id.into(),
        time: Some(ts(at)),
        token_hash: token.map(|_| "cd".repeat(32)).unwrap_or_default(),
        token_id: token.map(|(t, _)| t.to_owned()).unwrap_or_default(),
        team_id: token.map(|(_, team)| team.to_owned()).unwrap_or_default(),
        route: "billing".into(),
        method: "POST".into(),
        status,
        latency_us: 900,
        client_ip: "2001:db8::1".into(),
        user_agent: "n8n".into(),
        config_revision: 12,
        request_id: format!("req-{id}"),
        ..Default::default()
    }
}

async fn list_usage_ids(
    usage: &mut UsageServiceClient<tonic::transport::Channel>,
    key: &str,
    filter: pb::UsageFilter,
    page_size: u32,
) -> Result<Vec<String>, tonic::Status> {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = usage
            .list_usage_events(with_key(
                key,
                pb::ListUsageEventsRequest {
                    filter: Some(filter.clone()),
                    page_size,
                    page_token: page_token.clone(),
                },
            ))
            .await?
            .into_inner();
        assert!(page.events.len() <= page_size as usize);
        ids.extend(page.events.into_iter().map(|e| e.event_id));
        if page.next_page_token.is_empty() {
            return Ok(ids);
        }
        page_token = page.next_page_token;
    }
}

async fn usage_ingest_and_list(backend: Backend) {
    let s = TestServer::start(backend).await;
    seed_team(&s, "core").await;
    seed_team(&s, "ops").await;
    let mut tokens = TokenServiceClient::new(s.channel().await);
    let mut usage = UsageServiceClient::new(s.channel().await);
    let mut ids = Vec::new();
    for team in ["core", "ops"] {
        let created = tokens
            .create_token(s.request(create_token_req(team, "t", &["*"])))
            .await
            .unwrap();
        ids.push(created.into_inner().token.unwrap().id);
    }
    let (core_tok, ops_tok) = (ids[0].clone(), ids[1].clone());
    let gw = service_account_key(&s, "ops", "edge", pb::ServiceAccountCapability::Gateway).await;
    let now = keygate_control_plane::time::now_ms();

    let batch = pb::IngestUsageRequest {
        gateway: "edge-fra-1".into(),
        events: vec![
            usage_ev("1", now - 9000, Some((&core_tok, "core")), 200),
            usage_ev("2", now - 7000, Some((&core_tok, "core")), 502),
            usage_ev("3", now - 8000, Some((&ops_tok, "ops")), 200),
            usage_ev("4", now - 6000, None, 401),
            usage_ev("5", now - 5000, Some((&core_tok, "core")), 200),
        ],
        dropped: 0,
        ..Default::default()
    };
    let audit_before = s.store.verify_audit_chain().await.unwrap().checked;
    let head_before = s.store.head_revision().await.unwrap();
    let accepted = usage
        .ingest_usage(with_key(&gw, batch.clone()))
        .await
        .unwrap()
        .into_inner()
        .accepted;
    assert_eq!(accepted, 5);
    // A resend after a timeout is stored once.
    let again = usage.ingest_usage(with_key(&gw, batch)).await.unwrap();
    assert_eq!(again.into_inner().accepted, 0);
    // Telemetry: no audit row, no change event.
    assert_eq!(
        s.store.verify_audit_chain().await.unwrap().checked,
        audit_before
    );
    assert_eq!(s.store.head_revision().await.unwrap(), head_before);

    // last_used_at is visible through TokenService.
    let core = tokens
        .get_token(s.request(pb::GetTokenRequest {
            id: core_tok.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(core.last_used_at, Some(ts(now - 5000)));

    // The system admin sees everything, newest first, across pages.
    let all = list_usage_ids(&mut usage, &s.admin_key, pb::UsageFilter::default(), 2)
        .await
        .unwrap();
    assert_eq!(all, ["5", "4", "2", "3", "1"]);
    let first = usage
        .list_usage_events(s.request(pb::ListUsageEventsRequest {
            page_size: 1,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let e = &first.events[0];
    assert_eq!(
        (
            e.gateway.as_str(),
            e.token_id.as_str(),
            e.team_id.as_str(),
            e.status
        ),
        ("edge-fra-1", core_tok.as_str(), "core", 200)
    );
    assert_eq!(
        (e.time, e.latency_us, e.config_revision),
        (Some(ts(now - 5000)), 900, 12)
    );
    // Filters.
    let core_only = pb::UsageFilter {
        team_id: "core".into(),
        ..Default::default()
    };
    assert_eq!(
        list_usage_ids(&mut usage, &s.admin_key, core_only.clone(), 50)
            .await
            .unwrap(),
        ["5", "2", "1"]
    );
    assert_eq!(
        list_usage_ids(
            &mut usage,
            &s.admin_key,
            pb::UsageFilter {
                token_id: core_tok.clone(),
                status: 502,
                ..Default::default()
            },
            50
        )
        .await
        .unwrap(),
        ["2"]
    );
    assert_eq!(
        list_usage_ids(
            &mut usage,
            &s.admin_key,
            pb::UsageFilter {
                route: "billing".into(),
                start_time: Some(ts(now - 8000)),
                end_time: Some(ts(now - 5000)),
                ..Default::default()
            },
            50
        )
        .await
        .unwrap(),
        ["4", "2", "3"]
    );

    // Team members see their teams' events only; another team's developer sees none of core.
    let ops_dev = s
        .user(
            "dev@ops.test",
            &[("ops", keygate_control_plane::policy::Role::Developer)],
        )
        .await;
    let core_viewer = s
        .user(
            "viewer@core.test",
            &[("core", keygate_control_plane::policy::Role::Viewer)],
        )
        .await;
    assert_eq!(
        list_usage_ids(&mut usage, &ops_dev.token, pb::UsageFilter::default(), 50)
            .await
            .unwrap(),
        ["3"]
    );
    let denied = list_usage_ids(&mut usage, &ops_dev.token, core_only.clone(), 50)
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(
        list_usage_ids(
            &mut usage,
            &ops_dev.token,
            pb::UsageFilter {
                token_id: core_tok.clone(),
                ..Default::default()
            },
            50
        )
        .await
        .unwrap(),
        Vec::<String>::new(),
        "a token filter does not widen what a caller sees"
    );
    assert_eq!(
        list_usage_ids(
            &mut usage,
            &core_viewer.token,
            pb::UsageFilter::default(),
            50
        )
        .await
        .unwrap(),
        ["5", "2", "1"]
    );

    // Only GATEWAY service accounts report usage; a refusal is audited. A SYNC key is
    // refused by the auth layer (it calls SyncService only), a person by the handler.
    let sync = service_account_key(&s, "ops", "syncer", pb::ServiceAccountCapability::Sync).await;
    for (key, why) in [(&sync, "SyncService"), (&ops_dev.token, "GATEWAY")] {
        let e = usage
            .ingest_usage(with_key(
                key,
                pb::IngestUsageRequest {
                    gateway: "forged".into(),
                    events: vec![usage_ev("x", now, None, 200)],
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
        assert!(e.message().contains(why), "{}", e.message());
    }
    for (target, n) in [("forged", 1), ("keygate.v1.UsageService/IngestUsage", 1)] {
        let (denials, _) = s
            .store
            .list_audit(&keygate_control_plane::audit::AuditPage {
                filter: keygate_control_plane::audit::AuditFilter {
                    action: Some("authz.denied".into()),
                    entity_id: Some(target.into()),
                    ..Default::default()
                },
                limit: 10,
                before_seq: None,
            })
            .await
            .unwrap();
        assert_eq!(denials.items.len(), n, "{target}");
    }
    assert!(
        list_usage_ids(
            &mut usage,
            &s.admin_key,
            pb::UsageFilter {
                status: 200,
                start_time: Some(ts(now - 1)),
                ..Default::default()
            },
            50
        )
        .await
        .unwrap()
        .is_empty(),
        "refused batches store nothing"
    );

    // Gateway totals: system admins only.
    let gws = usage
        .list_gateways(s.request(pb::ListGatewaysRequest {}))
        .await
        .unwrap()
        .into_inner()
        .gateways;
    assert_eq!(gws.len(), 1);
    assert_eq!(
        (gws[0].name.as_str(), gws[0].events_total),
        ("edge-fra-1", 5)
    );
    assert_eq!(
        usage
            .list_gateways(with_key(&gw, pb::ListGatewaysRequest {}))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    s.stop().await;
}

#[tokio::test]
async fn usage_validation_errors_name_the_field() {
    let s = TestServer::start(Backend::Sqlite).await;
    seed_team(&s, "ops").await;
    let gw = service_account_key(&s, "ops", "edge", pb::ServiceAccountCapability::Gateway).await;
    let mut usage = UsageServiceClient::new(s.channel().await);
    let now = keygate_control_plane::time::now_ms();
    let call = |events: Vec<pb::UsageEvent>| pb::IngestUsageRequest {
        gateway: "edge-1".into(),
        events,
        ..Default::default()
    };
    let mut bad_status = vec![usage_ev("a", now, None, 200); 4];
    for (i, e) in bad_status.iter_mut().enumerate() {
        e.event_id = format!("a{i}");
    }
    bad_status[3].status = 700;
    let mut no_time = usage_ev("b", now, None, 200);
    no_time.time = None;
    let cases = vec![
        (call(bad_status), "events[3].status: must be 100..599"),
        (call(vec![no_time]), "events[0].time: is required"),
        (
            call(vec![usage_ev("c", now, None, 200); 5001]),
            "events: at most 5000 per call",
        ),
        (
            pb::IngestUsageRequest {
                gateway: String::new(),
                ..call(vec![])
            },
            "gateway: is required",
        ),
    ];
    for (req, want) in cases {
        let e = usage.ingest_usage(with_key(&gw, req)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.message(), want);
    }
    let e = usage
        .list_usage_events(s.request(pb::ListUsageEventsRequest {
            page_size: 1001,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "page_size: must be between 1 and 1000"
        )
    );

    // The largest batch (5,000 events, long client-copied fields) fits in one call; the
    // user agent is truncated, not refused.
    let events: Vec<pb::UsageEvent> = (0..5000)
        .map(|i| {
            let mut e = usage_ev(&format!("big-{i}"), now, None, 200);
            e.user_agent = "u".repeat(2000);
            e.request_id = "r".repeat(128);
            e
        })
        .collect();
    let accepted = usage
        .ingest_usage(with_key(&gw, call(events)))
        .await
        .unwrap()
        .into_inner()
        .accepted;
    assert_eq!(accepted, 5000);
    let page = usage
        .list_usage_events(s.request(pb::ListUsageEventsRequest {
            page_size: 1,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.events[0].user_agent.len(), 512);
}

// ---------------------------------------------------------------------------------------
// Per-route CORS origins and rate limit

#[tokio::test]
async fn route_cors_origins_and_rate_limit_reach_the_edge() {
    let s = TestServer::start(Backend::Sqlite).await;
    seed_team(&s, "core").await;
    let mut routes = RouteServiceClient::new(s.channel().await);
    let base = pb::CreateRouteRequest {
        name: "pay".into(),
        team_id: "core".into(),
        path_prefix: "/api/pay".into(),
        backend_url: "https://pay.internal".into(),
        ..Default::default()
    };
    for (req, want) in [
        (
            pb::CreateRouteRequest {
                cors_origins: vec![
                    "https://a.example.com".into(),
                    "https://b.example.com/x".into(),
                ],
                ..base.clone()
            },
            "cors_origins[1]: must not have a path (an origin is scheme://host[:port])",
        ),
        (
            pb::CreateRouteRequest {
                cors_origins: vec!["*".into(), "https://a.example.com".into()],
                ..base.clone()
            },
            "cors_origins: \"*\" allows every origin and must be the only entry",
        ),
        (
            pb::CreateRouteRequest {
                rate_limit_per_minute: 2_000_000,
                ..base.clone()
            },
            "rate_limit_per_minute: must be between 0 (no limit) and 1000000",
        ),
    ] {
        let e = routes.create_route(s.request(req)).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, want));
    }
    let created = routes
        .create_route(s.request(pb::CreateRouteRequest {
            cors_origins: vec![
                "https://App.Example.com:443/".into(),
                "http://localhost:5173".into(),
            ],
            rate_limit_per_minute: 600,
            ..base.clone()
        }))
        .await
        .unwrap()
        .into_inner()
        .route
        .unwrap();
    assert_eq!(
        created.cors_origins,
        ["http://localhost:5173", "https://app.example.com"],
        "normalised and sorted"
    );
    assert_eq!(created.rate_limit_per_minute, 600);
    // Updating the limit keeps the origins; the audit diff names the field.
    let updated = routes
        .update_route(s.request(pb::UpdateRouteRequest {
            id: "pay".into(),
            rate_limit_per_minute: Some(120),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .route
        .unwrap();
    assert_eq!(
        (updated.cors_origins.len(), updated.rate_limit_per_minute),
        (2, 120)
    );
    let audit = AuditServiceClient::new(s.channel().await)
        .list_audit_events(s.request(pb::ListAuditEventsRequest {
            filter: Some(pb::AuditFilter {
                action: "route.update".into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        audit.events[0]
            .diff_json
            .contains(r#""rate_limit_per_minute":[600,120]"#),
        "{}",
        audit.events[0].diff_json
    );

    // The edge snapshot carries both.
    let sync_key =
        service_account_key(&s, "core", "syncer", pb::ServiceAccountCapability::Sync).await;
    let mut stream =
        keygate_proto::v1::sync_service_client::SyncServiceClient::new(s.channel().await)
            .snapshot(with_key(&sync_key, pb::SnapshotRequest {}))
            .await
            .unwrap()
            .into_inner();
    let mut edge = None;
    while let Some(m) = stream.message().await.unwrap() {
        if let Some(pb::snapshot_response::Part::Routes(t)) = m.part {
            edge = t.routes.into_iter().find(|r| r.name == "pay");
        }
    }
    let edge = edge.expect("route in the snapshot");
    assert_eq!(
        edge.cors_origins,
        ["http://localhost:5173", "https://app.example.com"]
    );
    assert_eq!(edge.rate_limit_per_minute, 120);
}

// ---------------------------------------------------------------------------------------
// Per-token rate limit

#[tokio::test]
async fn token_rate_limit_reaches_the_edge() {
    let s = TestServer::start(Backend::Sqlite).await;
    seed_team(&s, "core").await;
    let mut tokens = TokenServiceClient::new(s.channel().await);
    let too_many = "rate_limit_per_minute: must be between 0 (no limit) and 1000000";
    let e = tokens
        .create_token(s.request(pb::CreateTokenRequest {
            rate_limit_per_minute: 1_000_001,
            ..create_token_req("core", "limited", &["*"])
        }))
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, too_many));
    let created = tokens
        .create_token(s.request(pb::CreateTokenRequest {
            rate_limit_per_minute: 600,
            ..create_token_req("core", "limited", &["*"])
        }))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(created.rate_limit_per_minute, 600);
    let e = tokens
        .update_token(s.request(pb::UpdateTokenRequest {
            id: created.id.clone(),
            rate_limit_per_minute: Some(2_000_000),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, too_many));
    let updated = tokens
        .update_token(s.request(pb::UpdateTokenRequest {
            id: created.id.clone(),
            rate_limit_per_minute: Some(120),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(updated.rate_limit_per_minute, 120);
    let got = tokens
        .get_token(s.request(pb::GetTokenRequest {
            id: created.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(got.rate_limit_per_minute, 120);
    // The replacement of a rotation keeps it.
    let rotated = tokens
        .rotate_token(s.request(pb::RotateTokenRequest {
            id: created.id.clone(),
            grace_period_seconds: 3600,
        }))
        .await
        .unwrap()
        .into_inner();
    let new = rotated.token.unwrap();
    assert_eq!(new.rate_limit_per_minute, 120);

    let sync_key =
        service_account_key(&s, "core", "syncer", pb::ServiceAccountCapability::Sync).await;
    let mut sync =
        keygate_proto::v1::sync_service_client::SyncServiceClient::new(s.channel().await);
    // Snapshot: both live tokens (the old one is in its grace period) carry the limit.
    let mut stream = sync
        .snapshot(with_key(&sync_key, pb::SnapshotRequest {}))
        .await
        .unwrap()
        .into_inner();
    let mut edge = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        if let Some(pb::snapshot_response::Part::Tokens(page)) = m.part {
            edge.extend(page.tokens);
        }
    }
    let rpm = |tokens: &[pb::EdgeToken], id: &str| {
        tokens
            .iter()
            .find(|t| t.token_id == id)
            .map(|t| t.rate_limit_per_minute)
    };
    assert_eq!(rpm(&edge, &created.id), Some(120), "{edge:?}");
    assert_eq!(rpm(&edge, &new.id), Some(120), "{edge:?}");

    // Watch: the replayed upserts carry it too.
    let mut stream = sync
        .watch(with_key(
            &sync_key,
            pb::WatchRequest {
                from_revision: 0,
                follower: "api-test".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut upserts = Vec::new();
    let replayed = async {
        while let Some(m) = stream.message().await.unwrap() {
            let head = m.head_revision;
            let mut last = 0;
            for c in m.changes {
                last = c.revision;
                if let Some(pb::edge_change::Change::TokenUpsert(t)) = c.change {
                    upserts.push(t);
                }
            }
            if last >= head {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), replayed)
        .await
        .expect("the replay reaches the head revision");
    assert_eq!(rpm(&upserts, &new.id), Some(120), "{upserts:?}");
    // The rotated token is live for its grace period: its create, update and rotate events
    // are replayed as upserts, each with the current limit (an empty list must not pass).
    let of_created: Vec<u32> = upserts
        .iter()
        .filter(|t| t.token_id == created.id)
        .map(|t| t.rate_limit_per_minute)
        .collect();
    assert_eq!(of_created, [120, 120, 120], "{upserts:?}");
}

/// One rollup as a gateway sends it: `latencies` of one minute, with their sketch.
fn rollup(
    minute: i64,
    token: Option<(&str, &str)>,
    route: &str,
    status: u32,
    latencies: &[u64],
) -> pb::UsageRollup {
    let mut v = keygate_rollup::RollupValue::default();
    for l in latencies {
        v.record(*l, 100, 1000);
    }
    pb::UsageRollup {
        minute: Some(ts(keygate_rollup::minute_of(minute))),
        token_id: token.map(|(t, _)| t.to_owned()).unwrap_or_default(),
        team_id: token.map(|(_, team)| team.to_owned()).unwrap_or_default(),
        route: route.into(),
        status,
        error: if status == 401 {
            "invalid_key".into()
        } else {
            String::new()
        },
        count: v.count,
        request_bytes: v.request_bytes,
        response_bytes: v.response_bytes,
        latency_sum_us: v.latency_sum_us,
        latency_min_us: v.latency_min_us,
        latency_max_us: v.latency_max_us,
        latency_sketch: v.sketch.encode(),
    }
}

async fn usage_analytics_through_the_api(backend: Backend) {
    let s = TestServer::start(backend).await;
    seed_team(&s, "core").await;
    seed_team(&s, "ops").await;
    let mut tokens = TokenServiceClient::new(s.channel().await);
    let mut routes = RouteServiceClient::new(s.channel().await);
    let mut usage = UsageServiceClient::new(s.channel().await);
    routes
        .create_route(s.request(pb::CreateRouteRequest {
            name: "billing".into(),
            team_id: "core".into(),
            path_prefix: "/api/billing".into(),
            backend_url: "http://127.0.0.1:9/v1".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let core_tok = tokens
        .create_token(s.request(create_token_req("core", "t", &["*"])))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap()
        .id;
    let gw = service_account_key(&s, "ops", "edge", pb::ServiceAccountCapability::Gateway).await;
    let ops_member = service_account_key(
        &s,
        "ops",
        "viewer",
        pb::ServiceAccountCapability::Unspecified,
    )
    .await;
    let now = keygate_control_plane::time::now_ms();
    let core = Some((core_tok.as_str(), "core"));
    let batch = pb::IngestUsageRequest {
        gateway: "edge-1".into(),
        batch_id: "b-1".into(),
        events_sampled: true,
        gateway_version: "0.1.0".into(),
        config_revision: 9,
        rollups: vec![
            rollup(now - 120_000, core, "billing", 200, &[1000, 2000, 3000]),
            rollup(now - 60_000, core, "billing", 502, &[40_000]),
            rollup(now - 60_000, None, "billing", 401, &[50, 60]),
        ],
        // A sample of the refusal, as a gateway sends it.
        events: vec![usage_ev("s1", now - 60_000, None, 401)],
        sampled_out: 1,
        ..Default::default()
    };
    let out = usage
        .ingest_usage(with_key(&gw, batch.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (out.accepted, out.rollups_accepted, out.replayed),
        (1, 3, false)
    );
    let again = usage
        .ingest_usage(with_key(&gw, batch.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.accepted, again.rollups_accepted, again.replayed),
        (0, 0, true)
    );
    // A sketch that does not hold `count` values is refused, naming the field.
    let mut bad = batch.clone();
    bad.batch_id = "b-2".into();
    bad.rollups[0].count = 4;
    let e = usage.ingest_usage(with_key(&gw, bad)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("rollups[0].latency_sketch: holds 3 values"),
        "{}",
        e.message()
    );

    // The summary: every rollup counted once.
    let summary = usage
        .get_usage_summary(s.request(pb::GetUsageSummaryRequest {
            query: Some(pb::UsageQuery {
                start_time: Some(ts(now - 3_600_000)),
                ..Default::default()
            }),
            step_seconds: 60,
        }))
        .await
        .unwrap()
        .into_inner();
    let total = summary.total.unwrap();
    assert_eq!((total.calls, total.errors), (6, 3));
    assert_eq!(total.latency_min_us, 50);
    assert_eq!(total.latency_max_us, 40_000);
    assert_eq!(summary.step_seconds, 60);
    assert_eq!(summary.tier, pb::UsageTier::Minute as i32);
    assert_eq!(
        summary
            .series
            .iter()
            .map(|p| p.stats.as_ref().unwrap().calls)
            .sum::<u64>(),
        6
    );
    // Team core: the token's four calls; p50 of 1000, 2000, 3000, 40000 is 2000 (1 %).
    let core_summary = usage
        .get_usage_summary(s.request(pb::GetUsageSummaryRequest {
            query: Some(pb::UsageQuery {
                team_id: "core".into(),
                ..Default::default()
            }),
            step_seconds: 0,
        }))
        .await
        .unwrap()
        .into_inner()
        .total
        .unwrap();
    assert_eq!(core_summary.calls, 4);
    assert!(
        (core_summary.latency_p50_us as f64 - 2000.0).abs() <= 20.0,
        "{core_summary:?}"
    );
    // A member of ops sees neither core's calls nor the keyless ones.
    let e = usage
        .get_usage_summary(with_key(
            &ops_member,
            pb::GetUsageSummaryRequest {
                query: Some(pb::UsageQuery {
                    team_id: "core".into(),
                    ..Default::default()
                }),
                step_seconds: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let mine = usage
        .get_usage_summary(with_key(&ops_member, pb::GetUsageSummaryRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.total.unwrap().calls, 0);

    // Per token, in one call for a list page; another team's token is left out.
    let batch_usage = usage
        .batch_get_token_usage(s.request(pb::BatchGetTokenUsageRequest {
            token_ids: vec![core_tok.clone()],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .usage;
    assert_eq!(batch_usage.len(), 1);
    assert_eq!((batch_usage[0].calls, batch_usage[0].errors), (4, 1));
    assert!(batch_usage[0].last_used_at.is_some());
    let hidden = usage
        .batch_get_token_usage(with_key(
            &ops_member,
            pb::BatchGetTokenUsageRequest {
                token_ids: vec![core_tok.clone()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .usage;
    assert!(hidden.is_empty());

    let detail = usage
        .get_token_usage(s.request(pb::GetTokenUsageRequest {
            token_id: core_tok.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.total.unwrap().calls, 4);
    assert_eq!(detail.routes.len(), 1);
    assert_eq!(detail.routes[0].key, "billing");
    let statuses: Vec<(u32, u64)> = detail
        .statuses
        .iter()
        .map(|s| (s.status, s.calls))
        .collect();
    assert_eq!(statuses, vec![(200, 3), (502, 1)]);
    assert_eq!(
        detail.first_used_at.unwrap().seconds * 1000,
        keygate_rollup::minute_of(now - 120_000)
    );

    let route = usage
        .get_route_usage(s.request(pb::GetRouteUsageRequest {
            route: "billing".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(route.total.unwrap().calls, 6);
    assert_eq!(route.tokens[0].key, core_tok);
    assert_eq!(route.tokens[0].label, "t");

    let top = usage
        .list_top_usage(s.request(pb::ListTopUsageRequest {
            by: pb::TopDimension::ErrorCode as i32,
            order: pb::TopOrder::Errors as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(top.len(), 1);
    assert_eq!((top[0].key.as_str(), top[0].errors), ("invalid_key", 2));

    // ListGateways: version, revision and the last hour.
    let gws = usage
        .list_gateways(s.request(pb::ListGatewaysRequest {}))
        .await
        .unwrap()
        .into_inner()
        .gateways;
    assert_eq!(gws[0].version, "0.1.0");
    assert_eq!(gws[0].config_revision, 9);
    assert_eq!(gws[0].requests_last_hour, 6);
    assert_eq!(gws[0].sampled_out_last_hour, 1);

    // Export: CSV with a header and one line per detail row.
    let mut stream = usage
        .export_usage(s.request(pb::ExportUsageRequest {
            format: pb::ExportFormat::Csv as i32,
            tier: pb::UsageTier::Minute as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mut csv = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        csv.extend(chunk.data);
    }
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("tier,bucket,token_id"));

    // A live tail sees an event stored after it started.
    let mut tail = usage
        .tail_usage_events(s.request(pb::TailUsageEventsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let later = pb::IngestUsageRequest {
        gateway: "edge-1".into(),
        batch_id: "b-3".into(),
        events_sampled: true,
        events: vec![usage_ev("s2", now, core, 200)],
        rollups: vec![rollup(now, core, "billing", 200, &[700])],
        ..Default::default()
    };
    usage.ingest_usage(with_key(&gw, later)).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(15), tail.message())
        .await
        .expect("the tail answers within 15 s")
        .unwrap()
        .unwrap();
    assert_eq!(got.event_id, "s2");
}

/// docs/analytics-clickhouse.md's tables load a real NDJSON export (chDB, embedded
/// ClickHouse) and give the control plane's totals. chDB comes from `./scripts/test.sh`
/// (`KEYGATE_CHDB_PYTHONPATH`); without it this test fails, it never skips.
#[tokio::test]
async fn clickhouse_schema_loads_an_export() {
    let s = TestServer::start(Backend::Sqlite).await;
    seed_team(&s, "core").await;
    let mut tokens = TokenServiceClient::new(s.channel().await);
    let mut usage = UsageServiceClient::new(s.channel().await);
    let tok = tokens
        .create_token(s.request(create_token_req("core", "t", &["*"])))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap()
        .id;
    let gw = service_account_key(&s, "core", "edge", pb::ServiceAccountCapability::Gateway).await;
    let now = keygate_control_plane::time::now_ms();
    let core = Some((tok.as_str(), "core"));
    let rollups = vec![
        rollup(now - 180_000, core, "billing", 200, &[900, 1200, 15_000]),
        rollup(now - 120_000, core, "files", 200, &[300]),
        rollup(now - 60_000, core, "billing", 503, &[70_000, 80_000]),
        rollup(now - 60_000, None, "", 401, &[40]),
    ];
    let (calls, errors, sum) = rollups.iter().fold((0, 0, 0), |(c, e, l), r| {
        (
            c + r.count,
            e + if r.status >= 400 { r.count } else { 0 },
            l + r.latency_sum_us,
        )
    });
    usage
        .ingest_usage(with_key(
            &gw,
            pb::IngestUsageRequest {
                gateway: "edge-1".into(),
                batch_id: "ch-1".into(),
                events_sampled: true,
                rollups,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let mut stream = usage
        .export_usage(s.request(pb::ExportUsageRequest {
            query: Some(pb::UsageQuery {
                start_time: Some(ts(now - 3_600_000)),
                ..Default::default()
            }),
            kind: pb::ExportKind::Rollups as i32,
            format: pb::ExportFormat::Ndjson as i32,
            tier: pb::UsageTier::Minute as i32,
        }))
        .await
        .unwrap()
        .into_inner();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rollups.ndjson");
    let mut data = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        data.extend(chunk.data);
    }
    std::fs::write(&file, &data).unwrap();

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(root.join("scripts/lib/clickhouse_check.py"))
        .arg(root.join("docs/analytics-clickhouse.md"))
        .arg(&file);
    if let Ok(p) = std::env::var("KEYGATE_CHDB_PYTHONPATH") {
        cmd.env("PYTHONPATH", p);
    }
    let out = cmd.output().expect("python3 runs");
    assert!(
        out.status.success(),
        "the chDB check failed (chDB missing? ./scripts/test.sh installs it and sets \
         KEYGATE_CHDB_PYTHONPATH): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // ClickHouse prints 64-bit integers as strings in JSON.
    let num = |v: &serde_json::Value| -> u64 {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| panic!("not a number: {v}"))
    };
    assert_eq!(num(&got["statements"]), 4, "{got}");
    assert_eq!(num(&got["raw"]["rows"]), 4, "{got}");
    assert_eq!(num(&got["raw"]["calls"]), calls);
    assert_eq!(num(&got["raw"]["errors"]), errors);
    assert_eq!(num(&got["raw"]["latency_sum_us"]), sum);
    assert_eq!(num(&got["raw"]["latency_min_us"]), 40);
    assert_eq!(num(&got["raw"]["latency_max_us"]), 80_000);
    assert_eq!(num(&got["daily"]["calls"]), calls);
    assert_eq!(num(&got["daily"]["errors"]), errors);
    assert_eq!(num(&got["daily"]["latency_sum_us"]), sum);
}

/// LookupEdgeToken: a gateway gets a live token's edge record by the hash of its key; nothing
/// for an unknown or revoked one; a malformed hash is refused naming the field.
async fn lookup_edge_token_by_hash(backend: Backend) {
    use keygate_proto::v1::sync_service_client::SyncServiceClient;
    let s = TestServer::start(backend).await;
    seed_team(&s, "core").await;
    let mut tokens = TokenServiceClient::new(s.channel().await);
    let created = tokens
        .create_token(s.request(create_token_req("core", "t", &["*"])))
        .await
        .unwrap()
        .into_inner();
    let hash = keygate_contracts::token::sha256_hex(&created.plaintext);
    let id = created.token.unwrap().id;
    let gw = service_account_key(&s, "core", "edge", pb::ServiceAccountCapability::Gateway).await;
    let mut sync = SyncServiceClient::new(s.channel().await);
    let ask = |h: &str| {
        with_key(
            &gw,
            pb::LookupEdgeTokenRequest {
                token_hash: h.to_owned(),
            },
        )
    };
    let found = sync
        .lookup_edge_token(ask(&hash))
        .await
        .unwrap()
        .into_inner();
    let t = found.token.expect("the live token");
    assert_eq!(
        (t.token_id.as_str(), t.team_id.as_str()),
        (id.as_str(), "core")
    );
    assert_eq!(t.token_hash, hash);
    assert!(found.head_revision > 0);
    let unknown = sync.lookup_edge_token(ask(&"a".repeat(64))).await.unwrap();
    assert!(unknown.into_inner().token.is_none());
    let err = sync.lookup_edge_token(ask("ABC")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("token_hash"), "{}", err.message());
    tokens
        .revoke_token(s.request(pb::RevokeTokenRequest {
            id,
            reason: "test".into(),
        }))
        .await
        .unwrap();
    let revoked = sync.lookup_edge_token(ask(&hash)).await.unwrap();
    assert!(
        revoked.into_inner().token.is_none(),
        "a revoked token is not answered"
    );
}

keygate_control_plane::on_both_backends!(
    plaintext_shown_once,
    usage_ingest_and_list,
    usage_analytics_through_the_api,
    lookup_edge_token_by_hash,
);
