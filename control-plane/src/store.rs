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

use crate::alerts::{
    Alert, AlertDelivery, AlertRule, AlertRuleFilter, AlertRulePatch, AlertState, AlertTokenQuery,
    DeliveryFilter, NewAlertRule,
};
use crate::audit::{AuditEvent, AuditFilter, AuditPage, ChainReport};
use crate::context::RequestContext;
use crate::dashboard::DashboardCounts;
use crate::ids::{
    AlertRuleId, InvitationId, KeyId, RouteId, ServiceAccountId, SessionId, TeamId, TokenId, UserId,
};
use crate::import::{Applied, ImportBatch, MapRow, Progress, UsageFeed};
use crate::invitations::{Invitation, NewInvitation};
use crate::policy::Role;
use crate::routes::{NewRoute, Route, RouteFilter, RoutePatch};
use crate::service_accounts::{NewServiceAccount, ServiceAccount};
use crate::sessions::{NewSession, Session};
use crate::sync::{EdgeRouteSource, EdgeToken, Follower, SnapshotPart};
use crate::teams::Member;
use crate::teams::{NewTeam, Team, TeamDeletion, TeamFilter, TeamPatch};
use crate::time::Millis;
use crate::tokens::{NewTokenRecord, Token, TokenFilter, TokenPatch};
use crate::usage::analytics::AnalyticsStore;
use crate::usage::{GatewayStatus, IngestOutcome, StoredUsageEvent, UsageBatch, UsageFilter};
use crate::users::{NewUser, User, UserFilter, UserPatch};
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

pub use crate::service_accounts::{ManagementKey, NewManagementKey};

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
pub trait Store:
    TeamStore
    + MemberStore
    + TokenStore
    + RouteStore
    + AuditStore
    + KeyStore
    + FeedStore
    + UserStore
    + SessionStore
    + InvitationStore
    + ServiceAccountStore
    + UsageStore
    + AnalyticsStore
    + DashboardStore
    + AlertStore
    + SystemStore
    + ImportStore
{
}

impl<T> Store for T where
    T: TeamStore
        + MemberStore
        + TokenStore
        + RouteStore
        + AuditStore
        + KeyStore
        + FeedStore
        + UserStore
        + SessionStore
        + InvitationStore
        + ServiceAccountStore
        + UsageStore
        + AnalyticsStore
        + DashboardStore
        + AlertStore
        + SystemStore
        + ImportStore
{
}

/// `keygate import old-system` (crate::import): its mapping table and its one-transaction
/// apply. Every entity written gets its audit row (`<entity>.import`, the context's actor)
/// and change event like any change; old audit rows become historical entries after a marker.
#[async_trait::async_trait]
pub trait ImportStore: Send + Sync + 'static {
    /// The mapping rows of `source`.
    async fn import_map(&self, source: &str) -> StoreResult<Vec<MapRow>>;
    /// Applies the whole batch, and every chunk `usage` yields, in ONE transaction: all of
    /// it or nothing.
    async fn apply_import(
        &self,
        ctx: &RequestContext,
        batch: &ImportBatch,
        usage: Option<&mut dyn UsageFeed>,
        progress: Progress<'_>,
    ) -> StoreResult<Applied>;
}

#[async_trait::async_trait]
pub trait TeamStore: Send + Sync + 'static {
    /// Creates the team; `creator` (a user) becomes its ADMIN in the same transaction.
    async fn create_team(
        &self,
        ctx: &RequestContext,
        team: NewTeam,
        creator: Option<&UserId>,
    ) -> StoreResult<Team>;
    async fn get_team(&self, id: &TeamId) -> StoreResult<Team>;
    async fn list_teams(&self, filter: &TeamFilter) -> StoreResult<Page<Team>>;
    async fn update_team(
        &self,
        ctx: &RequestContext,
        id: &TeamId,
        patch: TeamPatch,
    ) -> StoreResult<Team>;
    /// Refused while the team owns live tokens, routes or service accounts unless `cascade`:
    /// then tokens and keys are revoked and routes and accounts deleted in the same transaction.
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
    /// Tokens matching `filter` over all pages (its page position and limit are ignored).
    async fn count_tokens(&self, filter: &TokenFilter) -> StoreResult<u64>;
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
    /// Routes matching `filter` over all pages (its page position and limit are ignored).
    async fn count_routes(&self, filter: &RouteFilter) -> StoreResult<u64>;
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
    /// Appends an audit row that records no change (a refused call, a failed sign-in): no
    /// change event, nothing else written.
    async fn record_event(&self, ctx: &RequestContext, event: AuditRecord) -> StoreResult<()>;
}

