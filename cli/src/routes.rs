//! `keygate route ...`: create, list, show, change and delete gateway routes, and list tags.
//!
//! Owns: turning route arguments into `RouteService` requests (including the backend
//! credential, whose secret is read from an environment variable, a file or stdin, never from
//! a flag), and the route's table row, `key: value` block and JSON shape. Must not: print a
//! backend secret (the API never returns one, and we never echo what we send).

use std::io::{IsTerminal, Read, Write};

use keygate_proto::v1::{
    ApiKeyAuth, BackendAuth, BackendAuthInfo, BackendAuthType, BasicAuth, BearerAuth,
    CreateRouteRequest, DeleteRouteRequest, GetRouteRequest, ListRouteTagsRequest,
    ListRoutesRequest, NoBackendAuth, Route, RouteSortField, RouteTag, StringList,
    UpdateRouteRequest, backend_auth,
};
use serde_json::{Value, json};

use crate::Context;
use crate::args::{
    AuthArgs, AuthKind, RouteAddArgs, RouteCommand, RouteListArgs, RouteSort, RouteUpdateArgs,
    SecretSource,
};
use crate::client::CliError;
use crate::output::{self, NONE};

const HEADER: [&str; 9] = [
    "ID",
    "NAME",
    "TEAM",
    "PATH",
    "BACKEND",
    "METHODS",
    "TAGS",
    "ALLOWED TEAMS",
    "AUTH",
];

/// Whether a backend credential is being set on a new route or replaced on an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    /// A left-out secret keeps the stored one (when the kind does not change).
    Update,
}

pub(crate) async fn run(command: RouteCommand, ctx: &mut Context<'_>) -> Result<(), CliError> {
    match command {
        RouteCommand::Add(args) => {
            let request = create_request(args, ctx.err)?;
            let conn = ctx.connect().await?;
            let response = conn.call(conn.routes().create_route(request)).await?;
            show_one(ctx, response.route)
        }
        RouteCommand::List(args) => list(args, ctx).await,
        RouteCommand::Get(args) => {
            let conn = ctx.connect().await?;
            let request = GetRouteRequest {
                id: args.id_or_name,
            };
            let response = conn.call(conn.routes().get_route(request)).await?;
            show_one(ctx, response.route)
        }
        RouteCommand::Update(args) => {
            let request = update_request(args, ctx.err)?;
            let conn = ctx.connect().await?;
            let response = conn.call(conn.routes().update_route(request)).await?;
            show_one(ctx, response.route)
        }
        RouteCommand::Delete(args) => {
            ctx.confirm(&format!("delete route {}", args.id_or_name), args.yes.yes)?;
            let conn = ctx.connect().await?;
            let request = DeleteRouteRequest {
                id: args.id_or_name,
            };
            let response = conn.call(conn.routes().delete_route(request)).await?;
            let route = response.route.ok_or_else(|| CliError::missing("route"))?;
            if ctx.json {
                return ctx.print_json(&json!({ "route": route_json(&route) }));
            }
            writeln!(ctx.out, "deleted route {} ({})", route.id, route.name)?;
            Ok(())
        }
        RouteCommand::Tags => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.routes().list_route_tags(ListRouteTagsRequest {}))
                .await?;
            if ctx.json {
                let tags: Vec<Value> = response.tags.iter().map(tag_json).collect();
                return ctx.print_json(&json!({ "tags": tags }));
            }
            if response.tags.is_empty() {
                ctx.note("no tags in use")?;
                return Ok(());
            }
            ctx.out.write_all(tag_table(&response.tags).as_bytes())?;
            Ok(())
        }
    }
}

fn create_request(args: RouteAddArgs, err: &mut dyn Write) -> Result<CreateRouteRequest, CliError> {
    Ok(CreateRouteRequest {
        backend_auth: backend_auth(&args.auth, Mode::Create, err)?,
        name: args.name,
        team_id: args.team,
        path_prefix: args.path,
        backend_url: args.backend,
        description: args.description.unwrap_or_default(),
        tags: args.tags,
        methods: args.methods,
        strip_prefix: args.strip_prefix,
        timeout_ms: args.timeout_ms.unwrap_or(0),
        allowed_team_ids: args.allowed_teams,
        cors_origins: args.cors_origins,
        rate_limit_per_minute: args.rate_limit.unwrap_or(0),
    })
}

