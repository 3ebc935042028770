//! Edge-state types that the store produces for the change feed.

use crate::ids::{TeamId, TokenId};
use crate::routes::Route;
use crate::time::Millis;

/// What the edge needs about a live token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeToken {
    pub token_hash: String,
    pub token_id: TokenId,
    pub team_id: TeamId,
    pub scopes: Vec<String>,
    pub expires_at: Option<Millis>,
    /// Requests per minute over all routes; 0: no per-token limit.
    pub rate_limit_per_minute: u32,
}

/// A route with its secrets sealed under the master key (`(slot, sealed)`); the service
/// re-seals them to the edge key before they leave the control plane.
#[derive(Debug, Clone)]
pub struct EdgeRouteSource {
    pub route: Route,
    pub secrets: Vec<(String, String)>,
}

/// One part of a snapshot, in order: `Revision`, `Tokens`..., `Routes`, `End`.
#[derive(Debug, Clone)]
pub enum SnapshotPart {
    Revision(i64),
    Tokens(Vec<EdgeToken>),
    Routes(Vec<EdgeRouteSource>),
    End(u64),
}

/// A follower's last report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    pub follower: String,
    pub applied_revision: i64,
    pub last_error: String,
    pub applied_changes: i64,
    pub reported_at: Millis,
    pub resync_requested: bool,
}