/// An audit-only event.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub action: &'static str,
    pub entity_type: &'static str,
    pub entity_id: String,
    pub team_id: String,
    pub detail: serde_json::Value,
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
    async fn get_management_key(&self, id: &KeyId) -> StoreResult<ManagementKey>;
    async fn list_management_keys(
        &self,
        account: &ServiceAccountId,
    ) -> StoreResult<Vec<ManagementKey>>;
    /// Idempotent.
    async fn revoke_management_key(
        &self,
        ctx: &RequestContext,
        id: &KeyId,
    ) -> StoreResult<ManagementKey>;
    /// Inserts `new` for the same account and cuts the old key's expiry to
    /// `min(own expiry, grace_until)` (revoking it when that is not in the future).
    async fn rotate_management_key(
        &self,
        ctx: &RequestContext,
        id: &KeyId,
        new: NewManagementKey,
        grace_until: Millis,
    ) -> StoreResult<(ManagementKey, ManagementKey)>;
    /// Records use, at most once a minute per key (no audit row).
    async fn touch_management_key(&self, id: &KeyId) -> StoreResult<()>;
    async fn count_management_keys(&self) -> StoreResult<u64>;
}

#[async_trait::async_trait]
pub trait MemberStore: Send + Sync + 'static {
    async fn list_members(&self, team: &TeamId) -> StoreResult<Vec<Member>>;
    /// A user's roles in every team.
    async fn user_roles(&self, user: &UserId) -> StoreResult<Vec<(TeamId, Role)>>;
    async fn add_member(
        &self,
        ctx: &RequestContext,
        team: &TeamId,
        user: &UserId,
        role: Role,
    ) -> StoreResult<Member>;
    /// Refuses to demote the team's last ADMIN.
    async fn update_member_role(
        &self,
        ctx: &RequestContext,
        team: &TeamId,
        user: &UserId,
        role: Role,
    ) -> StoreResult<Member>;
    /// Refuses to remove the team's last ADMIN.
    async fn remove_member(
        &self,
        ctx: &RequestContext,
        team: &TeamId,
        user: &UserId,
    ) -> StoreResult<()>;
    /// Makes `user` ADMIN of `team` if, in the same transaction, the team has no members.
    async fn claim_team(
        &self,
        ctx: &RequestContext,
        team: &TeamId,
        user: &UserId,
    ) -> StoreResult<Member>;
}

#[async_trait::async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn count_users(&self) -> StoreResult<u64>;
    /// Creates a user with team roles.
    async fn create_user(
        &self,
        ctx: &RequestContext,
        user: NewUser,
        roles: &[(TeamId, Role)],
    ) -> StoreResult<User>;
    async fn get_user(&self, id: &UserId) -> StoreResult<User>;
    /// By email (case-insensitive), with the password hash.
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<(User, String)>>;
    async fn password_hash(&self, id: &UserId) -> StoreResult<String>;
    async fn list_users(&self, filter: &UserFilter) -> StoreResult<Page<User>>;
    async fn update_user(
        &self,
        ctx: &RequestContext,
        id: &UserId,
        patch: UserPatch,
    ) -> StoreResult<User>;
    /// Disabling also ends every session of the user, in the same transaction.
    async fn set_user_disabled(
        &self,
        ctx: &RequestContext,
        id: &UserId,
        disabled: bool,
    ) -> StoreResult<User>;
    /// Sets the password hash and ends every session except `keep`.
    async fn set_password(
        &self,
        ctx: &RequestContext,
        id: &UserId,
        hash: String,
        keep: Option<&SessionId>,
    ) -> StoreResult<()>;
    /// Stores the hash of the one-time setup code (replacing any earlier one).
    async fn set_setup_code(&self, code_hash: &str, expires_at: Millis) -> StoreResult<()>;
    /// Creates the first system admin if the code matches, has not expired, and no user exists
    /// yet, all in one transaction; the code is consumed.
    async fn complete_setup(
        &self,
        ctx: &RequestContext,
        code_hash: &str,
        user: NewUser,
    ) -> StoreResult<User>;
}

