//! `keygate service-account ...`: service accounts and their management keys.
//!
//! Owns: turning service account and key arguments into `ServiceAccountService` requests,
//! and the tables, `key: value` blocks and JSON shapes of both. Must not: print a key's
//! plaintext anywhere but stdout, or more than once.

use std::time::SystemTime;

use keygate_proto::v1::{
    CreateKeyRequest, CreateServiceAccountRequest, DeleteServiceAccountRequest,
    GetServiceAccountRequest, ListKeysRequest, ListServiceAccountsRequest, ManagementKey,
    RevokeKeyRequest, RotateKeyRequest, ServiceAccount, ServiceAccountCapability,
    create_key_request,
};
use prost_types::Timestamp;
use serde_json::{Value, json};

use crate::Context;
use crate::args::{KeyCommand, KeyCreateArgs, ServiceAccountCommand, ServiceAccountCreateArgs};
use crate::client::CliError;
use crate::output::{self, NONE};
use crate::roles;

/// Printed on stderr right before a plaintext.
const SHOWN_ONCE: &str = "This is the management key's plaintext. It is shown once: store it \
                          now, it cannot be read again. Use it as --key-file or KEYGATE_KEY.";

const ACCOUNT_HEADER: [&str; 7] = [
    "ID",
    "TEAM",
    "NAME",
    "ROLE",
    "CAPABILITY",
    "CREATED",
    "DESCRIPTION",
];

const KEY_HEADER: [&str; 6] = ["ID", "NAME", "STATUS", "PREVIEW", "EXPIRES", "LAST USED"];

pub(crate) async fn run(
    command: ServiceAccountCommand,
    ctx: &mut Context<'_>,
) -> Result<(), CliError> {
    match command {
        ServiceAccountCommand::Create(args) => {
            let request = create_request(args);
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.service_accounts().create_service_account(request))
                .await?;
            show_account(ctx, response.service_account)
        }
        ServiceAccountCommand::List(args) => {
            let request = ListServiceAccountsRequest {
                team_id: args.team.unwrap_or_default(),
            };
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.service_accounts().list_service_accounts(request))
                .await?;
            if ctx.json {
                let accounts: Vec<Value> = response
                    .service_accounts
                    .iter()
                    .map(service_account_json)
                    .collect();
                return ctx.print_json(&json!({ "service_accounts": accounts }));
            }
            if response.service_accounts.is_empty() {
                ctx.note("no service accounts found")?;
                return Ok(());
            }
            ctx.out
                .write_all(account_table(&response.service_accounts).as_bytes())?;
            Ok(())
        }
        ServiceAccountCommand::Get(args) => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(
                    conn.service_accounts()
                        .get_service_account(GetServiceAccountRequest { id: args.id }),
                )
                .await?;
            show_account(ctx, response.service_account)
        }
        ServiceAccountCommand::Delete(args) => {
            ctx.confirm(
                &format!("delete service account {} and revoke its keys", args.id),
                args.yes.yes,
            )?;
            let conn = ctx.connect().await?;
            let request = DeleteServiceAccountRequest {
                id: args.id.clone(),
            };
            conn.call(conn.service_accounts().delete_service_account(request))
                .await?;
            if ctx.json {
                return ctx.print_json(&json!({}));
            }
            writeln!(ctx.out, "deleted service account {}", args.id)?;
            Ok(())
        }
        ServiceAccountCommand::Key(command) => key(command, ctx).await,
    }
}