fn update_request(
    args: RouteUpdateArgs,
    err: &mut dyn Write,
) -> Result<UpdateRouteRequest, CliError> {
    let replacement = |values: Vec<String>, clear: bool| {
        (clear || !values.is_empty()).then_some(StringList { values })
    };
    let strip_prefix = match (args.strip_prefix, args.no_strip_prefix) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    };
    Ok(UpdateRouteRequest {
        backend_auth: backend_auth(&args.auth, Mode::Update, err)?,
        id: args.id_or_name,
        name: args.name,
        path_prefix: args.path,
        backend_url: args.backend,
        description: args.description,
        tags: replacement(args.tags, args.clear_tags),
        methods: replacement(args.methods, args.clear_methods),
        strip_prefix,
        timeout_ms: args.timeout_ms,
        allowed_team_ids: replacement(args.allowed_teams, args.clear_allowed_teams),
        cors_origins: replacement(args.cors_origins, args.clear_cors_origins),
        rate_limit_per_minute: args.rate_limit,
    })
}

/// The backend credential from `--auth*` flags: checks the flags fit the kind, then reads
/// the secret from its source.
fn backend_auth(
    args: &AuthArgs,
    mode: Mode,
    err: &mut dyn Write,
) -> Result<Option<BackendAuth>, CliError> {
    // clap makes every other --auth-* flag require --auth.
    let Some(kind) = args.auth else {
        return Ok(None);
    };
    check_auth_flags(kind, args)?;
    let secret = read_secret(&args.secret, err)?;
    build_backend_auth(kind, args, secret, mode).map(Some)
}

fn check_auth_flags(kind: AuthKind, args: &AuthArgs) -> Result<(), CliError> {
    let has_secret = args.secret.auth_secret_env.is_some()
        || args.secret.auth_secret_file.is_some()
        || args.secret.auth_secret_stdin;
    let misplaced = match kind {
        AuthKind::None if has_secret => Some("secret"),
        AuthKind::None | AuthKind::Bearer | AuthKind::Basic if args.auth_header.is_some() => {
            Some("--auth-header")
        }
        AuthKind::None | AuthKind::Bearer | AuthKind::ApiKey if args.auth_username.is_some() => {
            Some("--auth-username")
        }
        _ => None,
    };
    match misplaced {
        Some(what) => Err(CliError::usage(format!(
            "--auth {} takes no {what}",
            auth_label(kind)
        ))),
        None => Ok(()),
    }
}

fn build_backend_auth(
    kind: AuthKind,
    args: &AuthArgs,
    secret: Option<String>,
    mode: Mode,
) -> Result<BackendAuth, CliError> {
    let secret = |what: &str| -> Result<String, CliError> {
        match (&secret, mode) {
            (Some(secret), _) => Ok(secret.clone()),
            (None, Mode::Update) => Ok(String::new()),
            (None, Mode::Create) => Err(CliError::usage(format!(
                "--auth {} needs the {what}: pass --auth-secret-env VAR, --auth-secret-file \
                 PATH or --auth-secret-stdin",
                auth_label(kind)
            ))),
        }
    };
    let required = |value: &Option<String>, flag: &str| -> Result<String, CliError> {
        value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| CliError::usage(format!("--auth {} needs {flag}", auth_label(kind))))
    };
    let kind = match kind {
        AuthKind::None => backend_auth::Kind::None(NoBackendAuth {}),
        AuthKind::Bearer => backend_auth::Kind::Bearer(BearerAuth {
            token: secret("token")?,
        }),
        AuthKind::ApiKey => backend_auth::Kind::ApiKey(ApiKeyAuth {
            header_name: required(&args.auth_header, "--auth-header")?,
            value: secret("key")?,
        }),
        AuthKind::Basic => backend_auth::Kind::Basic(BasicAuth {
            username: required(&args.auth_username, "--auth-username")?,
            password: secret("password")?,
        }),
    };
    Ok(BackendAuth { kind: Some(kind) })
}

