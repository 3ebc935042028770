//! The plan: old rows mapped to Keygate entities through the API's own validation, compared
//! with what earlier runs wrote (the mapping table), with every problem found. Pure: no IO.
//!
//! A problem names its class, the old row (`routes/3`, `tokens/6`, `kv/token:<hash>`,
//! `users/<id>`) and the rule. A class is resolved for a run by `--resolve CLASS=ACTION`;
//! an unresolved problem stops the run before anything is written.

use super::model::{HistoryEntry, ImportBatch, MapRow, RouteOp, TeamOp, TokenOp};
use super::old::{OldRoute, OldSystem, OldUser, UsageBuckets};
use crate::ids::{InvitationId, RouteId, TeamId, TokenId};
use crate::invitations::NewInvitation;
use crate::policy::Role;
use crate::routes::{CreateRouteInput, RoutePatch};
use crate::secrets::{MasterKey, SecretString};
use crate::teams::{NewTeam, TeamPatch};
use crate::time::Millis;
use crate::tokens::{NewTokenRecord, TokenPatch};
use keygate_contracts::names;
use keygate_contracts::route as rules;
use keygate_contracts::scope::{Scope, parse_scopes};
use keygate_proto::v1 as pb;
use keygate_rollup::{RollupKey, RollupValue};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Every problem class, what it means and how a run may resolve it.
pub const CLASSES: &[(&str, &[&str], &str)] = &[
    (
        "invalid_backend_url",
        &["skip"],
        "a route's backend URL is not an absolute http(s) URL",
    ),
    (
        "invalid_route",
        &["skip"],
        "a route breaks another route rule (path, tags, header name)",
    ),
    (
        "invalid_route_name",
        &["rename", "skip"],
        "a route has no name or one that is not a route name (rename: derived from its path)",
    ),
    (
        "duplicate_name",
        &["rename", "skip"],
        "two routes share a name (rename: the later one gets -<old id>)",
    ),
    (
        "duplicate_path",
        &["skip"],
        "two routes have the same path once a trailing '/' is removed",
    ),
    (
        "path_conflict",
        &["accept", "skip"],
        "one route's path is a raw string prefix of another's without a segment boundary (Keygate matches whole segments)",
    ),
    (
        "unknown_auth_type",
        &["none", "skip"],
        "a route's backend auth type is not none, bearer, api-key or basic (none: import it without backend auth)",
    ),
    (
        "missing_secret",
        &["none", "skip"],
        "a secret a route names is not in the old KV namespace (or no KV was given)",
    ),
    (
        "conflicts_existing",
        &["skip"],
        "a route's name or path is already used by a route not created by an import",
    ),
    (
        "invalid_team",
        &["skip"],
        "a team breaks a team rule (slug, name, colour, icon)",
    ),
    (
        "orphan_token",
        &["skip", "team:<slug>"],
        "a token's team does not exist (team:<slug>: move it to that team)",
    ),
    (
        "deleted_route_scope",
        &["drop", "skip"],
        "a token's scope names a route that does not exist or is not imported (drop: remove that scope)",
    ),
    (
        "kv_only_token",
        &["import", "skip"],
        "a token is in the old KV namespace but not in the database",
    ),
    (
        "invalid_token",
        &["skip"],
        "a token breaks a token rule (hash, name, description, scopes)",
    ),
    (
        "team_changed",
        &["skip"],
        "an imported token's team changed in the old system (a token's team cannot change)",
    ),
    (
        "unknown_team_role",
        &["drop"],
        "a user has a role in a team that is not imported",
    ),
    (
        "invalid_user",
        &["skip"],
        "a user's email or role is not valid",
    ),
];

/// One problem found in the old data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub class: &'static str,
    /// `routes/<id>`, `tokens/<id>`, `kv/token:<hash>`, `teams/<id>`, `users/<id>`.
    pub old_row: String,
    pub rule: String,
    /// The action given for the class, if any.
    pub resolution: Option<String>,
}

/// `--resolve CLASS=ACTION` pairs, checked against [`CLASSES`].
#[derive(Debug, Clone, Default)]
pub struct Resolutions(BTreeMap<String, String>);

impl Resolutions {
    /// Parses `CLASS=ACTION` items; an unknown class or action is an error naming it.
    pub fn parse(items: &[String]) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for item in items {
            let (class, action) = item
                .split_once('=')
                .ok_or_else(|| format!("--resolve {item}: expected CLASS=ACTION"))?;
            let Some((_, actions, _)) = CLASSES.iter().find(|(c, _, _)| *c == class) else {
                let all: Vec<&str> = CLASSES.iter().map(|(c, _, _)| *c).collect();
                return Err(format!(
                    "--resolve {item}: unknown class \"{class}\" (one of: {})",
                    all.join(", ")
                ));
            };
            let ok = actions.iter().any(|a| match a.strip_suffix("<slug>") {
                Some(prefix) => action.strip_prefix(prefix).is_some_and(|t| !t.is_empty()),
                None => *a == action,
            });
            if !ok {
                return Err(format!(
                    "--resolve {item}: \"{action}\" is not an action of {class} (one of: {})",
                    actions.join(", ")
                ));
            }
            out.insert(class.to_owned(), action.to_owned());
        }
        Ok(Self(out))
    }

    fn get(&self, class: &str) -> Option<&str> {
        self.0.get(class).map(String::as_str)
    }
}

/// How to map.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: String,
    pub run_id: String,
    pub now: Millis,
    /// The team that owns imported routes.
    pub route_team: TeamId,
    pub legacy_prefix: String,
    pub invitation_hours: u32,
    pub resolutions: Resolutions,
}

