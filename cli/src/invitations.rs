//! `keygate invite ...`: invite people into teams, list and revoke invitations, and accept
//! one.
//!
//! Owns: turning invitation arguments into `InvitationService` requests, and the
//! invitation's table row, `key: value` block and JSON shape. Must not: print a code
//! anywhere but stdout, or more than once (`invite create`); `invite accept` signs in through
//! `auth`.

use std::time::SystemTime;

use keygate_proto::v1::{
    CreateInvitationRequest, Invitation, ListInvitationsRequest, RevokeInvitationRequest, TeamRole,
};
use prost_types::Timestamp;
use serde_json::{Value, json};

use crate::Context;
use crate::args::{InviteCommand, InviteCreateArgs};
use crate::client::CliError;
use crate::output::{self, NONE};
use crate::{auth, prompt, roles};

const HEADER: [&str; 6] = ["ID", "EMAIL", "ROLES", "STATUS", "EXPIRES", "CREATED BY"];

pub(crate) async fn run(command: InviteCommand, ctx: &mut Context<'_>) -> Result<(), CliError> {
    match command {
        InviteCommand::Create(args) => {
            let quiet = args.quiet;
            let request = create_request(args);
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.invitations().create_invitation(request))
                .await?;
            let invitation = response
                .invitation
                .ok_or_else(|| CliError::missing("invitation"))?;
            if response.code.is_empty() {
                return Err(CliError::missing("code"));
            }
            show_created(ctx, &invitation, &response.code, quiet)
        }
        InviteCommand::List(args) => {
            let conn = ctx.connect().await?;
            let request = ListInvitationsRequest {
                team_id: args.team.unwrap_or_default(),
            };
            let response = conn
                .call(conn.invitations().list_invitations(request))
                .await?;
            if ctx.json {
                let invitations: Vec<Value> =
                    response.invitations.iter().map(invitation_json).collect();
                return ctx.print_json(&json!({ "invitations": invitations }));
            }
            if response.invitations.is_empty() {
                ctx.note("no pending invitations")?;
                return Ok(());
            }
            let table = invitation_table(&response.invitations, SystemTime::now());
            ctx.out.write_all(table.as_bytes())?;
            Ok(())
        }
        InviteCommand::Revoke(args) => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(
                    conn.invitations()
                        .revoke_invitation(RevokeInvitationRequest { id: args.id }),
                )
                .await?;
            let invitation = response
                .invitation
                .ok_or_else(|| CliError::missing("invitation"))?;
            if ctx.json {
                return ctx.print_json(&json!({ "invitation": invitation_json(&invitation) }));
            }
            let pairs = invitation_fields(&invitation, SystemTime::now());
            ctx.out.write_all(output::fields(&pairs).as_bytes())?;
            Ok(())
        }
        InviteCommand::Accept(args) => {
            // Fail before asking for a password when the session could not be stored.
            ctx.config.credentials_path()?;
            let code = prompt::code(&args.code, "invitation code")?;
            auth::accept_invitation(code, args.name, &args.password, ctx).await
        }
    }
}

fn create_request(args: InviteCreateArgs) -> CreateInvitationRequest {
    CreateInvitationRequest {
        email: args.email,
        roles: args.roles.iter().map(TeamRole::from).collect(),
        expires_in_hours: args.expires_in_hours.unwrap_or(0),
    }
}

/// Prints a new invitation: its row, then the code alone on its own stdout line, with the
/// shown-once notice on stderr. `--quiet` prints only the code.
fn show_created(
    ctx: &mut Context<'_>,
    invitation: &Invitation,
    code: &str,
    quiet: bool,
) -> Result<(), CliError> {
    if quiet {
        writeln!(ctx.out, "{code}")?;
        return Ok(());
    }
    if ctx.json {
        return ctx.print_json(&json!({
            "invitation": invitation_json(invitation),
            "code": code,
        }));
    }
    let table = invitation_table(std::slice::from_ref(invitation), SystemTime::now());
    ctx.out.write_all(table.as_bytes())?;
    ctx.note(format_args!(
        "\nThis is the invitation code. It is shown once: give it to {} now, it cannot be \
         read again. They accept it with `keygate invite accept --code-file FILE --name NAME`.",
        invitation.email
    ))?;
    writeln!(ctx.out, "{code}")?;
    Ok(())
}