/// Reads the backend secret from the chosen source, without its trailing line break.
/// `None` when no source was given.
fn read_secret(source: &SecretSource, err: &mut dyn Write) -> Result<Option<String>, CliError> {
    let (raw, origin) = if let Some(var) = &source.auth_secret_env {
        let value = std::env::var(var)
            .map_err(|e| CliError::usage(format!("--auth-secret-env {var}: {e}")))?;
        (value, format!("environment variable {var}"))
    } else if let Some(path) = &source.auth_secret_file {
        let value = std::fs::read_to_string(path).map_err(|e| {
            CliError::usage(format!("cannot read secret file {}: {e}", path.display()))
        })?;
        (value, format!("file {}", path.display()))
    } else if source.auth_secret_stdin {
        let mut stdin = std::io::stdin();
        if stdin.is_terminal() {
            writeln!(err, "Type the backend secret, then press Enter and Ctrl-D:")?;
        }
        let mut value = String::new();
        stdin
            .read_to_string(&mut value)
            .map_err(|e| CliError::io("cannot read the secret from stdin", e))?;
        (value, "stdin".to_owned())
    } else {
        return Ok(None);
    };
    let secret = raw.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(CliError::usage(format!(
            "the secret from {origin} is empty"
        )));
    }
    Ok(Some(secret.to_owned()))
}

fn list_request(args: &RouteListArgs) -> ListRoutesRequest {
    let sort_by = args.sort.map_or(RouteSortField::Unspecified, |s| match s {
        RouteSort::Name => RouteSortField::Name,
        RouteSort::Path => RouteSortField::PathPrefix,
        RouteSort::Created => RouteSortField::CreatedAt,
        RouteSort::Updated => RouteSortField::UpdatedAt,
    });
    ListRoutesRequest {
        team_id: args.team.clone().unwrap_or_default(),
        tag: args.tag.clone().unwrap_or_default(),
        query: args.query.clone().unwrap_or_default(),
        sort_by: sort_by as i32,
        descending: args.desc,
        page_size: args.page.page_size.unwrap_or(0),
        page_token: args.page.page_token.clone().unwrap_or_default(),
    }
}

async fn list(args: RouteListArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let mut request = list_request(&args);
    let conn = ctx.connect().await?;
    let mut routes = Vec::new();
    let next_page_token = loop {
        let page = conn
            .call(conn.routes().list_routes(request.clone()))
            .await?;
        routes.extend(page.routes);
        if !args.page.all || page.next_page_token.is_empty() {
            break page.next_page_token;
        }
        request.page_token = page.next_page_token;
    };

    if ctx.json {
        let value = json!({
            "routes": routes.iter().map(route_json).collect::<Vec<_>>(),
            "next_page_token": next_page_token,
        });
        return ctx.print_json(&value);
    }
    if routes.is_empty() {
        ctx.note("no routes found")?;
    } else {
        ctx.out.write_all(route_table(&routes).as_bytes())?;
    }
    ctx.next_page_hint(&next_page_token)
}

fn show_one(ctx: &mut Context<'_>, route: Option<Route>) -> Result<(), CliError> {
    let route = route.ok_or_else(|| CliError::missing("route"))?;
    if ctx.json {
        return ctx.print_json(&json!({ "route": route_json(&route) }));
    }
    ctx.out
        .write_all(output::fields(&route_fields(&route)).as_bytes())?;
    Ok(())
}

/// The `--auth` spelling of a kind.
fn auth_label(kind: AuthKind) -> &'static str {
    match kind {
        AuthKind::None => "none",
        AuthKind::Bearer => "bearer",
        AuthKind::ApiKey => "api-key",
        AuthKind::Basic => "basic",
    }
}

/// A stored credential's kind as `--auth` spells it, or `-` when unknown.
fn auth_info_label(info: Option<&BackendAuthInfo>) -> &'static str {
    match info.map(|i| BackendAuthType::try_from(i.r#type)) {
        Some(Ok(BackendAuthType::None)) => "none",
        Some(Ok(BackendAuthType::Bearer)) => "bearer",
        Some(Ok(BackendAuthType::ApiKey)) => "api-key",
        Some(Ok(BackendAuthType::Basic)) => "basic",
        _ => NONE,
    }
}