/// What this installation already holds that the plan depends on.
#[derive(Debug, Clone, Default)]
pub struct Existing {
    pub map: Vec<MapRow>,
    pub team_ids: BTreeSet<String>,
    /// Routes not created by an import: `(name, path)`.
    pub foreign_routes: Vec<(String, String)>,
    /// Imported tokens: id -> (team, revoked here). A revoked one is never brought back.
    pub imported_tokens: HashMap<String, (String, bool)>,
    /// Emails that already have an account or a pending invitation.
    pub emails: BTreeSet<String>,
}

/// Counts per entity kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub create: u64,
    pub update: u64,
    pub delete: u64,
    pub unchanged: u64,
    pub skipped: u64,
}

/// The plan of one run.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub batch: ImportBatch,
    pub counts: BTreeMap<&'static str, Counts>,
    pub problems: Vec<Problem>,
    /// Things worth knowing that need no decision.
    pub notes: Vec<String>,
    /// `(email, invitation code, system admin)` for the invitations this run creates.
    pub invitation_codes: Vec<(String, SecretString, bool)>,
    /// Usage log rows this run rolls up (read while the apply runs).
    pub usage_rows: u64,
    /// How those rows name tokens and routes; `Some` when there are rows to import.
    pub usage: Option<UsageMap>,
}

/// How old usage rows name Keygate's tokens and routes: by token hash and by route path.
/// Rows of unknown tokens or routes keep an empty token id or route, as the gateways record
/// unknown ones.
#[derive(Debug, Clone, Default)]
pub struct UsageMap {
    /// Token hash -> (token id, team id).
    tokens: HashMap<String, (String, String)>,
    /// Normalised old path -> route name.
    routes: BTreeMap<String, String>,
}

impl UsageMap {
    /// `buckets` as Keygate rollups.
    pub fn rollups(&self, buckets: UsageBuckets) -> Vec<(RollupKey, RollupValue)> {
        let mut merged: BTreeMap<RollupKey, RollupValue> = BTreeMap::new();
        for ((minute, hash, path, status), v) in buckets {
            let (token_id, team_id) = self.tokens.get(&hash).cloned().unwrap_or_default();
            let route = self
                .routes
                .get(&normalise_path(&path))
                .cloned()
                .unwrap_or_default();
            merged
                .entry(RollupKey {
                    minute,
                    token_id,
                    team_id,
                    route,
                    status,
                    error: String::new(),
                })
                .or_default()
                .merge(&v);
        }
        merged.into_iter().collect()
    }
}

impl Plan {
    /// Problems no `--resolve` covers.
    pub fn unresolved(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.resolution.is_none())
            .count()
    }

    /// Whether applying would write anything.
    pub fn has_changes(&self) -> bool {
        let b = &self.batch;
        !(b.teams.is_empty()
            && b.routes.is_empty()
            && b.tokens.is_empty()
            && b.invitations.is_empty()
            && self.usage_rows == 0
            && b.history.is_empty()
            && b.map.is_empty()
            && b.unmap.is_empty())
    }

    fn count(&mut self, kind: &'static str) -> &mut Counts {
        self.counts.entry(kind).or_default()
    }

    /// Records a problem and returns the action its class was resolved with.
    fn problem(
        &mut self,
        opts: &Options,
        class: &'static str,
        old_row: String,
        rule: String,
    ) -> Option<String> {
        let resolution = opts.resolutions.get(class).map(str::to_owned);
        self.problems.push(Problem {
            class,
            old_row,
            rule,
            resolution: resolution.clone(),
        });
        resolution
    }
}

/// Lowercase hex SHA-256 of `v`'s JSON text (serde_json orders object keys).
fn fingerprint(v: &Value) -> String {
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

fn first_rule(e: &keygate_contracts::FieldErrors) -> String {
    e.iter()
        .map(|f| format!("{}: {}", f.field, f.rule))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A route name from free text: lowercase, runs of other characters become one '-'.
fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out = out.trim_end_matches('-').to_owned();
    out.truncate(63);
    out.trim_end_matches('-').to_owned()
}

fn map_of<'a>(existing: &'a Existing, kind: &str) -> BTreeMap<&'a str, &'a MapRow> {
    existing
        .map
        .iter()
        .filter(|m| m.kind == kind)
        .map(|m| (m.old_id.as_str(), m))
        .collect()
}

/// A route ready to write.
struct MappedRoute {
    old_id: i32,
    input: CreateRouteInput,
    /// Secret value by slot (for comparing with the stored one).
    secret: Option<(String, SecretString)>,
    fingerprint: String,
}

/// The old auth config's secret names, by kind.
fn secret_refs(r: &OldRoute) -> Vec<String> {
    let c = &r.auth_config;
    let s = |k: &str| c[k].as_str().map(str::to_owned);
    match r.auth_type.as_str() {
        "bearer" => s("token_ref").into_iter().collect(),
        "api-key" | "api_key" => s("key_ref").into_iter().collect(),
        "basic" => [s("username_ref"), s("password_ref")]
            .into_iter()
            .flatten()
            .collect(),
        _ => Vec::new(),
    }
}

/// Every secret name the old routes refer to (what to read from KV).
pub fn secret_names(routes: &[OldRoute]) -> BTreeSet<String> {
    routes.iter().flat_map(secret_refs).collect()
}

fn normalise_path(p: &str) -> String {
    let t = p.trim();
    if t.len() > 1 {
        t.trim_end_matches('/').to_owned()
    } else {
        t.to_owned()
    }
}

