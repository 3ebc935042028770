//! Session domain types.

use crate::ids::{SessionId, UserId};
use crate::time::{Millis, to_timestamp, to_timestamp_opt};
use keygate_proto::v1 as pb;
use serde::Serialize;

/// Prefix of session bearer tokens.
pub const SESSION_PREFIX: &str = "kgs";
/// Prefix of first-start setup codes.
pub const SETUP_PREFIX: &str = "kgsetup";
/// Prefix of invitation codes.
pub const INVITATION_PREFIX: &str = "kginv";

/// A signed-in session (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub revoked_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub source_ip: String,
    pub user_agent: String,
}

impl Session {
    pub fn to_pb(&self, current: &SessionId) -> pb::Session {
        pb::Session {
            id: self.id.0.clone(),
            created_at: Some(to_timestamp(self.created_at)),
            expires_at: Some(to_timestamp(self.expires_at)),
            last_used_at: to_timestamp_opt(self.last_used_at),
            source_ip: self.source_ip.clone(),
            user_agent: self.user_agent.clone(),
            current: &self.id == current,
        }
    }
}

/// A session to insert.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub token_hash: String,
    pub expires_at: Millis,
}
