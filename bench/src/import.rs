//! `keygate import old-system` at scale (issue 16): 100,000 tokens, 1,000 routes and 1,000,000
//! usage rows imported from the old system's PostgreSQL database, through the real binaries.
//!
//! Per Keygate backend: [`old_system::build_bulk`] makes the old database on the PostgreSQL
//! server (timed on its own: it is not the import). A fresh data directory; on PostgreSQL also
//! a fresh Keygate database on the same server. The release `keygate-control-plane` binary
//! starts on it (`KEYGATE_EMBEDDED_SERVICE_KEYS=true`: it writes `kv-sync.key` and
//! `master.key`), and the `keygate-kv-sync` binary follows it into a local SQLite KV file.
//! Then the `keygate` binary runs `import old-system` once, under GNU time (`%M`: the
//! importer's peak RSS, getrusage's `ru_maxrss`) when `/usr/bin/time` exists, else by reading
//! `VmHWM` from `/proc/<pid>/status` every 50 ms. Every line it writes to stderr is kept with
//! the time since it started (the `import: applying tokens: N/M` progress lines say where the
//! time goes; `--json` silences them, so the text output is parsed by default). From the
//! importer's exit, the KV file is read every `poll` (a separate read-only connection) until
//! it holds every imported token (`v1/token/` keys) and its `v1/meta/revision` checkpoint has
//! reached the import's head revision, for at most `propagation_timeout`. Last, the Keygate
//! database's rows are counted, and the run fails when the imported tokens (in the database
//! or in the KV) are not `tokens`.
//!
//! Owns: nothing the product uses. Must not: put load anywhere but `127.0.0.1`, run without a
//! time bound, or leave processes or databases behind (the children are stopped by their
//! PIDs on every path and killed when dropped; the old and the Keygate database are dropped).

use crate::BenchError;
use crate::kv_sync::follower::ChildFollower;
use crate::kv_sync::plane::poll_until;
use crate::pg_database::PgDatabase;
use keygate_control_plane::testing::Backend;
use keygate_control_plane::testing::old_system;
use keygate_kv_record as rec;
use serde::Serialize;
use sqlx::{AssertSqlSafe, Connection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{oneshot, watch};

/// GNU time, for the importer's peak RSS.
pub const GNU_TIME: &str = "/usr/bin/time";
/// The importer's progress line just before its COMMIT.
const COMMIT_LINE: &str = "import: applying commit";
/// Stderr lines of the importer kept in the report (the rest are counted).
const STDERR_LINES_KEPT: usize = 2000;

/// How the importer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImporterOutput {
    /// Plain text: the plan table, problems, progress lines on stderr.
    Text,
    /// `--json`: one JSON report on stdout, no progress lines.
    Json,
}

#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub tokens: u32,
    pub routes: u32,
    pub usage_rows: u64,
    /// `--usage-days` given to the importer.
    pub usage_days: u32,
    /// `--resolve CLASS=ACTION` given to the importer.
    pub resolve: Vec<String>,
    pub importer_output: ImporterOutput,
    /// Where `keygate`, `keygate-control-plane` and `keygate-kv-sync` are.
    pub bin_dir: PathBuf,
    /// How often the KV is read while the import propagates.
    pub poll: Duration,
    pub propagation_timeout: Duration,
    /// Longest the importer may run before it is killed.
    pub import_timeout: Duration,
}

/// One line the importer wrote to stderr, and when (seconds since it started).
#[derive(Debug, Clone, Serialize)]
pub struct StderrLine {
    pub at_secs: f64,
    pub line: String,
}

/// A stretch of the import between two progress landmarks.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// The line that opened it (`import: applying tokens: 0/100000` style, counts cut).
    pub what: String,
    pub from_secs: f64,
    pub secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportRun {
    pub command: String,
    pub exit_code: Option<i32>,
    /// Importer start -> exit.
    pub wall_secs: f64,
    /// Peak resident set of the importer, KiB.
    pub peak_rss_kib: Option<u64>,
    pub peak_rss_method: String,
    /// Per kind: create, update, delete, unchanged, skipped.
    pub counts: BTreeMap<String, [u64; 5]>,
    /// Problems per class (all resolved, or the import refused).
    pub problems: BTreeMap<String, usize>,
    pub usage_rows_read: Option<u64>,
    pub audit_rows: Option<u64>,
    pub change_events: Option<u64>,
    pub head_revision: Option<i64>,
    /// From the stderr lines (text output only).
    pub phases: Vec<Phase>,
    pub stderr: Vec<StderrLine>,
    pub stderr_lines_dropped: usize,
    /// The importer's `--json` report (JSON output only).
    pub json_report: Option<serde_json::Value>,
}

