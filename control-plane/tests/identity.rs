//! Identity end to end on a real server: sign-in, sessions, passwords, first-start setup,
//! invitations, service accounts, disabling users, and secrets never leaking.

use keygate_contracts::token::{MANAGEMENT_KEY_PREFIX, TokenKind, check_format};
use keygate_control_plane::audit::{AuditFilter, AuditPage};
use keygate_control_plane::bootstrap::{
    Bootstrap, EMBEDDED_KEY_FILES, SETUP_FILE, SYSTEM_TEAM, ensure_embedded_service_keys,
    ensure_first_admin,
};
use keygate_control_plane::passwords;
use keygate_control_plane::policy::Role;
use keygate_control_plane::sessions::SESSION_PREFIX;
use keygate_control_plane::sessions::service::AuthSettings;
use keygate_control_plane::testing::{Backend, TEST_PASSWORD, TestServer, test_db, with_key};
use keygate_proto::v1 as pb;
use keygate_proto::v1::auth_service_client::AuthServiceClient;
use keygate_proto::v1::invitation_service_client::InvitationServiceClient;
use keygate_proto::v1::service_account_service_client::ServiceAccountServiceClient;
use keygate_proto::v1::team_service_client::TeamServiceClient;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use keygate_proto::v1::user_service_client::UserServiceClient;
use prost::Message;
use std::io::Write;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tonic::Code;

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
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn sign_in_req(email: &str, password: &str) -> pb::SignInRequest {
    pb::SignInRequest {
        email: email.into(),
        password: password.into(),
    }
}

async fn actions(s: &TestServer, action: &str) -> Vec<keygate_control_plane::audit::AuditEvent> {
    s.store
        .list_audit(&AuditPage {
            filter: AuditFilter {
                action: Some(action.into()),
                ..Default::default()
            },
            limit: 100,
            before_seq: None,
        })
        .await
        .unwrap()
        .0
        .items
}

async fn team(s: &TestServer, id: &str) {
    TeamServiceClient::new(s.channel().await)
        .create_team(s.request(pb::CreateTeamRequest {
            id: id.into(),
            name: id.into(),
            ..Default::default()
        }))
        .await
        .unwrap();
}

