//! Presenting results: a table per case, a scaling table (largest over smallest size, same
//! run), the verdict on each target of the issue, and the JSON document `--json-out` writes.

use crate::control_plane::{CaseResult, Options};
use serde::Serialize;
use std::fmt::Write as _;

/// Target: ListTokens (page of 100, any filter) p99 under this, PostgreSQL, 1M tokens.
pub const LIST_P99_TARGET_MS: f64 = 20.0;
/// Target: CreateToken at least this many per second on SQLite.
pub const CREATE_TARGET_PER_SEC: f64 = 1000.0;
/// The list target is judged on cases with at least this many tokens.
pub const LIST_TARGET_TOKENS: u64 = 1_000_000;

/// `100000` -> `100k`, `1000000` -> `1M`.
pub fn size_label(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// The tables for one case: per server mode, lists then creates.
pub fn case_table(c: &CaseResult, opts: &Options) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n== {} - {} tokens ==", c.backend, size_label(c.tokens));
    let _ = writeln!(
        s,
        "seeding: {:.1} s inserts + {:.1} s {}",
        c.seed.insert_secs,
        c.seed.finish_secs,
        if c.backend == "PostgreSQL" {
            "VACUUM ANALYZE"
        } else {
            "WAL checkpoint"
        }
    );
    for run in &c.runs {
        let _ = writeln!(
            s,
            "[server {}] ListTokens, page_size {}, {} client(s), {} requests per filter in {} interleaved rounds:",
            run.server, opts.page_size, opts.list_concurrency, opts.lists, opts.rounds
        );
        let _ = writeln!(
            s,
            "  {:<24} {:>5} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "filter", "rows", "n", "p50 ms", "p99 ms", "max ms", "req/s", "p50/none"
        );
        for l in &run.lists {
            let rows = format!("{}{}", l.rows, if l.more { "+" } else { "" });
            let _ = writeln!(
                s,
                "  {:<24} {:>5} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.0} {:>8.2}x{}{}",
                l.filter,
                rows,
                l.latency.count,
                l.latency.p50_ms,
                l.latency.p99_ms,
                l.latency.max_ms,
                l.latency.per_sec,
                l.p50_vs_none,
                if l.truncated {
                    "  (time budget hit)"
                } else {
                    ""
                },
                l.first_error
                    .as_ref()
                    .map(|e| format!("  {} errors, first: {e}", l.latency.errors))
                    .unwrap_or_default(),
            );
        }
        let cr = &run.create;
        let _ = writeln!(
            s,
            "[server {}] CreateToken, {} concurrent clients, {} creates after {} warm-up in {} \
             interleaved rounds: {:.0} creates/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, \
             errors {}{}",
            run.server,
            cr.concurrency,
            cr.latency.count,
            cr.warmup,
            opts.rounds,
            cr.latency.per_sec,
            cr.latency.p50_ms,
            cr.latency.p99_ms,
            cr.latency.max_ms,
            cr.latency.errors,
            if cr.truncated {
                " (time budget hit)"
            } else {
                ""
            }
        );
        if let Some(e) = &cr.first_error {
            let _ = writeln!(s, "  first create error: {e}");
        }
    }
    s
}

/// For each backend measured at two or more sizes and each server mode: largest-size p50
/// over smallest-size p50 per filter, and the create rate ratio.
pub fn scaling_table(cases: &[CaseResult]) -> String {
    let mut s = String::new();
    for backend in ["SQLite", "PostgreSQL"] {
        let mut mine: Vec<&CaseResult> = cases.iter().filter(|c| c.backend == backend).collect();
        if mine.len() < 2 {
            continue;
        }
        mine.sort_by_key(|c| c.tokens);
        let (small, large) = (mine[0], mine[mine.len() - 1]);
        for (rs, rl) in small.runs.iter().zip(&large.runs) {
            let _ = writeln!(
                s,
                "\n{backend} [server {}]: {} vs {} tokens (same run; ratio of medians)",
                rs.server,
                size_label(large.tokens),
                size_label(small.tokens)
            );
            for (a, b) in rs.lists.iter().zip(&rl.lists) {
                let _ = writeln!(
                    s,
                    "  {:<24} p50 {:>7.2} -> {:>7.2} ms  {:>6.2}x",
                    a.filter,
                    a.latency.p50_ms,
                    b.latency.p50_ms,
                    ratio(b.latency.p50_ms, a.latency.p50_ms)
                );
            }
            let _ = writeln!(
                s,
                "  {:<24} {:>7.0} -> {:>7.0} /s    {:>6.2}x",
                "CreateToken",
                rs.create.latency.per_sec,
                rl.create.latency.per_sec,
                ratio(rl.create.latency.per_sec, rs.create.latency.per_sec)
            );
        }
    }
    s
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// The verdict on one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetLine {
    pub target: String,
    pub server: &'static str,
    /// `PASS`, `MISS` or `NOT RUN`.
    pub verdict: &'static str,
    pub line: String,
}