fn is_past(ts: Option<&Timestamp>, now: SystemTime) -> bool {
    ts.and_then(|ts| SystemTime::try_from(*ts).ok())
        .is_some_and(|t| t <= now)
}

/// `accepted`, `revoked`, `expired` or `pending`.
pub fn status(i: &Invitation, now: SystemTime) -> &'static str {
    if i.accepted_at.is_some() {
        "accepted"
    } else if i.revoked_at.is_some() {
        "revoked"
    } else if is_past(i.expires_at.as_ref(), now) {
        "expired"
    } else {
        "pending"
    }
}

/// The invitation table: one row per invitation.
pub fn invitation_table(invitations: &[Invitation], now: SystemTime) -> String {
    output::table(
        &HEADER,
        invitations.iter().map(|i| {
            vec![
                i.id.clone(),
                i.email.clone(),
                roles::label(&i.roles),
                status(i, now).to_owned(),
                output::time_or(i.expires_at.as_ref(), "never"),
                output::or_none(&i.created_by),
            ]
        }),
    )
}

fn invitation_fields(i: &Invitation, now: SystemTime) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("id", i.id.clone()),
        ("email", i.email.clone()),
        ("roles", roles::label(&i.roles)),
        ("status", status(i, now).to_owned()),
        ("expires", output::time_or(i.expires_at.as_ref(), "never")),
        ("created", output::time_or(i.created_at.as_ref(), NONE)),
        ("created by", output::or_none(&i.created_by)),
    ];
    if let Some(accepted) = &i.accepted_at {
        pairs.push(("accepted", output::rfc3339(accepted)));
    }
    if let Some(revoked) = &i.revoked_at {
        pairs.push(("revoked", output::rfc3339(revoked)));
    }
    pairs
}