/// Maps the old installation against `existing`.
#[allow(clippy::too_many_lines)]
pub fn plan(old: &OldSystem, existing: &Existing, key: &MasterKey, opts: &Options) -> Plan {
    let mut plan = Plan {
        usage_rows: old.usage.rows,
        ..Plan::default()
    };
    let mut b = ImportBatch {
        source: opts.source.clone(),
        run_id: opts.run_id.clone(),
        started_at: opts.now,
        ..ImportBatch::default()
    };

    // ---------------------------------------------------------------- teams
    let team_map = map_of(existing, "team");
    let mut teams: BTreeSet<String> = existing.team_ids.clone();
    for t in &old.teams {
        let req = pb::CreateTeamRequest {
            id: t.id.clone(),
            name: t.name.clone(),
            description: t.description.clone(),
            color: if t.color.is_empty() {
                "#3b82f6".into()
            } else {
                t.color.clone()
            },
            icon: t.icon.clone(),
        };
        let new = match NewTeam::try_from(req) {
            Ok(n) => n,
            Err(e) => {
                plan.problem(
                    opts,
                    "invalid_team",
                    format!("teams/{}", t.id),
                    first_rule(&e),
                );
                plan.count("teams").skipped += 1;
                continue;
            }
        };
        let fp = fingerprint(&json!({
            "name": new.name, "description": new.description, "color": new.color, "icon": new.icon
        }));
        match team_map.get(t.id.as_str()) {
            Some(m) if m.fingerprint == fp => plan.count("teams").unchanged += 1,
            Some(m) => {
                b.teams.push(TeamOp::Update(
                    TeamId(m.new_id.clone()),
                    TeamPatch {
                        name: Some(new.name.clone()),
                        description: Some(new.description.clone()),
                        color: Some(new.color.clone()),
                        icon: Some(new.icon.clone()),
                    },
                ));
                plan.count("teams").update += 1;
            }
            None if existing.team_ids.contains(&t.id) => {
                plan.notes.push(format!(
                    "teams/{}: a team \"{}\" already exists here; the import uses it as it is",
                    t.id, t.id
                ));
                plan.count("teams").unchanged += 1;
            }
            None => {
                b.teams.push(TeamOp::Create(new));
                plan.count("teams").create += 1;
            }
        }
        teams.insert(t.id.clone());
        b.map.push(MapRow {
            kind: "team".into(),
            old_id: t.id.clone(),
            new_id: t.id.clone(),
            fingerprint: fp,
            secret: String::new(),
        });
    }

    // ---------------------------------------------------------------- routes
    let route_map = map_of(existing, "route");
    let kv = old.kv.as_ref();
    let mut mapped: Vec<MappedRoute> = Vec::new();
    let mut names: BTreeMap<String, i32> = BTreeMap::new();
    let mut paths: BTreeMap<String, i32> = BTreeMap::new();
    // Old path (normalised) -> new route name, for scopes by path and usage rows.
    let mut by_path: BTreeMap<String, String> = BTreeMap::new();
    let mut by_old_name: BTreeMap<String, String> = BTreeMap::new();
    'routes: for r in &old.routes {
        let row = format!("routes/{}", r.id);
        let path = normalise_path(&r.path);
        if path != r.path {
            plan.notes.push(format!(
                "{row}: path \"{}\" imported as \"{path}\" (no trailing '/')",
                r.path
            ));
        }
        // Name.
        let mut name = r.name.clone().unwrap_or_default().trim().to_owned();
        if let Err(e) = names::validate_route_name("name", &name) {
            let rule = if name.is_empty() {
                "name: is required".to_owned()
            } else {
                format!("name \"{name}\": {}", e.rule)
            };
            match plan
                .problem(opts, "invalid_route_name", row.clone(), rule)
                .as_deref()
            {
                Some("rename") => {
                    let base = if name.is_empty() { &path } else { &name };
                    name = slugify(base);
                    if name.is_empty() {
                        name = format!("route-{}", r.id);
                    }
                }
                _ => {
                    plan.count("routes").skipped += 1;
                    continue;
                }
            }
        }
        if let Some(first) = names.get(&name) {
            let rule = format!("name \"{name}\" is also the name of routes/{first}");
            match plan
                .problem(opts, "duplicate_name", row.clone(), rule)
                .as_deref()
            {
                Some("rename") => name = format!("{name}-{}", r.id),
                _ => {
                    plan.count("routes").skipped += 1;
                    continue;
                }
            }
        }
        if let Some(first) = paths.get(&path) {
            let rule = format!("path \"{path}\" is also the path of routes/{first}");
            plan.problem(opts, "duplicate_path", row.clone(), rule);
            plan.count("routes").skipped += 1;
            continue;
        }
        // Backend URL.
        let url = r.backend_url.trim();
        if let Err(e) = rules::validate_backend_url("backend_url", url) {
            let rule = format!("backend_url \"{}\": {}", r.backend_url, e.rule);
            plan.problem(opts, "invalid_backend_url", row.clone(), rule);
            plan.count("routes").skipped += 1;
            continue;
        }
        // Backend auth and its secrets.
        let mut auth_type = r.auth_type.trim().to_ascii_lowercase();
        if auth_type.is_empty() {
            auth_type = "none".into();
        }
        if !matches!(
            auth_type.as_str(),
            "none" | "bearer" | "api-key" | "api_key" | "basic"
        ) {
            let rule = format!(
                "backend_auth_type \"{}\" is not none, bearer, api-key or basic",
                r.auth_type
            );
            match plan
                .problem(opts, "unknown_auth_type", row.clone(), rule)
                .as_deref()
            {
                Some("none") => auth_type = "none".into(),
                _ => {
                    plan.count("routes").skipped += 1;
                    continue;
                }
            }
        }
        let mut values: BTreeMap<String, SecretString> = BTreeMap::new();
        if auth_type != "none" {
            let refs = secret_refs(r);
            let mut missing: Vec<String> = Vec::new();
            if refs.is_empty() {
                missing.push("(no secret name in backend_auth_config)".into());
            }
            for name in &refs {
                match kv.and_then(|k| k.secrets.get(name)) {
                    Some(v) => {
                        values.insert(name.clone(), v.clone());
                    }
                    None => missing.push(format!("secret:{name}")),
                }
            }
            if !missing.is_empty() {
                let rule = if kv.is_none() {
                    format!(
                        "{auth_type} auth needs {} from the old KV namespace, which was not given (--old-kv-*)",
                        missing.join(", ")
                    )
                } else {
                    format!(
                        "{auth_type} auth names {}, not in the old KV namespace",
                        missing.join(", ")
                    )
                };
                match plan
                    .problem(opts, "missing_secret", row.clone(), rule)
                    .as_deref()
                {
                    Some("none") => auth_type = "none".into(),
                    _ => {
                        plan.count("routes").skipped += 1;
                        continue;
                    }
                }
            }
        }
        let c = &r.auth_config;
        let value = |k: &str| {
            c[k].as_str()
                .and_then(|n| values.get(n))
                .map(|v| v.expose().to_owned())
                .unwrap_or_default()
        };
        use pb::backend_auth::Kind;
        let kind = match auth_type.as_str() {
            "bearer" => Kind::Bearer(pb::BearerAuth {
                token: value("token_ref"),
            }),
            "api-key" | "api_key" => Kind::ApiKey(pb::ApiKeyAuth {
                header_name: c["header_name"]
                    .as_str()
                    .filter(|h| !h.is_empty())
                    .unwrap_or("X-API-Key")
                    .to_owned(),
                value: value("key_ref"),
            }),
            "basic" => Kind::Basic(pb::BasicAuth {
                username: value("username_ref"),
                password: value("password_ref"),
            }),
            _ => Kind::None(pb::NoBackendAuth {}),
        };
        let req = pb::CreateRouteRequest {
            team_id: opts.route_team.0.clone(),
            name: name.clone(),
            path_prefix: path.clone(),
            backend_url: url.to_owned(),
            description: r.description.clone(),
            tags: r
                .tags
                .iter()
                .map(|t| t.trim().to_ascii_lowercase())
                .collect(),
            backend_auth: Some(pb::BackendAuth { kind: Some(kind) }),
            // The old gateway sent the path after the prefix to the backend.
            strip_prefix: true,
            ..Default::default()
        };
        let input = match CreateRouteInput::try_from(req) {
            Ok(i) => i,
            Err(e) => {
                plan.problem(opts, "invalid_route", row.clone(), first_rule(&e));
                plan.count("routes").skipped += 1;
                continue;
            }
        };
        for (fname, fpath) in &existing.foreign_routes {
            if *fname == input.name || *fpath == input.path_prefix {
                let rule = format!(
                    "name \"{}\" or path \"{}\" is already used here by route \"{fname}\" ({fpath})",
                    input.name, input.path_prefix
                );
                plan.problem(opts, "conflicts_existing", row.clone(), rule);
                plan.count("routes").skipped += 1;
                continue 'routes;
            }
        }
        let secret = input
            .auth
            .kind
            .secret_slot()
            .map(|slot| (slot.to_owned(), input.auth.secret.clone()));
        let fp = fingerprint(&json!({
            "name": input.name, "path": input.path_prefix, "backend": input.backend_url,
            "description": input.description, "tags": input.tags, "team": input.team_id.0,
            "auth": input.auth.kind.as_str(), "header": input.auth.header_name,
            "username": input.auth.username, "strip": input.strip_prefix,
        }));
        names.insert(name.clone(), r.id);
        paths.insert(path.clone(), r.id);
        by_path.insert(path.clone(), name.clone());
        if let Some(n) = &r.name {
            by_old_name
                .entry(n.trim().to_owned())
                .or_insert(name.clone());
        }
        mapped.push(MappedRoute {
            old_id: r.id,
            input,
            secret,
            fingerprint: fp,
        });
    }
    // Raw-prefix conflicts: the old gateway matched by string prefix, Keygate by segment.
    let kept: Vec<(i32, String)> = mapped
        .iter()
        .map(|m| (m.old_id, m.input.path_prefix.clone()))
        .collect();
    let mut dropped: BTreeSet<i32> = BTreeSet::new();
    for (id, p) in &kept {
        for (other, q) in &kept {
            if id != other
                && p.starts_with(q.as_str())
                && !p[q.len()..].starts_with('/')
                && q != "/"
            {
                let rule = format!(
                    "path \"{p}\" begins with the path \"{q}\" of routes/{other} without a segment boundary: \
                     the old gateway matched raw prefixes, so paths like \"{q}x\" went to routes/{other}; \
                     Keygate matches whole segments (\"{q}\" and \"{q}/...\" only)"
                );
                if plan
                    .problem(opts, "path_conflict", format!("routes/{id}"), rule)
                    .as_deref()
                    != Some("accept")
                {
                    dropped.insert(*id);
                }
            }
        }
    }
    if !dropped.is_empty() {
        mapped.retain(|m| {
            let keep = !dropped.contains(&m.old_id);
            if !keep {
                by_path.retain(|_, n| *n != m.input.name);
                by_old_name.retain(|_, n| *n != m.input.name);
            }
            keep
        });
        plan.count("routes").skipped += dropped.len() as u64;
    }
    let mut imported_routes: BTreeMap<String, Vec<String>> = BTreeMap::new(); // name -> tags
    for m in mapped {
        imported_routes.insert(m.input.name.clone(), m.input.tags.clone());
        let old_id = m.old_id.to_string();
        match route_map.get(old_id.as_str()) {
            Some(row) => {
                let id = RouteId(row.new_id.clone());
                // Written again only when the old KV's value differs from what the last run
                // wrote: a secret rotated here since is kept unless the old one changed too.
                let last = |slot: &str| {
                    (!row.secret.is_empty())
                        .then(|| key.open(&format!("{id}/{slot}"), &row.secret).ok())
                        .flatten()
                };
                let secret_same = match &m.secret {
                    None => true,
                    Some((slot, v)) => last(slot).is_some_and(|l| l.expose() == v.expose()),
                };
                let mut secret = row.secret.clone();
                if row.fingerprint == m.fingerprint && secret_same {
                    plan.count("routes").unchanged += 1;
                } else {
                    let input = m.input;
                    let mut auth = input.auth.seal(key, &id);
                    if secret_same {
                        auth.secret = None;
                    } else {
                        secret = auth
                            .secret
                            .as_ref()
                            .map(|s| s.sealed.clone())
                            .unwrap_or_default();
                    }
                    b.routes.push(RouteOp::Update(
                        id.clone(),
                        RoutePatch {
                            name: Some(input.name),
                            path_prefix: Some(input.path_prefix),
                            backend_url: Some(input.backend_url),
                            description: Some(input.description),
                            tags: Some(input.tags),
                            strip_prefix: Some(input.strip_prefix),
                            auth: Some(auth),
                            ..RoutePatch::default()
                        },
                    ));
                    plan.count("routes").update += 1;
                }
                b.map.push(MapRow {
                    kind: "route".into(),
                    old_id,
                    new_id: id.0,
                    fingerprint: m.fingerprint,
                    secret,
                });
            }
            None => {
                let id = RouteId::generate();
                let route = m.input.into_new_route(id.clone(), key);
                b.map.push(MapRow {
                    kind: "route".into(),
                    old_id,
                    new_id: id.0,
                    fingerprint: m.fingerprint,
                    secret: route
                        .auth
                        .secret
                        .as_ref()
                        .map(|s| s.sealed.clone())
                        .unwrap_or_default(),
                });
                b.routes.push(RouteOp::Create(route));
                plan.count("routes").create += 1;
            }
        }
    }
    let old_route_ids: BTreeSet<String> = old.routes.iter().map(|r| r.id.to_string()).collect();
    for (old_id, row) in &route_map {
        if !old_route_ids.contains(*old_id) {
            b.routes.push(RouteOp::Delete(RouteId(row.new_id.clone())));
            b.unmap.push(("route".into(), (*old_id).to_owned()));
            plan.count("routes").delete += 1;
        }
    }

    // ---------------------------------------------------------------- tokens
    let token_map = map_of(existing, "token");
    let mut hash_to_token: HashMap<String, (String, String)> = HashMap::new(); // hash -> (id, team)
    let kv_only = kv.map(|k| k.kv_only.as_slice()).unwrap_or_default();
    let mut seen_hashes: BTreeSet<&str> = BTreeSet::new();
    if let Some(k) = kv {
        let not_in_kv = old
            .tokens
            .iter()
            .filter(|t| !k.token_hashes.contains(&t.hash))
            .count();
        if not_in_kv > 0 {
            plan.notes.push(format!(
                "{not_in_kv} token(s) of the database are not in the old KV namespace (the old gateway refused them); they are imported from the database"
            ));
        }
    }
    let all_tokens = old
        .tokens
        .iter()
        .map(|t| (t, false))
        .chain(kv_only.iter().map(|t| (t, true)));
    'tokens: for (t, only_kv) in all_tokens {
        let row = t.reference();
        if !seen_hashes.insert(t.hash.as_str()) {
            continue;
        }
        if only_kv {
            let rule = format!(
                "token \"{}\" is in the old KV namespace but has no database row (revoked tokens are deleted from the database; importing it may bring one back)",
                t.name
            );
            if plan
                .problem(opts, "kv_only_token", row.clone(), rule)
                .as_deref()
                != Some("import")
            {
                plan.count("tokens").skipped += 1;
                continue;
            }
        }
        if t.hash.len() != 64 || !t.hash.bytes().all(|c| c.is_ascii_hexdigit()) {
            plan.problem(
                opts,
                "invalid_token",
                row.clone(),
                "token_hash: must be 64 hex digits (SHA-256)".into(),
            );
            plan.count("tokens").skipped += 1;
            continue;
        }
        // Team.
        let mut team = t.team_id.clone().unwrap_or_default();
        if !teams.contains(&team) {
            let rule = if team.is_empty() {
                "team_id: the token has no team".to_owned()
            } else {
                format!("team_id \"{team}\": no such team (deleted)")
            };
            match plan
                .problem(opts, "orphan_token", row.clone(), rule)
                .as_deref()
            {
                Some(a) if a.starts_with("team:") => {
                    team = a["team:".len()..].to_owned();
                    if !teams.contains(&team) {
                        plan.problem(
                            opts,
                            "invalid_token",
                            row.clone(),
                            format!("--resolve orphan_token=team:{team}: no such team"),
                        );
                        plan.count("tokens").skipped += 1;
                        continue;
                    }
                }
                _ => {
                    plan.count("tokens").skipped += 1;
                    continue;
                }
            }
        }
        // Scopes.
        let mut scopes: Vec<String> = Vec::new();
        for s in &t.scopes {
            let s = s.trim();
            if s == "*" {
                scopes.push("*".into());
                continue;
            }
            if let Some(tag) = s.strip_prefix("tag:") {
                let tag = tag.trim().to_ascii_lowercase();
                if imported_routes.values().any(|tags| tags.contains(&tag))
                    || names::validate_tag("scope", &tag).is_ok()
                {
                    scopes.push(format!("tag:{tag}"));
                    continue;
                }
            }
            let by_name = imported_routes
                .contains_key(s)
                .then(|| s.to_owned())
                .or_else(|| by_old_name.get(s).cloned());
            let by_path_match = by_path.get(&normalise_path(s)).cloned();
            // The old grammar's "service name": the second segment of a route's path.
            let by_service: Vec<String> = if by_name.is_none() && by_path_match.is_none() {
                by_path
                    .iter()
                    .filter(|(p, _)| p.split('/').nth(2) == Some(s))
                    .map(|(_, n)| n.clone())
                    .collect()
            } else {
                Vec::new()
            };
            if let Some(n) = by_name.or(by_path_match) {
                scopes.push(n);
            } else if !by_service.is_empty() {
                scopes.extend(by_service);
            } else {
                let rule = format!("scope \"{s}\" names no imported route (deleted, or skipped)");
                match plan
                    .problem(opts, "deleted_route_scope", row.clone(), rule)
                    .as_deref()
                {
                    Some("drop") => {}
                    _ => {
                        plan.count("tokens").skipped += 1;
                        continue 'tokens;
                    }
                }
            }
        }
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            plan.notes
                .push(format!("{row}: no scope left after dropping; not imported"));
            plan.count("tokens").skipped += 1;
            continue;
        }
        let parsed: Vec<Scope> = match parse_scopes("scopes", &scopes) {
            Ok(p) => p,
            Err(e) => {
                plan.problem(opts, "invalid_token", row.clone(), first_rule(&e));
                plan.count("tokens").skipped += 1;
                continue;
            }
        };
        let name = t.name.trim().to_owned();
        let mut errs = Vec::new();
        if let Err(e) = names::validate_text("name", &name, 100, true, false) {
            errs.push(format!("name: {}", e.rule));
        }
        if let Err(e) = names::validate_text("description", &t.description, 1000, false, true) {
            errs.push(format!("description: {}", e.rule));
        }
        if !errs.is_empty() {
            plan.problem(opts, "invalid_token", row.clone(), errs.join("; "));
            plan.count("tokens").skipped += 1;
            continue;
        }
        let hash = t.hash.to_ascii_lowercase();
        let fp = fingerprint(&json!({
            "name": name, "description": t.description, "scopes": scopes,
            "expires_at": t.expires_at, "team": team,
        }));
        match token_map.get(hash.as_str()) {
            Some(m) => {
                hash_to_token.insert(hash.clone(), (m.new_id.clone(), team.clone()));
                let (stored_team, revoked) = existing
                    .imported_tokens
                    .get(&m.new_id)
                    .cloned()
                    .unwrap_or_else(|| (team.clone(), false));
                if stored_team != team {
                    let rule = format!(
                        "team_id changed from \"{stored_team}\" to \"{team}\"; the imported token {} keeps \"{stored_team}\"",
                        m.new_id
                    );
                    plan.problem(opts, "team_changed", row.clone(), rule);
                    plan.count("tokens").skipped += 1;
                    hash_to_token.insert(hash.clone(), (m.new_id.clone(), stored_team));
                    b.map.push(MapRow {
                        kind: "token".into(),
                        old_id: hash,
                        new_id: m.new_id.clone(),
                        fingerprint: m.fingerprint.clone(),
                        secret: String::new(),
                    });
                    continue;
                }
                if revoked {
                    plan.notes.push(format!(
                        "{row}: its Keygate token {} was revoked here; it stays revoked",
                        m.new_id
                    ));
                    plan.count("tokens").unchanged += 1;
                } else if m.fingerprint == fp {
                    plan.count("tokens").unchanged += 1;
                } else {
                    b.tokens.push(TokenOp::Update(
                        TokenId(m.new_id.clone()),
                        TokenPatch {
                            name: Some(name),
                            description: Some(t.description.clone()),
                            scopes: Some(parsed),
                            expires_at: Some(t.expires_at),
                            rate_limit_per_minute: None,
                        },
                    ));
                    plan.count("tokens").update += 1;
                }
                b.map.push(MapRow {
                    kind: "token".into(),
                    old_id: hash,
                    new_id: m.new_id.clone(),
                    fingerprint: fp,
                    secret: String::new(),
                });
            }
            None => {
                let id = TokenId::generate();
                hash_to_token.insert(hash.clone(), (id.0.clone(), team.clone()));
                b.map.push(MapRow {
                    kind: "token".into(),
                    old_id: hash.clone(),
                    new_id: id.0.clone(),
                    fingerprint: fp,
                    secret: String::new(),
                });
                b.tokens.push(TokenOp::Create {
                    record: NewTokenRecord {
                        id,
                        team_id: TeamId(team),
                        name,
                        description: t.description.clone(),
                        scopes: parsed,
                        token_hash: hash,
                        preview: format!("{}_…", opts.legacy_prefix),
                        expires_at: t.expires_at,
                        rate_limit_per_minute: 0,
                    },
                    created_at: if t.created_at > 0 {
                        t.created_at
                    } else {
                        opts.now
                    },
                    last_used_at: t.last_used,
                    legacy_prefix: opts.legacy_prefix.clone(),
                });
                plan.count("tokens").create += 1;
            }
        }
    }
    // A mapped token this run did not map again is gone from the old system (deleted from
    // its database; one left only in KV and not imported counts as deleted too).
    let present: BTreeSet<String> = b
        .map
        .iter()
        .filter(|m| m.kind == "token")
        .map(|m| m.old_id.clone())
        .collect();
    for (hash, row) in &token_map {
        if !present.contains(*hash) {
            if !existing
                .imported_tokens
                .get(&row.new_id)
                .is_some_and(|(_, revoked)| *revoked)
            {
                b.tokens.push(TokenOp::Revoke(TokenId(row.new_id.clone())));
                plan.count("tokens").delete += 1;
            }
            b.unmap.push(("token".into(), (*hash).to_owned()));
        }
    }

    // ---------------------------------------------------------------- users
    let user_map = map_of(existing, "user");
    for u in &old.users {
        plan_user(&mut plan, &mut b, opts, existing, &user_map, &teams, u);
    }

    // ---------------------------------------------------------------- usage
    if old.usage.rows > 0 {
        plan.count("usage log rows").create += old.usage.rows;
        plan.usage = Some(UsageMap {
            tokens: hash_to_token,
            routes: by_path,
        });
    }
    if old.usage.rows > 0 || old.usage.max_id > 0 {
        b.map.push(MapRow {
            kind: "cursor".into(),
            old_id: "token_usage_logs".into(),
            new_id: old.usage.max_id.to_string(),
            fingerprint: String::new(),
            secret: String::new(),
        });
    }

    // ---------------------------------------------------------------- audit history
    if let Some(last) = old.audit.last() {
        for a in &old.audit {
            b.history.push(HistoryEntry {
                entity_id: format!("audit_logs/{}", a.id),
                diff: json!({
                    "old_action": a.action,
                    "old_entity_type": a.entity_type,
                    "old_entity_id": a.entity_id,
                    "at": a.created_at,
                    "details": a.details,
                }),
            });
        }
        plan.count("audit history").create += old.audit.len() as u64;
        b.map.push(MapRow {
            kind: "cursor".into(),
            old_id: "audit_logs".into(),
            new_id: last.id.to_string(),
            fingerprint: String::new(),
            secret: String::new(),
        });
    }

    // Only mapping rows that are new or changed are written.
    let known: BTreeMap<(&str, &str), &MapRow> = existing
        .map
        .iter()
        .map(|m| ((m.kind.as_str(), m.old_id.as_str()), m))
        .collect();
    b.map
        .retain(|m| known.get(&(m.kind.as_str(), m.old_id.as_str())) != Some(&m));

    b.summary = json!({
        "source": opts.source,
        "run_id": opts.run_id,
        "counts": plan.counts,
        "problems": plan.problems.len(),
        "resolutions": opts.resolutions.0,
        "usage_rows": old.usage.rows,
        "timestamps": "the old system's naive timestamps were read as UTC",
    });
    plan.batch = b;
    plan
}

