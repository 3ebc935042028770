//! `keygate system info|status`: the installation's public facts (no sign-in needed) and its
//! health (system admins).

use crate::Context;
use crate::args::SystemCommand;
use crate::client::CliError;
use crate::output;
use keygate_proto::v1::{
    GetServerInfoRequest, GetServerInfoResponse, GetSystemStatusRequest, GetSystemStatusResponse,
};
use serde_json::{Value, json};

pub(crate) async fn run(command: SystemCommand, ctx: &mut Context<'_>) -> Result<(), CliError> {
    match command {
        SystemCommand::Info => {
            // Public: no credential is sent.
            let conn = ctx.connect_anonymous().await?;
            let r = conn
                .call(conn.system().get_server_info(GetServerInfoRequest {}))
                .await?;
            if ctx.json {
                return ctx.print_json(&info_json(&r));
            }
            ctx.out.write_all(info_text(&r).as_bytes())?;
            Ok(())
        }
        SystemCommand::Status => {
            let conn = ctx.connect().await?;
            let r = conn
                .call(conn.system().get_system_status(GetSystemStatusRequest {}))
                .await?;
            if ctx.json {
                return ctx.print_json(&status_json(&r));
            }
            ctx.out.write_all(status_text(&r).as_bytes())?;
            Ok(())
        }
    }
}

fn info_text(r: &GetServerInfoResponse) -> String {
    output::fields(&[
        ("version", r.version.clone()),
        ("gateway URL", r.gateway_public_url.clone()),
        ("token prefix", format!("{}_", r.token_prefix)),
        ("usage collected", output::yes_no(r.usage_enabled).into()),
        ("setup required", output::yes_no(r.setup_required).into()),
    ])
}

fn info_json(r: &GetServerInfoResponse) -> Value {
    json!({
        "version": r.version,
        "gateway_public_url": r.gateway_public_url,
        "token_prefix": r.token_prefix,
        "usage_enabled": r.usage_enabled,
        "setup_required": r.setup_required,
    })
}

fn status_text(r: &GetSystemStatusResponse) -> String {
    let db = r.database.clone().unwrap_or_default();
    let database = if db.reachable {
        format!(
            "{} reachable, {:.1} ms round trip",
            db.backend,
            db.ping_micros as f64 / 1000.0
        )
    } else {
        format!("{} UNREACHABLE: {}", db.backend, db.error)
    };
    let mut pairs = vec![
        ("server version", r.server_version.clone()),
        ("database", database),
        (
            "schema",
            format!(
                "{} ({})",
                db.schema_version,
                output::or_none(&db.schema_description)
            ),
        ),
    ];
    if let Some(sync) = &r.sync {
        let lagging = sync
            .followers
            .iter()
            .filter(|f| f.lag_revisions > 0)
            .count();
        pairs.push((
            "change feed",
            format!(
                "head {}, compacted up to {}, {} follower(s), {} behind",
                sync.head_revision,
                sync.compacted_revision,
                sync.followers.len(),
                lagging
            ),
        ));
    }
    pairs.push(("checked at", output::time_or(r.checked_at.as_ref(), "-")));
    let mut text = output::fields(&pairs);
    if r.gateways.is_empty() {
        text.push_str("no gateway has reported\n");
    } else {
        text.push('\n');
        text.push_str(&output::table(
            &["GATEWAY", "VERSION", "CONFIG REVISION", "LAST SEEN"],
            r.gateways.iter().map(|g| {
                vec![
                    g.name.clone(),
                    output::or_none(&g.version),
                    g.config_revision.to_string(),
                    output::time_or(g.last_seen_at.as_ref(), "-"),
                ]
            }),
        ));
    }
    text
}

fn status_json(r: &GetSystemStatusResponse) -> Value {
    let db = r.database.clone().unwrap_or_default();
    json!({
        "server_version": r.server_version,
        "checked_at": output::time_json(r.checked_at.as_ref()),
        "database": {
            "backend": db.backend,
            "reachable": db.reachable,
            "ping_micros": db.ping_micros,
            "schema_version": db.schema_version,
            "schema_description": db.schema_description,
            "error": db.error,
        },
        "sync": r.sync.as_ref().map(crate::sync::status_json),
        "gateways": r.gateways.iter().map(|g| {
            let mut v = crate::usage::gateway_json(g);
            v["version"] = json!(g.version);
            v["config_revision"] = json!(g.config_revision);
            v
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_proto::v1::{DatabaseStatus, Gateway, GetSyncStatusResponse};

    #[test]
    fn info_and_status_render() {
        let info = GetServerInfoResponse {
            version: "0.1.0".into(),
            gateway_public_url: "https://gw.example.com".into(),
            token_prefix: "kg".into(),
            usage_enabled: true,
            setup_required: false,
        };
        let text = info_text(&info);
        assert!(text.contains("gateway URL:") && text.contains("https://gw.example.com"));
        assert!(text.contains("kg_"));
        assert_eq!(info_json(&info)["usage_enabled"], true);

        let status = GetSystemStatusResponse {
            database: Some(DatabaseStatus {
                backend: "sqlite".into(),
                reachable: true,
                ping_micros: 1500,
                schema_version: 12,
                schema_description: "usage token day".into(),
                error: String::new(),
            }),
            sync: Some(GetSyncStatusResponse {
                head_revision: 9,
                compacted_revision: 1,
                followers: vec![],
            }),
            gateways: vec![Gateway {
                name: "edge-1".into(),
                version: "0.1.0".into(),
                config_revision: 9,
                ..Default::default()
            }],
            checked_at: None,
            server_version: "0.1.0".into(),
        };
        let text = status_text(&status);
        assert!(text.contains("sqlite reachable, 1.5 ms"), "{text}");
        assert!(text.contains("12 (usage token day)"), "{text}");
        assert!(text.contains("head 9"), "{text}");
        assert!(text.contains("edge-1"), "{text}");
        let v = status_json(&status);
        assert_eq!(v["database"]["schema_version"], 12);
        assert_eq!(v["gateways"][0]["config_revision"], 9);
        assert_eq!(v["sync"]["head_revision"], 9);
    }
}
