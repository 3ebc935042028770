//! `keygate user ...`: list, show, change, disable and enable users.
//!
//! Owns: turning user arguments into `UserService` requests, and the user's table row,
//! `key: value` block and JSON shape (also used by `login` and `whoami`). Must not: decide
//! who may see or change whom (the server does).

use keygate_proto::v1::{
    DisableUserRequest, EnableUserRequest, GetUserRequest, ListUsersRequest, UpdateUserRequest,
    User,
};
use serde_json::{Value, json};

use crate::Context;
use crate::args::{UserCommand, UserListArgs};
use crate::client::CliError;
use crate::output::{self, NONE};
use crate::roles;

const HEADER: [&str; 7] = [
    "ID",
    "EMAIL",
    "NAME",
    "SYSTEM ADMIN",
    "STATUS",
    "ROLES",
    "LAST SIGN IN",
];

pub(crate) async fn run(command: UserCommand, ctx: &mut Context<'_>) -> Result<(), CliError> {
    match command {
        UserCommand::List(args) => list(args, ctx).await,
        UserCommand::Get(args) => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.users().get_user(GetUserRequest { id: args.id }))
                .await?;
            show_one(ctx, response.user)
        }
        UserCommand::Update(args) => {
            let request = UpdateUserRequest {
                id: args.id,
                display_name: args.name,
                system_admin: args.system_admin,
            };
            let conn = ctx.connect().await?;
            let response = conn.call(conn.users().update_user(request)).await?;
            show_one(ctx, response.user)
        }
        UserCommand::Disable(args) => {
            ctx.confirm(
                &format!("disable user {} and end their sessions", args.id),
                args.yes.yes,
            )?;
            let conn = ctx.connect().await?;
            let response = conn
                .call(
                    conn.users()
                        .disable_user(DisableUserRequest { id: args.id }),
                )
                .await?;
            show_one(ctx, response.user)
        }
        UserCommand::Enable(args) => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.users().enable_user(EnableUserRequest { id: args.id }))
                .await?;
            show_one(ctx, response.user)
        }
    }
}

fn list_request(args: &UserListArgs) -> ListUsersRequest {
    ListUsersRequest {
        query: args.query.clone().unwrap_or_default(),
        team_id: args.team.clone().unwrap_or_default(),
        page_size: args.page.page_size.unwrap_or(0),
        page_token: args.page.page_token.clone().unwrap_or_default(),
    }
}

async fn list(args: UserListArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let mut request = list_request(&args);
    let conn = ctx.connect().await?;
    let mut users = Vec::new();
    let next_page_token = loop {
        let page = conn.call(conn.users().list_users(request.clone())).await?;
        users.extend(page.users);
        if !args.page.all || page.next_page_token.is_empty() {
            break page.next_page_token;
        }
        request.page_token = page.next_page_token;
    };

    if ctx.json {
        let value = json!({
            "users": users.iter().map(user_json).collect::<Vec<_>>(),
            "next_page_token": next_page_token,
        });
        return ctx.print_json(&value);
    }
    if users.is_empty() {
        ctx.note("no users found")?;
    } else {
        ctx.out.write_all(user_table(&users).as_bytes())?;
    }
    ctx.next_page_hint(&next_page_token)
}

fn show_one(ctx: &mut Context<'_>, user: Option<User>) -> Result<(), CliError> {
    let user = user.ok_or_else(|| CliError::missing("user"))?;
    if ctx.json {
        return ctx.print_json(&json!({ "user": user_json(&user) }));
    }
    ctx.out
        .write_all(output::fields(&user_fields(&user)).as_bytes())?;
    Ok(())
}

fn status(u: &User) -> &'static str {
    if u.disabled { "disabled" } else { "active" }
}

/// The user table: one row per user.
pub fn user_table(users: &[User]) -> String {
    output::table(
        &HEADER,
        users.iter().map(|u| {
            vec![
                u.id.clone(),
                u.email.clone(),
                output::or_none(&u.display_name),
                output::yes_no(u.system_admin).to_owned(),
                status(u).to_owned(),
                roles::label(&u.roles),
                output::time_or(u.last_sign_in_at.as_ref(), "never"),
            ]
        }),
    )
}

fn user_fields(u: &User) -> Vec<(&'static str, String)> {
    vec![
        ("id", u.id.clone()),
        ("email", u.email.clone()),
        ("name", output::or_none(&u.display_name)),
        ("system admin", output::yes_no(u.system_admin).to_owned()),
        ("status", status(u).to_owned()),
        ("roles", roles::label(&u.roles)),
        (
            "last sign in",
            output::time_or(u.last_sign_in_at.as_ref(), "never"),
        ),
        ("created", output::time_or(u.created_at.as_ref(), NONE)),
        ("updated", output::time_or(u.updated_at.as_ref(), NONE)),
    ]
}

