//! `keygate team ...`: create, list, show, change and delete teams (`team claim` lives with
//! the members, in `members`).
//!
//! Owns: turning team arguments into `TeamService` requests, and the team's table row,
//! `key: value` block and JSON shape. Must not: decide what a cascade deletes (the server
//! does, in one transaction); it only asks first and reports what went.

use keygate_proto::v1::{
    CreateTeamRequest, DeleteTeamRequest, DeleteTeamResponse, GetTeamRequest, ListTeamsRequest,
    Team, UpdateTeamRequest,
};
use serde_json::{Value, json};

use crate::Context;
use crate::args::{TeamCommand, TeamListArgs};
use crate::client::CliError;
use crate::output::{self, NONE};

const HEADER: [&str; 6] = ["ID", "NAME", "TOKENS", "ROUTES", "MEMBERS", "CREATED"];

pub(crate) async fn run(command: TeamCommand, ctx: &mut Context<'_>) -> Result<(), CliError> {
    match command {
        TeamCommand::Create(args) => {
            let request = CreateTeamRequest {
                id: args.id,
                name: args.name,
                description: args.description.unwrap_or_default(),
                color: args.color.unwrap_or_default(),
                icon: args.icon.unwrap_or_default(),
            };
            let conn = ctx.connect().await?;
            let response = conn.call(conn.teams().create_team(request)).await?;
            show_one(ctx, response.team)
        }
        TeamCommand::List(args) => list(args, ctx).await,
        TeamCommand::Get(args) => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.teams().get_team(GetTeamRequest { id: args.id }))
                .await?;
            show_one(ctx, response.team)
        }
        TeamCommand::Update(args) => {
            let request = UpdateTeamRequest {
                id: args.id,
                name: args.name,
                description: args.description,
                color: args.color,
                icon: args.icon,
            };
            let conn = ctx.connect().await?;
            let response = conn.call(conn.teams().update_team(request)).await?;
            show_one(ctx, response.team)
        }
        TeamCommand::Claim(args) => crate::members::claim(args, ctx).await,
        TeamCommand::Delete(args) => {
            let action = if args.cascade {
                format!(
                    "delete team {}, revoking its tokens and deleting its routes",
                    args.id
                )
            } else {
                format!("delete team {}", args.id)
            };
            ctx.confirm(&action, args.yes.yes)?;
            let conn = ctx.connect().await?;
            let request = DeleteTeamRequest {
                id: args.id.clone(),
                cascade: args.cascade,
            };
            let response = conn.call(conn.teams().delete_team(request)).await?;
            if ctx.json {
                return ctx.print_json(&delete_json(&response));
            }
            ctx.out
                .write_all(delete_summary(&args.id, &response).as_bytes())?;
            Ok(())
        }
    }
}

async fn list(args: TeamListArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let mut request = ListTeamsRequest {
        query: args.query.unwrap_or_default(),
        page_size: args.page.page_size.unwrap_or(0),
        page_token: args.page.page_token.unwrap_or_default(),
    };
    let conn = ctx.connect().await?;
    let mut teams = Vec::new();
    let next_page_token = loop {
        let page = conn.call(conn.teams().list_teams(request.clone())).await?;
        teams.extend(page.teams);
        if !args.page.all || page.next_page_token.is_empty() {
            break page.next_page_token;
        }
        request.page_token = page.next_page_token;
    };

    if ctx.json {
        let value = json!({
            "teams": teams.iter().map(team_json).collect::<Vec<_>>(),
            "next_page_token": next_page_token,
        });
        return ctx.print_json(&value);
    }
    if teams.is_empty() {
        ctx.note("no teams found")?;
    } else {
        ctx.out.write_all(team_table(&teams).as_bytes())?;
    }
    ctx.next_page_hint(&next_page_token)
}

