//! The seeded data set: its shape (teams, routes, the token mix) and the bulk SQL that writes
//! it straight into a migrated database, bypassing the API (seeding 1M tokens through
//! CreateToken would take longer than the benchmark itself).
//!
//! The shape, for `n` tokens (token `i` in `0..n`, created oldest first over two years):
//! - [`TEAMS`] teams `team-0` .. `team-99`; token `i` belongs to `team-{i % 100}`;
//! - [`ROUTES`] routes `svc-100` .. `svc-119`, each tagged with one of [`TAGS`];
//! - status: 5 % revoked, 5 % expired, 10 % expiring within 30 days, 30 % never expiring,
//!   the rest expiring in 31 days to 2 years;
//! - scopes: 20 % `*`, 30 % one route, 20 % two routes, 20 % one `tag:`, 10 % a route and a
//!   tag, with matching `token_scopes` rows;
//! - names `<word>-<word>-<i>` (1 in 12 contains [`COMMON_WORD`]); descriptions name a
//!   pipeline and the team, and about 1 in 10,000 mentions [`RARE_WORD`];
//! - unique random `token_hash` values.
//!
//! Both dialects get the same rows (up to the random hashes): the SQL below differs only in
//! where row numbers come from and in two functions, see [`Dialect`].

mod postgres;
mod sqlite;

pub use postgres::seed_postgres;
pub use sqlite::seed_sqlite;

use std::time::Duration;

/// Number of teams tokens are spread over.
pub const TEAMS: u64 = 100;
/// Number of routes (named `svc-100` .. `svc-119`).
pub const ROUTES: u64 = 20;
/// Route tags; route `r` carries `TAGS[r % 8]`.
pub const TAGS: [&str; 8] = [
    "payments", "search", "internal", "public", "billing", "ml", "edge", "beta",
];
/// First word of token names; one name in twelve starts with [`COMMON_WORD`].
const NAME_WORDS: [&str; 12] = [
    "deploy", "backup", "sync", "ingest", "export", "monitor", "build", "release", "audit", "cron",
    "etl", "webhook",
];
/// Second word of token names.
const NAME_SUFFIXES: [&str; 10] = [
    "bot", "job", "runner", "agent", "worker", "task", "client", "service", "probe", "hook",
];
/// Words in descriptions.
const PIPELINES: [&str; 8] = [
    "checkout",
    "reporting",
    "analytics",
    "mobile",
    "partner",
    "storefront",
    "ledger",
    "notifications",
];
/// A word in about 1 token name in 12: a text search that matches many rows.
pub const COMMON_WORD: &str = "deploy";
/// A word in about 1 description in 10,000: a text search that matches few rows.
pub const RARE_WORD: &str = "zephyr";
/// `i % RARE_MODULUS == 17` puts [`RARE_WORD`] in token `i`'s description.
const RARE_MODULUS: u64 = 9973;

pub const DAY_MS: i64 = 86_400_000;
/// Tokens are created over this span, ending one day before seeding.
const SPAN_MS: i64 = 730 * DAY_MS;

/// A team id for token or request number `i`.
pub fn team_id(i: u64) -> String {
    format!("team-{}", i % TEAMS)
}

/// A route name for route number `r` (`0..ROUTES`).
pub fn route_name(r: u64) -> String {
    format!("svc-{}", 100 + r % ROUTES)
}

/// A tag for number `i`.
pub fn tag(i: u64) -> &'static str {
    TAGS[(i % TAGS.len() as u64) as usize]
}

/// What a seeding step reports while it runs.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub elapsed: Duration,
}

/// Timings of one seeding.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SeedTimings {
    /// Inserting teams, routes, tokens and token scopes.
    pub insert_secs: f64,
    /// `VACUUM ANALYZE` (PostgreSQL) or the WAL checkpoint (SQLite).
    pub finish_secs: f64,
}

/// The few places the two dialects differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `expr` (an integer) as lowercase hex, zero padded to `width` digits.
    fn hex(self, expr: &str, width: usize) -> String {
        match self {
            Self::Sqlite => format!("printf('%0{width}x', {expr})"),
            Self::Postgres => format!("lpad(to_hex({expr}), {width}, '0')"),
        }
    }

    /// 64 random lowercase hex digits.
    fn random_hex64(self) -> &'static str {
        match self {
            Self::Sqlite => "lower(hex(randomblob(32)))",
            Self::Postgres => {
                "replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')"
            }
        }
    }
}

/// `CASE <index> WHEN 0 THEN 'a' ... END`: portable list lookup.
fn pick(words: &[&str], index: &str) -> String {
    let mut s = format!("CASE {index}");
    for (k, w) in words.iter().enumerate() {
        s.push_str(&format!(" WHEN {k} THEN '{w}'"));
    }
    s.push_str(" END");
    s
}

