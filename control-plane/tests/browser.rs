//! L3: browser sessions through the real server over grpc-web (HTTP/1.1): the HttpOnly
//! session cookie issued by SignIn / CompleteSetup / AcceptInvitation, accepted like the
//! bearer under the CSRF rule (x-grpc-web and a same or configured Origin), cleared by
//! SignOut (`control-plane/src/browser.rs`).

use keygate_control_plane::bootstrap::{Bootstrap, ensure_first_admin};
use keygate_control_plane::policy::Role;
use keygate_control_plane::testing::{
    Backend, GrpcWebAnswer, TEST_PASSWORD, TestServer, grpc_web_call, with_key,
};
use keygate_proto::v1 as pb;
use keygate_proto::v1::auth_service_client::AuthServiceClient;
use keygate_proto::v1::team_service_client::TeamServiceClient;

const SIGN_IN: &str = "/keygate.v1.AuthService/SignIn";
const SIGN_OUT: &str = "/keygate.v1.AuthService/SignOut";
const ME: &str = "/keygate.v1.AuthService/GetCurrentUser";
const UNAUTHENTICATED: i32 = 16;
const PERMISSION_DENIED: i32 = 7;

fn http() -> reqwest::Client {
    reqwest::Client::builder().http1_only().build().unwrap()
}