async fn key(command: KeyCommand, ctx: &mut Context<'_>) -> Result<(), CliError> {
    match command {
        KeyCommand::Create(args) => {
            let quiet = args.quiet;
            let request = create_key_request(args);
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.service_accounts().create_key(request))
                .await?;
            let key = response.key.ok_or_else(|| CliError::missing("key"))?;
            show_issued(ctx, &key, &response.plaintext, quiet, None)
        }
        KeyCommand::List(args) => {
            let conn = ctx.connect().await?;
            let request = ListKeysRequest {
                service_account_id: args.id,
            };
            let response = conn
                .call(conn.service_accounts().list_keys(request))
                .await?;
            if ctx.json {
                let keys: Vec<Value> = response.keys.iter().map(management_key_json).collect();
                return ctx.print_json(&json!({ "keys": keys }));
            }
            if response.keys.is_empty() {
                ctx.note("no keys found")?;
                return Ok(());
            }
            let table = key_table(&response.keys, SystemTime::now());
            ctx.out.write_all(table.as_bytes())?;
            Ok(())
        }
        KeyCommand::Revoke(args) => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(
                    conn.service_accounts()
                        .revoke_key(RevokeKeyRequest { id: args.id }),
                )
                .await?;
            let key = response.key.ok_or_else(|| CliError::missing("key"))?;
            if ctx.json {
                return ctx.print_json(&json!({ "key": management_key_json(&key) }));
            }
            let pairs = key_fields(&key, SystemTime::now());
            ctx.out.write_all(output::fields(&pairs).as_bytes())?;
            Ok(())
        }
        KeyCommand::Rotate(args) => {
            let request = RotateKeyRequest {
                id: args.id,
                grace_period_seconds: args.grace,
            };
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.service_accounts().rotate_key(request))
                .await?;
            let key = response.key.ok_or_else(|| CliError::missing("key"))?;
            show_issued(
                ctx,
                &key,
                &response.plaintext,
                args.quiet,
                Some(response.previous.as_ref()),
            )
        }
    }
}

fn create_request(args: ServiceAccountCreateArgs) -> CreateServiceAccountRequest {
    CreateServiceAccountRequest {
        team_id: args.team,
        name: args.name,
        description: args.description.unwrap_or_default(),
        role: roles::wire(args.role),
        capability: match args.capability {
            None => keygate_proto::v1::ServiceAccountCapability::Unspecified,
            Some(crate::args::CapabilityArg::Sync) => {
                keygate_proto::v1::ServiceAccountCapability::Sync
            }
            Some(crate::args::CapabilityArg::Gateway) => {
                keygate_proto::v1::ServiceAccountCapability::Gateway
            }
        } as i32,
    }
}

fn create_key_request(args: KeyCreateArgs) -> CreateKeyRequest {
    let expiry = match args.expiry.expires_in_days {
        Some(days) => create_key_request::Expiry::ExpiresInDays(days),
        // clap requires exactly one of the two.
        None => create_key_request::Expiry::NeverExpires(true),
    };
    CreateKeyRequest {
        service_account_id: args.service_account_id,
        name: args.name,
        expiry: Some(expiry),
    }
}

fn show_account(ctx: &mut Context<'_>, account: Option<ServiceAccount>) -> Result<(), CliError> {
    let account = account.ok_or_else(|| CliError::missing("service_account"))?;
    if ctx.json {
        return ctx.print_json(&json!({ "service_account": service_account_json(&account) }));
    }
    ctx.out
        .write_all(output::fields(&account_fields(&account)).as_bytes())?;
    Ok(())
}

/// Prints a newly issued key: its row, then the plaintext alone on its own stdout line, with
/// the shown-once notice on stderr. `previous` is `Some` after a rotation.
fn show_issued(
    ctx: &mut Context<'_>,
    key: &ManagementKey,
    plaintext: &str,
    quiet: bool,
    previous: Option<Option<&ManagementKey>>,
) -> Result<(), CliError> {
    if plaintext.is_empty() {
        return Err(CliError::missing("plaintext"));
    }
    if quiet {
        writeln!(ctx.out, "{plaintext}")?;
        return Ok(());
    }
    if ctx.json {
        let mut value = json!({ "key": management_key_json(key), "plaintext": plaintext });
        if let Some(previous) = previous {
            value["previous"] = previous.map_or(Value::Null, management_key_json);
        }
        return ctx.print_json(&value);
    }
    let now = SystemTime::now();
    ctx.out
        .write_all(key_table(std::slice::from_ref(key), now).as_bytes())?;
    if let Some(Some(previous)) = previous {
        ctx.note(previous_notice(previous, now))?;
    }
    ctx.note(format_args!("\n{SHOWN_ONCE}"))?;
    writeln!(ctx.out, "{plaintext}")?;
    Ok(())
}