/// Judges the two targets on what was measured, per server mode.
pub fn targets(cases: &[CaseResult]) -> Vec<TargetLine> {
    let mut out = Vec::new();
    let list_target = format!("List p99 < {LIST_P99_TARGET_MS} ms (PostgreSQL, 1M)");
    let mut judged = false;
    for c in cases
        .iter()
        .filter(|c| c.backend == "PostgreSQL" && c.tokens >= LIST_TARGET_TOKENS)
    {
        for run in &c.runs {
            judged = true;
            let worst = run
                .lists
                .iter()
                .max_by(|a, b| a.latency.p99_ms.total_cmp(&b.latency.p99_ms));
            let errors: usize = run.lists.iter().map(|l| l.latency.errors).sum();
            let truncated = run.lists.iter().any(|l| l.truncated);
            let (verdict, detail) = match worst {
                Some(w) => {
                    let ok = w.latency.p99_ms < LIST_P99_TARGET_MS && errors == 0 && !truncated;
                    (
                        if ok { "PASS" } else { "MISS" },
                        format!(
                            "worst filter '{}' p99 = {:.1} ms{}{}",
                            w.filter,
                            w.latency.p99_ms,
                            if errors > 0 {
                                format!(", {errors} errors")
                            } else {
                                String::new()
                            },
                            if truncated {
                                ", some filters hit the time budget"
                            } else {
                                ""
                            }
                        ),
                    )
                }
                None => ("MISS", "no list measured".into()),
            };
            out.push(TargetLine {
                line: format!(
                    "target {list_target} [{} tokens, server {}]: {detail} {verdict}",
                    size_label(c.tokens),
                    run.server
                ),
                target: list_target.clone(),
                server: run.server,
                verdict,
            });
        }
    }
    if !judged {
        out.push(TargetLine {
            line: format!("target {list_target}: NOT RUN (no PostgreSQL case with 1M tokens)"),
            target: list_target,
            server: "",
            verdict: "NOT RUN",
        });
    }

    let create_target = format!("Create >= {CREATE_TARGET_PER_SEC:.0}/s (SQLite)");
    let mut judged = false;
    for c in cases.iter().filter(|c| c.backend == "SQLite") {
        for run in &c.runs {
            judged = true;
            let l = &run.create.latency;
            let ok = l.per_sec >= CREATE_TARGET_PER_SEC && l.errors == 0 && !run.create.truncated;
            let verdict = if ok { "PASS" } else { "MISS" };
            out.push(TargetLine {
                line: format!(
                    "target {create_target} [{} tokens, server {}]: {:.0} creates/s ({} clients, \
                     p50 {:.1} ms, p99 {:.1} ms, {} errors) {verdict}",
                    size_label(c.tokens),
                    run.server,
                    l.per_sec,
                    run.create.concurrency,
                    l.p50_ms,
                    l.p99_ms,
                    l.errors
                ),
                target: create_target.clone(),
                server: run.server,
                verdict,
            });
        }
    }
    if !judged {
        out.push(TargetLine {
            line: format!("target {create_target}: NOT RUN (no SQLite case)"),
            target: create_target,
            server: "",
            verdict: "NOT RUN",
        });
    }
    out
}

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub kernel: String,
    pub cpu: String,
    /// `/proc/loadavg` when the run started and ended: other work on a shared machine.
    pub loadavg_start: String,
    pub loadavg_end: String,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// `/proc/loadavg` now.
pub fn loadavg() -> String {
    read_trim("/proc/loadavg")
}

impl Machine {
    /// Reads this machine's description; `loadavg_start` as given.
    pub fn describe(loadavg_start: String) -> Self {
        let cpu = read_trim("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default();
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read_trim("/proc/sys/kernel/osrelease"),
            cpu,
            loadavg_start,
            loadavg_end: loadavg(),
        }
    }
}

/// The code a run was built from, as git sees the working directory when the run starts.
#[derive(Debug, Clone, Serialize)]
pub struct Code {
    /// `git rev-parse --short HEAD`, or `unknown`.
    pub commit: String,
    /// Tracked files differ from that commit (the binaries may include those changes).
    pub dirty: bool,
}

impl Code {
    pub fn describe() -> Self {
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        };
        Self {
            commit: git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
            dirty: git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty()),
        }
    }
}

/// Everything `--json-out` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub date_utc: String,
    pub command: String,
    pub machine: Machine,
    pub options: Options,
    pub cases: Vec<CaseResult>,
    pub targets: Vec<TargetLine>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_labels() {
        assert_eq!(size_label(100_000), "100k");
        assert_eq!(size_label(1_000_000), "1M");
        assert_eq!(size_label(1_500), "1500");
        assert_eq!(size_label(2_000), "2k");
    }
}