/// An invitation as JSON: proto field names, RFC 3339 times (`null` when absent), roles as
/// `{"team_id", "role"}`. Never the code (it is not part of the message).
pub fn invitation_json(i: &Invitation) -> Value {
    json!({
        "id": i.id,
        "email": i.email,
        "roles": roles::team_roles_json(&i.roles),
        "created_at": output::time_json(i.created_at.as_ref()),
        "expires_at": output::time_json(i.expires_at.as_ref()),
        "created_by": i.created_by,
        "accepted_at": output::time_json(i.accepted_at.as_ref()),
        "revoked_at": output::time_json(i.revoked_at.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command, RoleArg, TeamRoleArg, parse_team_role};
    use clap::Parser;
    use clap::error::ErrorKind;
    use keygate_proto::v1::Role;
    use std::time::Duration;

    const T0: i64 = 1_738_324_800; // 2025-01-31T12:00:00Z

    fn ts(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    fn at(seconds: i64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64)
    }

    fn sample() -> Invitation {
        Invitation {
            id: "inv_1".into(),
            email: "bob@example.com".into(),
            roles: vec![TeamRole {
                team_id: "core".into(),
                role: Role::Developer as i32,
            }],
            created_at: ts(T0),
            expires_at: ts(T0 + 7 * 86_400),
            created_by: "usr_1".into(),
            accepted_at: None,
            revoked_at: None,
            system_admin: false,
        }
    }

    fn parse(args: &[&str]) -> Result<InviteCommand, clap::Error> {
        let argv = ["keygate", "invite"]
            .into_iter()
            .chain(args.iter().copied());
        match Cli::try_parse_from(argv)?.command {
            Command::Invite(command) => Ok(command),
            other => panic!("not an invite command: {other:?}"),
        }
    }

    #[test]
    fn json_shape() {
        assert_eq!(
            invitation_json(&sample()),
            json!({
                "id": "inv_1",
                "email": "bob@example.com",
                "roles": [{"team_id": "core", "role": "developer"}],
                "created_at": "2025-01-31T12:00:00Z",
                "expires_at": "2025-02-07T12:00:00Z",
                "created_by": "usr_1",
                "accepted_at": null,
                "revoked_at": null,
            })
        );
    }

    #[test]
    fn statuses_and_table() {
        let mut i = sample();
        assert_eq!(status(&i, at(T0)), "pending");
        assert_eq!(status(&i, at(T0 + 8 * 86_400)), "expired");
        i.revoked_at = ts(T0 + 1);
        assert_eq!(status(&i, at(T0 + 2)), "revoked");
        i.accepted_at = ts(T0 + 1);
        assert_eq!(status(&i, at(T0 + 2)), "accepted");

        assert_eq!(
            invitation_table(&[sample()], at(T0)),
            "ID     EMAIL            ROLES           STATUS   EXPIRES               CREATED BY\n\
             inv_1  bob@example.com  core:developer  pending  2025-02-07T12:00:00Z  usr_1\n"
        );
        let block = output::fields(&invitation_fields(&i, at(T0)));
        assert!(
            block.contains("accepted:   2025-01-31T12:00:01Z\n"),
            "{block}"
        );
    }

    #[test]
    fn team_role_parsing() {
        let ok = |raw: &str| parse_team_role(raw).unwrap();
        assert_eq!(
            ok("core:admin"),
            TeamRoleArg {
                team_id: "core".into(),
                role: RoleArg::Admin
            }
        );
        assert_eq!(ok(" ops : Viewer ").role, RoleArg::Viewer);
        assert_eq!(ok("ops:MANAGER").role, RoleArg::Manager);

        let cases = [
            ("core", "expected TEAM:ROLE"),
            ("core-admin", "expected TEAM:ROLE"),
            (":admin", "the team is empty"),
            ("core:", "unknown role ``"),
            ("core:owner", "unknown role `owner`"),
            ("core:admin:extra", "unknown role `admin:extra`"),
        ];
        for (raw, want) in cases {
            let err = parse_team_role(raw).unwrap_err();
            assert!(err.contains(want), "{raw}: {err}");
            assert!(err.contains("admin, manager, developer, viewer"), "{err}");
        }
    }

    #[test]
    fn create_parsing_and_request() {
        let InviteCommand::Create(args) = parse(&[
            "create",
            "--email",
            "bob@example.com",
            "--role",
            "core:developer",
            "--role",
            "ops:viewer",
            "--expires-in-hours",
            "48",
            "--quiet",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(args.quiet);
        let request = create_request(args);
        assert_eq!(request.expires_in_hours, 48);
        assert_eq!(
            request.roles,
            [
                TeamRole {
                    team_id: "core".into(),
                    role: Role::Developer as i32
                },
                TeamRole {
                    team_id: "ops".into(),
                    role: Role::Viewer as i32
                },
            ]
        );

        let InviteCommand::Create(args) =
            parse(&["create", "--email", "b@x", "--role", "core:admin"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(create_request(args).expires_in_hours, 0);

        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["create", "--email", "b@x"]),
            ErrorKind::MissingRequiredArgument
        );
        let bad = parse(&["create", "--email", "b@x", "--role", "core:owner"]).unwrap_err();
        assert_eq!(bad.kind(), ErrorKind::ValueValidation);
        assert!(bad.to_string().contains("unknown role `owner`"), "{bad}");
        assert_eq!(
            kind(&["create", "--email", "b@x", "--role", "core"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&[
                "create",
                "--email",
                "b@x",
                "--role",
                "core:admin",
                "--expires-in-hours",
                "721"
            ]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn accept_and_list_parsing() {
        let InviteCommand::Accept(args) = parse(&[
            "accept",
            "--code",
            "INV-SECRET-1",
            "--name",
            "Bob",
            "--password-stdin",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(args.code.code.as_ref().unwrap().expose(), "INV-SECRET-1");
        assert!(args.password.password_stdin);
        assert!(!format!("{args:?}").contains("INV-SECRET"));

        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["accept", "--name", "Bob"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["accept", "--code", "A", "--code-file", "f", "--name", "Bob"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["accept", "--code", "A"]),
            ErrorKind::MissingRequiredArgument
        );
        // There is no flag that takes a password itself.
        assert_eq!(
            kind(&["accept", "--code", "A", "--name", "B", "--password", "x"]),
            ErrorKind::UnknownArgument
        );

        let InviteCommand::List(args) = parse(&["list", "--team", "core"]).unwrap() else {
            panic!()
        };
        assert_eq!(args.team.as_deref(), Some("core"));
        assert!(matches!(
            parse(&["revoke", "inv_1"]).unwrap(),
            InviteCommand::Revoke(_)
        ));
    }
}