/// Tokens in the KV over time during propagation (one sample a second).
#[derive(Debug, Clone, Serialize)]
pub struct KvSample {
    pub at_secs: f64,
    pub tokens: u64,
    pub revision: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Propagation {
    /// Importer exit -> the KV holds every imported token and the head revision (0 when it
    /// already did at the exit).
    pub secs: Option<f64>,
    /// The importer's `applying commit` line (just before its COMMIT; text output only) -> the
    /// KV holds every imported token and the head revision: includes the COMMIT itself.
    pub secs_from_commit_line: Option<f64>,
    /// The importer exited this long after its `applying commit` line.
    pub commit_line_to_exit_secs: Option<f64>,
    pub timed_out: bool,
    /// Tokens in the KV at the importer's exit, and at the end.
    pub tokens_at_exit: u64,
    pub tokens_at_end: u64,
    pub revision_at_end: i64,
    pub head_revision: i64,
    /// When the first imported token showed up in the KV, from the `applying commit` line
    /// (from the exit without one).
    pub first_token_secs: Option<f64>,
    /// About one a second, from the `applying commit` line (or the exit).
    pub samples: Vec<KvSample>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportResult {
    pub backend: &'static str,
    /// Building the old database (`build_bulk`): NOT part of the import.
    pub old_db_build_secs: f64,
    pub import: ImportRun,
    pub propagation: Propagation,
    /// Rows in Keygate's database afterwards, per table (or `table:filter`).
    pub keygate_rows: BTreeMap<String, i64>,
    /// `VmHWM` of the control plane and kv-sync at the end, KiB.
    pub control_plane_peak_rss_kib: Option<u64>,
    pub kv_sync_peak_rss_kib: Option<u64>,
    /// Tokens the importer's plan created (`tokens` unless a `--resolve` choice skipped some).
    pub tokens_expected: u64,
    /// Imported tokens found in Keygate's database and in the KV equal `tokens_expected`.
    pub tokens_ok: bool,
}

/// Runs one backend: old database, processes, import, propagation, counts; removes what it
/// made on every path.
pub async fn run(
    backend: Backend,
    pg_admin_url: &str,
    work_dir: Option<&Path>,
    opts: &Options,
) -> Result<ImportResult, BenchError> {
    let mut b = tempfile::Builder::new();
    b.prefix("keygate-bench-import-");
    let dir = match work_dir {
        Some(w) => b.tempdir_in(w),
        None => b.tempdir(),
    }
    .map_err(|e| BenchError::Setup(format!("temp dir: {e}")))?;

    eprintln!(
        "  building the old database: {} tokens, {} routes, {} usage rows",
        opts.tokens, opts.routes, opts.usage_rows
    );
    let started = Instant::now();
    // Nothing calls the upstream: the port is never opened.
    let old_url = old_system::build_bulk(
        pg_admin_url,
        "http://127.0.0.1:9",
        opts.tokens,
        opts.routes,
        opts.usage_rows,
    )
    .await;
    let old_db_build_secs = started.elapsed().as_secs_f64();
    eprintln!("  old database built in {old_db_build_secs:.1} s");

    let keygate_db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(PgDatabase::create(pg_admin_url, "import").await),
    };
    let (out, made) = match keygate_db {
        Some(Err(e)) => (Err(e), None),
        Some(Ok(db)) => (
            with_databases(backend, &old_url, Some(&db.url), dir.path(), opts).await,
            Some(db),
        ),
        None => (
            with_databases(backend, &old_url, None, dir.path(), opts).await,
            None,
        ),
    };
    if let Some(db) = &made
        && let Err(e) = db.drop_now().await
    {
        eprintln!("  warning: dropping the Keygate database failed: {e}");
    }
    old_system::drop_database(pg_admin_url, &old_url).await;
    out.map(|mut r| {
        r.old_db_build_secs = old_db_build_secs;
        r
    })
}

async fn with_databases(
    backend: Backend,
    old_url: &str,
    keygate_url: Option<&str>,
    dir: &Path,
    opts: &Options,
) -> Result<ImportResult, BenchError> {
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).map_err(|e| BenchError::Setup(format!("data dir: {e}")))?;
    let mut plane = ControlPlane::spawn(
        &opts.bin_dir.join("keygate-control-plane"),
        &data_dir,
        keygate_url,
        &dir.join("control-plane.log"),
    )
    .await?;
    eprintln!("  control plane (pid {}) on {}", plane.pid, plane.url);
    let out = with_plane(backend, old_url, keygate_url, dir, &data_dir, &plane, opts).await;
    plane.stop().await;
    out
}