fn show_one(ctx: &mut Context<'_>, team: Option<Team>) -> Result<(), CliError> {
    let team = team.ok_or_else(|| CliError::missing("team"))?;
    if ctx.json {
        return ctx.print_json(&json!({ "team": team_json(&team) }));
    }
    ctx.out
        .write_all(output::fields(&team_fields(&team)).as_bytes())?;
    Ok(())
}

/// The team table: one row per team.
pub fn team_table(teams: &[Team]) -> String {
    output::table(
        &HEADER,
        teams.iter().map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.token_count.to_string(),
                t.route_count.to_string(),
                t.member_count.to_string(),
                output::time_or(t.created_at.as_ref(), NONE),
            ]
        }),
    )
}

fn team_fields(t: &Team) -> Vec<(&'static str, String)> {
    vec![
        ("id", t.id.clone()),
        ("name", t.name.clone()),
        ("description", output::or_none(&t.description)),
        ("color", output::or_none(&t.color)),
        ("icon", output::or_none(&t.icon)),
        ("members", t.member_count.to_string()),
        ("active tokens", t.token_count.to_string()),
        ("routes", t.route_count.to_string()),
        ("created", output::time_or(t.created_at.as_ref(), NONE)),
        ("updated", output::time_or(t.updated_at.as_ref(), NONE)),
        ("created by", output::or_none(&t.created_by)),
    ]
}

/// A team as JSON: proto field names, RFC 3339 times (`null` when absent).
pub fn team_json(t: &Team) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "color": t.color,
        "icon": t.icon,
        "member_count": t.member_count,
        "token_count": t.token_count,
        "route_count": t.route_count,
        "created_at": output::time_json(t.created_at.as_ref()),
        "updated_at": output::time_json(t.updated_at.as_ref()),
        "created_by": t.created_by,
    })
}

fn delete_json(response: &DeleteTeamResponse) -> Value {
    json!({
        "revoked_token_ids": response.revoked_token_ids,
        "deleted_route_ids": response.deleted_route_ids,
    })
}

fn delete_summary(id: &str, response: &DeleteTeamResponse) -> String {
    let mut text = format!("deleted team {id}\n");
    if !response.revoked_token_ids.is_empty() {
        text.push_str(&format!(
            "revoked tokens: {}\n",
            response.revoked_token_ids.join(", ")
        ));
    }
    if !response.deleted_route_ids.is_empty() {
        text.push_str(&format!(
            "deleted routes: {}\n",
            response.deleted_route_ids.join(", ")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;

    fn sample() -> Team {
        Team {
            id: "core".into(),
            name: "Core platform".into(),
            description: String::new(),
            color: "#00ff88".into(),
            icon: "🛠".into(),
            member_count: 4,
            token_count: 12,
            route_count: 3,
            created_at: Some(Timestamp {
                seconds: 1_738_324_800,
                nanos: 0,
            }),
            updated_at: None,
            created_by: "key:mk_1".into(),
            caller_can_change: false,
        }
    }

    #[test]
    fn json_and_table() {
        let value = team_json(&sample());
        assert_eq!(value["token_count"], 12);
        assert_eq!(value["updated_at"], Value::Null);
        assert_eq!(value["created_at"], "2025-01-31T12:00:00Z");

        let text = team_table(&[sample()]);
        assert_eq!(
            text,
            "ID    NAME           TOKENS  ROUTES  MEMBERS  CREATED\n\
             core  Core platform  12      3       4        2025-01-31T12:00:00Z\n"
        );
    }

    #[test]
    fn delete_summary_lists_what_went() {
        let response = DeleteTeamResponse {
            revoked_token_ids: vec!["tok_1".into(), "tok_2".into()],
            deleted_route_ids: vec![],
        };
        assert_eq!(
            delete_summary("core", &response),
            "deleted team core\nrevoked tokens: tok_1, tok_2\n"
        );
        assert_eq!(
            delete_json(&response),
            json!({"revoked_token_ids": ["tok_1", "tok_2"], "deleted_route_ids": []})
        );
    }
}