#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Inserts the session, stamps the user's last sign-in and audits `auth.sign_in`.
    async fn create_session(
        &self,
        ctx: &RequestContext,
        session: NewSession,
    ) -> StoreResult<Session>;
    /// The session with this token hash and its user, whatever their state.
    async fn find_session(&self, token_hash: &str) -> StoreResult<Option<(Session, User)>>;
    async fn list_sessions(&self, user: &UserId) -> StoreResult<Vec<Session>>;
    /// Ends a session of `user` (NotFound for another user's session).
    async fn revoke_session(
        &self,
        ctx: &RequestContext,
        user: &UserId,
        id: &SessionId,
    ) -> StoreResult<()>;
    /// Records use, at most once a minute per session (no audit row).
    async fn touch_session(&self, id: &SessionId) -> StoreResult<()>;
}

#[async_trait::async_trait]
pub trait InvitationStore: Send + Sync + 'static {
    async fn create_invitation(
        &self,
        ctx: &RequestContext,
        inv: NewInvitation,
    ) -> StoreResult<Invitation>;
    async fn get_invitation(&self, id: &InvitationId) -> StoreResult<Invitation>;
    /// Pending (not accepted, revoked or expired) invitations, into `teams` if given.
    async fn list_invitations(&self, teams: Option<&[TeamId]>) -> StoreResult<Vec<Invitation>>;
    async fn revoke_invitation(
        &self,
        ctx: &RequestContext,
        id: &InvitationId,
    ) -> StoreResult<Invitation>;
    /// Consumes a pending invitation and creates its user with its roles (skipping teams that
    /// no longer exist), in one transaction.
    async fn accept_invitation(
        &self,
        ctx: &RequestContext,
        code_hash: &str,
        user: NewUser,
    ) -> StoreResult<User>;
}

#[async_trait::async_trait]
pub trait ServiceAccountStore: Send + Sync + 'static {
    async fn create_service_account(
        &self,
        ctx: &RequestContext,
        sa: NewServiceAccount,
    ) -> StoreResult<ServiceAccount>;
    async fn get_service_account(&self, id: &ServiceAccountId) -> StoreResult<ServiceAccount>;
    /// Accounts of `teams` if given, else all.
    async fn list_service_accounts(
        &self,
        teams: Option<&[TeamId]>,
    ) -> StoreResult<Vec<ServiceAccount>>;
    /// Deletes the account and revokes its keys.
    async fn delete_service_account(
        &self,
        ctx: &RequestContext,
        id: &ServiceAccountId,
    ) -> StoreResult<()>;
}