async fn sign_in_and_failures_that_reveal_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let ada = s.user("ada@example.test", &[]).await;
    let mut auth = AuthServiceClient::new(s.channel().await);
    let ok = auth
        .sign_in(tonic::Request::new(sign_in_req(
            "ADA@example.test",
            TEST_PASSWORD,
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        check_format(&ok.session_token, SESSION_PREFIX, &[]),
        Ok(TokenKind::Checksummed)
    );
    let me = auth
        .get_current_user(with_key(&ok.session_token, pb::GetCurrentUserRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.user.unwrap().id, ada.id.0);

    let wrong = auth
        .sign_in(tonic::Request::new(sign_in_req(
            "ada@example.test",
            "not the password",
        )))
        .await
        .unwrap_err();
    let unknown = auth
        .sign_in(tonic::Request::new(sign_in_req(
            "nobody@example.test",
            "whatever pass",
        )))
        .await
        .unwrap_err();
    s.store
        .set_user_disabled(
            &keygate_control_plane::context::RequestContext::system("t"),
            &ada.id,
            true,
        )
        .await
        .unwrap();
    let disabled = auth
        .sign_in(tonic::Request::new(sign_in_req(
            "ada@example.test",
            TEST_PASSWORD,
        )))
        .await
        .unwrap_err();
    for e in [&wrong, &unknown, &disabled] {
        assert_eq!(e.code(), Code::Unauthenticated);
        assert_eq!(
            e.message(),
            "invalid email or password",
            "one answer whatever the reason"
        );
    }
    // Audited with the reason (for admins), as the anonymous actor, with the source address.
    let failed = actions(&s, "auth.sign_in_failed").await;
    assert_eq!(failed.len(), 3);
    assert!(
        failed
            .iter()
            .all(|e| e.actor_type == "anonymous" && e.source_ip == "127.0.0.1")
    );
    assert!(failed.iter().any(|e| e.diff.contains("unknown email")));
    assert!(failed.iter().any(|e| e.diff.contains("wrong password")));
    assert!(failed.iter().any(|e| e.diff.contains("account disabled")));
    assert!(!actions(&s, "auth.sign_in").await.is_empty());
    // Disabling ended the live session too.
    let e = auth
        .get_current_user(with_key(&ok.session_token, pb::GetCurrentUserRequest {}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_email_costs_a_real_argon2_verification() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.user("known@example.test", &[]).await;
    let mut auth = AuthServiceClient::new(s.channel().await);
    // Deterministic: the unknown-email path runs exactly one argon2 verification.
    let before = passwords::verification_count();
    auth.sign_in(tonic::Request::new(sign_in_req(
        "ghost@example.test",
        "some password",
    )))
    .await
    .unwrap_err();
    assert_eq!(passwords::verification_count() - before, 1);
    // And it takes as long: medians of a few attempts of each kind (right password, wrong
    // password, unknown email), with a generous bound against a noisy shared machine. A
    // missing argon2 run would make the failures ~100x faster than a success.
    let mut right = Vec::new();
    let mut wrong = Vec::new();
    let mut ghost = Vec::new();
    for i in 0..4 {
        let t = Instant::now();
        auth.sign_in(tonic::Request::new(sign_in_req(
            "known@example.test",
            TEST_PASSWORD,
        )))
        .await
        .unwrap();
        right.push(t.elapsed());
        let t = Instant::now();
        auth.sign_in(tonic::Request::new(sign_in_req(
            "known@example.test",
            "wrong password!",
        )))
        .await
        .unwrap_err();
        wrong.push(t.elapsed());
        let t = Instant::now();
        auth.sign_in(tonic::Request::new(sign_in_req(
            &format!("ghost{i}@example.test"),
            "wrong password!",
        )))
        .await
        .unwrap_err();
        ghost.push(t.elapsed());
    }
    for v in [&mut right, &mut wrong, &mut ghost] {
        v.sort();
    }
    let median = |v: &Vec<Duration>| (v[1] + v[2]) / 2;
    let (r, w, g) = (median(&right), median(&wrong), median(&ghost));
    // The oracle that matters: an unknown email must not answer faster than a known one with a
    // wrong password.
    assert!(
        g * 2 >= w && w * 2 >= g,
        "unknown email {g:?} vs wrong password {w:?}"
    );
    // Failures run the full argon2 verification a success runs; a success also writes its
    // session, so it is somewhat slower (which tells the caller nothing it does not learn
    // from the token it receives).
    assert!(
        w * 3 >= r,
        "a wrong password ({w:?}) answers far faster than a right one ({r:?})"
    );
    eprintln!("sign-in medians: right {r:?}, wrong password {w:?}, unknown email {g:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_rate_limited_per_account_and_per_address() {
    let db = test_db(Backend::Sqlite).await;
    let settings = AuthSettings {
        attempts_per_account: NonZeroU32::new(3).unwrap(),
        attempts_per_address: NonZeroU32::new(8).unwrap(),
        ..AuthSettings::default()
    };
    let s = TestServer::start_full(db, vec![], settings).await;
    s.user("bob@example.test", &[]).await;
    let mut auth = AuthServiceClient::new(s.channel().await);
    for _ in 0..3 {
        let e = auth
            .sign_in(tonic::Request::new(sign_in_req(
                "bob@example.test",
                "bad password",
            )))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    // Even the right password is refused while the account is throttled.
    let e = auth
        .sign_in(tonic::Request::new(sign_in_req(
            "bob@example.test",
            TEST_PASSWORD,
        )))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message().starts_with("too many sign-in attempts"),
        "{}",
        e.message()
    );
    // Per address: spraying many accounts from one address hits the address quota (8, of
    // which 4 are used above).
    let mut codes = Vec::new();
    for i in 0..6 {
        let e = auth
            .sign_in(tonic::Request::new(sign_in_req(
                &format!("spray{i}@example.test"),
                "bad password",
            )))
            .await
            .unwrap_err();
        codes.push(e.code());
    }
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == Code::ResourceExhausted)
            .count(),
        2,
        "{codes:?}"
    );
}

async fn sessions_sign_out_and_password_change(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.user("cy@example.test", &[]).await;
    let mut auth = AuthServiceClient::new(s.channel().await);
    let a = auth
        .sign_in(tonic::Request::new(sign_in_req(
            "cy@example.test",
            TEST_PASSWORD,
        )))
        .await
        .unwrap()
        .into_inner();
    let b = auth
        .sign_in(tonic::Request::new(sign_in_req(
            "cy@example.test",
            TEST_PASSWORD,
        )))
        .await
        .unwrap()
        .into_inner();
    let c = auth
        .sign_in(tonic::Request::new(sign_in_req(
            "cy@example.test",
            TEST_PASSWORD,
        )))
        .await
        .unwrap()
        .into_inner();
    let list = auth
        .list_sessions(with_key(&a.session_token, pb::ListSessionsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert!(list.len() >= 3);
    assert_eq!(list.iter().filter(|x| x.current).count(), 1);
    // Revoke b from a; sign c out itself.
    auth.revoke_session(with_key(
        &a.session_token,
        pb::RevokeSessionRequest {
            id: b.session.unwrap().id,
        },
    ))
    .await
    .unwrap();
    assert_eq!(
        auth.get_current_user(with_key(&b.session_token, pb::GetCurrentUserRequest {}))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    auth.sign_out(with_key(&c.session_token, pb::SignOutRequest {}))
        .await
        .unwrap();
    assert_eq!(
        auth.get_current_user(with_key(&c.session_token, pb::GetCurrentUserRequest {}))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    // Someone else's session id is not found.
    let other = s.user("dee@example.test", &[]).await;
    let e = auth
        .revoke_session(with_key(
            &other.token,
            pb::RevokeSessionRequest {
                id: a.session.clone().unwrap().id,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Password change: wrong current refused; then other sessions end, this one stays.
    let d = auth
        .sign_in(tonic::Request::new(sign_in_req(
            "cy@example.test",
            TEST_PASSWORD,
        )))
        .await
        .unwrap()
        .into_inner();
    let e = auth
        .change_password(with_key(
            &a.session_token,
            pb::ChangePasswordRequest {
                current_password: "nope".into(),
                new_password: "a brand new passphrase".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = auth
        .change_password(with_key(
            &a.session_token,
            pb::ChangePasswordRequest {
                current_password: TEST_PASSWORD.into(),
                new_password: "short".into(),
            },
        ))
        .await
        .unwrap_err();
    assert!(
        e.message()
            .starts_with("new_password: must be 12-256 characters"),
        "{}",
        e.message()
    );
    auth.change_password(with_key(
        &a.session_token,
        pb::ChangePasswordRequest {
            current_password: TEST_PASSWORD.into(),
            new_password: "a brand new passphrase".into(),
        },
    ))
    .await
    .unwrap();
    auth.get_current_user(with_key(&a.session_token, pb::GetCurrentUserRequest {}))
        .await
        .unwrap();
    assert_eq!(
        auth.get_current_user(with_key(&d.session_token, pb::GetCurrentUserRequest {}))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        auth.sign_in(tonic::Request::new(sign_in_req(
            "cy@example.test",
            TEST_PASSWORD
        )))
        .await
        .unwrap_err()
        .code(),
        Code::Unauthenticated
    );
    auth.sign_in(tonic::Request::new(sign_in_req(
        "cy@example.test",
        "a brand new passphrase",
    )))
    .await
    .unwrap();
}

async fn first_start_setup_code_is_single_use(backend: Backend) {
    let s = TestServer::start_empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let Bootstrap::SetupCode { code, file } = ensure_first_admin(&s.store, dir.path(), None)
        .await
        .unwrap()
    else {
        panic!("a fresh database gets a setup code");
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        code.expose()
    );
    let mut auth = AuthServiceClient::new(s.channel().await);
    let setup = |c: &str, email: &str| pb::CompleteSetupRequest {
        setup_code: c.into(),
        email: email.into(),
        display_name: "Root".into(),
        password: "a long enough password".into(),
    };
    let wrong = keygate_contracts::token::NewToken::generate("kgsetup");
    let e = auth
        .complete_setup(tonic::Request::new(setup(
            wrong.expose(),
            "root@example.test",
        )))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let done = auth
        .complete_setup(tonic::Request::new(setup(
            code.expose(),
            "root@example.test",
        )))
        .await
        .unwrap()
        .into_inner();
    assert!(done.user.unwrap().system_admin);
    let e = auth
        .complete_setup(tonic::Request::new(setup(
            code.expose(),
            "again@example.test",
        )))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "the code is consumed");
    // Next start: nothing to set up, and the stale file is removed.
    assert!(matches!(
        ensure_first_admin(&s.store, dir.path(), None)
            .await
            .unwrap(),
        Bootstrap::Existing
    ));
    assert!(!dir.path().join(SETUP_FILE).exists());
    // The new admin works.
    TeamServiceClient::new(s.channel().await)
        .create_team(with_key(
            &done.session_token,
            pb::CreateTeamRequest {
                id: "first".into(),
                name: "First".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
}

/// The one-command stack's service-account keys: written once (0600, live, the right
/// capability, in the system team), left alone while they work, replaced when revoked or
/// unreadable as a key; a replacement touches only the dead file.
async fn embedded_service_keys_are_kept_while_live_and_replaced_when_dead(backend: Backend) {
    use keygate_control_plane::context::RequestContext;
    let s = TestServer::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = EMBEDDED_KEY_FILES
        .iter()
        .map(|(_, name)| dir.path().join(name))
        .collect();
    let live_key = |file: std::path::PathBuf| {
        let store = s.store.clone();
        async move {
            let text = std::fs::read_to_string(&file).unwrap();
            let hash = keygate_contracts::token::sha256_hex(text.trim());
            let key = store
                .find_management_key(&hash)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{} holds no known key", file.display()));
            assert!(key.revoked_at.is_none());
            let account = store
                .get_service_account(key.service_account_id.as_ref().unwrap())
                .await
                .unwrap();
            (text, key, account)
        }
    };

    let written = ensure_embedded_service_keys(&s.store, dir.path())
        .await
        .unwrap();
    assert_eq!(written, files);
    for ((capability, _), file) in EMBEDDED_KEY_FILES.iter().zip(&files) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (text, _, account) = live_key(file.clone()).await;
        assert_eq!(
            check_format(text.trim(), MANAGEMENT_KEY_PREFIX, &[]),
            Ok(TokenKind::Checksummed)
        );
        assert_eq!(account.capability, *capability);
        assert_eq!(account.team_id.0, SYSTEM_TEAM);
    }
    let before: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();

    // Next start: both keys still work, nothing is rewritten.
    let written = ensure_embedded_service_keys(&s.store, dir.path())
        .await
        .unwrap();
    assert!(written.is_empty(), "{written:?}");
    for (file, text) in files.iter().zip(&before) {
        assert_eq!(&std::fs::read_to_string(file).unwrap(), text);
    }

    // A revoked key is replaced; the other file is left alone.
    let (_, gateway_key, _) = live_key(files[1].clone()).await;
    s.store
        .revoke_management_key(&RequestContext::system("test"), &gateway_key.id)
        .await
        .unwrap();
    let written = ensure_embedded_service_keys(&s.store, dir.path())
        .await
        .unwrap();
    assert_eq!(written, vec![files[1].clone()]);
    let (text, key, account) = live_key(files[1].clone()).await;
    assert_ne!(text, before[1]);
    assert_ne!(key.id, gateway_key.id);
    assert_eq!(account.capability, EMBEDDED_KEY_FILES[1].0);
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), before[0]);

    // A file that holds no key of this database is replaced too.
    std::fs::write(&files[0], "not a key\n").unwrap();
    let written = ensure_embedded_service_keys(&s.store, dir.path())
        .await
        .unwrap();
    assert_eq!(written, vec![files[0].clone()]);
    let (_, _, account) = live_key(files[0].clone()).await;
    assert_eq!(account.capability, EMBEDDED_KEY_FILES[0].0);
}

async fn invitations_create_accounts_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    team(&s, "alpha").await;
    let admin = s.user("lead@example.test", &[("alpha", Role::Admin)]).await;
    let mut inv = InvitationServiceClient::new(s.channel().await);
    let created = inv
        .create_invitation(with_key(
            &admin.token,
            pb::CreateInvitationRequest {
                email: "New.Person@Example.test".into(),
                roles: vec![pb::TeamRole {
                    team_id: "alpha".into(),
                    role: pb::Role::Developer as i32,
                }],
                expires_in_hours: 24,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        created.invitation.as_ref().unwrap().email,
        "new.person@example.test"
    );
    let pending = inv
        .list_invitations(with_key(
            &admin.token,
            pb::ListInvitationsRequest {
                team_id: "alpha".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.invitations.len(), 1);
    assert!(
        !pending
            .encode_to_vec()
            .windows(created.code.len())
            .any(|w| w == created.code.as_bytes()),
        "list never shows the code"
    );
    let mut auth = AuthServiceClient::new(s.channel().await);
    let accept = |code: &str| pb::AcceptInvitationRequest {
        code: code.into(),
        display_name: "New Person".into(),
        password: "welcome aboard friend".into(),
    };
    let signed = auth
        .accept_invitation(tonic::Request::new(accept(&created.code)))
        .await
        .unwrap()
        .into_inner();
    let user = signed.user.unwrap();
    assert_eq!(user.email, "new.person@example.test");
    assert_eq!(
        user.roles,
        vec![pb::TeamRole {
            team_id: "alpha".into(),
            role: pb::Role::Developer as i32
        }]
    );
    let e = auth
        .accept_invitation(tonic::Request::new(accept(&created.code)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "single use");
    // A revoked invitation's code is dead; an invitation for an existing account is refused.
    let second = inv
        .create_invitation(with_key(
            &admin.token,
            pb::CreateInvitationRequest {
                email: "later@example.test".into(),
                roles: vec![pb::TeamRole {
                    team_id: "alpha".into(),
                    role: pb::Role::Viewer as i32,
                }],
                expires_in_hours: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    inv.revoke_invitation(with_key(
        &admin.token,
        pb::RevokeInvitationRequest {
            id: second.invitation.unwrap().id,
        },
    ))
    .await
    .unwrap();
    assert_eq!(
        auth.accept_invitation(tonic::Request::new(accept(&second.code)))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    let e = inv
        .create_invitation(with_key(
            &admin.token,
            pb::CreateInvitationRequest {
                email: "new.person@example.test".into(),
                roles: vec![pb::TeamRole {
                    team_id: "alpha".into(),
                    role: pb::Role::Viewer as i32,
                }],
                expires_in_hours: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    // The acceptance is done by the person it created: both of its audit rows name them
    // (the call itself carries no credentials).
    for action in ["invitation.accept", "user.accept_invitation"] {
        let rows = actions(&s, action).await;
        assert_eq!(rows.len(), 1, "{action}: {rows:?}");
        let who = (
            rows[0].actor_type.as_str(),
            rows[0].actor_id.as_str(),
            rows[0].actor_name.as_str(),
        );
        assert_eq!(
            who,
            ("user", user.id.as_str(), "new.person@example.test"),
            "{action}"
        );
    }
}

async fn service_accounts_act_with_their_team_role_only(backend: Backend) {
    let s = TestServer::start(backend).await;
    team(&s, "alpha").await;
    team(&s, "beta").await;
    let mut sas = ServiceAccountServiceClient::new(s.channel().await);
    let sa = sas
        .create_service_account(s.request(pb::CreateServiceAccountRequest {
            team_id: "alpha".into(),
            name: "deployer".into(),
            description: String::new(),
            role: pb::Role::Developer as i32,
            capability: 0,
        }))
        .await
        .unwrap()
        .into_inner()
        .service_account
        .unwrap();
    let key = sas
        .create_key(s.request(pb::CreateKeyRequest {
            service_account_id: sa.id.clone(),
            name: "ci".into(),
            expiry: Some(pb::create_key_request::Expiry::ExpiresInDays(30)),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        check_format(&key.plaintext, MANAGEMENT_KEY_PREFIX, &[]),
        Ok(TokenKind::Checksummed)
    );
    let mut auth = AuthServiceClient::new(s.channel().await);
    let me = auth
        .get_current_user(with_key(&key.plaintext, pb::GetCurrentUserRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.service_account_id, sa.id);
    let mut tokens = TokenServiceClient::new(s.channel().await);
    let mk = |team: &str| pb::CreateTokenRequest {
        name: "from-ci".into(),
        team_id: team.into(),
        scopes: vec!["*".into()],
        expiry: Some(pb::create_token_request::Expiry::ExpiresInDays(1)),
        ..Default::default()
    };
    let t = tokens
        .create_token(with_key(&key.plaintext, mk("alpha")))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert!(t.created_by.starts_with("service_account:"));
    assert_eq!(
        tokens
            .create_token(with_key(&key.plaintext, mk("beta")))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // Service accounts never manage people.
    let e = TeamServiceClient::new(s.channel().await)
        .list_members(with_key(
            &key.plaintext,
            pb::ListMembersRequest {
                team_id: "alpha".into(),
            },
        ))
        .await;
    assert!(e.is_ok(), "reading members is allowed to members");
    let e = UserServiceClient::new(s.channel().await)
        .list_users(with_key(&key.plaintext, pb::ListUsersRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Sessions are for people.
    assert_eq!(
        auth.list_sessions(with_key(&key.plaintext, pb::ListSessionsRequest {}))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );

    // Rotation with no grace: the old key stops at once, the new one works.
    let rotated = sas
        .rotate_key(s.request(pb::RotateKeyRequest {
            id: key.key.unwrap().id,
            grace_period_seconds: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        auth.get_current_user(with_key(&key.plaintext, pb::GetCurrentUserRequest {}))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    auth.get_current_user(with_key(&rotated.plaintext, pb::GetCurrentUserRequest {}))
        .await
        .unwrap();
    // Deleting the account revokes its keys.
    sas.delete_service_account(s.request(pb::DeleteServiceAccountRequest { id: sa.id }))
        .await
        .unwrap();
    assert_eq!(
        auth.get_current_user(with_key(&rotated.plaintext, pb::GetCurrentUserRequest {}))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}

/// Passwords, session tokens, setup and invitation codes and management keys never appear in
/// logs, the audit log, the database, or any response other than the one that issues them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_secrets_never_leak() {
    let logs = logs();
    let s = TestServer::start(Backend::Sqlite).await;
    team(&s, "alpha").await;
    let password = "s3cret-passphrase-for-leak-test";
    let new_password = "another-s3cret-passphrase-x";
    let mut auth = AuthServiceClient::new(s.channel().await);
    let mut inv = InvitationServiceClient::new(s.channel().await);
    let invited = inv
        .create_invitation(s.request(pb::CreateInvitationRequest {
            email: "leak@example.test".into(),
            roles: vec![pb::TeamRole {
                team_id: "alpha".into(),
                role: pb::Role::Viewer as i32,
            }],
            expires_in_hours: 1,
        }))
        .await
        .unwrap()
        .into_inner();
    let accepted = auth
        .accept_invitation(tonic::Request::new(pb::AcceptInvitationRequest {
            code: invited.code.clone(),
            display_name: "Leak".into(),
            password: password.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let signed = auth
        .sign_in(tonic::Request::new(sign_in_req(
            "leak@example.test",
            password,
        )))
        .await
        .unwrap()
        .into_inner();
    auth.sign_in(tonic::Request::new(sign_in_req(
        "leak@example.test",
        "wrong-but-also-secret-pw",
    )))
    .await
    .unwrap_err();
    auth.change_password(with_key(
        &signed.session_token,
        pb::ChangePasswordRequest {
            current_password: password.into(),
            new_password: new_password.into(),
        },
    ))
    .await
    .unwrap();
    let mut sas = ServiceAccountServiceClient::new(s.channel().await);
    let sa = sas
        .create_service_account(s.request(pb::CreateServiceAccountRequest {
            team_id: "alpha".into(),
            name: "bot".into(),
            description: String::new(),
            role: pb::Role::Viewer as i32,
            capability: 0,
        }))
        .await
        .unwrap()
        .into_inner()
        .service_account
        .unwrap();
    let key = sas
        .create_key(s.request(pb::CreateKeyRequest {
            service_account_id: sa.id,
            name: "k".into(),
            expiry: Some(pb::create_key_request::Expiry::NeverExpires(true)),
        }))
        .await
        .unwrap()
        .into_inner();
    // Responses after issuing.
    let mut later: Vec<Vec<u8>> = Vec::new();
    later.push(
        auth.list_sessions(with_key(&signed.session_token, pb::ListSessionsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );
    later.push(
        auth.get_current_user(with_key(
            &signed.session_token,
            pb::GetCurrentUserRequest {},
        ))
        .await
        .unwrap()
        .into_inner()
        .encode_to_vec(),
    );
    later.push(
        UserServiceClient::new(s.channel().await)
            .list_users(s.request(pb::ListUsersRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );
    later.push(
        inv.list_invitations(s.request(pb::ListInvitationsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );
    let mut audit =
        keygate_proto::v1::audit_service_client::AuditServiceClient::new(s.channel().await);
    let mut stream = audit
        .export_audit_events(s.request(pb::ExportAuditEventsRequest {
            filter: None,
            format: 2,
        }))
        .await
        .unwrap()
        .into_inner();
    let mut export = Vec::new();
    while let Some(c) = stream.message().await.unwrap() {
        export.extend(c.data);
    }
    assert!(
        contains(&export, "auth.sign_in_failed"),
        "the export is real"
    );
    later.push(export);
    let mut db = Vec::new();
    for entry in std::fs::read_dir(s.db.dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("keygate.db")
        {
            db.extend(std::fs::read(p).unwrap());
        }
    }
    assert!(
        contains(&db, "leak@example.test"),
        "the database dump is real"
    );
    let log = logs.lock().unwrap().clone();
    assert!(contains(&log, "rpc done"), "logs were captured");
    let secrets = [
        password,
        new_password,
        "wrong-but-also-secret-pw",
        &invited.code,
        &accepted.session_token,
        &signed.session_token,
        &key.plaintext,
        &s.admin_key,
    ];
    for secret in secrets {
        for (i, bytes) in later.iter().enumerate() {
            assert!(!contains(bytes, secret), "response {i} leaks a secret");
        }
        assert!(
            !contains(&db, secret),
            "the database holds a secret in plaintext"
        );
        assert!(!contains(&log, secret), "the logs hold a secret");
    }
}

async fn team_creator_becomes_admin_and_claiming_needs_an_empty_team(backend: Backend) {
    let s = TestServer::start(backend).await;
    team(&s, "alpha").await;
    let lead = s.user("lead@example.test", &[("alpha", Role::Admin)]).await;
    let mut teams = TeamServiceClient::new(s.channel().await);
    teams
        .create_team(with_key(
            &lead.token,
            pb::CreateTeamRequest {
                id: "gamma".into(),
                name: "Gamma".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let members = teams
        .list_members(with_key(
            &lead.token,
            pb::ListMembersRequest {
                team_id: "gamma".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(
        (members.len(), members[0].role),
        (1, pb::Role::Admin as i32)
    );
    // An empty team (created by the system admin without members) can be claimed once.
    s.store
        .create_team(
            &keygate_control_plane::context::RequestContext::system("t"),
            keygate_control_plane::teams::NewTeam {
                id: keygate_control_plane::ids::TeamId("orphan".into()),
                name: "Orphan".into(),
                description: String::new(),
                color: String::new(),
                icon: String::new(),
            },
            None,
        )
        .await
        .unwrap();
    teams
        .claim_team(with_key(
            &lead.token,
            pb::ClaimTeamRequest {
                team_id: "orphan".into(),
            },
        ))
        .await
        .unwrap();
    let other = s
        .user("other@example.test", &[("alpha", Role::Admin)])
        .await;
    let e = teams
        .claim_team(with_key(
            &other.token,
            pb::ClaimTeamRequest {
                team_id: "orphan".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("has members"), "{}", e.message());
}

keygate_control_plane::on_both_backends!(
    sign_in_and_failures_that_reveal_nothing,
    sessions_sign_out_and_password_change,
    first_start_setup_code_is_single_use,
    embedded_service_keys_are_kept_while_live_and_replaced_when_dead,
    invitations_create_accounts_once,
    service_accounts_act_with_their_team_role_only,
    team_creator_becomes_admin_and_claiming_needs_an_empty_team,
);