async fn with_plane(
    backend: Backend,
    old_url: &str,
    keygate_url: Option<&str>,
    dir: &Path,
    data_dir: &Path,
    plane: &ControlPlane,
    opts: &Options,
) -> Result<ImportResult, BenchError> {
    let key_file = data_dir.join("kv-sync.key");
    let sync_key = std::fs::read_to_string(&key_file)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", key_file.display())))?;
    let kv_path = dir.join("kv.db");
    let follower = ChildFollower::spawn(
        &opts.bin_dir.join("keygate-kv-sync"),
        &plane.url,
        sync_key.trim(),
        &kv_path,
        "bench-import",
    )
    .await?;
    let kv_sync_pid = follower.pid();
    eprintln!(
        "  kv-sync (pid {}) into {}",
        kv_sync_pid.unwrap_or(0),
        kv_path.display()
    );
    let out = with_follower(backend, old_url, keygate_url, dir, data_dir, &kv_path, opts).await;
    let kv_sync_peak_rss_kib = kv_sync_pid.and_then(vm_hwm_kib);
    let control_plane_peak_rss_kib = vm_hwm_kib(plane.pid);
    follower.stop().await;
    out.map(|mut r| {
        r.kv_sync_peak_rss_kib = kv_sync_peak_rss_kib;
        r.control_plane_peak_rss_kib = control_plane_peak_rss_kib;
        r
    })
}

async fn with_follower(
    backend: Backend,
    old_url: &str,
    keygate_url: Option<&str>,
    dir: &Path,
    data_dir: &Path,
    kv_path: &Path,
    opts: &Options,
) -> Result<ImportResult, BenchError> {
    // The follower's first checkpoint: it is following before the import starts.
    let kv = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(20),
        "kv-sync's first checkpoint in the KV",
        || async {
            let mut kv = KvReader::open(kv_path).await.ok()?;
            kv.revision().await.ok().flatten()?;
            Some(kv)
        },
    )
    .await?;
    // The KV is read from the importer's `applying commit` line on (or its exit), while it
    // still runs: it may take seconds from COMMIT to exit (freeing what it read).
    let (commit_tx, commit_rx) = oneshot::channel();
    let (head_tx, head_rx) = watch::channel(None);
    let watcher = tokio::spawn(watch_kv(kv, commit_rx, head_rx, opts.clone()));
    let import = run_importer(old_url, keygate_url, dir, data_dir, opts, commit_tx).await;
    let exited = Instant::now();
    let import = match import {
        Ok(i) => i,
        Err(e) => {
            watcher.abort();
            return Err(e);
        }
    };
    if import.exit_code != Some(0) {
        watcher.abort();
        let tail: Vec<&str> = import
            .stderr
            .iter()
            .rev()
            .take(10)
            .map(|l| l.line.as_str())
            .collect();
        return Err(BenchError::Setup(format!(
            "the importer exited with {:?}; last stderr lines (newest first): {tail:?}",
            import.exit_code
        )));
    }
    let Some(head) = import.head_revision else {
        watcher.abort();
        return Err(BenchError::Setup(
            "the importer reported no head revision".into(),
        ));
    };
    // The tokens the plan creates: `--tokens` with the default resolutions, fewer when a
    // `--resolve` choice skips some.
    let expected = import
        .counts
        .get("tokens")
        .map_or(u64::from(opts.tokens), |c| c[0]);
    let _ = head_tx.send(Some((head, expected)));
    eprintln!(
        "  import done in {:.1} s (peak RSS {} MiB); waiting for {expected} tokens and revision {head} in the KV",
        import.wall_secs,
        import
            .peak_rss_kib
            .map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0))
    );
    let watched = watcher
        .await
        .map_err(|e| BenchError::Setup(format!("KV watcher: {e}")))??;
    let propagation = watched.summary(exited, head);
    match propagation.secs {
        Some(s) => eprintln!("  propagated in {s:.1} s"),
        None => eprintln!(
            "  NOT propagated within {:.0} s: {} tokens, revision {} in the KV",
            opts.propagation_timeout.as_secs_f64(),
            propagation.tokens_at_end,
            propagation.revision_at_end
        ),
    }
    let keygate_rows = count_rows(backend, data_dir, keygate_url).await?;
    let imported = keygate_rows.get("tokens:legacy").copied().unwrap_or(-1);
    let tokens_ok = u64::try_from(imported) == Ok(expected)
        && propagation.tokens_at_end == expected
        && !propagation.timed_out;
    Ok(ImportResult {
        backend: crate::control_plane::backend_name(backend),
        old_db_build_secs: 0.0,
        import,
        propagation,
        keygate_rows,
        control_plane_peak_rss_kib: None,
        kv_sync_peak_rss_kib: None,
        tokens_expected: expected,
        tokens_ok,
    })
}

