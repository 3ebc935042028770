//! `keygate token ...`: issue, list, show, change, revoke and rotate API tokens.
//!
//! Owns: turning token arguments into `TokenService` requests, and the token's table row,
//! `key: value` block and JSON shape. Must not: print a plaintext anywhere but stdout, or
//! print it more than once.

use std::time::{Duration, SystemTime};

use keygate_proto::v1::{
    CreateTokenRequest, GetTokenRequest, ListTokensRequest, RevokeTokenRequest, RotateTokenRequest,
    StringList, Token, TokenSortField, TokenStatus, UpdateTokenRequest, create_token_request,
    update_token_request,
};
use serde_json::{Value, json};

use crate::Context;
use crate::args::{
    TokenCommand, TokenCreateArgs, TokenListArgs, TokenSortArg, TokenStatusArg, TokenUpdateArgs,
};
use crate::client::CliError;
use crate::output::{self, NONE};

/// Printed on stderr right before a plaintext.
const SHOWN_ONCE: &str =
    "This is the token's plaintext. It is shown once: store it now, it cannot be read again.";

const HEADER: [&str; 8] = [
    "ID",
    "NAME",
    "TEAM",
    "STATUS",
    "SCOPES",
    "EXPIRES",
    "LAST USED",
    "PREVIEW",
];

pub(crate) async fn run(command: TokenCommand, ctx: &mut Context<'_>) -> Result<(), CliError> {
    match command {
        TokenCommand::Create(args) => {
            let quiet = args.quiet;
            let request = create_request(args);
            let conn = ctx.connect().await?;
            let response = conn.call(conn.tokens().create_token(request)).await?;
            let token = response.token.ok_or_else(|| CliError::missing("token"))?;
            show_issued(ctx, &token, &response.plaintext, quiet, Issued::Created)
        }
        TokenCommand::List(args) => list(args, ctx).await,
        TokenCommand::Get(args) => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.tokens().get_token(GetTokenRequest { id: args.id }))
                .await?;
            show_one(ctx, response.token)
        }
        TokenCommand::Update(args) => {
            let request = update_request(args);
            let conn = ctx.connect().await?;
            let response = conn.call(conn.tokens().update_token(request)).await?;
            show_one(ctx, response.token)
        }
        TokenCommand::Revoke(args) => {
            let request = RevokeTokenRequest {
                id: args.id,
                reason: args.reason.unwrap_or_default(),
            };
            let conn = ctx.connect().await?;
            let response = conn.call(conn.tokens().revoke_token(request)).await?;
            show_one(ctx, response.token)
        }
        TokenCommand::Rotate(args) => {
            let request = RotateTokenRequest {
                id: args.id,
                grace_period_seconds: args.grace,
            };
            let conn = ctx.connect().await?;
            let response = conn.call(conn.tokens().rotate_token(request)).await?;
            let token = response.token.ok_or_else(|| CliError::missing("token"))?;
            show_issued(
                ctx,
                &token,
                &response.plaintext,
                args.quiet,
                Issued::Rotated {
                    previous: response.previous.as_ref(),
                },
            )
        }
    }
}

fn create_request(args: TokenCreateArgs) -> CreateTokenRequest {
    let expiry = match args.expiry.expires_in_days {
        Some(days) => create_token_request::Expiry::ExpiresInDays(days),
        // clap requires exactly one of the two.
        None => create_token_request::Expiry::NeverExpires(true),
    };
    CreateTokenRequest {
        name: args.name,
        team_id: args.team,
        description: args.description.unwrap_or_default(),
        scopes: args.scopes,
        expiry: Some(expiry),
        rate_limit_per_minute: args.rate_limit.unwrap_or(0),
    }
}

fn update_request(args: TokenUpdateArgs) -> UpdateTokenRequest {
    let expiry = match (args.expiry.expires_in_days, args.expiry.never_expires) {
        (Some(days), _) => Some(update_token_request::Expiry::ExpiresInDays(days)),
        (None, true) => Some(update_token_request::Expiry::NeverExpires(true)),
        (None, false) => None,
    };
    UpdateTokenRequest {
        id: args.id,
        name: args.name,
        description: args.description,
        // Any --scope replaces the whole list; none keeps it.
        scopes: (!args.scopes.is_empty()).then_some(StringList {
            values: args.scopes,
        }),
        expiry,
        rate_limit_per_minute: args.rate_limit,
    }
}

