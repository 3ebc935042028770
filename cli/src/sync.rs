//! `keygate sync status|resync`: the edge followers (kv-sync) as the control plane sees them.

use crate::Context;
use crate::args::SyncCommand;
use crate::client::CliError;
use crate::output;
use keygate_proto::v1::{GetSyncStatusRequest, GetSyncStatusResponse, RequestResyncRequest};
use serde_json::{Value, json};

pub(crate) async fn run(command: SyncCommand, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let conn = ctx.connect().await?;
    match command {
        SyncCommand::Status => {
            let r = conn
                .call(conn.sync().get_sync_status(GetSyncStatusRequest {}))
                .await?;
            if ctx.json {
                ctx.print_json(&status_json(&r))
            } else {
                writeln!(
                    ctx.out,
                    "head revision {}, compacted up to {}",
                    r.head_revision, r.compacted_revision
                )?;
                if r.followers.is_empty() {
                    writeln!(ctx.out, "no followers have reported")?;
                } else {
                    let rows = r.followers.iter().map(|f| {
                        vec![
                            f.follower.clone(),
                            f.applied_revision.to_string(),
                            f.lag_revisions.to_string(),
                            output::time_or(f.reported_at.as_ref(), "-"),
                            if f.last_error.is_empty() {
                                "-".into()
                            } else {
                                f.last_error.clone()
                            },
                            if f.resync_requested {
                                "requested".into()
                            } else {
                                "-".into()
                            },
                        ]
                    });
                    write!(
                        ctx.out,
                        "{}",
                        output::table(
                            &[
                                "FOLLOWER",
                                "APPLIED",
                                "LAG",
                                "REPORTED",
                                "LAST ERROR",
                                "RESYNC"
                            ],
                            rows
                        )
                    )?;
                }
                Ok(())
            }
        }
        SyncCommand::Resync { follower } => {
            let r = conn
                .call(conn.sync().request_resync(RequestResyncRequest {
                    follower: follower.clone().unwrap_or_default(),
                }))
                .await?;
            if ctx.json {
                ctx.print_json(&json!({"followers": r.followers}))
            } else {
                writeln!(
                    ctx.out,
                    "resync requested for {} follower(s); they rebuild at their next report",
                    r.followers
                )?;
                Ok(())
            }
        }
    }
}

pub(crate) fn status_json(r: &GetSyncStatusResponse) -> Value {
    json!({
        "head_revision": r.head_revision,
        "compacted_revision": r.compacted_revision,
        "followers": r.followers.iter().map(|f| json!({
            "follower": f.follower,
            "applied_revision": f.applied_revision,
            "lag_revisions": f.lag_revisions,
            "last_error": f.last_error,
            "reported_at": output::time_json(f.reported_at.as_ref()),
            "applied_changes": f.applied_changes,
            "resync_requested": f.resync_requested,
        })).collect::<Vec<_>>(),
    })
}
