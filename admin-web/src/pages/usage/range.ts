/**
 * Time ranges of the usage pages (pure; unit-tested): presets and custom ranges from the URL,
 * the series step (the same rule as the server's: a multiple of the finest tier still
 * holding the start, about 90 points at most), gap filling, and axis labels.
 */

export const PRESETS = ["1h", "24h", "7d", "30d"] as const;
export type Preset = (typeof PRESETS)[number];
export type RangeKey = Preset | "custom";
export const RANGE_KEYS: readonly RangeKey[] = [...PRESETS, "custom"];
export const DEFAULT_RANGE: Preset = "24h";

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

const PRESET_MS: Record<Preset, number> = { "1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY };
export const PRESET_LABEL: Record<RangeKey, string> = {
  "1h": "Last hour",
  "24h": "Last 24 hours",
  "7d": "Last 7 days",
  "30d": "Last 30 days",
  custom: "Custom range",
};

/** Longest range the server answers (400 days). */
export const MAX_RANGE_MS = 400 * DAY;

/** What the URL says about the range. */
export interface RangeSearch {
  range?: RangeKey;
  /** Custom range bounds, ISO 8601 (UTC), only with `range=custom`. */
  from?: string;
  to?: string;
}

export interface ResolvedRange {
  start: Date;
  end: Date;
  /** Series step, seconds (a multiple of 60). */
  stepSeconds: number;
  key: RangeKey;
  label: string;
  /** True when the range ends now (presets): worth refreshing. */
  live: boolean;
}

/** Parses an ISO time from the URL; undefined when it is not one. */
export function parseIso(v: string | undefined): Date | undefined {
  if (!v || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(v)) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** `2026-12-07T05:00Z`: the URL form of a custom bound (minutes, UTC). */
export function toIsoMinute(d: Date): string {
  return d.toISOString().slice(0, 16) + "Z";
}

/** The bucket (ms) of the finest rollup tier that still holds `start` at `now`: minutes
 * are kept 48 hours, hours 90 days, days 400 days. */
export function tierFloorMs(start: Date, now: Date): number {
  const age = now.getTime() - start.getTime();
  if (age <= 48 * HOUR) return MINUTE;
  if (age <= 90 * DAY) return HOUR;
  return DAY;
}

const STEPS = [MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 7 * DAY];
const MAX_AUTO_POINTS = 90;

/** The series step for `[start, end)`: the smallest nice step that is a multiple of the tier
 * bucket and gives at most 90 points (the server's own choice for step 0). */
export function chooseStepSeconds(start: Date, end: Date, now: Date): number {
  const floor = tierFloorMs(start, now);
  const span = Math.max(MINUTE, end.getTime() - start.getTime());
  const step = STEPS.find((s) => s % floor === 0 && Math.ceil(span / s) <= MAX_AUTO_POINTS) ?? 7 * DAY;
  return step / 1000;
}

/** The range the URL asks for at `now`; an unusable custom range falls back to the default. */
export function resolveRange(s: RangeSearch, now: Date): ResolvedRange {
  if (s.range === "custom") {
    const start = parseIso(s.from);
    const end = parseIso(s.to) ?? now;
    if (start && end > start && end.getTime() - start.getTime() <= MAX_RANGE_MS) {
      return {
        start,
        end,
        stepSeconds: chooseStepSeconds(start, end, now),
        key: "custom",
        label: `${shortDateTime(start)} – ${shortDateTime(end)}`,
        live: end.getTime() >= now.getTime() - MINUTE,
      };
    }
  }
  const key: Preset = s.range && s.range !== "custom" ? s.range : DEFAULT_RANGE;
  const start = new Date(now.getTime() - PRESET_MS[key]);
  return { start, end: now, stepSeconds: chooseStepSeconds(start, now, now), key, label: PRESET_LABEL[key], live: true };
}

/** Checks a custom range typed by a person; a message, or undefined when it is usable. */
export function customRangeProblem(start: Date | undefined, end: Date | undefined): string | undefined {
  if (!start) return "Enter a start time.";
  if (!end) return "Enter an end time.";
  if (end <= start) return "The end must be after the start.";
  if (end.getTime() - start.getTime() > MAX_RANGE_MS) return "A range can span at most 400 days.";
  return undefined;
}

/** Value of an `<input type="datetime-local">` (local time) for `d`, and back. */
export function toLocalInput(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromLocalInput(v: string): Date | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(v);
  if (!m) return undefined;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

// ---------------------------------------------------------------- series

/**
 * Puts `points` (each with a time in ms) on the grid of `[start, end)`: every multiple of
 * `stepMs` (from the epoch, as the server buckets) from the one holding `start`. Missing
 * steps get `empty(t)`; points off the grid are dropped. The server already answers every
 * step; this keeps charts honest when several answers are merged by time.
 */
export function fillSeries<P>(points: { t: number; v: P }[], start: number, end: number, stepMs: number, empty: (t: number) => P): { t: number; v: P }[] {
  if (stepMs <= 0 || end <= start) return [];
  const byTime = new Map(points.map((p) => [p.t, p.v]));
  const out: { t: number; v: P }[] = [];
  for (let t = Math.floor(start / stepMs) * stepMs; t < end && out.length < 5000; t += stepMs) {
    out.push({ t, v: byTime.has(t) ? byTime.get(t)! : empty(t) });
  }
  return out;
}

/** An x-axis label for a point at `t` in a series of `stepSeconds` over `spanMs` (local time). */
export function axisLabel(t: Date, stepSeconds: number, spanMs: number): string {
  if (stepSeconds >= 86_400) return t.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  if (spanMs <= DAY) return t.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  return `${t.toLocaleDateString(undefined, { month: "short", day: "numeric" })} ${t.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })}`;
}

function shortDateTime(d: Date): string {
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** "30 min", "3 h", "1 day": a step for people. */
export function stepLabel(stepSeconds: number): string {
  if (stepSeconds % 86_400 === 0) return stepSeconds === 86_400 ? "1 day" : `${stepSeconds / 86_400} days`;
  if (stepSeconds % 3600 === 0) return `${stepSeconds / 3600} h`;
  return `${Math.round(stepSeconds / 60)} min`;
}