fn list_request(args: &TokenListArgs, now: SystemTime) -> ListTokensRequest {
    // --legacy alone: the ones that still work.
    let status = args
        .status
        .or(args.legacy.then_some(TokenStatusArg::Active));
    let status = status.map_or(TokenStatus::Unspecified, |s| match s {
        TokenStatusArg::Active => TokenStatus::Active,
        TokenStatusArg::Expired => TokenStatus::Expired,
        TokenStatusArg::Revoked => TokenStatus::Revoked,
    });
    ListTokensRequest {
        team_id: args.team.clone().unwrap_or_default(),
        scope: args.scope.clone().unwrap_or_default(),
        tag: args.tag.clone().unwrap_or_default(),
        status: status as i32,
        expiring_before: args
            .expiring_within_days
            .map(|days| (now + Duration::from_secs(u64::from(days) * 86_400)).into()),
        query: args.query.clone().unwrap_or_default(),
        page_size: args.page.page_size.unwrap_or(0),
        page_token: args.page.page_token.clone().unwrap_or_default(),
        last_used_before: args
            .unused_days
            .map(|days| (now - Duration::from_secs(u64::from(days) * 86_400)).into()),
        never_used: args.never_used,
        legacy: args.legacy,
        sort_by: sort_field(args.sort, args.desc) as i32,
        descending: args.desc,
    }
}

/// `--sort`; `--desc` alone means created, newest first (the server's default order).
fn sort_field(sort: Option<TokenSortArg>, desc: bool) -> TokenSortField {
    match sort {
        None if desc => TokenSortField::CreatedAt,
        None => TokenSortField::Unspecified,
        Some(TokenSortArg::Created) => TokenSortField::CreatedAt,
        Some(TokenSortArg::Name) => TokenSortField::Name,
        Some(TokenSortArg::LastUsed) => TokenSortField::LastUsedAt,
        Some(TokenSortArg::Expires) => TokenSortField::ExpiresAt,
    }
}

async fn list(args: TokenListArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let mut request = list_request(&args, SystemTime::now());
    let conn = ctx.connect().await?;
    let mut tokens = Vec::new();
    let (next_page_token, total_size) = loop {
        let page = conn
            .call(conn.tokens().list_tokens(request.clone()))
            .await?;
        tokens.extend(page.tokens);
        if !args.page.all || page.next_page_token.is_empty() {
            break (page.next_page_token, page.total_size);
        }
        request.page_token = page.next_page_token;
    };

    if ctx.json {
        let value = json!({
            "tokens": tokens.iter().map(token_json).collect::<Vec<_>>(),
            "next_page_token": next_page_token,
            "total_size": total_size,
        });
        return ctx.print_json(&value);
    }
    if tokens.is_empty() {
        ctx.note("no tokens found")?;
    } else {
        ctx.out.write_all(token_table(&tokens).as_bytes())?;
        ctx.note(total_line(tokens.len(), total_size))?;
    }
    ctx.next_page_hint(&next_page_token)
}

/// `3 of 120 tokens` (on stderr, so the table on stdout stays machine-readable).
fn total_line(shown: usize, total: u64) -> String {
    let noun = if total == 1 { "token" } else { "tokens" };
    if shown as u64 == total {
        format!("{total} {noun}")
    } else {
        format!("{shown} of {total} {noun}")
    }
}

fn show_one(ctx: &mut Context<'_>, token: Option<Token>) -> Result<(), CliError> {
    let token = token.ok_or_else(|| CliError::missing("token"))?;
    if ctx.json {
        return ctx.print_json(&json!({ "token": token_json(&token) }));
    }
    ctx.out
        .write_all(output::fields(&token_fields(&token)).as_bytes())?;
    Ok(())
}

/// Which call issued the token that `show_issued` prints.
enum Issued<'a> {
    Created,
    /// `previous` is the token the rotation replaced.
    Rotated {
        previous: Option<&'a Token>,
    },
}