#[async_trait::async_trait]
pub trait FeedStore: Send + Sync + 'static {
    /// Changes with `revision > after`, oldest first, at most `limit`.
    async fn list_changes(&self, after: i64, limit: u32) -> StoreResult<Vec<ChangeEvent>>;
    /// The newest committed revision.
    async fn head_revision(&self) -> StoreResult<i64>;
    /// Revisions at or below this were compacted away; following from below needs a resync.
    async fn compacted_revision(&self) -> StoreResult<i64>;
    /// Deletes change events committed before `before` (epoch ms), never the newest one.
    /// Returns the new compacted revision. Safe while followers are behind: they resync.
    async fn compact_changes(&self, before: Millis) -> StoreResult<i64>;
    /// A receiver that changes after every commit (here, or on another replica sharing the
    /// PostgreSQL database): wait on it instead of polling.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
    /// The edge records of those of `ids` that are live (not revoked), in no particular
    /// order; one query however many ids (the feed asks per page of events).
    async fn edge_tokens(&self, ids: &[TokenId]) -> StoreResult<Vec<EdgeToken>>;
    /// The edge record of the live (not revoked) token whose key hashes to `token_hash`.
    async fn edge_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<EdgeToken>>;
    /// Every route with its (master-key) sealed secrets.
    async fn edge_routes(&self) -> StoreResult<Vec<EdgeRouteSource>>;
    /// The edge state at one revision, read in one consistent transaction.
    fn snapshot(&self, page: u32) -> BoxStream<'static, StoreResult<SnapshotPart>>;
    /// Records a follower's report; returns (and clears) whether a resync was requested.
    async fn report_follower(&self, f: &Follower) -> StoreResult<bool>;
    async fn list_followers(&self) -> StoreResult<Vec<Follower>>;
    /// Flags one follower (or all when `None`) to resync; returns how many.
    async fn request_resync(&self, follower: Option<&str>) -> StoreResult<u32>;
}

/// Usage events from gateways. Telemetry, not configuration: nothing here writes an audit
/// row or a change event, or wakes change-feed watchers.
#[async_trait::async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Stores a batch in ONE transaction. A batch whose `(gateway, batch_id)` was stored
    /// before changes nothing (`replayed`). Events whose `(gateway, event_id)` is already
    /// stored are skipped; the rollups (or, for senders of plain events, the new events
    /// rolled up here) are added to every tier; each token's `last_used_at` moves forward to
    /// its newest event or rollup minute (never back); the gateway's totals and its minute
    /// of arrival are updated (without a batch id, the drop counts of a batch whose every
    /// event was already stored are not added again: a resend).
    async fn ingest_usage(&self, batch: &UsageBatch) -> StoreResult<IngestOutcome>;
    /// A page, newest first (`at`, then row id).
    async fn list_usage(&self, filter: &UsageFilter) -> StoreResult<Page<StoredUsageEvent>>;
    /// Events stored after row id `after` matching `filter` (its range and cursor ignored),
    /// oldest first, at most `limit`; for live tails.
    async fn usage_events_after(
        &self,
        filter: &UsageFilter,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredUsageEvent>>;
    /// The newest event's row id (0 when none).
    async fn last_usage_event_id(&self) -> StoreResult<i64>;
    /// Bumped when this process stored new events (other replicas' are seen by polling).
    fn subscribe_usage(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Deletes events with `at < before`, in bounded batches; returns how many.
    async fn delete_usage_before(&self, before: Millis) -> StoreResult<u64>;
    /// Every gateway that has reported, by name.
    async fn list_gateways(&self) -> StoreResult<Vec<GatewayStatus>>;
}

/// Alert rules and what their evaluator records (`alerts::evaluate`, `alerts::deliver`).
/// Rule changes are audited with a change event like teams; each delivery attempt is audited
/// (`alert.delivered` / `alert.delivery_failed`, actor as given) without a change event;
/// states and queued alerts are bookkeeping without audit rows.
#[async_trait::async_trait]
pub trait AlertStore: Send + Sync + 'static {
    async fn create_alert_rule(
        &self,
        ctx: &RequestContext,
        rule: NewAlertRule,
    ) -> StoreResult<AlertRule>;
    async fn get_alert_rule(&self, id: &AlertRuleId) -> StoreResult<AlertRule>;
    /// A page, newest first.
    async fn list_alert_rules(&self, filter: &AlertRuleFilter) -> StoreResult<Page<AlertRule>>;
    /// A new condition forgets the states recorded under the old one.
    async fn update_alert_rule(
        &self,
        ctx: &RequestContext,
        id: &AlertRuleId,
        patch: AlertRulePatch,
    ) -> StoreResult<AlertRule>;
    /// Deletes the rule with its states, alerts and delivery history.
    async fn delete_alert_rule(
        &self,
        ctx: &RequestContext,
        id: &AlertRuleId,
    ) -> StoreResult<AlertRule>;
    /// The rule's sealed signing secret (master key, AAD `<rule id>/webhook_secret`). For the
    /// delivery path only, never for clients.
    async fn alert_rule_secret(&self, id: &AlertRuleId) -> StoreResult<String>;
    async fn enabled_alert_rules(&self) -> StoreResult<Vec<AlertRule>>;
    async fn alert_states(&self, rule: &AlertRuleId) -> StoreResult<Vec<AlertState>>;
    /// Upserts `states` (by subject) and queues `alerts`, in one transaction.
    async fn record_evaluation(
        &self,
        rule: &AlertRuleId,
        states: &[AlertState],
        alerts: &[Alert],
    ) -> StoreResult<()>;
    /// Alerts whose next try is due at `now`, most overdue first.
    async fn due_alerts(&self, now: Millis, limit: u32) -> StoreResult<Vec<Alert>>;
    /// Stores one try in one transaction: the delivery row, the alert's tries and next due
    /// time (`delivery.next_attempt_at`), and the audit row. NotFound when the alert is gone.
    async fn record_delivery(
        &self,
        ctx: &RequestContext,
        delivery: &AlertDelivery,
    ) -> StoreResult<()>;
    /// A page of delivery tries, newest first.
    async fn list_alert_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> StoreResult<Page<AlertDelivery>>;
    /// Live tokens of `team` matching `query` (at most 10,000, oldest first).
    async fn alert_tokens(
        &self,
        team: &TeamId,
        query: AlertTokenQuery,
        now: Millis,
    ) -> StoreResult<Vec<crate::tokens::Token>>;
    /// Names of the routes `team` owns.
    async fn team_route_names(&self, team: &TeamId) -> StoreResult<Vec<String>>;
    /// The right to evaluate now: `None` while another replica holds it (PostgreSQL advisory
    /// lock); always granted on SQLite. Give it back with [`Self::release_alert_evaluation`]
    /// (dropping the guard releases it too, but only some time later).
    async fn lock_alert_evaluation(&self) -> StoreResult<Option<EvaluationLock>>;
    /// Releases the lock now.
    async fn release_alert_evaluation(&self, lock: EvaluationLock) -> StoreResult<()>;
    /// Deletes finished alerts (delivered or given up) fired before `before`, with their
    /// delivery rows; returns how many alerts.
    async fn delete_alert_history_before(&self, before: Millis) -> StoreResult<u64>;
}

