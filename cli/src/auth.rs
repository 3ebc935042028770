//! `keygate login`, `logout`, `whoami`, `setup`, `session ...` and `password change`: the
//! AuthService calls.
//!
//! Owns: signing in (email and password, the setup code, or an invitation code) and storing
//! the session in the credentials file; signing out and deleting it; the session's table
//! row and JSON shape. Must not: print a password or a session token (the token goes to the
//! credentials file only), or sign in with a credential (SignIn needs none).

use std::time::Duration;

use keygate_proto::v1::{
    AcceptInvitationRequest, ChangePasswordRequest, CompleteSetupRequest, GetCurrentUserRequest,
    GetCurrentUserResponse, ListSessionsRequest, RevokeSessionRequest, Session, SignInRequest,
    SignInResponse, SignOutRequest,
};
use serde_json::{Value, json};
use tonic::Code;

use crate::Context;
use crate::args::{LoginArgs, PasswordArgs, PasswordCommand, SessionCommand, SetupArgs};
use crate::client::{CliError, Connection, Credential};
use crate::config::CredentialSource;
use crate::credentials::{self, StoredSession};
use crate::output::{self, NONE};
use crate::prompt::{self, PasswordRequest};
use crate::roles;
use crate::secret::Secret;
use crate::users;

const SESSION_HEADER: [&str; 7] = [
    "CURRENT",
    "ID",
    "CREATED",
    "EXPIRES",
    "LAST USED",
    "SOURCE IP",
    "USER AGENT",
];

/// The password to sign in with (`confirm: false`), or the one an account is created with.
fn password_request(
    ctx: &Context<'_>,
    from_stdin: bool,
    confirm: bool,
) -> PasswordRequest<'static> {
    PasswordRequest {
        what: "password",
        from_stdin: Some(from_stdin),
        env_name: "KEYGATE_PASSWORD",
        env_value: ctx.env.password.clone(),
        confirm,
    }
}

pub(crate) async fn login(args: LoginArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    // Fail before asking anything when the session could not be stored.
    ctx.config.credentials_path()?;
    let email = ctx.read_email(args.email)?;
    let request = password_request(ctx, args.password_stdin, false);
    let password = ctx.read_password(&request)?;
    let conn = ctx.connect_anonymous().await?;
    let request = SignInRequest {
        email,
        password: password.expose().to_owned(),
    };
    let response = conn.call(conn.auth().sign_in(request)).await?;
    store_session(ctx, response).await
}

pub(crate) async fn setup(args: SetupArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    ctx.config.credentials_path()?;
    let code = prompt::code(&args.code, "setup code")?;
    let request = password_request(ctx, args.password.password_stdin, true);
    let password = ctx.read_password(&request)?;
    let conn = ctx.connect_anonymous().await?;
    let request = CompleteSetupRequest {
        setup_code: code.expose().to_owned(),
        email: args.email,
        display_name: args.name,
        password: password.expose().to_owned(),
    };
    let response = conn.call(conn.auth().complete_setup(request)).await?;
    store_session(ctx, response).await
}

/// `invite accept`: creates the account from the code and stores its session.
pub(crate) async fn accept_invitation(
    code: Secret,
    display_name: String,
    password_args: &PasswordArgs,
    ctx: &mut Context<'_>,
) -> Result<(), CliError> {
    let request = password_request(ctx, password_args.password_stdin, true);
    let password = ctx.read_password(&request)?;
    let conn = ctx.connect_anonymous().await?;
    let request = AcceptInvitationRequest {
        code: code.expose().to_owned(),
        display_name,
        password: password.expose().to_owned(),
    };
    let response = conn.call(conn.auth().accept_invitation(request)).await?;
    store_session(ctx, response).await
}