fn set_cookie(a: &GrpcWebAnswer) -> Option<String> {
    a.headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// `keygate_session=<value>` of a Set-Cookie line, as a browser would send it back.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

async fn sign_in(s: &TestServer, email: &str, extra: &[(&str, &str)]) -> GrpcWebAnswer {
    let mut headers = vec![("x-grpc-web", "1")];
    headers.extend_from_slice(extra);
    grpc_web_call(
        &http(),
        &s.url(),
        SIGN_IN,
        &pb::SignInRequest {
            email: email.into(),
            password: TEST_PASSWORD.into(),
        },
        &headers,
    )
    .await
}

async fn me(s: &TestServer, headers: &[(&str, &str)]) -> GrpcWebAnswer {
    grpc_web_call(
        &http(),
        &s.url(),
        ME,
        &pb::GetCurrentUserRequest {},
        headers,
    )
    .await
}

/// Sign-in from a browser sets the cookie (and keeps the token out of the body); the cookie
/// then works like the bearer, only under the CSRF rule; sign-out clears and ends it.
async fn cookie_sign_in_csrf_and_sign_out(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.user("ada@browser.test", &[]).await;
    let own_origin = s.url();

    let answer = sign_in(&s, "ada@browser.test", &[("origin", &own_origin)]).await;
    assert_eq!(answer.grpc_status, 0, "{}", answer.grpc_message);
    let line = set_cookie(&answer).expect("a session cookie");
    assert!(line.starts_with("keygate_session=kgs_"), "{line}");
    for attribute in [
        "; Path=/",
        "; HttpOnly",
        "; SameSite=Strict",
        "; Max-Age=43200",
    ] {
        assert!(line.contains(attribute), "{attribute} missing: {line}");
    }
    assert!(!line.contains("Secure"), "plain http: {line}");
    let body: pb::SignInResponse = answer.decode();
    assert!(
        body.session_token.is_empty(),
        "no credential for JavaScript"
    );
    assert_eq!(body.user.unwrap().email, "ada@browser.test");
    let cookie = cookie_pair(&line);

    // Accepted like the bearer: same origin, no Origin, a configured CORS origin.
    for origin in [Some(own_origin.as_str()), None, Some("http://admin.test")] {
        let mut headers = vec![("x-grpc-web", "1"), ("cookie", cookie.as_str())];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        let a = me(&s, &headers).await;
        assert_eq!(a.grpc_status, 0, "origin {origin:?}: {}", a.grpc_message);
        let who: pb::GetCurrentUserResponse = a.decode();
        assert_eq!(who.user.unwrap().email, "ada@browser.test");
    }
    // Among other cookies.
    let mixed = format!("theme=dark; {cookie}; other=1");
    let a = me(&s, &[("x-grpc-web", "1"), ("cookie", &mixed)]).await;
    assert_eq!(a.grpc_status, 0, "{}", a.grpc_message);

    // CSRF: another origin is refused; so is a request without x-grpc-web.
    for origin in ["http://evil.test", "null", "http://127.0.0.1:1"] {
        let a = me(
            &s,
            &[("x-grpc-web", "1"), ("cookie", &cookie), ("origin", origin)],
        )
        .await;
        assert_eq!(a.grpc_status, PERMISSION_DENIED, "{origin}");
        assert!(a.message.is_none(), "nothing answered to {origin}");
    }
    let a = me(&s, &[("cookie", &cookie), ("origin", &own_origin)]).await;
    assert_eq!(a.grpc_status, UNAUTHENTICATED);
    assert!(a.grpc_message.contains("x-grpc-web"), "{}", a.grpc_message);
    // Native gRPC never takes the cookie.
    let mut native = tonic::Request::new(pb::GetCurrentUserRequest {});
    native
        .metadata_mut()
        .insert("cookie", cookie.parse().unwrap());
    let e = AuthServiceClient::new(s.channel().await)
        .get_current_user(native)
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);

    // A state-changing call from the page works with the cookie alone.
    let a = grpc_web_call(
        &http(),
        &s.url(),
        "/keygate.v1.AuthService/ListSessions",
        &pb::ListSessionsRequest {},
        &[
            ("x-grpc-web", "1"),
            ("cookie", &cookie),
            ("origin", &own_origin),
        ],
    )
    .await;
    assert_eq!(a.grpc_status, 0);
    assert!(
        a.decode::<pb::ListSessionsResponse>()
            .sessions
            .iter()
            .any(|x| x.current)
    );

    // Sign-out clears the cookie and ends the session.
    let out = grpc_web_call(
        &http(),
        &s.url(),
        SIGN_OUT,
        &pb::SignOutRequest {},
        &[
            ("x-grpc-web", "1"),
            ("cookie", &cookie),
            ("origin", &own_origin),
        ],
    )
    .await;
    assert_eq!(out.grpc_status, 0, "{}", out.grpc_message);
    let cleared = set_cookie(&out).expect("a clearing cookie");
    assert!(
        cleared.starts_with("keygate_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let a = me(&s, &[("x-grpc-web", "1"), ("cookie", &cookie)]).await;
    assert_eq!(a.grpc_status, UNAUTHENTICATED, "the session was revoked");
    assert!(
        set_cookie(&a).is_some_and(|c| c.contains("Max-Age=0")),
        "a stale cookie is cleared"
    );

    // The CLI and services keep getting the token in the body, without a cookie.
    let mut auth = AuthServiceClient::new(s.channel().await);
    let r = auth
        .sign_in(pb::SignInRequest {
            email: "ada@browser.test".into(),
            password: TEST_PASSWORD.into(),
        })
        .await
        .unwrap();
    assert!(r.metadata().get("set-cookie").is_none());
    let token = r.into_inner().session_token;
    assert!(token.starts_with("kgs_"));
    // A bearer wins over a cookie (and needs no x-grpc-web).
    let a = me(
        &s,
        &[
            ("cookie", "keygate_session=kgs_bogus"),
            ("authorization", &format!("Bearer {token}")),
        ],
    )
    .await;
    assert_eq!(a.grpc_status, 0, "{}", a.grpc_message);
    // A management key in the cookie is refused: cookies hold sessions only.
    let key = s
        .capability_key(keygate_control_plane::service_accounts::Capability::None)
        .await;
    let a = me(
        &s,
        &[
            ("x-grpc-web", "1"),
            ("cookie", &format!("keygate_session={key}")),
        ],
    )
    .await;
    assert_eq!(a.grpc_status, UNAUTHENTICATED);
}

/// `Secure` when the public URL is https, or when a proxy says the request came over TLS;
/// the public URL's origin may use the cookie.
async fn secure_cookies(backend: Backend) {
    let s = TestServer::start_adjusted(backend, |p| {
        p.public_url = Some("https://keygate.example.com".into());
    })
    .await;
    s.user("ada@browser.test", &[]).await;
    let answer = sign_in(&s, "ada@browser.test", &[]).await;
    let line = set_cookie(&answer).unwrap();
    assert!(line.ends_with("; Secure"), "{line}");
    let cookie = cookie_pair(&line);
    let a = me(
        &s,
        &[
            ("x-grpc-web", "1"),
            ("cookie", &cookie),
            ("origin", "https://keygate.example.com"),
        ],
    )
    .await;
    assert_eq!(a.grpc_status, 0, "{}", a.grpc_message);

    let plain = TestServer::start(backend).await;
    plain.user("bo@browser.test", &[]).await;
    let answer = sign_in(&plain, "bo@browser.test", &[("x-forwarded-proto", "https")]).await;
    assert!(set_cookie(&answer).unwrap().ends_with("; Secure"));
}

/// First-start setup and accepting an invitation sign the browser in the same way.
async fn setup_and_invitation_set_the_cookie(backend: Backend) {
    let s = TestServer::start_empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let Bootstrap::SetupCode { code, .. } = ensure_first_admin(&s.store, dir.path(), None)
        .await
        .unwrap()
    else {
        panic!("a setup code on an empty database")
    };
    let answer = grpc_web_call(
        &http(),
        &s.url(),
        "/keygate.v1.AuthService/CompleteSetup",
        &pb::CompleteSetupRequest {
            setup_code: code.expose().to_owned(),
            email: "root@browser.test".into(),
            display_name: "Root".into(),
            password: TEST_PASSWORD.into(),
        },
        &[("x-grpc-web", "1")],
    )
    .await;
    assert_eq!(answer.grpc_status, 0, "{}", answer.grpc_message);
    assert!(
        answer
            .decode::<pb::SignInResponse>()
            .session_token
            .is_empty()
    );
    let root_cookie = cookie_pair(&set_cookie(&answer).expect("setup sets the cookie"));

    // The new admin, signed in by cookie, creates a team and invites someone.
    let team = grpc_web_call(
        &http(),
        &s.url(),
        "/keygate.v1.TeamService/CreateTeam",
        &pb::CreateTeamRequest {
            id: "alpha".into(),
            name: "Alpha".into(),
            ..Default::default()
        },
        &[("x-grpc-web", "1"), ("cookie", &root_cookie)],
    )
    .await;
    assert_eq!(team.grpc_status, 0, "{}", team.grpc_message);
    let invite = grpc_web_call(
        &http(),
        &s.url(),
        "/keygate.v1.InvitationService/CreateInvitation",
        &pb::CreateInvitationRequest {
            email: "new@browser.test".into(),
            roles: vec![pb::TeamRole {
                team_id: "alpha".into(),
                role: pb::Role::Viewer as i32,
            }],
            expires_in_hours: 1,
        },
        &[("x-grpc-web", "1"), ("cookie", &root_cookie)],
    )
    .await;
    assert_eq!(invite.grpc_status, 0, "{}", invite.grpc_message);
    let code = invite.decode::<pb::CreateInvitationResponse>().code;
    let accepted = grpc_web_call(
        &http(),
        &s.url(),
        "/keygate.v1.AuthService/AcceptInvitation",
        &pb::AcceptInvitationRequest {
            code,
            display_name: "New".into(),
            password: TEST_PASSWORD.into(),
        },
        &[("x-grpc-web", "1")],
    )
    .await;
    assert_eq!(accepted.grpc_status, 0, "{}", accepted.grpc_message);
    let cookie = cookie_pair(&set_cookie(&accepted).expect("acceptance sets the cookie"));
    let a = me(&s, &[("x-grpc-web", "1"), ("cookie", &cookie)]).await;
    let who: pb::GetCurrentUserResponse = a.decode();
    assert_eq!(who.user.unwrap().email, "new@browser.test");
    assert_eq!(who.roles[0].role, Role::Viewer.to_pb() as i32);
    // Unchanged for bearer clients.
    let teams = TeamServiceClient::new(s.channel().await)
        .list_teams(with_key("kgs_invalid", pb::ListTeamsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(teams.code(), tonic::Code::Unauthenticated);
}

keygate_control_plane::on_both_backends!(
    cookie_sign_in_csrf_and_sign_out,
    secure_cookies,
    setup_and_invitation_set_the_cookie,
);