/// Held while one evaluator runs (see [`AlertStore::lock_alert_evaluation`]).
#[derive(Default)]
pub struct EvaluationLock {
    _guard: Option<Box<dyn std::any::Any + Send>>,
}

impl EvaluationLock {
    pub fn new(guard: Box<dyn std::any::Any + Send>) -> Self {
        Self {
            _guard: Some(guard),
        }
    }

    /// What the store put in (for its release).
    pub fn into_guard(mut self) -> Option<Box<dyn std::any::Any + Send>> {
        self._guard.take()
    }
}

/// The aggregates only the dashboard reads; its token lists and counts, audit rows and usage
/// come from the other stores.
#[async_trait::async_trait]
pub trait DashboardStore: Send + Sync + 'static {
    /// Over `teams` (`None`: everything): routes they own, the teams themselves, enabled users
    /// with a membership in them (`None`: every enabled user), tokens created per UTC day
    /// since `created_since`, and active tokens (at `now`) per team.
    async fn dashboard_counts(
        &self,
        teams: Option<&[TeamId]>,
        created_since: Millis,
        now: Millis,
    ) -> StoreResult<DashboardCounts>;
}

/// The newest applied schema migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaVersion {
    /// Its number (`12` for `0012_…`).
    pub version: i64,
    pub description: String,
}

/// The store's own health, for `SystemService.GetSystemStatus`.
#[async_trait::async_trait]
pub trait SystemStore: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// One `SELECT 1` round trip on the read pool.
    async fn ping(&self) -> StoreResult<()>;
    /// The newest successfully applied migration.
    async fn schema_version(&self) -> StoreResult<SchemaVersion>;
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