/// `api-key (header X-API-Key, secret set)`.
fn auth_info_summary(info: Option<&BackendAuthInfo>) -> String {
    let Some(info) = info else {
        return NONE.to_owned();
    };
    let mut details = Vec::new();
    if !info.header_name.is_empty() {
        details.push(format!("header {}", info.header_name));
    }
    if !info.username.is_empty() {
        details.push(format!("user {}", info.username));
    }
    if info.r#type != BackendAuthType::None as i32 {
        details.push(
            if info.secret_set {
                "secret set"
            } else {
                "no secret"
            }
            .to_owned(),
        );
    }
    let label = auth_info_label(Some(info));
    if details.is_empty() {
        label.to_owned()
    } else {
        format!("{label} ({})", details.join(", "))
    }
}

/// The teams whose tokens may use a route: `all` when the list is empty.
fn allowed_teams_label(teams: &[String]) -> String {
    if teams.is_empty() {
        "all".to_owned()
    } else {
        teams.join(",")
    }
}

/// `600/min per token`, or `none`.
fn rate_limit_label(rpm: u32) -> String {
    if rpm == 0 {
        "none".to_owned()
    } else {
        format!("{rpm}/min per token")
    }
}

fn methods_label(methods: &[String]) -> String {
    if methods.is_empty() {
        "all".to_owned()
    } else {
        methods.join(",")
    }
}

/// The route table: one row per route.
pub fn route_table(routes: &[Route]) -> String {
    output::table(
        &HEADER,
        routes.iter().map(|r| {
            vec![
                r.id.clone(),
                r.name.clone(),
                r.team_id.clone(),
                r.path_prefix.clone(),
                r.backend_url.clone(),
                methods_label(&r.methods),
                output::list(&r.tags),
                allowed_teams_label(&r.allowed_team_ids),
                auth_info_label(r.backend_auth.as_ref()).to_owned(),
            ]
        }),
    )
}

fn route_fields(r: &Route) -> Vec<(&'static str, String)> {
    vec![
        ("id", r.id.clone()),
        ("name", r.name.clone()),
        ("team", r.team_id.clone()),
        ("path prefix", r.path_prefix.clone()),
        ("backend", r.backend_url.clone()),
        ("description", output::or_none(&r.description)),
        ("tags", output::list(&r.tags)),
        ("methods", methods_label(&r.methods)),
        ("allowed teams", allowed_teams_label(&r.allowed_team_ids)),
        ("cors origins", output::list(&r.cors_origins)),
        ("rate limit", rate_limit_label(r.rate_limit_per_minute)),
        (
            "strip prefix",
            if r.strip_prefix { "yes" } else { "no" }.to_owned(),
        ),
        ("timeout", format!("{} ms", r.timeout_ms)),
        ("backend auth", auth_info_summary(r.backend_auth.as_ref())),
        ("created", output::time_or(r.created_at.as_ref(), NONE)),
        ("updated", output::time_or(r.updated_at.as_ref(), NONE)),
        ("created by", output::or_none(&r.created_by)),
    ]
}

fn auth_info_json(info: &BackendAuthInfo) -> Value {
    let kind = BackendAuthType::try_from(info.r#type).map_or_else(
        |_| format!("unknown({})", info.r#type),
        |t| output::enum_name(t.as_str_name(), "BACKEND_AUTH_TYPE_"),
    );
    json!({
        "type": kind,
        "header_name": info.header_name,
        "username": info.username,
        "secret_set": info.secret_set,
    })
}

/// A route as JSON: proto field names, RFC 3339 times (`null` when absent), the credential
/// type as its short lowercase name (`api_key`); never a secret.
pub fn route_json(r: &Route) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "team_id": r.team_id,
        "path_prefix": r.path_prefix,
        "backend_url": r.backend_url,
        "description": r.description,
        "tags": r.tags,
        "methods": r.methods,
        "strip_prefix": r.strip_prefix,
        "timeout_ms": r.timeout_ms,
        "allowed_team_ids": r.allowed_team_ids,
        "cors_origins": r.cors_origins,
        "rate_limit_per_minute": r.rate_limit_per_minute,
        "backend_auth": r.backend_auth.as_ref().map_or(Value::Null, auth_info_json),
        "created_at": output::time_json(r.created_at.as_ref()),
        "updated_at": output::time_json(r.updated_at.as_ref()),
        "created_by": r.created_by,
    })
}