/// The arguments of `keygate import old-system` (without the old database URL).
fn importer_args(data_dir: &Path, opts: &Options) -> Vec<String> {
    let mut args: Vec<String> = vec!["import".into(), "old-system".into()];
    args.extend(["--usage-days".into(), opts.usage_days.to_string()]);
    for r in &opts.resolve {
        args.extend(["--resolve".into(), r.clone()]);
    }
    if opts.importer_output == ImporterOutput::Json {
        args.push("--json".into());
    }
    args.extend(["--data-dir".into(), data_dir.display().to_string()]);
    args
}

async fn run_importer(
    old_url: &str,
    keygate_url: Option<&str>,
    dir: &Path,
    data_dir: &Path,
    opts: &Options,
    commit_line: oneshot::Sender<Instant>,
) -> Result<ImportRun, BenchError> {
    let bin = opts.bin_dir.join("keygate");
    let args = importer_args(data_dir, opts);
    let command = format!(
        "{}{} {} --old-database-url <old>",
        if keygate_url.is_some() {
            "DATABASE_URL=<keygate> "
        } else {
            ""
        },
        bin.display(),
        args.join(" ")
    );
    eprintln!("  {command}");
    let rss_file = dir.join("importer-rss.txt");
    let gnu_time = Path::new(GNU_TIME).exists();
    let mut cmd = if gnu_time {
        let mut c = tokio::process::Command::new(GNU_TIME);
        c.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(&bin);
        c
    } else {
        tokio::process::Command::new(&bin)
    };
    cmd.args(&args)
        .arg("--old-database-url")
        .arg(old_url)
        .env_remove("DATABASE_URL")
        .env_remove("KEYGATE_MASTER_KEY")
        .env_remove("KEYGATE_DATA_DIR")
        .env("KEYGATE_LOG", "warn")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(url) = keygate_url {
        cmd.env("DATABASE_URL", url);
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", bin.display())))?;
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_task = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(s) = stdout {
            let mut lines = BufReader::new(s).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                text.push_str(&l);
                text.push('\n');
            }
        }
        text
    });
    let err_task = tokio::spawn(async move {
        let mut kept = Vec::new();
        let mut dropped = 0usize;
        let mut commit_line = Some(commit_line);
        if let Some(s) = stderr {
            let mut lines = BufReader::new(s).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let at_secs = started.elapsed().as_secs_f64();
                if line.starts_with(COMMIT_LINE)
                    && let Some(tx) = commit_line.take()
                {
                    let _ = tx.send(Instant::now());
                }
                if kept.len() < STDERR_LINES_KEPT {
                    kept.push(StderrLine { at_secs, line });
                } else {
                    dropped += 1;
                }
            }
        }
        (kept, dropped)
    });
    // Peak RSS by VmHWM when GNU time is missing (the child is the importer itself).
    let hwm_task = (!gnu_time).then(|| {
        tokio::spawn(async move {
            let mut peak = 0u64;
            while let Some(k) = pid.and_then(vm_hwm_kib) {
                peak = peak.max(k);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    });
    let status = match tokio::time::timeout(opts.import_timeout, child.wait()).await {
        Ok(s) => s.map_err(|e| BenchError::Setup(format!("waiting for the importer: {e}")))?,
        Err(_) => {
            // Under GNU time the importer is its child: stop that one by its PID too.
            if let Some(p) = pid {
                for c in children_of(p) {
                    let _ = tokio::process::Command::new("kill")
                        .arg("-KILL")
                        .arg(c.to_string())
                        .status()
                        .await;
                }
            }
            let _ = child.kill().await;
            return Err(BenchError::Setup(format!(
                "the importer ran longer than {:.0} s and was killed",
                opts.import_timeout.as_secs_f64()
            )));
        }
    };
    let wall_secs = started.elapsed().as_secs_f64();
    let stdout = out_task.await.unwrap_or_default();
    let (stderr, stderr_lines_dropped) = err_task.await.unwrap_or_default();
    let (peak_rss_kib, peak_rss_method) = if gnu_time {
        (
            std::fs::read_to_string(&rss_file)
                .ok()
                .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok())),
            "GNU time %M (getrusage ru_maxrss of the importer)".to_owned(),
        )
    } else {
        let peak = match hwm_task {
            Some(t) => t.await.unwrap_or(0),
            None => 0,
        };
        (
            (peak > 0).then_some(peak),
            "VmHWM from /proc/<pid>/status every 50 ms (may miss a last peak)".to_owned(),
        )
    };
    let mut run = ImportRun {
        command,
        exit_code: status.code(),
        wall_secs,
        peak_rss_kib,
        peak_rss_method,
        counts: BTreeMap::new(),
        problems: BTreeMap::new(),
        usage_rows_read: None,
        audit_rows: None,
        change_events: None,
        head_revision: None,
        phases: phases(&stderr, wall_secs),
        stderr,
        stderr_lines_dropped,
        json_report: None,
    };
    match opts.importer_output {
        ImporterOutput::Text => parse_text(&stdout, &mut run),
        ImporterOutput::Json => parse_json(&stdout, &mut run),
    }
    Ok(run)
}

