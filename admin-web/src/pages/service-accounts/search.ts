/** The service accounts page's URL state and pure helpers (search, key state). */
import type { ManagementKey, ServiceAccount } from "../../gen/keygate/v1/service_account_pb";
import { ServiceAccountCapability } from "../../gen/keygate/v1/service_account_pb";
import { absoluteTime, daysUntil, tsToDate } from "../../lib/format";
import { compact, str } from "../../lib/search";

export interface ServiceAccountsSearch {
  /** Substring of name, description or id (the list is small and not paged: filtered here). */
  q?: string;
  team?: string;
  /** The account whose details and keys are open (`sa_...`). */
  open?: string;
}

export function validateServiceAccountsSearch(s: Record<string, unknown>): ServiceAccountsSearch {
  return compact({ q: str(s.q, 100), team: str(s.team, 40), open: str(s.open, 64) });
}

export function matchesQuery(sa: ServiceAccount, q: string | undefined): boolean {
  if (!q) return true;
  const needle = q.toLowerCase();
  return [sa.name, sa.description, sa.id].some((v) => v.toLowerCase().includes(needle));
}

export const CAPABILITY_LABEL: Record<ServiceAccountCapability, string> = {
  [ServiceAccountCapability.UNSPECIFIED]: "None",
  [ServiceAccountCapability.SYNC]: "Sync",
  [ServiceAccountCapability.GATEWAY]: "Gateway",
};

export const CAPABILITY_HINT: Record<ServiceAccountCapability, string> = {
  [ServiceAccountCapability.UNSPECIFIED]: "Only its team role.",
  [ServiceAccountCapability.SYNC]: "May follow the change feed (kv-sync).",
  [ServiceAccountCapability.GATEWAY]: "May report gateway usage.",
};

export interface KeyState {
  label: string;
  color: string;
  hint?: string;
  live: boolean;
}

/** Active / expiring (within 7 days) / replaced (rotation grace) / expired / revoked. */
export function keyState(k: ManagementKey, now: Date = new Date()): KeyState {
  if (k.revokedAt) return { label: "Revoked", color: "red", live: false };
  const exp = tsToDate(k.expiresAt);
  if (exp && exp.getTime() <= now.getTime()) return { label: "Expired", color: "gray", live: false };
  if (k.replacedById) return { label: "Replaced", color: "orange", hint: exp ? `Rotated; works until ${absoluteTime(exp)}` : "Rotated", live: true };
  if (exp && daysUntil(exp, now) < 7) return { label: "Expiring", color: "yellow", hint: `Expires ${absoluteTime(exp)}`, live: true };
  return { label: "Active", color: "teal", live: true };
}

/** Key lifetimes offered in the form. */
export const KEY_EXPIRY = [
  { value: "30", label: "30 days" },
  { value: "90", label: "90 days" },
  { value: "365", label: "1 year" },
  { value: "never", label: "Never" },
] as const;

export type KeyExpiry = (typeof KEY_EXPIRY)[number]["value"];

export function toKeyExpiry(v: KeyExpiry): { case: "expiresInDays"; value: number } | { case: "neverExpires"; value: true } {
  return v === "never" ? { case: "neverExpires", value: true } : { case: "expiresInDays", value: Number(v) };
}

/** Grace periods for rotating a key, in seconds (the server allows 0-2592000). */
export const ROTATE_GRACE = [
  { value: "0", label: "Revoke the old key now" },
  { value: "3600", label: "1 hour" },
  { value: "86400", label: "24 hours" },
  { value: "604800", label: "7 days" },
  { value: "2592000", label: "30 days" },
] as const;
