//! Presenting kv-sync results: a table per phase, the verdict on each of the targets,
//! and the JSON document `--json-out` writes.

use super::follower::FollowerKind;
use super::propagation::{self, PropagationResult};
use super::throughput::{self, CLOUDFLARE, FOLLOW, LOCAL, PathRun, SNAPSHOT, ThroughputResult};
use super::{Case, median};
use crate::report::Machine;
use serde::Serialize;
use std::fmt::Write as _;

/// Target: Revoke -> key gone from the local KV, p99 under this.
pub const PROPAGATION_P99_TARGET_MS: f64 = 200.0;
/// ... over this many revocations.
pub const PROPAGATION_REVOCATIONS: usize = 1_000;
/// Target: this many token changes into the local KV ...
pub const PUSH_CHANGES: usize = 100_000;
/// ... in under this many seconds.
pub const LOCAL_PUSH_TARGET_SECS: f64 = 10.0;

/// The revocation latency table.
pub fn propagation_table(backend: &str, p: &PropagationResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== {backend} control plane: Revoke -> gone from the local KV ({}) ==",
        p.follower
    );
    let _ = writeln!(
        s,
        "{} tokens created through the store in {:.1} s, all in the KV {:.0} ms after the last; \
         batch window {} ms, KV polled every {:.0} ms",
        p.tokens,
        p.create_secs,
        p.initial_sync_secs * 1000.0,
        p.batch_window_ms,
        p.poll_ms
    );
    crate::kv_sync::Latency::write_table(
        &mut s,
        &[
            ("commit -> gone from KV", &p.latency),
            ("RevokeToken call", &p.revoke_rpc),
        ],
    );
    let _ = writeln!(
        s,
        "  revoked {}, timed out {}{}; token keys left {} (expected {})",
        p.revoked,
        p.timeouts,
        if p.truncated {
            ", stopped at the time budget"
        } else {
            ""
        },
        p.token_keys_left,
        p.token_keys_expected
    );
    s
}

/// The throughput tables: one line per run, the stand-in's counters, medians per path.
pub fn throughput_table(backend: &str, t: &ThroughputResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== {backend} control plane: {} token changes into the KV ==",
        t.changes
    );
    let p = &t.produce;
    let _ = writeln!(
        s,
        "producing (store create_token, {} concurrent, followers stopped): {:.1} s ({:.0}/s), \
         revisions {} -> {}",
        p.concurrency, p.wall_secs, p.per_sec, p.head_before, p.head_after
    );
    let _ = writeln!(
        s,
        "  {:<8} {:<20} {:<10} {:>3} {:>8} {:>9} {:>7} {:>8} {:>9} {:>8} {:>7} {:>7} {:>4} {:>8}",
        "path",
        "kv",
        "follower",
        "run",
        "wall s",
        "per s",
        "batches",
        "kv reqs",
        "data bulk",
        "allowed",
        "ckpt wr",
        "retries",
        "429",
        "verified"
    );
    for r in &t.runs {
        let (data, allowed, ckpt) = match &r.bulk_check {
            Some(b) => (
                (b.bulk_writes + b.bulk_deletes).to_string(),
                b.allowed.to_string(),
                b.checkpoint_bulk_writes.to_string(),
            ),
            // The binary's checkpoint writes equal its batches.
            None if r.follower == "binary" => ("-".into(), "-".into(), r.batches.to_string()),
            None => ("-".into(), "-".into(), r.tally.checkpoint.calls.to_string()),
        };
        let _ = writeln!(
            s,
            "  {:<8} {:<20} {:<10} {:>3} {:>8.2} {:>9.0} {:>7} {:>8} {:>9} {:>8} {:>7} {:>7} {:>4} {:>8}",
            r.path,
            r.kv,
            r.follower,
            r.repeat + 1,
            r.wall_secs,
            r.per_sec,
            r.batches,
            r.kv_stats.requests,
            data,
            allowed,
            ckpt,
            r.kv_stats.retries,
            r.kv_stats.throttled,
            if r.verified { "yes" } else { "NO" }
        );
    }
    for r in t.runs.iter().filter(|r| r.kv == CLOUDFLARE) {
        if let Some(c) = &r.standin {
            let routes: Vec<String> = c.routes.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(
                s,
                "  stand-in, {} run {}: {}; rate-limited {}; checkpoint writes {}; closest writes \
                 of one key {}; time in KV calls {:.2} s data + {:.2} s checkpoint",
                r.path,
                r.repeat + 1,
                routes.join(", "),
                c.rate_limited,
                c.checkpoint_writes,
                c.min_write_gap_ms
                    .map(|g| format!("{g:.0} ms apart"))
                    .unwrap_or_else(|| "n/a".into()),
                r.tally.data.busy_secs,
                r.tally.checkpoint.busy_secs
            );
        }
    }
    for r in t
        .runs
        .iter()
        .filter(|r| r.kv == LOCAL && r.tally.data.calls > 0)
    {
        let _ = writeln!(
            s,
            "  local, {} ({}) run {}: {} data transactions ({:.2} s), {} checkpoint writes \
             ({:.2} s)",
            r.path,
            r.follower,
            r.repeat + 1,
            r.tally.data.calls,
            r.tally.data.busy_secs,
            r.tally.checkpoint.calls,
            r.tally.checkpoint.busy_secs
        );
    }
    let _ = writeln!(s, "medians:");
    for (path, kv, follower) in groups(t) {
        let walls = walls(t, path, kv, follower);
        let m = median(&walls);
        let _ = writeln!(
            s,
            "  {path:<8} -> {kv:<20} {follower:<10} {m:>7.2} s ({:.0} changes/s) over {} \
             run(s): {}",
            t.changes as f64 / m.max(1e-9),
            walls.len(),
            list_secs(&walls)
        );
    }
    s
}