/// What happened to the key a rotation replaced.
fn previous_notice(previous: &ManagementKey, now: SystemTime) -> String {
    match end_of_life(previous) {
        Some(end) if at_or_before(end, now) => format!("Previous key {} is revoked.", previous.id),
        end => format!(
            "Previous key {} keeps working until {}.",
            previous.id,
            output::time_or(end, "never")
        ),
    }
}

/// The earlier of a key's revocation and expiry, if it has either.
fn end_of_life(k: &ManagementKey) -> Option<&Timestamp> {
    match (k.revoked_at.as_ref(), k.expires_at.as_ref()) {
        (Some(r), Some(e)) => Some(if (r.seconds, r.nanos) <= (e.seconds, e.nanos) {
            r
        } else {
            e
        }),
        (r, e) => r.or(e),
    }
}

fn at_or_before(ts: &Timestamp, now: SystemTime) -> bool {
    SystemTime::try_from(*ts).is_ok_and(|t| t <= now)
}

/// `revoked`, `expired` or `active`. A rotated key whose revocation is still ahead is
/// `active` until then.
pub fn key_status(k: &ManagementKey, now: SystemTime) -> &'static str {
    if k.revoked_at.as_ref().is_some_and(|t| at_or_before(t, now)) {
        "revoked"
    } else if k.expires_at.as_ref().is_some_and(|t| at_or_before(t, now)) {
        "expired"
    } else {
        "active"
    }
}

/// A capability's short name: `sync`, `gateway`, `none` (a team role only), `unknown(N)`.
pub fn capability_name(value: i32) -> String {
    match ServiceAccountCapability::try_from(value) {
        Ok(ServiceAccountCapability::Unspecified) => "none".to_owned(),
        Ok(c) => output::enum_name(c.as_str_name(), "SERVICE_ACCOUNT_CAPABILITY_"),
        Err(_) => format!("unknown({value})"),
    }
}

/// The service account table: one row per account.
pub fn account_table(accounts: &[ServiceAccount]) -> String {
    output::table(
        &ACCOUNT_HEADER,
        accounts.iter().map(|a| {
            vec![
                a.id.clone(),
                a.team_id.clone(),
                a.name.clone(),
                roles::name(a.role),
                capability_name(a.capability),
                output::time_or(a.created_at.as_ref(), NONE),
                output::or_none(&a.description),
            ]
        }),
    )
}

fn account_fields(a: &ServiceAccount) -> Vec<(&'static str, String)> {
    vec![
        ("id", a.id.clone()),
        ("team", a.team_id.clone()),
        ("name", a.name.clone()),
        ("role", roles::name(a.role)),
        ("capability", capability_name(a.capability)),
        ("description", output::or_none(&a.description)),
        ("created", output::time_or(a.created_at.as_ref(), NONE)),
        ("created by", output::or_none(&a.created_by)),
    ]
}

/// A service account as JSON: proto field names, RFC 3339 times, the role's short name.
pub fn service_account_json(a: &ServiceAccount) -> Value {
    json!({
        "id": a.id,
        "team_id": a.team_id,
        "name": a.name,
        "description": a.description,
        "role": roles::name(a.role),
        "capability": capability_name(a.capability),
        "created_at": output::time_json(a.created_at.as_ref()),
        "created_by": a.created_by,
    })
}

/// The key table: one row per key.
pub fn key_table(keys: &[ManagementKey], now: SystemTime) -> String {
    output::table(
        &KEY_HEADER,
        keys.iter().map(|k| {
            vec![
                k.id.clone(),
                k.name.clone(),
                key_status(k, now).to_owned(),
                output::or_none(&k.preview),
                output::time_or(k.expires_at.as_ref(), "never"),
                output::time_or(k.last_used_at.as_ref(), "never"),
            ]
        }),
    )
}

