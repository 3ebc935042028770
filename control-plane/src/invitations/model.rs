//! Invitation domain types.

use crate::ids::{InvitationId, TeamId};
use crate::policy::Role;
use crate::time::{Millis, to_timestamp, to_timestamp_opt};
use crate::users::roles_to_pb;
use keygate_proto::v1 as pb;
use serde::Serialize;

/// Default and longest lifetime of an invitation, in hours.
pub const DEFAULT_EXPIRY_HOURS: u32 = 168;
pub const MAX_EXPIRY_HOURS: u32 = 720;
/// Most team roles in one invitation.
pub const MAX_ROLES: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invitation {
    pub id: InvitationId,
    pub email: String,
    pub roles: Vec<(TeamId, Role)>,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub created_by: String,
    pub accepted_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

impl From<Invitation> for pb::Invitation {
    fn from(i: Invitation) -> Self {
        Self {
            id: i.id.0,
            email: i.email,
            roles: roles_to_pb(i.roles),
            created_at: Some(to_timestamp(i.created_at)),
            expires_at: Some(to_timestamp(i.expires_at)),
            created_by: i.created_by,
            accepted_at: to_timestamp_opt(i.accepted_at),
            revoked_at: to_timestamp_opt(i.revoked_at),
        }
    }
}

/// An invitation to insert (the code only as its hash).
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub id: InvitationId,
    pub email: String,
    pub roles: Vec<(TeamId, Role)>,
    pub code_hash: String,
    pub expires_at: Millis,
}