/// The runs of one path into one KV by one kind of follower.
fn runs<'a>(t: &'a ThroughputResult, path: &str, kv: &str, follower: &str) -> Vec<&'a PathRun> {
    t.runs
        .iter()
        .filter(|r| r.path == path && r.kv == kv && r.follower == follower)
        .collect()
}

fn walls(t: &ThroughputResult, path: &str, kv: &str, follower: &str) -> Vec<f64> {
    runs(t, path, kv, follower)
        .iter()
        .map(|r| r.wall_secs)
        .collect()
}

/// Every `(path, kv, follower)` measured, in the order first run.
fn groups(t: &ThroughputResult) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = Vec::new();
    for r in &t.runs {
        let g = (r.path, r.kv, r.follower);
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

fn list_secs(v: &[f64]) -> String {
    v.iter()
        .map(|w| format!("{w:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
        + " s"
}

/// The verdict on one target.
#[derive(Debug, Clone, Serialize)]
pub struct KvTarget {
    pub target: String,
    pub backend: &'static str,
    /// `PASS`, `MISS`, `NOT RUN` or `INFO` (a figure without a target).
    pub verdict: &'static str,
    pub line: String,
}

fn push(
    out: &mut Vec<KvTarget>,
    target: &str,
    backend: &'static str,
    verdict: &'static str,
    detail: String,
) {
    out.push(KvTarget {
        line: format!("{verdict:<7} {target} [{backend}]: {detail}"),
        target: target.to_owned(),
        backend,
        verdict,
    });
}

/// Judges the targets on what each case measured.
pub fn targets(cases: &[Case]) -> Vec<KvTarget> {
    let mut out = Vec::new();
    for c in cases {
        let b = c.backend;
        let judged = c
            .propagation
            .iter()
            .position(|p| p.kind == "binary")
            .unwrap_or(0);
        for (i, p) in c.propagation.iter().enumerate() {
            propagation_target(&mut out, b, p, i == judged);
        }
        if let Some(t) = &c.throughput {
            throughput_targets(&mut out, b, t);
        }
    }
    out
}

/// `judge`: this result is the one the target is judged on (the binary's, when it ran);
/// the others are reported as INFO.
fn propagation_target(
    out: &mut Vec<KvTarget>,
    b: &'static str,
    p: &PropagationResult,
    judge: bool,
) {
    let target = format!(
        "Revoke -> gone from the local KV, p99 < {PROPAGATION_P99_TARGET_MS:.0} ms over \
         {PROPAGATION_REVOCATIONS} revocations"
    );
    let l = &p.latency;
    let complete = p.latency.count + p.timeouts >= PROPAGATION_REVOCATIONS && !p.truncated;
    let ok = l.p99_ms < PROPAGATION_P99_TARGET_MS && p.timeouts == 0 && complete;
    let verdict = if !judge {
        "INFO"
    } else if p.tokens < PROPAGATION_REVOCATIONS {
        "NOT RUN"
    } else if ok {
        "PASS"
    } else {
        "MISS"
    };
    push(
        out,
        &target,
        b,
        verdict,
        format!(
            "p99 {:.1} ms (p50 {:.1}, p95 {:.1}, max {:.1} ms; {} measured, {} timed out{}{}; {}, \
             batch window {} ms)",
            l.p99_ms,
            l.p50_ms,
            l.p95_ms,
            l.max_ms,
            l.count,
            p.timeouts,
            if p.truncated { ", time budget hit" } else { "" },
            if p.tokens < PROPAGATION_REVOCATIONS {
                format!(", only {} revocations asked", p.tokens)
            } else {
                String::new()
            },
            p.follower,
            p.batch_window_ms
        ),
    );
}

fn throughput_targets(out: &mut Vec<KvTarget>, b: &'static str, t: &ThroughputResult) {
    let full = t.changes >= PUSH_CHANGES;
    let scale = if full {
        String::new()
    } else {
        format!(
            "; only {} changes, the target is for {PUSH_CHANGES}",
            t.changes
        )
    };
    let in_process = FollowerKind::InProcess.label();

    // The local follow target, judged on the binary when it ran; other followers are INFO.
    let target = format!(
        "push {PUSH_CHANGES} token changes into the local KV < {LOCAL_PUSH_TARGET_SECS:.0} s \
         (follow path)"
    );
    let kinds: Vec<&'static str> = groups(t)
        .into_iter()
        .filter(|(p, kv, _)| *p == FOLLOW && *kv == LOCAL)
        .map(|(_, _, f)| f)
        .collect();
    let judged_kind = kinds
        .iter()
        .copied()
        .find(|k| *k != in_process)
        .or(kinds.first().copied());
    for kind in &kinds {
        let local = runs(t, FOLLOW, LOCAL, kind);
        let w = walls(t, FOLLOW, LOCAL, kind);
        let m = median(&w);
        let verified = local.iter().all(|r| r.verified);
        let over = w.iter().filter(|x| **x >= LOCAL_PUSH_TARGET_SECS).count();
        let verdict = if Some(*kind) != judged_kind {
            "INFO"
        } else if !full {
            "NOT RUN"
        } else if m < LOCAL_PUSH_TARGET_SECS && verified {
            "PASS"
        } else {
            "MISS"
        };
        push(
            out,
            &format!("{target}, {kind} follower"),
            b,
            verdict,
            format!(
                "median {m:.2} s ({:.0} changes/s) over {} run(s): {}; {over} run(s) at or over \
                 {LOCAL_PUSH_TARGET_SECS:.0} s{}{scale}",
                t.changes as f64 / m.max(1e-9),
                w.len(),
                list_secs(&w),
                if verified {
                    ""
                } else {
                    "; a run did not verify"
                }
            ),
        );
    }
    let w = walls(t, SNAPSHOT, LOCAL, in_process);
    if !w.is_empty() {
        let m = median(&w);
        push(
            out,
            &format!(
                "snapshot reconcile of {} live tokens into an empty local KV",
                t.changes
            ),
            b,
            "INFO",
            format!(
                "median {m:.2} s ({:.0} tokens/s) over {} run(s): {}; the 10 s target is judged \
                 on the follow path",
                t.changes as f64 / m.max(1e-9),
                w.len(),
                list_secs(&w)
            ),
        );
    }

    for path in [FOLLOW, SNAPSHOT] {
        let cf = runs(t, path, CLOUDFLARE, in_process);
        if cf.is_empty() {
            continue;
        }
        let target = format!(
            "Cloudflare stand-in: data bulk calls <= ceil(N/10,000) + retries ({path} path)"
        );
        let all_ok = cf
            .iter()
            .all(|r| r.bulk_check.as_ref().is_some_and(|c| c.ok) && r.verified);
        let per_run: Vec<String> = cf
            .iter()
            .filter_map(|r| {
                r.bulk_check.as_ref().map(|c| {
                    format!(
                        "run {}: {} bulk writes + {} bulk deletes for N = {} pairs, allowed {} \
                         ({} retries), per-batch minimum {}, + {} checkpoint writes counted apart",
                        r.repeat + 1,
                        c.bulk_writes,
                        c.bulk_deletes,
                        c.pairs,
                        c.allowed,
                        c.retries,
                        c.per_call_minimum,
                        c.checkpoint_bulk_writes
                    )
                })
            })
            .collect();
        let judged = |ok: bool| if ok { "PASS" } else { "MISS" };
        push(out, &target, b, judged(all_ok), per_run.join("; "));
        let w = walls(t, path, CLOUDFLARE, in_process);
        let m = median(&w);
        push(
            out,
            &format!(
                "{} token changes into the Cloudflare stand-in ({path} path)",
                t.changes
            ),
            b,
            "INFO",
            format!(
                "median {m:.2} s ({:.0}/s) over {} run(s): {} (no time target; client paced at \
                 1,200 requests / 5 min{})",
                t.changes as f64 / m.max(1e-9),
                w.len(),
                list_secs(&w),
                if path == FOLLOW {
                    format!(", batch window {} ms", cf[0].batch_window_ms)
                } else {
                    String::new()
                }
            ),
        );
    }
}

/// The options of one run, as given.
#[derive(Debug, Clone, Serialize)]
pub struct RunOptions {
    pub propagation: Vec<propagation::Options>,
    pub throughput: Option<throughput::Options>,
}

/// Everything `--json-out` writes.
#[derive(Debug, Clone, Serialize)]
pub struct KvSyncReport {
    pub date_utc: String,
    pub command: String,
    pub machine: Machine,
    pub options: RunOptions,
    pub cases: Vec<Case>,
    pub targets: Vec<KvTarget>,
}
