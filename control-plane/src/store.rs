//! Storage: the [`Store`] trait and its two implementations, [`sqlite::SqliteStore`] (embedded
//! default) and [`postgres::PgStore`] (production). Both compile the same SQL code in
//! `store/sql/` against their own sqlx driver, with typed rows (no `sqlx::Any`).
//!
//! Invariants every implementation keeps (checked by the conformance suite in
//! `tests/store_conformance.rs` against both):
//! - every mutation writes its rows, one audit row per change and one change event per edge
//!   record it affects in ONE transaction, or nothing at all;
//! - audit rows form a gapless hash chain; change revisions are gapless and their order is
//!   commit order (the `log_head` row lock serialises appends);
//! - database errors stay in here: callers see [`StoreError`] only.

pub mod postgres;
pub mod sqlite;

use crate::audit::{AuditEvent, AuditFilter, AuditPage, ChainReport};
use crate::context::RequestContext;
use crate::ids::{KeyId, RouteId, TeamId, TokenId};
use crate::routes::{NewRoute, Route, RouteFilter, RoutePatch};
use crate::teams::{NewTeam, Team, TeamDeletion, TeamFilter, TeamPatch};
use crate::time::Millis;
use crate::tokens::{NewTokenRecord, Token, TokenFilter, TokenPatch};
use futures::stream::BoxStream;
use keygate_contracts::FieldError;
use std::sync::Arc;

/// Storage failures, already stripped of database internals where a client could see them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} \"{id}\" not found")]
    NotFound { entity: &'static str, id: String },
    #[error("{0}")]
    AlreadyExists(String),
    #[error(transparent)]
    Invalid(FieldError),
    #[error("{0}")]
    Precondition(String),
    /// Connection trouble; safe to retry. The detail is for logs only.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else. The detail is for logs only.
    #[error("storage error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Whether more rows follow the last item.
    pub more: bool,
}

/// A management key row (no secret: only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementKey {
    pub id: KeyId,
    pub name: String,
    pub preview: String,
    pub is_bootstrap: bool,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

/// A new management key to insert.
#[derive(Debug, Clone)]
pub struct NewManagementKey {
    pub id: KeyId,
    pub name: String,
    pub key_hash: String,
    pub preview: String,
    pub is_bootstrap: bool,
    pub expires_at: Option<Millis>,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub revision: i64,
    pub at: Millis,
    pub entity_type: String,
    pub entity_id: String,
    /// `upsert` or `delete`.
    pub op: String,
    /// JSON with what a follower needs to address the edge record (never secrets).
    pub payload: String,
    pub audit_seq: i64,
}

/// Everything the control plane persists: one sub-trait per resource.
pub trait Store: TeamStore + TokenStore + RouteStore + AuditStore + KeyStore + FeedStore {}

impl<T> Store for T where T: TeamStore + TokenStore + RouteStore + AuditStore + KeyStore + FeedStore {}

#[async_trait::async_trait]
pub trait TeamStore: Send + Sync + 'static {
    async fn create_team(&self, ctx: &RequestContext, team: NewTeam) -> StoreResult<Team>;
    async fn get_team(&self, id: &TeamId) -> StoreResult<Team>;
    async fn list_teams(&self, filter: &TeamFilter) -> StoreResult<Page<Team>>;
    async fn update_team(
        &self,
        ctx: &RequestContext,
        id: &TeamId,
        patch: TeamPatch,
    ) -> StoreResult<Team>;
    /// Refused while the team owns live tokens or routes unless `cascade`: then they are
    /// revoked/deleted in the same transaction.
    async fn delete_team(
        &self,
        ctx: &RequestContext,
        id: &TeamId,
        cascade: bool,
    ) -> StoreResult<TeamDeletion>;
}

