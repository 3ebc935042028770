//! What one import run writes, as the store applies it (all in one transaction), and the
//! mapping rows that make a second run apply only what changed.

use crate::ids::{RouteId, TeamId, TokenId};
use crate::invitations::NewInvitation;
use crate::routes::{NewRoute, RoutePatch};
use crate::teams::{NewTeam, TeamPatch};
use crate::time::Millis;
use crate::tokens::{NewTokenRecord, TokenPatch};
use keygate_rollup::{RollupKey, RollupValue};
use serde_json::Value;

/// One mapping row: an old row's id, the Keygate id it became, and a fingerprint of the
/// mapped content it was last written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRow {
    /// `team`, `route`, `token`, `user`, or `cursor` (high-water marks of append-only tables).
    pub kind: String,
    pub old_id: String,
    pub new_id: String,
    pub fingerprint: String,
    /// Routes: the backend secret the import last wrote, sealed (AAD `<route id>/<slot>`);
    /// empty otherwise.
    pub secret: String,
}

/// A team change.
#[derive(Debug, Clone)]
pub enum TeamOp {
    Create(NewTeam),
    Update(TeamId, TeamPatch),
}

/// A route change.
#[derive(Debug, Clone)]
pub enum RouteOp {
    Create(NewRoute),
    Update(RouteId, RoutePatch),
    Delete(RouteId),
}

/// A token change.
#[derive(Debug, Clone)]
pub enum TokenOp {
    /// A token keeping its old key (by its SHA-256) and its old times.
    Create {
        record: NewTokenRecord,
        created_at: Millis,
        last_used_at: Option<Millis>,
        legacy_prefix: String,
    },
    Update(TokenId, TokenPatch),
    /// Revoked (deleted in the old system since the last run).
    Revoke(TokenId),
}

/// An old audit row, kept as a historical entry (no change event).
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub entity_id: String,
    pub diff: Value,
}

/// Everything one run writes.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    /// `old-system`.
    pub source: String,
    pub run_id: String,
    pub started_at: Millis,
    /// The run's summary: the marker audit entry's content and the `import_runs` row.
    pub summary: Value,
    pub teams: Vec<TeamOp>,
    pub routes: Vec<RouteOp>,
    pub tokens: Vec<TokenOp>,
    pub invitations: Vec<NewInvitation>,
    pub history: Vec<HistoryEntry>,
    pub map: Vec<MapRow>,
    /// `(kind, old_id)` rows to forget (their Keygate rows were deleted or revoked).
    pub unmap: Vec<(String, String)>,
}

/// Usage rollups made while the apply runs, a chunk at a time (a million usage rows do not fit
/// in memory as rollups). The store adds each chunk to the tiers in the import's transaction.
#[async_trait::async_trait]
pub trait UsageFeed: Send {
    /// The next rollups; `None` after the last. An error (what failed, without secrets)
    /// aborts the import.
    async fn next_chunk(&mut self) -> Result<Option<Vec<(RollupKey, RollupValue)>>, String>;
    /// `(source rows consumed, source rows in all)`, for progress.
    fn position(&self) -> (u64, u64);
}

/// Progress of a long apply: `(what, done, total)`.
pub type Progress<'a> = &'a (dyn Fn(&str, usize, usize) + Send + Sync);

/// What applying wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub audit_rows: u64,
    pub change_events: u64,
    pub head_revision: i64,
}