fn plan_user(
    plan: &mut Plan,
    b: &mut ImportBatch,
    opts: &Options,
    existing: &Existing,
    user_map: &BTreeMap<&str, &MapRow>,
    teams: &BTreeSet<String>,
    u: &OldUser,
) {
    let row = format!("users/{}", u.id);
    if user_map.contains_key(u.id.as_str()) {
        plan.count("users").unchanged += 1;
        return;
    }
    let email = u.email.trim().to_ascii_lowercase();
    if let Err(e) = crate::users::validate_email("email", &email) {
        plan.problem(
            opts,
            "invalid_user",
            row,
            format!("email \"{}\": {}", u.email, e.rule),
        );
        plan.count("users").skipped += 1;
        return;
    }
    if existing.emails.contains(&email) {
        plan.notes.push(format!(
            "{row}: {email} already has an account or a pending invitation here; left as it is"
        ));
        plan.count("users").skipped += 1;
        return;
    }
    let mut roles: Vec<(TeamId, Role)> = Vec::new();
    for (team, role) in &u.roles {
        let parsed = match role.as_str() {
            "ADMIN" => Role::Admin,
            "MANAGER" => Role::Manager,
            "DEVELOPER" => Role::Developer,
            "VIEWER" => Role::Viewer,
            other => {
                if plan
                    .problem(
                        opts,
                        "invalid_user",
                        row.clone(),
                        format!("role \"{other}\" in team \"{team}\" is not ADMIN, MANAGER, DEVELOPER or VIEWER"),
                    )
                    .is_none()
                {
                    plan.count("users").skipped += 1;
                    return;
                }
                continue;
            }
        };
        if !teams.contains(team) {
            let rule = format!("role {role} in team \"{team}\", which is not imported");
            if plan
                .problem(opts, "unknown_team_role", row.clone(), rule)
                .is_none()
            {
                plan.count("users").skipped += 1;
                return;
            }
            continue;
        }
        roles.push((TeamId(team.clone()), parsed));
    }
    roles.sort();
    if roles.is_empty() && !u.system_admin {
        plan.notes.push(format!(
            "{row}: {email} has no team role and is not a system admin; not invited"
        ));
        plan.count("users").skipped += 1;
        return;
    }
    let code = keygate_contracts::token::NewToken::generate(crate::sessions::INVITATION_PREFIX);
    let id = InvitationId::generate();
    b.invitations.push(NewInvitation {
        id: id.clone(),
        email: email.clone(),
        roles,
        code_hash: code.hash(),
        expires_at: opts.now + i64::from(opts.invitation_hours) * 3_600_000,
        system_admin: u.system_admin,
    });
    b.map.push(MapRow {
        kind: "user".into(),
        old_id: u.id.clone(),
        new_id: id.0,
        fingerprint: String::new(),
        secret: String::new(),
    });
    plan.invitation_codes
        .push((email, SecretString::new(code.expose()), u.system_admin));
    plan.count("users").create += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::old::{OldTeam, OldToken};

    fn opts(resolve: &[&str]) -> Options {
        Options {
            source: "old-system".into(),
            run_id: "imp_test".into(),
            now: 1_800_000_000_000,
            route_team: TeamId("core-team".into()),
            legacy_prefix: "ntk".into(),
            invitation_hours: 720,
            resolutions: Resolutions::parse(
                &resolve.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap(),
        }
    }

    fn team(id: &str) -> OldTeam {
        OldTeam {
            id: id.into(),
            name: id.into(),
            description: String::new(),
            color: "#8b5cf6".into(),
            icon: String::new(),
        }
    }

    fn route(id: i32, name: &str, path: &str) -> OldRoute {
        OldRoute {
            id,
            name: Some(name.into()),
            path: path.into(),
            backend_url: "http://127.0.0.1:9/x".into(),
            description: String::new(),
            tags: vec!["money".into()],
            auth_type: "none".into(),
            auth_config: Value::Null,
        }
    }

    fn token(id: i32, team: &str, scopes: &[&str]) -> OldToken {
        OldToken {
            id: Some(id),
            hash: format!("{id:064x}"),
            name: format!("t{id}"),
            team_id: Some(team.into()),
            description: String::new(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            created_at: 1_700_000_000_000,
            expires_at: None,
            last_used: None,
        }
    }

    fn key() -> MasterKey {
        MasterKey::from_bytes(&[1; 32])
    }

    #[test]
    fn resolutions_name_the_class_and_the_action() {
        assert!(Resolutions::parse(&["orphan_token=team:core".into()]).is_ok());
        let e = Resolutions::parse(&["orphan_token=team:".into()]).unwrap_err();
        assert!(e.contains("not an action of orphan_token"), "{e}");
        let e = Resolutions::parse(&["x".into()]).unwrap_err();
        assert!(e.contains("expected CLASS=ACTION"), "{e}");
    }

    #[test]
    fn scopes_by_name_path_and_service_translate_to_route_names() {
        let old = OldSystem {
            teams: vec![team("core-team")],
            routes: vec![
                route(1, "Billing API", "/api/billing/"),
                route(2, "files", "/api/files"),
                route(3, "files-admin", "/api/files-admin"),
            ],
            tokens: vec![
                token(1, "core-team", &["Billing API"]),
                token(2, "core-team", &["/api/files"]),
                token(3, "core-team", &["billing", "tag:money"]),
                token(4, "core-team", &["gone"]),
            ],
            ..OldSystem::default()
        };
        let p = plan(
            &old,
            &Existing::default(),
            &key(),
            &opts(&[
                "invalid_route_name=rename",
                "path_conflict=accept",
                "deleted_route_scope=skip",
            ]),
        );
        assert_eq!(p.unresolved(), 0, "{:?}", p.problems);
        let scopes: BTreeMap<String, Vec<String>> = p
            .batch
            .tokens
            .iter()
            .filter_map(|t| match t {
                TokenOp::Create { record, .. } => Some((
                    record.name.clone(),
                    record.scopes.iter().map(Scope::to_string).collect(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            scopes["t1"],
            ["billing-api"],
            "renamed route, by its old name"
        );
        assert_eq!(scopes["t2"], ["files"], "by path");
        // The old "service name": the path's second segment.
        assert_eq!(scopes["t3"], ["billing-api", "tag:money"]);
        assert!(!scopes.contains_key("t4"), "skipped: scope names no route");
        assert!(
            p.problems
                .iter()
                .any(|q| q.class == "path_conflict" && q.old_row == "routes/3")
        );
    }

    #[test]
    fn a_second_plan_over_its_own_map_changes_nothing_and_a_team_change_is_refused() {
        let mut old = OldSystem {
            teams: vec![team("core-team"), team("ops")],
            routes: vec![route(1, "billing", "/api/billing")],
            tokens: vec![token(1, "core-team", &["billing"])],
            ..OldSystem::default()
        };
        let first = plan(&old, &Existing::default(), &key(), &opts(&[]));
        assert_eq!(first.unresolved(), 0);
        let token_id = first
            .batch
            .map
            .iter()
            .find(|m| m.kind == "token")
            .unwrap()
            .new_id
            .clone();
        let existing = Existing {
            map: first.batch.map.clone(),
            team_ids: ["core-team", "ops"].map(String::from).into(),
            imported_tokens: [(token_id, ("core-team".to_owned(), false))].into(),
            ..Existing::default()
        };
        let again = plan(&old, &existing, &key(), &opts(&[]));
        assert!(!again.has_changes(), "{:?}", again.batch);
        old.tokens[0].team_id = Some("ops".into());
        let moved = plan(&old, &existing, &key(), &opts(&[]));
        assert_eq!(moved.problems.len(), 1);
        assert_eq!(moved.problems[0].class, "team_changed");
        assert!(moved.batch.tokens.is_empty());
    }
}