/// Prints a newly issued token: its row, then the plaintext alone on its own stdout line,
/// with the shown-once notice on stderr.
fn show_issued(
    ctx: &mut Context<'_>,
    token: &Token,
    plaintext: &str,
    quiet: bool,
    issued: Issued<'_>,
) -> Result<(), CliError> {
    if quiet {
        writeln!(ctx.out, "{plaintext}")?;
        return Ok(());
    }
    if ctx.json {
        let mut value = json!({ "token": token_json(token), "plaintext": plaintext });
        if let Issued::Rotated { previous } = issued {
            value["previous"] = previous.map_or(Value::Null, token_json);
        }
        return ctx.print_json(&value);
    }
    ctx.out
        .write_all(token_table(std::slice::from_ref(token)).as_bytes())?;
    if let Issued::Rotated {
        previous: Some(previous),
    } = issued
    {
        ctx.note(previous_notice(previous))?;
    }
    ctx.note(format_args!("\n{SHOWN_ONCE}"))?;
    writeln!(ctx.out, "{plaintext}")?;
    Ok(())
}

/// What happened to the token a rotation replaced.
fn previous_notice(previous: &Token) -> String {
    if previous.status == TokenStatus::Revoked as i32 {
        format!("Previous token {} is revoked.", previous.id)
    } else {
        let until = output::time_or(previous.expires_at.as_ref(), "never");
        format!(
            "Previous token {} keeps working until {until}.",
            previous.id
        )
    }
}

fn status_name(status: i32) -> String {
    TokenStatus::try_from(status).map_or_else(
        |_| format!("unknown({status})"),
        |s| output::enum_name(s.as_str_name(), "TOKEN_STATUS_"),
    )
}

/// The token table: one row per token.
pub fn token_table(tokens: &[Token]) -> String {
    output::table(
        &HEADER,
        tokens.iter().map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.team_id.clone(),
                status_name(t.status),
                output::list(&t.scopes),
                output::time_or(t.expires_at.as_ref(), "never"),
                output::time_or(t.last_used_at.as_ref(), "never"),
                output::or_none(&t.preview),
            ]
        }),
    )
}

fn token_fields(t: &Token) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("id", t.id.clone()),
        ("name", t.name.clone()),
        ("team", t.team_id.clone()),
        ("description", output::or_none(&t.description)),
        ("status", status_name(t.status)),
        ("scopes", output::list(&t.scopes)),
        ("rate limit", rate_limit_label(t.rate_limit_per_minute)),
        ("preview", output::or_none(&t.preview)),
        ("legacy key", output::or_none(&t.legacy_prefix)),
        ("expires", output::time_or(t.expires_at.as_ref(), "never")),
        (
            "last used",
            output::time_or(t.last_used_at.as_ref(), "never"),
        ),
        ("created", output::time_or(t.created_at.as_ref(), NONE)),
        ("updated", output::time_or(t.updated_at.as_ref(), NONE)),
        ("created by", output::or_none(&t.created_by)),
    ];
    if let Some(revoked) = &t.revoked_at {
        pairs.push(("revoked", output::rfc3339(revoked)));
    }
    if !t.rotated_from_id.is_empty() {
        pairs.push(("rotated from", t.rotated_from_id.clone()));
    }
    if !t.replaced_by_id.is_empty() {
        pairs.push(("replaced by", t.replaced_by_id.clone()));
    }
    pairs
}

/// `600/min` (over all routes), or `none`.
fn rate_limit_label(rpm: u32) -> String {
    if rpm == 0 {
        "none".to_owned()
    } else {
        format!("{rpm}/min")
    }
}

