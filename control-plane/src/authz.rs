//! Asking [`crate::policy`] from a handler: a refusal becomes `PERMISSION_DENIED`, and a
//! refused change also leaves an `authz.denied` audit row (no change, no change event).

use crate::context::RequestContext;
use crate::error::{ApiError, ErrorCode};
use crate::policy::{Action, Caller, check};
use crate::store::{AuditRecord, DynStore};
use serde_json::json;
use tonic::Status;

fn team_of(action: &Action<'_>) -> String {
    use Action::*;
    match action {
        UpdateTeam(t)
        | DeleteTeam(t)
        | ListMembers(t)
        | ReadTokens(t)
        | CreateToken(t)
        | CreateRoute(t)
        | ReadAudit(t)
        | ListInvitations(t)
        | ReadServiceAccounts(t)
        | ReadUsage(t)
        | ReadAlerts(t) => t.0.clone(),
        ClaimTeam { team, .. }
        | AddMember { team, .. }
        | ChangeMemberRole { team, .. }
        | RemoveMember { team, .. }
        | ChangeToken { team, .. }
        | ChangeRoute { team, .. }
        | Invite { team, .. }
        | ManageServiceAccount { team, .. }
        | ManageAlerts { team, .. } => team.0.clone(),
        _ => String::new(),
    }
}

/// Allows a read or refuses it (no audit row: reads change nothing).
pub fn read(caller: &Caller, action: Action<'_>) -> Result<(), Status> {
    check(caller, &action)
        .map_err(|d| ApiError::new(ErrorCode::PermissionDenied, d.to_string()).into())
}

/// Allows a change or refuses it, recording the refusal as `authz.denied` with the attempted
/// action and the target.
pub async fn change(
    store: &DynStore,
    ctx: &RequestContext,
    caller: &Caller,
    action: Action<'_>,
    attempted: &'static str,
    target: &str,
) -> Result<(), Status> {
    match check(caller, &action) {
        Ok(()) => Ok(()),
        Err(denied) => {
            tracing::warn!(attempted, target, reason = %denied, "permission denied");
            let record = AuditRecord {
                action: "authz.denied",
                entity_type: attempted.split('.').next().unwrap_or("unknown"),
                entity_id: target.to_owned(),
                team_id: team_of(&action),
                detail: json!({"attempted": [null, attempted], "reason": [null, denied.0]}),
            };
            if let Err(e) = store.record_event(ctx, record).await {
                tracing::error!(error = %e, "could not audit a refused call");
            }
            Err(ApiError::new(ErrorCode::PermissionDenied, denied.to_string()).into())
        }
    }
}