/// The plan table, the problems and the `applied run` line of the text output.
fn parse_text(stdout: &str, run: &mut ImportRun) {
    #[derive(PartialEq)]
    enum Section {
        Other,
        Plan,
        Problems,
    }
    let mut section = Section::Other;
    for line in stdout.lines() {
        let t = line.trim();
        if t.starts_with("PLAN") {
            section = Section::Plan;
            continue;
        }
        if t.starts_with("PROBLEMS") {
            section = Section::Problems;
            continue;
        }
        if t.is_empty() || !line.starts_with("  ") {
            section = Section::Other;
        }
        match section {
            Section::Plan => {
                // "<kind, maybe several words> <create> <update> <delete> <unchanged> <skipped>"
                let f: Vec<&str> = t.split_whitespace().collect();
                if f.len() > 5
                    && let Ok(n) = f[f.len() - 5..]
                        .iter()
                        .map(|v| v.parse::<u64>())
                        .collect::<Result<Vec<_>, _>>()
                {
                    let kind = f[..f.len() - 5].join(" ");
                    if kind == "usage log rows" {
                        run.usage_rows_read = Some(n[0]);
                    }
                    run.counts.insert(kind, [n[0], n[1], n[2], n[3], n[4]]);
                }
            }
            Section::Problems => {
                if let Some(class) = t.split_whitespace().next() {
                    *run.problems.entry(class.to_owned()).or_default() += 1;
                }
            }
            Section::Other => {}
        }
        // "applied run imp_x: 1 audit rows, 2 change events (revision 3). ..."
        if let Some(rest) = t.strip_prefix("applied run ")
            && let Some((_, rest)) = rest.split_once(": ")
        {
            let num = |s: &str| s.split_whitespace().next().and_then(|n| n.parse().ok());
            let mut parts = rest.split(", ");
            run.audit_rows = parts.next().and_then(num);
            if let Some(p) = parts.next() {
                run.change_events = num(p);
                run.head_revision = p
                    .split_once("(revision ")
                    .and_then(|(_, r)| r.split(')').next())
                    .and_then(|n| n.trim().parse().ok());
            }
        }
    }
}

/// The `--json` report.
fn parse_json(stdout: &str, run: &mut ImportRun) {
    let Some(v) = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        return;
    };
    if let Some(counts) = v.get("counts").and_then(|c| c.as_object()) {
        for (kind, c) in counts {
            let n = |f: &str| c.get(f).and_then(|x| x.as_u64()).unwrap_or(0);
            run.counts.insert(
                kind.clone(),
                [
                    n("create"),
                    n("update"),
                    n("delete"),
                    n("unchanged"),
                    n("skipped"),
                ],
            );
        }
    }
    for p in v
        .get("problems")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(class) = p.get("class").and_then(|c| c.as_str()) {
            *run.problems.entry(class.to_owned()).or_default() += 1;
        }
    }
    run.usage_rows_read = v.get("usage_rows").and_then(|x| x.as_u64());
    let applied = v.get("applied");
    let field = |f: &str| applied.and_then(|a| a.get(f)).and_then(|x| x.as_i64());
    run.audit_rows = field("audit_rows").and_then(|x| u64::try_from(x).ok());
    run.change_events = field("change_events").and_then(|x| u64::try_from(x).ok());
    run.head_revision = field("head_revision");
    run.json_report = Some(v);
}

/// Phases from the stderr lines: a new phase starts at each line whose text, with the
/// `N/M` counts cut off, differs from the previous one's; the last runs to the exit.
fn phases(lines: &[StderrLine], wall_secs: f64) -> Vec<Phase> {
    let mut out: Vec<Phase> = Vec::new();
    for l in lines {
        let what = match l.line.rsplit_once(": ") {
            Some((head, tail))
                if tail.contains('/') && tail.bytes().any(|b| b.is_ascii_digit()) =>
            {
                head.to_owned()
            }
            _ => l.line.clone(),
        };
        if out.last().is_some_and(|p| p.what == what) {
            continue;
        }
        if let Some(prev) = out.last_mut() {
            prev.secs = l.at_secs - prev.from_secs;
        }
        out.push(Phase {
            what,
            from_secs: l.at_secs,
            secs: 0.0,
        });
    }
    if let Some(prev) = out.last_mut() {
        prev.secs = wall_secs - prev.from_secs;
    }
    out
}