/// Statements that insert the teams, the routes and their tags (all small).
pub(crate) fn fixed_rows(now: i64) -> Vec<String> {
    let mut out = Vec::new();
    let teams: Vec<String> = (0..TEAMS)
        .map(|t| {
            format!(
                "('{}', 'Team {t}', 'seeded by keygate-bench', '', '', {now}, {now}, 'key:mk_bench')",
                team_id(t)
            )
        })
        .collect();
    out.push(format!(
        "INSERT INTO teams (id, name, description, color, icon, created_at, updated_at, created_by) VALUES {}",
        teams.join(", ")
    ));
    let routes: Vec<String> = (0..ROUTES)
        .map(|r| {
            let name = route_name(r);
            format!(
                "('rte_{r:032x}', '{team}', '{name}', '/{name}', 'http://127.0.0.1:9/{name}', '', \
                 '[\"{tag}\"]', '[]', TRUE, 30000, 'none', '', '', {now}, {now}, 'key:mk_bench')",
                team = team_id(r * 5),
                tag = tag(r),
            )
        })
        .collect();
    out.push(format!(
        "INSERT INTO routes (id, team_id, name, path_prefix, backend_url, description, tags, methods, \
         strip_prefix, timeout_ms, auth_type, auth_header_name, auth_username, created_at, updated_at, \
         created_by) VALUES {}",
        routes.join(", ")
    ));
    let tags: Vec<String> = (0..ROUTES)
        .map(|r| format!("('rte_{r:032x}', '{}')", tag(r)))
        .collect();
    out.push(format!(
        "INSERT INTO route_tags (route_id, tag) VALUES {}",
        tags.join(", ")
    ));
    out
}

/// The column list and SELECT expressions for tokens, over an integer column `i` in
/// `0..total`; `now` is the seeding time in epoch milliseconds.
pub(crate) fn token_select(d: Dialect, total: u64, now: i64) -> (String, String) {
    let step = (SPAN_MS / total.max(1) as i64).max(1);
    let base = now - DAY_MS - SPAN_MS;
    let created = format!("({base} + i * {step})");
    let k = "(i % 20)";
    let expires = format!(
        "CASE \
           WHEN {k} = 3 THEN CASE WHEN {created} + {DAY_MS} < {now} THEN {created} + {DAY_MS} ELSE {now} - 60000 END \
           WHEN {k} IN (5, 15) THEN {now} + 60000 + (i * 7919) % {window} \
           WHEN {k} IN (0, 1, 2, 4, 6, 8) THEN NULL \
           ELSE {now} + {d31} + (i * 104729) % {d700} \
         END",
        window = 30 * DAY_MS - 120_000,
        d31 = 31 * DAY_MS,
        d700 = 700 * DAY_MS,
    );
    let revoked = format!("CASE WHEN {k} = 7 THEN {created} + 3600000 ELSE NULL END");
    let updated = format!("CASE WHEN {k} = 7 THEN {created} + 3600000 ELSE {created} END");
    // Scopes, sorted the way the API stores them: `*`, then route names, then tags.
    let one_route = "'\"svc-' || (100 + (i / 7) % 20) || '\"'";
    let route_a = "'\"svc-' || (100 + (i / 7) % 10) || '\"'";
    let route_b = "'\"svc-' || (110 + (i / 11) % 10) || '\"'";
    let tag_scope = format!("'\"tag:' || {} || '\"'", pick(&TAGS, "((i / 13) % 8)"));
    let s = "((i / 20) % 10)";
    let scopes = format!(
        "CASE \
           WHEN {s} IN (0, 1) THEN '[\"*\"]' \
           WHEN {s} IN (2, 3, 4) THEN '[' || {one_route} || ']' \
           WHEN {s} IN (5, 6) THEN '[' || {route_a} || ',' || {route_b} || ']' \
           WHEN {s} IN (7, 8) THEN '[' || {tag_scope} || ']' \
           ELSE '[' || {one_route} || ',' || {tag_scope} || ']' \
         END"
    );
    let name = format!(
        "{} || '-' || {} || '-' || i",
        pick(&NAME_WORDS, "((i / 3) % 12)"),
        pick(&NAME_SUFFIXES, "((i / 5) % 10)")
    );
    let description = format!(
        "'Used by the ' || {} || ' pipeline of team ' || (i % {TEAMS}) || \
         CASE WHEN i % {RARE_MODULUS} = 17 THEN ' during the {RARE_WORD} migration' ELSE '' END",
        pick(&PIPELINES, "((i / 17) % 8)")
    );
    let id = format!("'tok_' || {}", d.hex("i", 32));
    let preview = format!(
        "'kg_' || {} || '…' || {}",
        d.hex("(i * 7) % 65536", 4),
        d.hex("(i * 13) % 65536", 4)
    );
    let columns = "id, team_id, name, description, scopes, token_hash, preview, created_at, \
                   updated_at, expires_at, revoked_at, created_by"
        .to_owned();
    let select = format!(
        "SELECT {id}, 'team-' || (i % {TEAMS}), {name}, {description}, {scopes}, {hash}, {preview}, \
         {created}, {updated}, {expires}, {revoked}, 'key:mk_bench'",
        hash = d.random_hex64(),
    );
    (columns, select)
}

/// The token id of row `i`, as the seeding SQL writes it.
pub(crate) fn token_id(i: u64) -> String {
    format!("tok_{i:032x}")
}

/// Rows per seeding statement (one progress line each).
pub(crate) const CHUNK: u64 = 50_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_valid_for_the_api() {
        assert_eq!(team_id(0), "team-0");
        assert_eq!(team_id(12_345), "team-45");
        assert_eq!(token_id(255), "tok_000000000000000000000000000000ff");
        assert_eq!(token_id(255).len(), 36);
        assert_eq!(route_name(0), "svc-100");
        assert_eq!(route_name(19), "svc-119");
    }

    #[test]
    fn words_do_not_collide_with_the_search_words() {
        let all: Vec<&str> = NAME_SUFFIXES
            .iter()
            .chain(PIPELINES.iter())
            .chain(TAGS.iter())
            .copied()
            .collect();
        for w in all {
            assert!(!w.contains(COMMON_WORD) && !w.contains(RARE_WORD), "{w}");
        }
        assert_eq!(
            NAME_WORDS
                .iter()
                .filter(|w| w.contains(COMMON_WORD))
                .count(),
            1
        );
    }
}
