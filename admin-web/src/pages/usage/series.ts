/**
 * Chart rows from analytics answers (pure; unit-tested): traffic by status class or by
 * outcome, latency percentiles per step, the status mix, and one-sentence summaries that
 * serve as the charts' text alternative.
 */
import type { StatusCount, UsagePoint, UsageStats } from "../../gen/keygate/v1/usage_pb";
import { tsToDate } from "../../lib/format";
import { count, percent } from "../../lib/format";
import { latency, latencyMs, statusClassOf, type StatusClassName } from "./format";
import { axisLabel, fillSeries } from "./range";

export interface Span {
  start: Date;
  end: Date;
  stepSeconds: number;
}

export type ChartClass = "2xx" | "3xx" | "4xx" | "5xx";

/** One step of a traffic chart: time, label, and counts keyed by series name. */
export interface TrafficRow {
  t: number;
  label: string;
  calls: number;
  errors: number;
  [series: string]: number | string;
}

function byTime(points: UsagePoint[]): { t: number; v: UsageStats | undefined }[] {
  return points.map((p) => ({ t: tsToDate(p.time)?.getTime() ?? 0, v: p.stats }));
}

const num = (v: bigint | undefined) => Number(v ?? 0n);

/**
 * Traffic rows: `ok` and `errors` from the main series, plus one count per class from the
 * class answers (each a series of the same range and step) and `other` for what no class
 * answer covers (1xx, or classes not asked for).
 */
export function trafficRows(main: UsagePoint[], span: Span, classes: Partial<Record<ChartClass, UsagePoint[]>> = {}): TrafficRow[] {
  const stepMs = span.stepSeconds * 1000;
  const spanMs = span.end.getTime() - span.start.getTime();
  const grid = fillSeries(byTime(main), span.start.getTime(), span.end.getTime(), stepMs, () => undefined);
  const classMaps = Object.entries(classes).map(
    ([c, pts]) => [c, new Map(byTime(pts ?? []).map((p) => [p.t, num(p.v?.calls)]))] as const,
  );
  return grid.map(({ t, v }) => {
    const calls = num(v?.calls);
    const errors = num(v?.errors);
    const row: TrafficRow = { t, label: axisLabel(new Date(t), span.stepSeconds, spanMs), calls, errors, ok: calls - errors };
    if (classMaps.length) {
      let covered = 0;
      for (const [c, m] of classMaps) {
        const n = m.get(t) ?? 0;
        row[c] = n;
        covered += n;
      }
      row.other = Math.max(0, calls - covered);
    }
    return row;
  });
}

export interface LatencyRow {
  t: number;
  label: string;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** Latency percentiles (ms) per step; steps without calls are gaps (null), not zeros. */
export function latencyRows(main: UsagePoint[], span: Span): LatencyRow[] {
  const spanMs = span.end.getTime() - span.start.getTime();
  return fillSeries(byTime(main), span.start.getTime(), span.end.getTime(), span.stepSeconds * 1000, () => undefined).map(({ t, v }) => {
    const has = num(v?.calls) > 0;
    return {
      t,
      label: axisLabel(new Date(t), span.stepSeconds, spanMs),
      p50: has ? latencyMs(v!.latencyP50Us) : null,
      p95: has ? latencyMs(v!.latencyP95Us) : null,
      p99: has ? latencyMs(v!.latencyP99Us) : null,
    };
  });
}

export interface MixEntry {
  key: string;
  label: string;
  calls: number;
  share: number;
  color: string;
}

const CLASS_LABEL: Record<StatusClassName | "other", string> = {
  "1xx": "1xx informational",
  "2xx": "2xx success",
  "3xx": "3xx redirect",
  "4xx": "4xx client error",
  "5xx": "5xx server error",
  other: "Other",
};

export const CLASS_COLOR: Record<StatusClassName | "other", string> = {
  "1xx": "gray",
  "2xx": "teal",
  "3xx": "blue",
  "4xx": "orange",
  "5xx": "red",
  other: "gray",
};

/** The status mix by class from class totals (overview); entries without calls are left out. */
export function classMix(totals: Partial<Record<ChartClass, number>>, allCalls: number): MixEntry[] {
  const out: MixEntry[] = [];
  let covered = 0;
  for (const c of ["2xx", "3xx", "4xx", "5xx"] as const) {
    const n = totals[c];
    if (n === undefined) continue;
    covered += n;
    if (n > 0) out.push({ key: c, label: CLASS_LABEL[c], calls: n, share: allCalls ? n / allCalls : 0, color: CLASS_COLOR[c] });
  }
  const rest = allCalls - covered;
  if (rest > 0) out.push({ key: "other", label: "Other classes", calls: rest, share: rest / allCalls, color: "gray" });
  return out;
}

/** The status mix of a detail answer: each status, most calls first, with its class colour. */
export function statusMix(statuses: StatusCount[]): MixEntry[] {
  const total = statuses.reduce((s, x) => s + num(x.calls), 0);
  return [...statuses]
    .sort((a, b) => num(b.calls) - num(a.calls) || a.status - b.status)
    .map((s) => {
      const c = statusClassOf(s.status);
      return { key: String(s.status), label: String(s.status), calls: num(s.calls), share: total ? num(s.calls) / total : 0, color: c ? CLASS_COLOR[c] : "gray" };
    });
}

/** "1,234 calls, 12 errors (99.0% success); busiest 10:30 with 80 calls." */
export function trafficSummary(rows: TrafficRow[]): string {
  const calls = rows.reduce((s, r) => s + r.calls, 0);
  const errors = rows.reduce((s, r) => s + r.errors, 0);
  if (calls === 0) return "No calls in this range.";
  const busiest = rows.reduce((m, r) => (r.calls > m.calls ? r : m), rows[0]!);
  return `${count(calls)} calls, ${count(errors)} errors (${percent((calls - errors) / calls)} success) over ${rows.length} steps; busiest step ${busiest.label} with ${count(busiest.calls)} calls.`;
}

export function latencySummary(total: UsageStats | undefined): string {
  if (!total || total.calls === 0n) return "No calls in this range, so no latency.";
  return `Over the range: p50 ${latency(total.latencyP50Us)}, p95 ${latency(total.latencyP95Us)}, p99 ${latency(total.latencyP99Us)}; mean ${latency(total.latencyAvgUs)}, max ${latency(total.latencyMaxUs)}.`;
}
