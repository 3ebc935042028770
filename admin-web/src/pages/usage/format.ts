/** Formatting of latencies, bytes, statuses and rates on the usage pages (pure; unit-tested). */
import { UsageTier } from "../../gen/keygate/v1/usage_pb";

/** The rollup tier an answer read, as in "read from the minute tier". */
export const TIER_LABEL: Record<UsageTier, string> = {
  [UsageTier.UNSPECIFIED]: "rollup",
  [UsageTier.MINUTE]: "minute",
  [UsageTier.HOUR]: "hour",
  [UsageTier.DAY]: "day",
};

/** Microseconds for people: "420 µs", "1.6 ms", "53 ms", "1.25 s"; "—" without data. */
export function latency(us: bigint | number | undefined, hasData = true): string {
  if (us === undefined || !hasData) return "—";
  const v = Number(us);
  if (!Number.isFinite(v) || v < 0) return "—";
  if (v < 1000) return `${Math.round(v)} µs`;
  const ms = v / 1000;
  if (ms < 10) return `${trim(ms.toFixed(1))} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${trim((ms / 1000).toFixed(2))} s`;
}

/** Latency in milliseconds as a chart value (numbers, not strings). */
export function latencyMs(us: bigint | number | undefined): number {
  return us === undefined ? 0 : Math.round(Number(us) / 10) / 100;
}

/** A chart axis/tooltip value in ms: "0.42 ms", "12 ms", "1.5 s". */
export function msLabel(ms: number): string {
  return latency(ms * 1000);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
export function bytes(n: bigint | number): string {
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${trim(v.toFixed(v < 10 ? 1 : 0))} ${UNITS[i]}`;
}

/** "1.50" -> "1.5", "2.00" -> "2". */
function trim(s: string): string {
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
}

export const STATUS_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;
export type StatusClassName = (typeof STATUS_CLASSES)[number];

/** 404 -> "4xx"; undefined outside 100-599. */
export function statusClassOf(status: number): StatusClassName | undefined {
  const c = Math.floor(status / 100);
  return c >= 1 && c <= 5 ? (`${c}xx` as StatusClassName) : undefined;
}

/** Mantine colour of a status or class: successes calm, client errors amber, server errors red. */
export function statusColor(s: number | StatusClassName): string {
  const c = typeof s === "number" ? statusClassOf(s) : s;
  switch (c) {
    case "2xx":
      return "teal";
    case "3xx":
      return "blue";
    case "4xx":
      return "orange";
    case "5xx":
      return "red";
    default:
      return "gray";
  }
}

/** A success rate's tone class (global.css): good at 99 %, warning at 95 %, else bad. */
export function rateTone(rate: number, calls: number | bigint): "kg-good" | "kg-warn" | "kg-bad" | undefined {
  if (Number(calls) === 0) return undefined;
  return rate >= 0.99 ? "kg-good" : rate >= 0.95 ? "kg-warn" : "kg-bad";
}