#[async_trait::async_trait]
pub trait TokenStore: Send + Sync + 'static {
    async fn create_token(&self, ctx: &RequestContext, token: NewTokenRecord)
    -> StoreResult<Token>;
    async fn get_token(&self, id: &TokenId) -> StoreResult<Token>;
    async fn list_tokens(&self, filter: &TokenFilter) -> StoreResult<Page<Token>>;
    async fn update_token(
        &self,
        ctx: &RequestContext,
        id: &TokenId,
        patch: TokenPatch,
    ) -> StoreResult<Token>;
    /// Idempotent: revoking a revoked token returns it unchanged and writes nothing.
    async fn revoke_token(
        &self,
        ctx: &RequestContext,
        id: &TokenId,
        reason: &str,
    ) -> StoreResult<Token>;
    /// Inserts a new token with the old one's team, name, description, scopes and expiry, links
    /// the two, and cuts the old token's expiry to `min(own expiry, grace_until)` (revoking it
    /// when `grace_until` is not in the future). Returns `(new, old)`.
    async fn rotate_token(
        &self,
        ctx: &RequestContext,
        id: &TokenId,
        new: RotatedToken,
    ) -> StoreResult<(Token, Token)>;
}

/// The new half of a rotation.
#[derive(Debug, Clone)]
pub struct RotatedToken {
    pub id: TokenId,
    pub token_hash: String,
    pub preview: String,
    pub grace_until: Millis,
}

#[async_trait::async_trait]
pub trait RouteStore: Send + Sync + 'static {
    async fn create_route(&self, ctx: &RequestContext, route: NewRoute) -> StoreResult<Route>;
    /// By id (`rte_...`) or by name.
    async fn get_route(&self, id_or_name: &str) -> StoreResult<Route>;
    async fn list_routes(&self, filter: &RouteFilter) -> StoreResult<Page<Route>>;
    async fn update_route(
        &self,
        ctx: &RequestContext,
        id: &RouteId,
        patch: RoutePatch,
    ) -> StoreResult<Route>;
    /// Deletes the route and its sealed secrets.
    async fn delete_route(&self, ctx: &RequestContext, id: &RouteId) -> StoreResult<Route>;
    async fn list_route_tags(&self) -> StoreResult<Vec<(String, u32)>>;
    /// Sealed secrets of a route: `(slot, sealed)`. For the edge snapshot, never for clients.
    async fn route_secrets(&self, id: &RouteId) -> StoreResult<Vec<(String, String)>>;
}

#[async_trait::async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// A page, newest first, and the number of rows matching the filter.
    async fn list_audit(&self, page: &AuditPage) -> StoreResult<(Page<AuditEvent>, u64)>;
    /// Every matching row, oldest first, read in batches.
    fn export_audit(&self, filter: AuditFilter) -> BoxStream<'static, StoreResult<AuditEvent>>;
    async fn verify_audit_chain(&self) -> StoreResult<ChainReport>;
}

#[async_trait::async_trait]
pub trait KeyStore: Send + Sync + 'static {
    async fn create_management_key(
        &self,
        ctx: &RequestContext,
        key: NewManagementKey,
    ) -> StoreResult<ManagementKey>;
    /// The key with this hash, whatever its state.
    async fn find_management_key(&self, key_hash: &str) -> StoreResult<Option<ManagementKey>>;
    async fn count_management_keys(&self) -> StoreResult<u64>;
}

#[async_trait::async_trait]
pub trait FeedStore: Send + Sync + 'static {
    /// Changes with `revision > after`, oldest first, at most `limit`.
    async fn list_changes(&self, after: i64, limit: u32) -> StoreResult<Vec<ChangeEvent>>;
    /// The newest committed revision.
    async fn head_revision(&self) -> StoreResult<i64>;
}

/// A shared handle to the configured store.
pub type DynStore = Arc<dyn Store>;

/// Opens the store for `database_url`: `sqlite://...` or `postgres://...`, and applies
/// migrations.
pub async fn open(database_url: &str) -> StoreResult<DynStore> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(database_url).await?))
    } else if database_url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(database_url).await?))
    } else {
        Err(StoreError::Invalid(FieldError::new(
            "database_url",
            "must start with sqlite: or postgres://",
        )))
    }
}