/// What the KV watcher saw: every sample from its start.
struct Watched {
    /// The `applying commit` line, if the importer printed one.
    commit_line: Option<Instant>,
    started: Instant,
    samples: Vec<(Instant, u64, i64)>,
    timed_out: bool,
    expected: u64,
}

impl Watched {
    fn summary(&self, exited: Instant, head: i64) -> Propagation {
        // The first sample with everything there: it may come before the importer's exit
        // (when the head revision became known).
        let complete = self
            .samples
            .iter()
            .find(|s| s.2 >= head && s.1 == self.expected)
            .map(|s| s.0);
        let from = |t: Instant| t.saturating_duration_since(self.started).as_secs_f64();
        let at_exit = self
            .samples
            .iter()
            .take_while(|s| s.0 <= exited)
            .last()
            .map_or(0, |s| s.1);
        let mut samples = Vec::new();
        let mut next = 0.0;
        for (i, &(t, tokens, revision)) in self.samples.iter().enumerate() {
            let at_secs = from(t);
            if at_secs >= next || i + 1 == self.samples.len() {
                samples.push(KvSample {
                    at_secs,
                    tokens,
                    revision,
                });
                next = at_secs.floor() + 1.0;
            }
        }
        let last = self.samples.last().copied();
        Propagation {
            secs: complete.map(|c| c.saturating_duration_since(exited).as_secs_f64()),
            secs_from_commit_line: self
                .commit_line
                .zip(complete)
                .map(|(l, c)| c.saturating_duration_since(l).as_secs_f64()),
            commit_line_to_exit_secs: self
                .commit_line
                .map(|l| exited.saturating_duration_since(l).as_secs_f64()),
            timed_out: self.timed_out,
            tokens_at_exit: at_exit,
            tokens_at_end: last.map_or(0, |s| s.1),
            revision_at_end: last.map_or(0, |s| s.2),
            head_revision: head,
            first_token_secs: self.samples.iter().find(|s| s.1 > 0).map(|s| from(s.0)),
            samples,
        }
    }
}

/// Reads the KV every `poll` from the importer's `applying commit` line (or its exit) until
/// it holds the head revision and the tokens the plan created (both sent once the importer
/// reported them), at
/// most `propagation_timeout` after that; ends early when the importer failed (the head's
/// sender is dropped unsent).
async fn watch_kv(
    mut kv: KvReader,
    commit_line: oneshot::Receiver<Instant>,
    mut head: watch::Receiver<Option<(i64, u64)>>,
    opts: Options,
) -> Result<Watched, BenchError> {
    let commit_line = commit_line.await.ok();
    let started = commit_line.unwrap_or_else(Instant::now);
    let mut samples = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut timed_out = false;
    let mut expected = 0;
    loop {
        let revision = kv.revision().await?.unwrap_or(0);
        let tokens = kv.tokens().await?;
        let now = Instant::now();
        samples.push((now, tokens, revision));
        let known = *head.borrow_and_update();
        match known {
            Some((h, want)) => {
                expected = want;
                if revision >= h && tokens == expected {
                    break;
                }
                let d = *deadline.get_or_insert(now + opts.propagation_timeout);
                if now >= d {
                    timed_out = true;
                    break;
                }
            }
            None if head.has_changed().is_err() => break,
            None => {}
        }
        tokio::time::sleep(opts.poll).await;
    }
    kv.close().await;
    Ok(Watched {
        commit_line,
        started,
        samples,
        timed_out,
        expected,
    })
}

/// A read-only connection to the local KV file.
struct KvReader {
    conn: sqlx::SqliteConnection,
}

impl KvReader {
    async fn open(path: &Path) -> Result<Self, BenchError> {
        if !path.exists() {
            return Err(BenchError::Setup(format!(
                "{} not there yet",
                path.display()
            )));
        }
        let o = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true);
        Ok(Self {
            conn: sqlx::SqliteConnection::connect_with(&o).await?,
        })
    }

    /// `v1/token/` keys.
    async fn tokens(&mut self) -> Result<u64, BenchError> {
        // Every key with the prefix sorts at or after it and before the prefix with its last
        // byte ('/') raised by one ('0').
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM kv WHERE key >= $1 AND key < $2")
            .bind(rec::TOKEN_PREFIX)
            .bind("v1/token0")
            .fetch_one(&mut self.conn)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The `v1/meta/revision` checkpoint.
    async fn revision(&mut self) -> Result<Option<i64>, BenchError> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM kv WHERE key = $1")
            .bind(rec::REVISION_KEY)
            .fetch_optional(&mut self.conn)
            .await?;
        Ok(row.and_then(|(b,)| keygate_kv_sync::plan::read_checkpoint(&b)))
    }

    async fn close(self) {
        let _ = self.conn.close().await;
    }
}

