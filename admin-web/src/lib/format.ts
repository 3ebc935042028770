/** Formatting of times, counts and rates for tables and cards (pure; unit-tested). */
import type { Timestamp } from "@bufbuild/protobuf/wkt";

export function tsToDate(ts: Timestamp | undefined): Date | undefined {
  if (!ts) return undefined;
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6));
}

export function dateToTs(d: Date): Timestamp {
  const ms = d.getTime();
  return { $typeName: "google.protobuf.Timestamp", seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}

const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
];

const rtf = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

/** "3 hours ago", "in 5 days", "just now". */
export function relativeTime(d: Date, now: Date = new Date()): string {
  const diff = (d.getTime() - now.getTime()) / 1000;
  const abs = Math.abs(diff);
  if (abs < 45) return "just now";
  for (const [unit, secs] of UNITS) {
    if (abs >= secs) return rtf.format(Math.round(diff / secs), unit);
  }
  return rtf.format(Math.round(diff / 60), "minute");
}

/** `2025-01-31 14:05 UTC`-style absolute time in the browser's zone. */
export function absoluteTime(d: Date): string {
  return absoluteFormat.format(d);
}
// One formatter: `toLocaleString` with options builds a new one per call (tables call this for
// every cell).
const absoluteFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

const nf = new Intl.NumberFormat("en");
export function count(n: number | bigint): string {
  return nf.format(n);
}

const compactFormat = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
/** 1234 -> "1.2k", 2500000 -> "2.5M". */
export function compactCount(n: number | bigint): string {
  const v = Number(n);
  if (Math.abs(v) < 1000) return String(v);
  return compactFormat.format(v);
}

/** A 0..1 ratio (or 0..100 when `isPercent`) as "99.5%"; "—" when there is no data. */
export function percent(ratio: number, hasData = true): string {
  if (!hasData || !Number.isFinite(ratio)) return "—";
  const p = ratio * 100;
  const digits = p === 100 || p === 0 ? 0 : p >= 99 ? 2 : 1;
  return `${p.toFixed(digits)}%`;
}

/** Days from now until `d` (negative in the past), rounded towards zero. */
export function daysUntil(d: Date, now: Date = new Date()): number {
  return Math.trunc((d.getTime() - now.getTime()) / 86_400_000);
}