fn key_fields(k: &ManagementKey, now: SystemTime) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("id", k.id.clone()),
        ("service account", k.service_account_id.clone()),
        ("name", k.name.clone()),
        ("status", key_status(k, now).to_owned()),
        ("preview", output::or_none(&k.preview)),
        ("expires", output::time_or(k.expires_at.as_ref(), "never")),
        (
            "last used",
            output::time_or(k.last_used_at.as_ref(), "never"),
        ),
        ("created", output::time_or(k.created_at.as_ref(), NONE)),
    ];
    if let Some(revoked) = &k.revoked_at {
        pairs.push(("revoked", output::rfc3339(revoked)));
    }
    if !k.replaced_by_id.is_empty() {
        pairs.push(("replaced by", k.replaced_by_id.clone()));
    }
    pairs
}

/// A management key as JSON: proto field names, RFC 3339 times (`null` when absent); the
/// message holds a preview, never the key.
pub fn management_key_json(k: &ManagementKey) -> Value {
    json!({
        "id": k.id,
        "service_account_id": k.service_account_id,
        "name": k.name,
        "preview": k.preview,
        "created_at": output::time_json(k.created_at.as_ref()),
        "expires_at": output::time_json(k.expires_at.as_ref()),
        "revoked_at": output::time_json(k.revoked_at.as_ref()),
        "last_used_at": output::time_json(k.last_used_at.as_ref()),
        "replaced_by_id": k.replaced_by_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command, RoleArg};
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

    fn account() -> ServiceAccount {
        ServiceAccount {
            id: "sa_1".into(),
            team_id: "core".into(),
            name: "deployer".into(),
            description: String::new(),
            role: Role::Developer as i32,
            created_at: ts(T0),
            created_by: "usr_1".into(),
            capability: 0,
        }
    }

    fn key() -> ManagementKey {
        ManagementKey {
            id: "mk_1".into(),
            service_account_id: "sa_1".into(),
            name: "ci".into(),
            preview: "kgm_3Fq…9aZk".into(),
            created_at: ts(T0),
            expires_at: ts(T0 + 90 * 86_400),
            revoked_at: None,
            last_used_at: None,
            replaced_by_id: String::new(),
        }
    }

    fn parse(args: &[&str]) -> Result<ServiceAccountCommand, clap::Error> {
        let argv = ["keygate", "service-account"]
            .into_iter()
            .chain(args.iter().copied());
        match Cli::try_parse_from(argv)?.command {
            Command::ServiceAccount(command) => Ok(command),
            other => panic!("not a service-account command: {other:?}"),
        }
    }

    #[test]
    fn json_shapes() {
        assert_eq!(
            service_account_json(&account()),
            json!({
                "id": "sa_1",
                "team_id": "core",
                "name": "deployer",
                "description": "",
                "role": "developer",
                "capability": "none",
                "created_at": "2025-01-31T12:00:00Z",
                "created_by": "usr_1",
            })
        );
        assert_eq!(
            management_key_json(&key()),
            json!({
                "id": "mk_1",
                "service_account_id": "sa_1",
                "name": "ci",
                "preview": "kgm_3Fq…9aZk",
                "created_at": "2025-01-31T12:00:00Z",
                "expires_at": "2025-05-01T12:00:00Z",
                "revoked_at": null,
                "last_used_at": null,
                "replaced_by_id": "",
            })
        );
    }

    #[test]
    fn tables() {
        assert_eq!(
            account_table(&[account()]),
            "ID    TEAM  NAME      ROLE       CAPABILITY  CREATED               DESCRIPTION\n\
             sa_1  core  deployer  developer  none        2025-01-31T12:00:00Z  -\n"
        );
        assert_eq!(
            key_table(&[key()], at(T0)),
            "ID    NAME  STATUS  PREVIEW       EXPIRES               LAST USED\n\
             mk_1  ci    active  kgm_3Fq…9aZk  2025-05-01T12:00:00Z  never\n"
        );
        let block = output::fields(&account_fields(&account()));
        assert!(block.contains("role:        developer\n"), "{block}");
        assert!(block.contains("capability:  none\n"), "{block}");
        let mut gateway = account();
        gateway.capability = ServiceAccountCapability::Gateway as i32;
        assert_eq!(service_account_json(&gateway)["capability"], "gateway");
        assert!(account_table(&[gateway]).contains("  gateway  "));
        assert_eq!(
            capability_name(ServiceAccountCapability::Sync as i32),
            "sync"
        );
        assert_eq!(capability_name(9), "unknown(9)");
    }

    #[test]
    fn key_status_and_rotation_notice() {
        let mut k = key();
        assert_eq!(key_status(&k, at(T0)), "active");
        assert_eq!(key_status(&k, at(T0 + 91 * 86_400)), "expired");
        // Rotated with a grace period: revoked in an hour.
        k.revoked_at = ts(T0 + 3_600);
        assert_eq!(key_status(&k, at(T0)), "active");
        assert_eq!(
            previous_notice(&k, at(T0)),
            "Previous key mk_1 keeps working until 2025-01-31T13:00:00Z."
        );
        assert_eq!(key_status(&k, at(T0 + 3_600)), "revoked");
        assert_eq!(
            previous_notice(&k, at(T0 + 3_600)),
            "Previous key mk_1 is revoked."
        );
        k.revoked_at = None;
        k.expires_at = None;
        assert_eq!(
            previous_notice(&k, at(T0)),
            "Previous key mk_1 keeps working until never."
        );
    }

    #[test]
    fn parsing_and_requests() {
        let ServiceAccountCommand::Create(args) = parse(&[
            "create",
            "--team",
            "core",
            "--name",
            "deployer",
            "--role",
            "developer",
            "--description",
            "CI",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(args.role, RoleArg::Developer);
        let request = create_request(args);
        assert_eq!(request.role, Role::Developer as i32);
        assert_eq!(request.description, "CI");

        let ServiceAccountCommand::Key(KeyCommand::Create(args)) = parse(&[
            "key",
            "create",
            "sa_1",
            "--name",
            "ci",
            "--expires-in-days",
            "30",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            create_key_request(args).expiry,
            Some(create_key_request::Expiry::ExpiresInDays(30))
        );
        let ServiceAccountCommand::Key(KeyCommand::Create(args)) = parse(&[
            "key",
            "create",
            "sa_1",
            "--name",
            "ci",
            "--never-expires",
            "-q",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(args.quiet);
        assert_eq!(
            create_key_request(args).expiry,
            Some(create_key_request::Expiry::NeverExpires(true))
        );

        let ServiceAccountCommand::Key(KeyCommand::Rotate(args)) =
            parse(&["key", "rotate", "mk_1", "--grace", "1h", "--quiet"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((args.grace, args.quiet), (3_600, true));

        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["key", "create", "sa_1", "--name", "ci"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&[
                "key",
                "create",
                "sa_1",
                "--name",
                "ci",
                "--never-expires",
                "--expires-in-days",
                "3"
            ]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["create", "--team", "core", "--name", "n", "--role", "root"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(&["key", "rotate", "mk_1", "--grace", "soon"]),
            ErrorKind::ValueValidation
        );

        // `sa` is short for `service-account`.
        let cli = Cli::try_parse_from(["keygate", "sa", "delete", "sa_1", "--yes"]).unwrap();
        let Command::ServiceAccount(ServiceAccountCommand::Delete(args)) = cli.command else {
            panic!()
        };
        assert!(args.yes.yes);
        assert!(matches!(
            parse(&["list", "--team", "core"]).unwrap(),
            ServiceAccountCommand::List(_)
        ));
        assert!(matches!(
            parse(&["key", "list", "sa_1"]).unwrap(),
            ServiceAccountCommand::Key(KeyCommand::List(_))
        ));
        assert!(matches!(
            parse(&["key", "revoke", "mk_1"]).unwrap(),
            ServiceAccountCommand::Key(KeyCommand::Revoke(_))
        ));
    }
}