/// Row counts in Keygate's database.
async fn count_rows(
    backend: Backend,
    data_dir: &Path,
    keygate_url: Option<&str>,
) -> Result<BTreeMap<String, i64>, BenchError> {
    const QUERIES: &[(&str, &str)] = &[
        ("tokens", "SELECT count(*) FROM tokens"),
        (
            "tokens:legacy",
            "SELECT count(*) FROM tokens WHERE legacy_prefix <> ''",
        ),
        ("token_scopes", "SELECT count(*) FROM token_scopes"),
        ("routes", "SELECT count(*) FROM routes"),
        ("teams", "SELECT count(*) FROM teams"),
        (
            "usage_rollup_minute",
            "SELECT count(*) FROM usage_rollup_minute",
        ),
        (
            "usage_rollup_hour",
            "SELECT count(*) FROM usage_rollup_hour",
        ),
        ("usage_rollup_day", "SELECT count(*) FROM usage_rollup_day"),
        ("usage_token_day", "SELECT count(*) FROM usage_token_day"),
        ("audit_events", "SELECT count(*) FROM audit_events"),
        ("change_events", "SELECT count(*) FROM change_events"),
        ("import_map", "SELECT count(*) FROM import_map"),
    ];
    let mut out = BTreeMap::new();
    match (backend, keygate_url) {
        (Backend::Postgres, Some(url)) => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            for (name, sql) in QUERIES {
                let (n,): (i64,) = sqlx::query_as(AssertSqlSafe(*sql))
                    .fetch_one(&mut conn)
                    .await?;
                out.insert((*name).to_owned(), n);
            }
            let _ = conn.close().await;
        }
        _ => {
            let o = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(data_dir.join("keygate.db"))
                .read_only(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&o).await?;
            for (name, sql) in QUERIES {
                let (n,): (i64,) = sqlx::query_as(AssertSqlSafe(*sql))
                    .fetch_one(&mut conn)
                    .await?;
                out.insert((*name).to_owned(), n);
            }
            let _ = conn.close().await;
        }
    }
    Ok(out)
}

/// The real `keygate-control-plane` binary on a data directory (and a database).
struct ControlPlane {
    child: tokio::process::Child,
    pid: u32,
    url: String,
}