/// Writes a fresh session to the credentials file and tells who is signed in. The token
/// itself is never printed.
async fn store_session(ctx: &mut Context<'_>, response: SignInResponse) -> Result<(), CliError> {
    let path = ctx.config.credentials_path()?.to_owned();
    let session = response
        .session
        .ok_or_else(|| CliError::missing("session"))?;
    let user = response.user.ok_or_else(|| CliError::missing("user"))?;
    if response.session_token.is_empty() {
        return Err(CliError::missing("session_token"));
    }
    let stored = StoredSession {
        addr: ctx.config.addr.clone(),
        session_token: Secret::new(response.session_token),
        session_id: session.id.clone(),
        email: user.email.clone(),
        expires_at: session.expires_at,
    };
    // An unreadable old file is simply replaced.
    let replaced = credentials::load(&path).ok().flatten();
    credentials::save(&path, &stored)?;
    if let Some(old) = replaced
        && old.session_id != stored.session_id
    {
        if old.addr == stored.addr {
            // Best effort: the old session would otherwise stay valid until it expires,
            // with no local copy left to end it.
            let _ = sign_out(&old, ctx.config.timeout).await;
        } else {
            let replaced_note = format!("Replaced the stored session for {}.", old.addr);
            ctx.note(replaced_note)?;
        }
    }

    if ctx.json {
        ctx.print_json(&json!({
            "user": users::user_json(&user),
            "session": session_json(&session),
        }))?;
    } else {
        let pairs = [
            ("signed in as", user.email.clone()),
            ("name", output::or_none(&user.display_name)),
            ("user", user.id.clone()),
            ("system admin", output::yes_no(user.system_admin).to_owned()),
            ("roles", roles::label(&user.roles)),
            ("session", session.id.clone()),
            (
                "expires",
                output::time_or(session.expires_at.as_ref(), "never"),
            ),
        ];
        ctx.out.write_all(output::fields(&pairs).as_bytes())?;
    }
    let stored_note = format!(
        "Session for {} stored in {}.",
        ctx.config.addr,
        path.display()
    );
    ctx.note(stored_note)?;
    if !matches!(
        ctx.config.source,
        CredentialSource::None | CredentialSource::StoredSession(_)
    ) {
        let precedence = format!(
            "Note: {} takes precedence over the stored session.",
            ctx.config.source
        );
        ctx.note(precedence)?;
    }
    Ok(())
}

/// Signs the stored session out and deletes the credentials file. A session the server no
/// longer knows still counts as signed out; any other failure keeps the file for a retry.
pub(crate) async fn logout(ctx: &mut Context<'_>) -> Result<(), CliError> {
    let path = ctx.config.credentials_path()?.to_owned();
    let stored = match credentials::load(&path) {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            ctx.note(format_args!(
                "Not signed in: no stored session in {}.",
                path.display()
            ))?;
            return if ctx.json {
                ctx.print_json(&json!({}))
            } else {
                Ok(())
            };
        }
        Err(_) => {
            // Nothing usable to sign out with: forget it locally.
            credentials::remove(&path)?;
            ctx.note(format_args!(
                "Deleted {}: it held no usable session.",
                path.display()
            ))?;
            return if ctx.json {
                ctx.print_json(&json!({}))
            } else {
                Ok(())
            };
        }
    };

    match sign_out(&stored, ctx.config.timeout).await {
        Ok(()) => {}
        Err(e) if session_already_gone(&e) => {}
        Err(e) => {
            ctx.note(format_args!(
                "The stored session was kept: retry `keygate logout`, or delete {} to forget \
                 it locally.",
                path.display()
            ))?;
            return Err(e);
        }
    }
    credentials::remove(&path)?;
    if ctx.json {
        return ctx.print_json(&json!({}));
    }
    writeln!(
        ctx.out,
        "signed out of {} ({})",
        stored.addr,
        output::or_none(&stored.email)
    )?;
    Ok(())
}

/// Ends a stored session on the control plane it belongs to.
async fn sign_out(stored: &StoredSession, timeout: Duration) -> Result<(), CliError> {
    let credential = Credential::new(stored.session_token.expose());
    let conn = Connection::open(&stored.addr, timeout, Some(&credential)).await?;
    conn.call(conn.auth().sign_out(SignOutRequest {}))
        .await
        .map(drop)
}

/// True when SignOut failed because the session had already ended.
fn session_already_gone(error: &CliError) -> bool {
    matches!(
        error,
        CliError::Rpc {
            code: Code::Unauthenticated | Code::NotFound,
            ..
        }
    )
}