fn tag_json(tag: &RouteTag) -> Value {
    json!({ "tag": tag.tag, "route_count": tag.route_count })
}

fn tag_table(tags: &[RouteTag]) -> String {
    output::table(
        &["TAG", "ROUTES"],
        tags.iter()
            .map(|t| vec![t.tag.clone(), t.route_count.to_string()]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;
    use prost_types::Timestamp;

    fn sample() -> Route {
        Route {
            id: "rte_01JBBBBBBBBBBBBBBBBBBBBBBB".into(),
            name: "billing".into(),
            team_id: "core".into(),
            path_prefix: "/billing".into(),
            backend_url: "http://billing.internal:8080".into(),
            description: String::new(),
            tags: vec!["money".into(), "public".into()],
            methods: vec![],
            strip_prefix: true,
            timeout_ms: 30_000,
            backend_auth: Some(BackendAuthInfo {
                r#type: BackendAuthType::ApiKey as i32,
                header_name: "X-API-Key".into(),
                username: String::new(),
                secret_set: true,
            }),
            created_at: Some(Timestamp {
                seconds: 1_738_324_800,
                nanos: 0,
            }),
            updated_at: None,
            created_by: "key:mk_1".into(),
            allowed_team_ids: vec![],
            cors_origins: vec![],
            rate_limit_per_minute: 0,
            caller_can_change: false,
        }
    }

    fn route_command(args: &[&str]) -> RouteCommand {
        let argv = ["keygate", "route"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Route(command) => command,
            other => panic!("not a route command: {other:?}"),
        }
    }

    fn add(extra: &[&str]) -> RouteAddArgs {
        let mut argv = vec![
            "add",
            "--name",
            "billing",
            "--team",
            "core",
            "--path",
            "/billing",
            "--backend",
            "http://b:1",
        ];
        argv.extend_from_slice(extra);
        match route_command(&argv) {
            RouteCommand::Add(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_shape() {
        let value = route_json(&sample());
        assert_eq!(value["backend_auth"]["type"], "api_key");
        assert_eq!(value["backend_auth"]["secret_set"], true);
        assert_eq!(value["created_at"], "2025-01-31T12:00:00Z");
        assert_eq!(value["updated_at"], Value::Null);
        assert_eq!(value["methods"], json!([]));
        assert_eq!(value["timeout_ms"], 30_000);

        let mut bare = sample();
        bare.backend_auth = None;
        assert_eq!(route_json(&bare)["backend_auth"], Value::Null);
    }

    #[test]
    fn table_and_fields() {
        let text = route_table(&[sample()]);
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        let row = lines.next().unwrap();
        assert_eq!(header.find("PATH"), row.find("/billing"));
        assert!(row.contains("money,public"));
        assert!(row.ends_with("api-key"), "{row}");
        assert!(row.contains(" all "), "{row}");

        let block = output::fields(&route_fields(&sample()));
        assert!(
            block.contains("backend auth:  api-key (header X-API-Key, secret set)\n"),
            "{block}"
        );
        assert!(block.contains("strip prefix:  yes\n"), "{block}");
    }

    #[test]
    fn secret_from_file_without_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        let args = add(&[
            "--auth",
            "basic",
            "--auth-username",
            "svc",
            "--auth-secret-file",
            path.to_str().unwrap(),
        ]);
        let request = create_request(args, &mut Vec::new()).unwrap();
        assert_eq!(
            request.backend_auth.unwrap().kind,
            Some(backend_auth::Kind::Basic(BasicAuth {
                username: "svc".into(),
                password: "s3cret".into(),
            }))
        );

        std::fs::write(&path, "\n").unwrap();
        let args = add(&[
            "--auth",
            "bearer",
            "--auth-secret-file",
            path.to_str().unwrap(),
        ]);
        let err = create_request(args, &mut Vec::new()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("is empty"), "{err}");
    }

    #[test]
    fn secret_from_environment() {
        // PATH is set in any test environment; the value itself does not matter.
        let path = std::env::var("PATH").unwrap();
        let args = add(&["--auth", "bearer", "--auth-secret-env", "PATH"]);
        let request = create_request(args, &mut Vec::new()).unwrap();
        assert_eq!(
            request.backend_auth.unwrap().kind,
            Some(backend_auth::Kind::Bearer(BearerAuth { token: path }))
        );

        let args = add(&[
            "--auth",
            "bearer",
            "--auth-secret-env",
            "KEYGATE_TEST_VARIABLE_THAT_IS_NEVER_SET",
        ]);
        assert_eq!(
            create_request(args, &mut Vec::new())
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn credential_flags_must_fit_the_kind() {
        let cases: &[(&[&str], &str)] = &[
            (&["--auth", "bearer"], "needs the token"),
            (
                &["--auth", "api-key", "--auth-secret-env", "PATH"],
                "needs --auth-header",
            ),
            (
                &["--auth", "basic", "--auth-secret-env", "PATH"],
                "needs --auth-username",
            ),
            (
                &["--auth", "none", "--auth-secret-env", "PATH"],
                "takes no secret",
            ),
            (
                &["--auth", "bearer", "--auth-header", "X"],
                "takes no --auth-header",
            ),
            (
                &[
                    "--auth",
                    "api-key",
                    "--auth-header",
                    "X",
                    "--auth-username",
                    "u",
                ],
                "takes no --auth-username",
            ),
        ];
        for (flags, message) in cases {
            let err = create_request(add(flags), &mut Vec::new()).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{flags:?}");
            assert!(err.to_string().contains(message), "{flags:?}: {err}");
        }
        let request = create_request(add(&["--auth", "none"]), &mut Vec::new()).unwrap();
        assert_eq!(
            request.backend_auth.unwrap().kind,
            Some(backend_auth::Kind::None(NoBackendAuth {}))
        );
        assert_eq!(
            create_request(add(&[]), &mut Vec::new())
                .unwrap()
                .backend_auth,
            None
        );
    }

    #[test]
    fn update_keeps_secret_when_left_out_and_replaces_lists() {
        let RouteCommand::Update(args) = route_command(&[
            "update",
            "billing",
            "--auth",
            "api-key",
            "--auth-header",
            "X-Key",
            "--clear-tags",
            "--method",
            "GET",
            "--no-strip-prefix",
        ]) else {
            panic!()
        };
        let request = update_request(args, &mut Vec::new()).unwrap();
        assert_eq!(
            request.backend_auth.unwrap().kind,
            Some(backend_auth::Kind::ApiKey(ApiKeyAuth {
                header_name: "X-Key".into(),
                value: String::new(),
            }))
        );
        assert_eq!(request.tags, Some(StringList { values: vec![] }));
        assert_eq!(request.methods.unwrap().values, ["GET"]);
        assert_eq!(request.strip_prefix, Some(false));
        assert_eq!(request.id, "billing");

        let RouteCommand::Update(args) = route_command(&["update", "billing", "--timeout-ms", "5"])
        else {
            panic!()
        };
        let request = update_request(args, &mut Vec::new()).unwrap();
        assert_eq!((request.tags, request.methods), (None, None));
        assert_eq!(request.strip_prefix, None);
        assert_eq!(request.timeout_ms, Some(5));
        assert_eq!(request.backend_auth, None);
        assert_eq!(request.allowed_team_ids, None);
    }

    #[test]
    fn allowed_teams_on_add_and_update() {
        let request = create_request(
            add(&["--allowed-team", "core", "--allowed-team", "ops"]),
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(request.allowed_team_ids, ["core", "ops"]);
        assert!(
            create_request(add(&[]), &mut Vec::new())
                .unwrap()
                .allowed_team_ids
                .is_empty()
        );

        let update = |args: &[&str]| {
            let RouteCommand::Update(args) = route_command(args) else {
                panic!()
            };
            update_request(args, &mut Vec::new()).unwrap()
        };
        assert_eq!(
            update(&["update", "billing", "--allowed-team", "ops"]).allowed_team_ids,
            Some(StringList {
                values: vec!["ops".into()]
            })
        );
        assert_eq!(
            update(&["update", "billing", "--clear-allowed-teams"]).allowed_team_ids,
            Some(StringList { values: vec![] })
        );
        let conflict = Cli::try_parse_from([
            "keygate",
            "route",
            "update",
            "billing",
            "--allowed-team",
            "ops",
            "--clear-allowed-teams",
        ])
        .unwrap_err();
        assert_eq!(conflict.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn allowed_teams_in_output() {
        let mut route = sample();
        assert_eq!(route_json(&route)["allowed_team_ids"], json!([]));
        let block = output::fields(&route_fields(&route));
        assert!(block.contains("allowed teams: all\n"), "{block}");

        route.allowed_team_ids = vec!["core".into(), "ops".into()];
        assert_eq!(
            route_json(&route)["allowed_team_ids"],
            json!(["core", "ops"])
        );
        let block = output::fields(&route_fields(&route));
        assert!(block.contains("allowed teams: core,ops\n"), "{block}");
        let text = route_table(&[route]);
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        let row = lines.next().unwrap();
        assert_eq!(header.find("ALLOWED TEAMS"), row.find("core,ops"));
    }

    #[test]
    fn cors_origins_and_rate_limit() {
        let request = create_request(
            add(&[
                "--cors-origin",
                "https://app.example.com",
                "--cors-origin",
                "http://localhost:5173",
                "--rate-limit",
                "600",
            ]),
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(
            request.cors_origins,
            ["https://app.example.com", "http://localhost:5173"]
        );
        assert_eq!(request.rate_limit_per_minute, 600);
        let plain = create_request(add(&[]), &mut Vec::new()).unwrap();
        assert_eq!(
            (plain.cors_origins.len(), plain.rate_limit_per_minute),
            (0, 0)
        );

        let update = |args: &[&str]| {
            let RouteCommand::Update(args) = route_command(args) else {
                panic!()
            };
            update_request(args, &mut Vec::new()).unwrap()
        };
        let r = update(&["update", "billing", "--cors-origin", "*"]);
        assert_eq!(r.cors_origins.unwrap().values, ["*"]);
        assert_eq!(r.rate_limit_per_minute, None);
        let r = update(&[
            "update",
            "billing",
            "--clear-cors-origins",
            "--rate-limit",
            "0",
        ]);
        assert_eq!(r.cors_origins, Some(StringList { values: vec![] }));
        assert_eq!(r.rate_limit_per_minute, Some(0));

        let mut route = sample();
        let block = output::fields(&route_fields(&route));
        assert!(block.contains("cors origins:  -\n"), "{block}");
        assert!(block.contains("rate limit:    none\n"), "{block}");
        route.cors_origins = vec!["https://app.example.com".into()];
        route.rate_limit_per_minute = 120;
        let block = output::fields(&route_fields(&route));
        assert!(
            block.contains("cors origins:  https://app.example.com\n"),
            "{block}"
        );
        assert!(
            block.contains("rate limit:    120/min per token\n"),
            "{block}"
        );
        let value = route_json(&route);
        assert_eq!(value["cors_origins"], json!(["https://app.example.com"]));
        assert_eq!(value["rate_limit_per_minute"], 120);
    }

    #[test]
    fn list_sorting() {
        let RouteCommand::List(args) = route_command(&["list", "--sort", "path", "--desc"]) else {
            panic!()
        };
        let request = list_request(&args);
        assert_eq!(request.sort_by, RouteSortField::PathPrefix as i32);
        assert!(request.descending);
    }

    #[test]
    fn tags_table() {
        let text = tag_table(&[RouteTag {
            tag: "public".into(),
            route_count: 3,
        }]);
        assert_eq!(text, "TAG     ROUTES\npublic  3\n");
    }
}
