/**
 * How healthy the parts of the system look (pure; unit-tested): kv-sync followers from
 * GetSyncStatus, gateways from ListGateways. Thresholds are deliberately plain; the server's
 * alert rules (kv-sync lag, silent or dropping gateways) are where they are configured.
 */
import type { FollowerStatus } from "../../gen/keygate/v1/sync_pb";
import type { DatabaseStatus } from "../../gen/keygate/v1/system_pb";
import type { Gateway } from "../../gen/keygate/v1/usage_pb";
import { tsToDate } from "../../lib/format";

export type Level = "ok" | "warn" | "bad" | "idle";

export interface Assessment {
  level: Level;
  /** Short reason ("lag 120 revisions", "no report for 4 min"); empty when fine. */
  reason: string;
}

/** A follower reports every few seconds while it follows the feed. */
export const FOLLOWER_STALE_SECONDS = 60;
export const FOLLOWER_DOWN_SECONDS = 300;
export const FOLLOWER_LAG_WARN = 100;
/** Gateways report only when they have answered requests: a quiet one may just be idle. */
export const GATEWAY_QUIET_SECONDS = 300;

export function ageSeconds(ts: Parameters<typeof tsToDate>[0], now: Date): number | undefined {
  const d = tsToDate(ts);
  return d ? Math.max(0, (now.getTime() - d.getTime()) / 1000) : undefined;
}

export function duration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

export function assessFollower(f: FollowerStatus, now: Date): Assessment {
  if (f.lastError) return { level: "bad", reason: f.lastError };
  const age = ageSeconds(f.reportedAt, now);
  if (age === undefined) return { level: "warn", reason: "never reported" };
  if (age > FOLLOWER_DOWN_SECONDS) return { level: "bad", reason: `no report for ${duration(age)}` };
  if (age > FOLLOWER_STALE_SECONDS) return { level: "warn", reason: `no report for ${duration(age)}` };
  if (f.resyncRequested) return { level: "warn", reason: "resync requested" };
  if (f.lagRevisions > BigInt(FOLLOWER_LAG_WARN)) return { level: "warn", reason: `${f.lagRevisions} revisions behind` };
  return { level: "ok", reason: "" };
}

export function assessGateway(g: Gateway, now: Date): Assessment {
  const dropped = g.eventsDroppedLastHour + g.rollupsDroppedLastHour;
  if (g.rollupsDroppedLastHour > 0n) return { level: "bad", reason: `${g.rollupsDroppedLastHour} requests' counts dropped in the last hour` };
  if (dropped > 0n) return { level: "warn", reason: `${g.eventsDroppedLastHour} raw events dropped in the last hour` };
  const age = ageSeconds(g.lastSeenAt, now);
  if (age === undefined) return { level: "idle", reason: "never reported" };
  if (age > GATEWAY_QUIET_SECONDS) return { level: "idle", reason: `quiet for ${duration(age)} (idle, or down)` };
  return { level: "ok", reason: "" };
}

/** A database ping above this needs attention (SQLite answers in microseconds, a nearby
 * PostgreSQL in about a millisecond). */
export const DB_SLOW_MICROS = 50_000;

export function assessDatabase(d: DatabaseStatus): Assessment {
  if (!d.reachable) return { level: "bad", reason: d.error || "does not answer" };
  if (d.pingMicros > BigInt(DB_SLOW_MICROS)) return { level: "warn", reason: `slow: ping ${Math.round(Number(d.pingMicros) / 1000)} ms` };
  return { level: "ok", reason: "" };
}

const RANK: Record<Level, number> = { ok: 0, idle: 1, warn: 2, bad: 3 };

/** The worst of several levels ("ok" for none). */
export function worst(levels: Level[]): Level {
  return levels.reduce<Level>((w, l) => (RANK[l] > RANK[w] ? l : w), "ok");
}

export const LEVEL_COLOR: Record<Level, string> = { ok: "teal", warn: "yellow", bad: "red", idle: "gray" };
export const LEVEL_LABEL: Record<Level, string> = { ok: "Healthy", warn: "Attention", bad: "Failing", idle: "Quiet" };