/// A user as JSON: proto field names, RFC 3339 times (`null` when absent), roles as
/// `{"team_id", "role"}` with short lowercase role names.
pub fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "display_name": u.display_name,
        "system_admin": u.system_admin,
        "disabled": u.disabled,
        "last_sign_in_at": output::time_json(u.last_sign_in_at.as_ref()),
        "created_at": output::time_json(u.created_at.as_ref()),
        "updated_at": output::time_json(u.updated_at.as_ref()),
        "roles": roles::team_roles_json(&u.roles),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;
    use clap::error::ErrorKind;
    use keygate_proto::v1::{Role, TeamRole};
    use prost_types::Timestamp;

    pub(crate) fn sample() -> User {
        User {
            id: "usr_01JCCCCCCCCCCCCCCCCCCCCCCC".into(),
            email: "ada@example.com".into(),
            display_name: "Ada Lovelace".into(),
            system_admin: false,
            disabled: false,
            last_sign_in_at: None,
            created_at: Some(Timestamp {
                seconds: 1_738_324_800,
                nanos: 0,
            }),
            updated_at: None,
            roles: vec![
                TeamRole {
                    team_id: "core".into(),
                    role: Role::Admin as i32,
                },
                TeamRole {
                    team_id: "ops".into(),
                    role: Role::Viewer as i32,
                },
            ],
        }
    }

    fn parse(args: &[&str]) -> Result<UserCommand, clap::Error> {
        let argv = ["keygate", "user"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv)?.command {
            Command::User(command) => Ok(command),
            other => panic!("not a user command: {other:?}"),
        }
    }

    #[test]
    fn json_shape() {
        let value = user_json(&sample());
        assert_eq!(
            value,
            json!({
                "id": "usr_01JCCCCCCCCCCCCCCCCCCCCCCC",
                "email": "ada@example.com",
                "display_name": "Ada Lovelace",
                "system_admin": false,
                "disabled": false,
                "last_sign_in_at": null,
                "created_at": "2025-01-31T12:00:00Z",
                "updated_at": null,
                "roles": [
                    {"team_id": "core", "role": "admin"},
                    {"team_id": "ops", "role": "viewer"},
                ],
            })
        );
    }

    #[test]
    fn table_and_fields() {
        let mut disabled = sample();
        disabled.disabled = true;
        disabled.system_admin = true;
        disabled.id = "usr_2".into();
        disabled.roles.clear();
        assert_eq!(
            user_table(&[sample(), disabled]),
            "ID                              EMAIL            NAME          SYSTEM ADMIN  STATUS    \
             ROLES                  LAST SIGN IN\n\
             usr_01JCCCCCCCCCCCCCCCCCCCCCCC  ada@example.com  Ada Lovelace  no            active    \
             core:admin,ops:viewer  never\n\
             usr_2                           ada@example.com  Ada Lovelace  yes           disabled  \
             -                      never\n"
        );

        let block = output::fields(&user_fields(&sample()));
        assert!(
            block.contains("roles:        core:admin,ops:viewer\n"),
            "{block}"
        );
        assert!(block.contains("last sign in: never\n"), "{block}");
    }

    #[test]
    fn parsing() {
        let UserCommand::List(args) = parse(&[
            "list",
            "--query",
            "ada",
            "--team",
            "core",
            "--page-size",
            "10",
            "--all",
        ])
        .unwrap() else {
            panic!()
        };
        let request = list_request(&args);
        assert_eq!(
            (
                request.query.as_str(),
                request.team_id.as_str(),
                request.page_size
            ),
            ("ada", "core", 10)
        );
        assert!(args.page.all);

        let UserCommand::Update(args) =
            parse(&["update", "usr_1", "--system-admin", "false"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(args.system_admin, Some(false));
        assert_eq!(args.name, None);
        let UserCommand::Update(args) =
            parse(&["update", "usr_1", "--name", "Ada", "--system-admin", "true"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (args.name.as_deref(), args.system_admin),
            (Some("Ada"), Some(true))
        );

        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["update", "usr_1"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["update", "usr_1", "--system-admin", "maybe"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(&["update", "usr_1", "--system-admin"]),
            ErrorKind::InvalidValue
        );

        let UserCommand::Disable(args) = parse(&["disable", "usr_1", "--yes"]).unwrap() else {
            panic!()
        };
        assert!(args.yes.yes);
        assert!(matches!(
            parse(&["enable", "usr_1"]).unwrap(),
            UserCommand::Enable(_)
        ));
        assert!(matches!(
            parse(&["get", "usr_1"]).unwrap(),
            UserCommand::Get(_)
        ));
    }
}
