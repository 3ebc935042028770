//! `keygate member ...` and `keygate team claim`: who is in a team, and with which role.
//!
//! Owns: turning member arguments into `TeamService` membership requests, and the member's
//! table row, `key: value` block and JSON shape. Must not: decide who may grant which role
//! (the server does).

use keygate_proto::v1::{
    AddMemberRequest, ClaimTeamRequest, ListMembersRequest, Member, RemoveMemberRequest,
    UpdateMemberRoleRequest,
};
use serde_json::{Value, json};

use crate::Context;
use crate::args::{MemberCommand, TeamIdArg};
use crate::client::CliError;
use crate::output::{self, NONE};
use crate::roles;

const HEADER: [&str; 5] = ["USER ID", "EMAIL", "NAME", "ROLE", "ADDED"];

pub(crate) async fn run(command: MemberCommand, ctx: &mut Context<'_>) -> Result<(), CliError> {
    match command {
        MemberCommand::List(args) => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.teams().list_members(ListMembersRequest {
                    team_id: args.team.clone(),
                }))
                .await?;
            if ctx.json {
                let members: Vec<Value> = response.members.iter().map(member_json).collect();
                return ctx.print_json(&json!({ "members": members }));
            }
            if response.members.is_empty() {
                ctx.note(format_args!("team {} has no members", args.team))?;
                return Ok(());
            }
            ctx.out
                .write_all(member_table(&response.members).as_bytes())?;
            Ok(())
        }
        MemberCommand::Add(args) => {
            let request = AddMemberRequest {
                team_id: args.team,
                user: args.user,
                role: roles::wire(args.role),
            };
            let conn = ctx.connect().await?;
            let response = conn.call(conn.teams().add_member(request)).await?;
            show_one(ctx, response.member)
        }
        MemberCommand::SetRole(args) => {
            let request = UpdateMemberRoleRequest {
                team_id: args.team,
                user_id: args.user_id,
                role: roles::wire(args.role),
            };
            let conn = ctx.connect().await?;
            let response = conn.call(conn.teams().update_member_role(request)).await?;
            show_one(ctx, response.member)
        }
        MemberCommand::Remove(args) => {
            ctx.confirm(
                &format!("remove {} from team {}", args.user_id, args.team),
                args.yes.yes,
            )?;
            let conn = ctx.connect().await?;
            let request = RemoveMemberRequest {
                team_id: args.team.clone(),
                user_id: args.user_id.clone(),
            };
            conn.call(conn.teams().remove_member(request)).await?;
            if ctx.json {
                return ctx.print_json(&json!({}));
            }
            writeln!(ctx.out, "removed {} from team {}", args.user_id, args.team)?;
            Ok(())
        }
    }
}

/// `keygate team claim TEAM`: become ADMIN of a team without members.
pub(crate) async fn claim(args: TeamIdArg, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let conn = ctx.connect().await?;
    let response = conn
        .call(
            conn.teams()
                .claim_team(ClaimTeamRequest { team_id: args.id }),
        )
        .await?;
    show_one(ctx, response.member)
}

fn show_one(ctx: &mut Context<'_>, member: Option<Member>) -> Result<(), CliError> {
    let member = member.ok_or_else(|| CliError::missing("member"))?;
    if ctx.json {
        return ctx.print_json(&json!({ "member": member_json(&member) }));
    }
    ctx.out
        .write_all(output::fields(&member_fields(&member)).as_bytes())?;
    Ok(())
}

/// The member table: one row per member.
pub fn member_table(members: &[Member]) -> String {
    output::table(
        &HEADER,
        members.iter().map(|m| {
            vec![
                m.user_id.clone(),
                m.email.clone(),
                output::or_none(&m.display_name),
                roles::name(m.role),
                output::time_or(m.added_at.as_ref(), NONE),
            ]
        }),
    )
}

fn member_fields(m: &Member) -> Vec<(&'static str, String)> {
    vec![
        ("user id", m.user_id.clone()),
        ("email", m.email.clone()),
        ("name", output::or_none(&m.display_name)),
        ("role", roles::name(m.role)),
        ("added", output::time_or(m.added_at.as_ref(), NONE)),
    ]
}

/// A member as JSON: proto field names, RFC 3339 times, the role's short lowercase name.
pub fn member_json(m: &Member) -> Value {
    json!({
        "user_id": m.user_id,
        "email": m.email,
        "display_name": m.display_name,
        "role": roles::name(m.role),
        "added_at": output::time_json(m.added_at.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command, RoleArg, TeamCommand};
    use clap::Parser;
    use clap::error::ErrorKind;
    use keygate_proto::v1::Role;
    use prost_types::Timestamp;

    fn sample() -> Member {
        Member {
            user_id: "usr_1".into(),
            email: "ada@example.com".into(),
            display_name: String::new(),
            role: Role::Developer as i32,
            added_at: Some(Timestamp {
                seconds: 1_738_324_800,
                nanos: 0,
            }),
        }
    }

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(["keygate"].into_iter().chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn json_table_and_fields() {
        assert_eq!(
            member_json(&sample()),
            json!({
                "user_id": "usr_1",
                "email": "ada@example.com",
                "display_name": "",
                "role": "developer",
                "added_at": "2025-01-31T12:00:00Z",
            })
        );
        assert_eq!(
            member_table(&[sample()]),
            "USER ID  EMAIL            NAME  ROLE       ADDED\n\
             usr_1    ada@example.com  -     developer  2025-01-31T12:00:00Z\n"
        );
        let block = output::fields(&member_fields(&sample()));
        assert!(block.contains("role:    developer\n"), "{block}");
    }

    #[test]
    fn parsing() {
        let Command::Member(MemberCommand::Add(args)) = parse(&[
            "member",
            "add",
            "core",
            "ada@example.com",
            "--role",
            "manager",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (args.team.as_str(), args.user.as_str(), args.role),
            ("core", "ada@example.com", RoleArg::Manager)
        );
        let Command::Member(MemberCommand::SetRole(args)) =
            parse(&["member", "set-role", "core", "usr_1", "--role", "viewer"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(args.role, RoleArg::Viewer);
        let Command::Member(MemberCommand::Remove(args)) =
            parse(&["member", "remove", "core", "usr_1", "-y"]).unwrap()
        else {
            panic!()
        };
        assert!(args.yes.yes);
        let Command::Team(TeamCommand::Claim(args)) = parse(&["team", "claim", "core"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(args.id, "core");
        assert!(matches!(
            parse(&["member", "list", "core"]).unwrap(),
            Command::Member(MemberCommand::List(_))
        ));

        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["member", "add", "core", "usr_1"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["member", "add", "core", "usr_1", "--role", "owner"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(&["member", "set-role", "core", "--role", "admin"]),
            ErrorKind::MissingRequiredArgument
        );
    }
}