pub(crate) async fn whoami(ctx: &mut Context<'_>) -> Result<(), CliError> {
    let conn = ctx.connect().await?;
    let response = conn
        .call(conn.auth().get_current_user(GetCurrentUserRequest {}))
        .await?;
    if ctx.json {
        return ctx.print_json(&current_user_json(&response));
    }
    let mut pairs = Vec::new();
    if let Some(user) = &response.user {
        pairs.extend([
            ("user", user.id.clone()),
            ("email", user.email.clone()),
            ("name", output::or_none(&user.display_name)),
        ]);
    }
    if !response.service_account_id.is_empty() {
        pairs.push(("service account", response.service_account_id.clone()));
    }
    pairs.push((
        "system admin",
        output::yes_no(response.system_admin).to_owned(),
    ));
    pairs.push(("credential", ctx.config.source.to_string()));
    pairs.push(("control plane", ctx.config.addr.clone()));
    ctx.out.write_all(output::fields(&pairs).as_bytes())?;
    if response.roles.is_empty() {
        ctx.note("no team roles")?;
    } else {
        writeln!(ctx.out)?;
        ctx.out
            .write_all(roles::table(&response.roles).as_bytes())?;
    }
    Ok(())
}

/// `whoami --json`: the response message.
pub fn current_user_json(r: &GetCurrentUserResponse) -> Value {
    json!({
        "user": r.user.as_ref().map_or(Value::Null, users::user_json),
        "service_account_id": r.service_account_id,
        "roles": roles::team_roles_json(&r.roles),
        "system_admin": r.system_admin,
    })
}

pub(crate) async fn session(
    command: SessionCommand,
    ctx: &mut Context<'_>,
) -> Result<(), CliError> {
    match command {
        SessionCommand::List => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.auth().list_sessions(ListSessionsRequest {}))
                .await?;
            if ctx.json {
                let sessions: Vec<Value> = response.sessions.iter().map(session_json).collect();
                return ctx.print_json(&json!({ "sessions": sessions }));
            }
            if response.sessions.is_empty() {
                ctx.note("no sessions")?;
                return Ok(());
            }
            ctx.out
                .write_all(session_table(&response.sessions).as_bytes())?;
            Ok(())
        }
        SessionCommand::Revoke(args) => {
            let conn = ctx.connect().await?;
            conn.call(conn.auth().revoke_session(RevokeSessionRequest {
                id: args.id.clone(),
            }))
            .await?;
            forget_if_stored(ctx, &args.id)?;
            if ctx.json {
                return ctx.print_json(&json!({}));
            }
            writeln!(ctx.out, "revoked session {}", args.id)?;
            Ok(())
        }
    }
}

/// After `session revoke` of the session this invocation signed in with, the stored copy
/// is useless: delete it.
fn forget_if_stored(ctx: &mut Context<'_>, revoked_id: &str) -> Result<(), CliError> {
    let CredentialSource::StoredSession(path) = &ctx.config.source else {
        return Ok(());
    };
    let path = path.clone();
    if let Ok(Some(stored)) = credentials::load(&path)
        && stored.session_id == revoked_id
    {
        credentials::remove(&path)?;
        ctx.note(format_args!(
            "That was the stored session: deleted {}.",
            path.display()
        ))?;
    }
    Ok(())
}

pub(crate) async fn password(
    command: PasswordCommand,
    ctx: &mut Context<'_>,
) -> Result<(), CliError> {
    match command {
        PasswordCommand::Change => {
            let current = PasswordRequest {
                what: "current password",
                from_stdin: None,
                env_name: "KEYGATE_PASSWORD",
                env_value: ctx.env.password.clone(),
                confirm: false,
            };
            let current = ctx.read_password(&current)?;
            let new = PasswordRequest {
                what: "new password",
                from_stdin: None,
                env_name: "KEYGATE_NEW_PASSWORD",
                env_value: ctx.env.new_password.clone(),
                confirm: true,
            };
            let new = ctx.read_password(&new)?;
            let conn = ctx.connect().await?;
            let request = ChangePasswordRequest {
                current_password: current.expose().to_owned(),
                new_password: new.expose().to_owned(),
            };
            conn.call(conn.auth().change_password(request)).await?;
            if ctx.json {
                return ctx.print_json(&json!({}));
            }
            writeln!(
                ctx.out,
                "password changed; your other sessions were signed out"
            )?;
            Ok(())
        }
    }
}