impl ControlPlane {
    /// Starts `bin` on `127.0.0.1:0` and waits (at most 60 s: migrations run first) for the
    /// line saying where it listens.
    async fn spawn(
        bin: &Path,
        data_dir: &Path,
        database_url: Option<&str>,
        log: &Path,
    ) -> Result<Self, BenchError> {
        let log = std::fs::File::create(log)
            .map_err(|e| BenchError::Setup(format!("{}: {e}", log.display())))?;
        let mut cmd = tokio::process::Command::new(bin);
        cmd.env("KEYGATE_DATA_DIR", data_dir)
            .env("KEYGATE_LISTEN", "127.0.0.1:0")
            .env("KEYGATE_EMBEDDED_SERVICE_KEYS", "true")
            .env("KEYGATE_LOG", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("KEYGATE_MASTER_KEY")
            .env_remove("KEYGATE_EDGE_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        if let Some(url) = database_url {
            cmd.env("DATABASE_URL", url);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", bin.display())))?;
        let pid = child.id().unwrap_or(0);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Setup("no stdout from the control plane".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let mut plane = Self {
            child,
            pid,
            url: String::new(),
        };
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                // "keygate control plane listening on http://127.0.0.1:PORT (gRPC, grpc-web)"
                if let Some(rest) = line.strip_prefix("keygate control plane listening on ") {
                    return rest.split_whitespace().next().map(str::to_owned);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(url)) => plane.url = url,
            _ => {
                plane.stop().await;
                return Err(BenchError::Setup(
                    "the control plane did not say where it listens within 60 s (see its log)"
                        .into(),
                ));
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(plane)
    }

    async fn stop(&mut self) {
        crate::process::terminate(&mut self.child, Duration::from_secs(10)).await;
    }
}

/// `VmHWM` of a process, KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// PIDs of a process's children.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The result as a table.
pub fn table(r: &ImportResult, opts: &Options) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let i = &r.import;
    let mib = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0));
    let _ = writeln!(
        s,
        "\n== import from the old system - {} ({} tokens, {} routes, {} usage rows) ==",
        r.backend, opts.tokens, opts.routes, opts.usage_rows
    );
    let _ = writeln!(
        s,
        "old database built in {:.1} s (not part of the import)",
        r.old_db_build_secs
    );
    let _ = writeln!(
        s,
        "import: {:.1} s wall, peak RSS {} ({}), exit {:?}",
        i.wall_secs,
        mib(i.peak_rss_kib),
        i.peak_rss_method,
        i.exit_code
    );
    for p in &i.phases {
        let _ = writeln!(
            s,
            "  {:>7.1} s  +{:>6.1} s  {}",
            p.from_secs, p.secs, p.what
        );
    }
    let _ = writeln!(
        s,
        "  {:<16} {:>8} {:>8} {:>8} {:>10} {:>8}",
        "", "create", "update", "delete", "unchanged", "skipped"
    );
    for (kind, c) in &i.counts {
        let _ = writeln!(
            s,
            "  {kind:<16} {:>8} {:>8} {:>8} {:>10} {:>8}",
            c[0], c[1], c[2], c[3], c[4]
        );
    }
    let _ = writeln!(
        s,
        "  problems: {:?}; usage rows read {:?}; {:?} audit rows, {:?} change events, head revision {:?}",
        i.problems, i.usage_rows_read, i.audit_rows, i.change_events, i.head_revision
    );
    let p = &r.propagation;
    let secs = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} s"));
    let _ = writeln!(
        s,
        "propagation to the local KV: {} after the importer's exit{}, {} after its `applying commit` line \
         (which came {} before the exit); {} tokens in the KV at the exit",
        if p.timed_out {
            "TIMED OUT".into()
        } else {
            secs(p.secs)
        },
        if p.secs == Some(0.0) {
            " (already there)"
        } else {
            ""
        },
        secs(p.secs_from_commit_line),
        secs(p.commit_line_to_exit_secs),
        p.tokens_at_exit
    );
    let _ = writeln!(
        s,
        "  first token in the KV after {}; at the end {} tokens, revision {} of {}",
        secs(p.first_token_secs),
        p.tokens_at_end,
        p.revision_at_end,
        p.head_revision
    );
    let _ = writeln!(
        s,
        "control plane peak RSS {}, kv-sync peak RSS {}",
        mib(r.control_plane_peak_rss_kib),
        mib(r.kv_sync_peak_rss_kib)
    );
    let _ = writeln!(s, "Keygate rows: {:?}", r.keygate_rows);
    let _ = writeln!(
        s,
        "imported tokens = {} (of {} old tokens): {}",
        r.tokens_expected,
        opts.tokens,
        if r.tokens_ok { "OK" } else { "FAIL" }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(at_secs: f64, line: &str) -> StderrLine {
        StderrLine {
            at_secs,
            line: line.into(),
        }
    }

    #[test]
    fn phases_from_progress_lines() {
        let p = phases(
            &[
                line(0.1, "import: reading the old database"),
                line(2.0, "import: applying tokens: 0/10"),
                line(3.0, "import: applying tokens: 10/10"),
                line(5.0, "import: applying commit: 0/1"),
            ],
            6.0,
        );
        let got: Vec<(&str, f64)> = p.iter().map(|p| (p.what.as_str(), p.secs)).collect();
        assert_eq!(
            got,
            vec![
                ("import: reading the old database", 1.9),
                ("import: applying tokens", 3.0),
                ("import: applying commit", 1.0),
            ]
        );
    }

    #[test]
    fn parses_the_text_output() {
        let out = "PLAN\n                   create   update   delete  unchanged  skipped\n  \
                   routes                3        0        0          0        1\n  \
                   tokens               10        0        0          0        0\n  \
                   usage log rows       50        0        0          0        0\n\nPROBLEMS (2)\n  \
                   missing_secret       routes/4               x  [resolved: skip]\n  \
                   path_conflict        routes/10              y  [resolved: accept]\n\n\
                   applied run imp_1: 14 audit rows, 13 change events (revision 20). kv-sync pushes.\n";
        let mut run = ImportRun {
            command: String::new(),
            exit_code: Some(0),
            wall_secs: 1.0,
            peak_rss_kib: None,
            peak_rss_method: String::new(),
            counts: BTreeMap::new(),
            problems: BTreeMap::new(),
            usage_rows_read: None,
            audit_rows: None,
            change_events: None,
            head_revision: None,
            phases: vec![],
            stderr: vec![],
            stderr_lines_dropped: 0,
            json_report: None,
        };
        parse_text(out, &mut run);
        assert_eq!(run.counts.get("tokens"), Some(&[10, 0, 0, 0, 0]));
        assert_eq!(run.counts.get("routes"), Some(&[3, 0, 0, 0, 1]));
        assert_eq!(run.usage_rows_read, Some(50));
        assert_eq!(run.problems.get("missing_secret"), Some(&1));
        assert_eq!(run.problems.get("path_conflict"), Some(&1));
        assert_eq!(run.audit_rows, Some(14));
        assert_eq!(run.change_events, Some(13));
        assert_eq!(run.head_revision, Some(20));
    }
}
