//! Presenting the usage benchmarks' figures: text tables and the JSON documents `--json-out`
//! writes.

use super::queries::{self, QueriesResult};
use super::storage::{self, RateResult};
use crate::report::{Code, Machine};
use serde::Serialize;
use std::fmt::Write as _;

/// What `usage-queries --json-out` writes.
#[derive(Debug, Clone, Serialize)]
pub struct QueriesReport {
    pub date_utc: String,
    pub command: String,
    pub code: Code,
    pub machine: Machine,
    pub options: queries::Options,
    /// Seeding writes the tiers directly (see bench/README.md); said here for readers of the
    /// JSON alone.
    pub seeding_note: &'static str,
    pub result: QueriesResult,
}

pub const SEEDING_NOTE: &str = "Seeding bypasses IngestUsage: the hour, day, minute (last 2 h) \
    and series rows ingestion would write for the same rollups are generated in the benchmark \
    and COPYed in. 2.3 million rollups through IngestUsage, at the 1,700 rollups/s it sustained \
    on PostgreSQL in usage-storage, would take over 20 minutes (about 70 for the 7 million of \
    per-minute granularity), several times the benchmark itself.";

/// What `usage-storage --json-out` writes.
#[derive(Debug, Clone, Serialize)]
pub struct StorageReport {
    pub date_utc: String,
    pub command: String,
    pub code: Code,
    pub machine: Machine,
    pub options: storage::Options,
    pub rates: Vec<RateResult>,
}

fn mb(b: f64) -> f64 {
    b / 1_000_000.0
}

/// The seeding and latency tables of a queries run.
pub fn queries_table(r: &QueriesResult) -> String {
    let mut s = String::new();
    let seed = &r.seed;
    let g = &seed.generated;
    let _ = writeln!(
        s,
        "\n== usage-queries: PostgreSQL, {} tokens, {} teams, {} routes, {} days of hourly rollups ==",
        seed.shape.catalog.tokens,
        seed.shape.catalog.teams,
        seed.shape.catalog.routes,
        seed.shape.days
    );
    let _ = writeln!(s, "{SEEDING_NOTE}");
    let _ = writeln!(
        s,
        "seeding: {:.1} s total ({:.1} s history generated + COPY, {:.1} s teams/routes/tokens, \
         {:.1} s VACUUM ANALYZE); {} rollups, {} calls ({} errors)",
        seed.total_secs,
        seed.history_secs,
        seed.catalog_secs,
        seed.vacuum_analyze_secs,
        g.rollups,
        g.calls,
        g.errors
    );
    let _ = writeln!(s, "  {:<22} {:>10} {:>10}", "table", "rows", "MB");
    for (t, n) in &g.rows {
        let bytes = seed.sizes.table_bytes.get(*t).copied().unwrap_or(0);
        let _ = writeln!(s, "  {:<22} {:>10} {:>10.1}", t, n, mb(bytes as f64));
    }
    let _ = writeln!(
        s,
        "\n  {:<38} {:<13} {:>5} {:>8} {:>8} {:>8} {:>8}  {:<7} check",
        "call", "caller", "n", "p50 ms", "p99 ms", "max ms", "target", "verdict"
    );
    for c in &r.calls {
        let _ = writeln!(
            s,
            "  {:<38} {:<13} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.0}  {:<7} {}{}{}",
            c.call,
            c.caller,
            c.latency.count,
            c.latency.p50_ms,
            c.latency.p99_ms,
            c.latency.max_ms,
            c.target_p99_ms,
            c.verdict,
            c.check,
            if c.truncated {
                "  (time budget hit)"
            } else {
                ""
            },
            c.first_error
                .as_ref()
                .map(|e| format!("  {} errors, first: {e}", c.latency.errors))
                .unwrap_or_default(),
        );
    }
    s
}

/// The per-rate table of a storage run.
pub fn storage_table(o: &storage::Options, rates: &[RateResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== usage-storage: {}, {} keys, {} simulated minutes, flush every {} s, {} % refusals, \
         event budget {}/s ==",
        o.backend,
        o.keys,
        o.minutes,
        o.flush_secs,
        o.refusal_share * 100.0,
        o.event_budget
    );
    for r in rates {
        let _ = writeln!(
            s,
            "\nrate {}/s: {} requests in {} flushes -> {} rollups, {} events sent, {} sampled out; \
             {:.0} s wall",
            r.rate,
            r.requests,
            r.flushes,
            r.rollups_sent,
            r.events_sent,
            r.sampled_out,
            r.wall_secs
        );
        let _ = writeln!(
            s,
            "  IngestUsage: rollup calls p50 {:.1} / p99 {:.1} / max {:.1} ms; event calls p50 {:.1} / p99 {:.1} ms",
            r.rollup_calls.p50_ms,
            r.rollup_calls.p99_ms,
            r.rollup_calls.max_ms,
            r.event_calls.p50_ms,
            r.event_calls.p99_ms
        );
        let _ = writeln!(
            s,
            "  {:<22} {:>10} {:>12} {:>12}",
            "table", "rows", "MB before", "MB after"
        );
        for (t, n) in &r.after.rows {
            let before = r.before.table_bytes.get(t).copied().unwrap_or(0);
            let after = r.after.table_bytes.get(t).copied().unwrap_or(0);
            let _ = writeln!(
                s,
                "  {:<22} {:>10} {:>12.2} {:>12.2}",
                t,
                n,
                mb(before as f64),
                mb(after as f64)
            );
        }
        let _ = writeln!(
            s,
            "  database: {:.1} MB -> {:.1} MB (+{:.1} MB{}); usage tables without raw events +{:.1} MB, raw events +{:.1} MB ({:.0} B per stored event)",
            mb(r.before.database_bytes as f64),
            mb(r.after.database_bytes as f64),
            mb(r.database_growth_bytes as f64),
            if r.after.free_bytes > 0 {
                format!(", {:.1} MB of it free pages", mb(r.after.free_bytes as f64))
            } else {
                String::new()
            },
            mb(r.rollup_growth_bytes as f64),
            mb(r.event_growth_bytes as f64),
            r.bytes_per_stored_event
        );
        let _ = writeln!(
            s,
            "  one row per request instead: {} x {} s x {} B = {:.0} MB ({:.0}x the database growth)",
            r.rate,
            u64::from(o.minutes) * 60,
            o.bytes_per_event_row,
            mb(r.one_row_per_request_bytes),
            r.one_row_per_request_bytes / (r.database_growth_bytes.max(1) as f64)
        );
        for p in &r.problems {
            let _ = writeln!(s, "  PROBLEM: {p}");
        }
    }
    if let [a, .., b] = rates {
        let _ = writeln!(
            s,
            "\n{}/s vs {}/s: rollup tables +{:.1} MB vs +{:.1} MB ({:.2}x for {:.0}x the requests); \
             raw events +{:.1} MB vs +{:.1} MB",
            b.rate,
            a.rate,
            mb(b.rollup_growth_bytes as f64),
            mb(a.rollup_growth_bytes as f64),
            b.rollup_growth_bytes as f64 / a.rollup_growth_bytes.max(1) as f64,
            b.rate as f64 / a.rate.max(1) as f64,
            mb(b.event_growth_bytes as f64),
            mb(a.event_growth_bytes as f64),
        );
    }
    s
}