/// A token as JSON: proto field names, RFC 3339 times (`null` when absent), status as its
/// short lowercase name.
pub fn token_json(t: &Token) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "team_id": t.team_id,
        "description": t.description,
        "scopes": t.scopes,
        "status": status_name(t.status),
        "preview": t.preview,
        "created_at": output::time_json(t.created_at.as_ref()),
        "updated_at": output::time_json(t.updated_at.as_ref()),
        "expires_at": output::time_json(t.expires_at.as_ref()),
        "revoked_at": output::time_json(t.revoked_at.as_ref()),
        "last_used_at": output::time_json(t.last_used_at.as_ref()),
        "created_by": t.created_by,
        "rotated_from_id": t.rotated_from_id,
        "replaced_by_id": t.replaced_by_id,
        "rate_limit_per_minute": t.rate_limit_per_minute,
        "legacy_prefix": t.legacy_prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;
    use prost_types::Timestamp;

    fn sample() -> Token {
        Token {
            id: "tok_01JAAAAAAAAAAAAAAAAAAAAAAA".into(),
            name: "deploy bot".into(),
            team_id: "core".into(),
            description: "CI deploys".into(),
            scopes: vec!["billing".into(), "tag:public".into()],
            status: TokenStatus::Active as i32,
            preview: "kg_3Fq…9aZk".into(),
            created_at: Some(Timestamp {
                seconds: 1_738_324_800,
                nanos: 0,
            }),
            updated_at: Some(Timestamp {
                seconds: 1_738_324_801,
                nanos: 0,
            }),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            created_by: "key:mk_1".into(),
            rotated_from_id: String::new(),
            replaced_by_id: String::new(),
            rate_limit_per_minute: 0,
            caller_can_change: false,
            legacy_prefix: String::new(),
        }
    }

    fn token_command(args: &[&str]) -> TokenCommand {
        let argv = ["keygate", "token"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Token(command) => command,
            other => panic!("not a token command: {other:?}"),
        }
    }

    #[test]
    fn json_has_null_for_absent_times_and_short_status() {
        let value = token_json(&sample());
        assert_eq!(value["expires_at"], Value::Null);
        assert_eq!(value["last_used_at"], Value::Null);
        assert_eq!(value["revoked_at"], Value::Null);
        assert_eq!(value["created_at"], "2025-01-31T12:00:00Z");
        assert_eq!(value["status"], "active");
        assert_eq!(value["scopes"], json!(["billing", "tag:public"]));
        assert_eq!(value["team_id"], "core");

        let mut expiring = sample();
        expiring.expires_at = Some(Timestamp {
            seconds: 1_740_000_000,
            nanos: 5,
        });
        expiring.status = TokenStatus::Revoked as i32;
        let value = token_json(&expiring);
        assert_eq!(value["expires_at"], "2025-02-19T21:20:00Z");
        assert_eq!(value["status"], "revoked");
    }

    #[test]
    fn table_row() {
        let text = token_table(&[sample()]);
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("ID"), "{header}");
        assert!(header.contains("LAST USED"));
        let row = lines.next().unwrap();
        for cell in [
            "tok_01JAAAAAAAAAAAAAAAAAAAAAAA",
            "deploy bot",
            "core",
            "active",
            "billing,tag:public",
            "never",
            "kg_3Fq…9aZk",
        ] {
            assert!(row.contains(cell), "{cell} missing from {row}");
        }
        // Columns line up: each header starts where its cell starts.
        assert_eq!(header.find("STATUS"), row.find("active"));
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn fields_block() {
        let text = output::fields(&token_fields(&sample()));
        assert!(text.contains("status:      active\n"), "{text}");
        assert!(text.contains("expires:     never\n"), "{text}");
        assert!(!text.contains("revoked"), "{text}");
    }

    #[test]
    fn create_request_expiry() {
        let TokenCommand::Create(args) = token_command(&[
            "create",
            "--name",
            "n",
            "--team",
            "t",
            "--scope",
            "*",
            "--expires-in-days",
            "90",
        ]) else {
            panic!()
        };
        let request = create_request(args);
        assert_eq!(
            request.expiry,
            Some(create_token_request::Expiry::ExpiresInDays(90))
        );
        assert_eq!(request.scopes, ["*"]);

        let TokenCommand::Create(args) =
            token_command(&["create", "--name", "n", "--team", "t", "--never-expires"])
        else {
            panic!()
        };
        assert_eq!(
            create_request(args).expiry,
            Some(create_token_request::Expiry::NeverExpires(true))
        );
    }

    #[test]
    fn update_request_replaces_scopes_only_when_given() {
        let TokenCommand::Update(args) = token_command(&["update", "tok_1", "--name", "x"]) else {
            panic!()
        };
        let request = update_request(args);
        assert_eq!(request.scopes, None);
        assert_eq!(request.expiry, None);
        assert_eq!(request.name.as_deref(), Some("x"));
        assert_eq!(request.description, None);

        let TokenCommand::Update(args) =
            token_command(&["update", "tok_1", "--scope", "a", "--never-expires"])
        else {
            panic!()
        };
        let request = update_request(args);
        assert_eq!(request.scopes.unwrap().values, ["a"]);
        assert_eq!(
            request.expiry,
            Some(update_token_request::Expiry::NeverExpires(true))
        );
    }

    #[test]
    fn rate_limit_flags_and_output() {
        let TokenCommand::Create(args) = token_command(&[
            "create",
            "--name",
            "n",
            "--team",
            "t",
            "--never-expires",
            "--rate-limit",
            "600",
        ]) else {
            panic!()
        };
        assert_eq!(create_request(args).rate_limit_per_minute, 600);
        let TokenCommand::Create(args) =
            token_command(&["create", "--name", "n", "--team", "t", "--never-expires"])
        else {
            panic!()
        };
        assert_eq!(create_request(args).rate_limit_per_minute, 0);

        // On update, --rate-limit alone is a change; 0 clears; left out keeps.
        let TokenCommand::Update(args) = token_command(&["update", "tok_1", "--rate-limit", "0"])
        else {
            panic!()
        };
        assert_eq!(update_request(args).rate_limit_per_minute, Some(0));
        let TokenCommand::Update(args) = token_command(&["update", "tok_1", "--name", "x"]) else {
            panic!()
        };
        assert_eq!(update_request(args).rate_limit_per_minute, None);

        let mut token = sample();
        let text = output::fields(&token_fields(&token));
        assert!(text.contains("rate limit:  none\n"), "{text}");
        assert_eq!(token_json(&token)["rate_limit_per_minute"], 0);
        token.rate_limit_per_minute = 120;
        let text = output::fields(&token_fields(&token));
        assert!(text.contains("rate limit:  120/min\n"), "{text}");
        assert_eq!(token_json(&token)["rate_limit_per_minute"], 120);
    }

    #[test]
    fn list_request_filters() {
        let TokenCommand::List(args) = token_command(&[
            "list",
            "--status",
            "expired",
            "--expiring-within-days",
            "7",
            "--team",
            "core",
            "--page-size",
            "10",
        ]) else {
            panic!()
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let request = list_request(&args, now);
        assert_eq!(request.status, TokenStatus::Expired as i32);
        assert_eq!(request.expiring_before.unwrap().seconds, 1_000 + 7 * 86_400);
        assert_eq!(request.team_id, "core");
        assert_eq!(request.page_size, 10);
        assert_eq!(request.page_token, "");
        assert_eq!(request.sort_by, TokenSortField::Unspecified as i32);
        assert_eq!(request.last_used_before, None);
        assert!(!request.never_used);

        let TokenCommand::List(args) = token_command(&[
            "list",
            "--unused-days",
            "30",
            "--sort",
            "last-used",
            "--desc",
        ]) else {
            panic!()
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100 * 86_400);
        let request = list_request(&args, now);
        assert_eq!(request.last_used_before.unwrap().seconds, 70 * 86_400);
        assert_eq!(request.sort_by, TokenSortField::LastUsedAt as i32);
        assert!(request.descending);

        let TokenCommand::List(args) =
            token_command(&["list", "--never-used", "--sort", "expires"])
        else {
            panic!()
        };
        let request = list_request(&args, now);
        assert!(request.never_used);
        assert_eq!(request.sort_by, TokenSortField::ExpiresAt as i32);
        assert!(!request.descending);
        for (flag, field) in [
            ("created", TokenSortField::CreatedAt),
            ("name", TokenSortField::Name),
        ] {
            let TokenCommand::List(args) = token_command(&["list", "--sort", flag]) else {
                panic!()
            };
            assert_eq!(list_request(&args, now).sort_by, field as i32);
        }
        let TokenCommand::List(args) = token_command(&["list", "--desc"]) else {
            panic!()
        };
        assert_eq!(
            list_request(&args, now).sort_by,
            TokenSortField::CreatedAt as i32
        );

        // The two filters contradict each other: refused before any call.
        let argv = [
            "keygate",
            "token",
            "list",
            "--never-used",
            "--unused-days",
            "3",
        ];
        assert!(Cli::try_parse_from(argv).is_err());
        assert_eq!(total_line(3, 120), "3 of 120 tokens");
        assert_eq!(total_line(1, 1), "1 token");
    }

    #[test]
    fn rotation_notice() {
        let mut previous = sample();
        previous.expires_at = Some(Timestamp {
            seconds: 1_738_328_400,
            nanos: 0,
        });
        assert_eq!(
            previous_notice(&previous),
            "Previous token tok_01JAAAAAAAAAAAAAAAAAAAAAAA keeps working until \
             2025-01-31T13:00:00Z."
        );
        previous.status = TokenStatus::Revoked as i32;
        assert!(previous_notice(&previous).ends_with("is revoked."));
    }
}