/// The session table; `*` marks the session making the call.
pub fn session_table(sessions: &[Session]) -> String {
    output::table(
        &SESSION_HEADER,
        sessions.iter().map(|s| {
            vec![
                if s.current { "*" } else { "" }.to_owned(),
                s.id.clone(),
                output::time_or(s.created_at.as_ref(), NONE),
                output::time_or(s.expires_at.as_ref(), "never"),
                output::time_or(s.last_used_at.as_ref(), "never"),
                output::or_none(&s.source_ip),
                output::or_none(&s.user_agent),
            ]
        }),
    )
}

/// A session as JSON: proto field names, RFC 3339 times (`null` when absent). A session
/// message never holds the token.
pub fn session_json(s: &Session) -> Value {
    json!({
        "id": s.id,
        "created_at": output::time_json(s.created_at.as_ref()),
        "expires_at": output::time_json(s.expires_at.as_ref()),
        "last_used_at": output::time_json(s.last_used_at.as_ref()),
        "source_ip": s.source_ip,
        "user_agent": s.user_agent,
        "current": s.current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_proto::v1::{Role, TeamRole, User};
    use prost_types::Timestamp;

    fn ts(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    fn sample_session(id: &str, current: bool) -> Session {
        Session {
            id: id.into(),
            created_at: ts(1_738_324_800),
            expires_at: ts(1_738_929_600),
            last_used_at: None,
            source_ip: "10.0.0.7".into(),
            user_agent: "keygate-cli/0.1.0".into(),
            current,
        }
    }

    #[test]
    fn session_table_marks_the_current_one() {
        let text = session_table(&[
            sample_session("ses_1", true),
            sample_session("ses_2", false),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("CURRENT  ID"), "{text}");
        assert!(lines[1].starts_with("*        ses_1"), "{text}");
        assert!(lines[2].starts_with("         ses_2"), "{text}");
        assert!(lines[1].contains("never"), "{text}");
    }

    #[test]
    fn session_and_current_user_json() {
        let value = session_json(&sample_session("ses_1", true));
        assert_eq!(value["current"], true);
        assert_eq!(value["last_used_at"], Value::Null);
        assert_eq!(value["expires_at"], "2025-02-07T12:00:00Z");

        let response = GetCurrentUserResponse {
            user: Some(User {
                id: "usr_1".into(),
                email: "ada@example.com".into(),
                ..User::default()
            }),
            service_account_id: String::new(),
            roles: vec![TeamRole {
                team_id: "core".into(),
                role: Role::Manager as i32,
            }],
            system_admin: true,
            ..GetCurrentUserResponse::default()
        };
        let value = current_user_json(&response);
        assert_eq!(value["user"]["email"], "ada@example.com");
        assert_eq!(
            value["roles"],
            json!([{"team_id": "core", "role": "manager"}])
        );
        assert_eq!(value["system_admin"], true);

        let service = GetCurrentUserResponse {
            service_account_id: "sa_1".into(),
            ..GetCurrentUserResponse::default()
        };
        assert_eq!(current_user_json(&service)["user"], Value::Null);
    }

    #[test]
    fn gone_sessions_count_as_signed_out() {
        let rpc = |code| CliError::Rpc {
            code,
            message: "m".into(),
            request_id: "r".into(),
            violations: Vec::new(),
        };
        assert!(session_already_gone(&rpc(Code::Unauthenticated)));
        assert!(session_already_gone(&rpc(Code::NotFound)));
        assert!(!session_already_gone(&rpc(Code::Internal)));
        assert!(!session_already_gone(&CliError::Unreachable {
            addr: "a".into(),
            reason: "b".into()
        }));
    }
}
