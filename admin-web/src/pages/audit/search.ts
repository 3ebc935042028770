/** The audit log's URL state (filters, time range, page) and its AuditFilter (pure). */
import { create } from "@bufbuild/protobuf";
import { AuditFilterSchema, type AuditFilter } from "../../gen/keygate/v1/audit_pb";
import { dateToTs } from "../../lib/format";
import { compact, int, oneOf, str } from "../../lib/search";

/** Relative ranges ending now (a link keeps meaning "the last 24 hours"). */
export const RANGES = ["1h", "24h", "7d", "30d", "90d"] as const;
export type AuditRange = (typeof RANGES)[number];

const RANGE_MS: Record<AuditRange, number> = {
  "1h": 3_600_000,
  "24h": 86_400_000,
  "7d": 7 * 86_400_000,
  "30d": 30 * 86_400_000,
  "90d": 90 * 86_400_000,
};

export const RANGE_LABEL: Record<AuditRange, string> = {
  "1h": "Last hour",
  "24h": "Last 24 hours",
  "7d": "Last 7 days",
  "30d": "Last 30 days",
  "90d": "Last 90 days",
};

export interface AuditSearch {
  /** `actor_id`: `usr_...`, `sa_...`, a key id. */
  actor?: string;
  /** Exact `<entity>.<verb>`, e.g. `token.create`. */
  action?: string;
  entity_type?: string;
  entity_id?: string;
  team?: string;
  range?: AuditRange;
  /** Absolute range, ISO 8601 (UTC): from inclusive, to exclusive. Ignored when `range` is set. */
  from?: string;
  to?: string;
  size?: number;
  page?: number;
  cursor?: string;
}

/** An ISO timestamp from the URL, normalised; anything unparsable is dropped. */
export function isoParam(v: unknown): string | undefined {
  const s = str(v, 40);
  if (!s || !/^\d{4}-\d{2}-\d{2}(T|$)/.test(s)) return undefined;
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : undefined;
}

export function validateAuditSearch(s: Record<string, unknown>): AuditSearch {
  const range = oneOf(s.range, RANGES);
  return compact({
    actor: str(s.actor, 200),
    action: str(s.action, 200),
    entity_type: str(s.entity_type, 200),
    entity_id: str(s.entity_id, 200),
    team: str(s.team, 40),
    range,
    from: range ? undefined : isoParam(s.from),
    to: range ? undefined : isoParam(s.to),
    size: int(s.size, 1, 500),
    page: int(s.page, 1, 1_000_000),
    cursor: str(s.cursor, 2000),
  });
}

/** The time window the search means at `now`. */
export function timeWindow(s: AuditSearch, now: Date): { start?: Date; end?: Date } {
  if (s.range) return { start: new Date(now.getTime() - RANGE_MS[s.range]) };
  return { start: s.from ? new Date(s.from) : undefined, end: s.to ? new Date(s.to) : undefined };
}

export function toAuditFilter(s: AuditSearch, now: Date): AuditFilter {
  const w = timeWindow(s, now);
  return create(AuditFilterSchema, {
    actorId: s.actor ?? "",
    action: s.action ?? "",
    entityType: s.entity_type ?? "",
    entityId: s.entity_id ?? "",
    teamId: s.team ?? "",
    startTime: w.start ? dateToTs(w.start) : undefined,
    endTime: w.end ? dateToTs(w.end) : undefined,
  });
}

export const DEFAULT_PAGE_SIZE = 50;

/** The search without paging: what identifies "the same list". */
export function filterKey(s: AuditSearch): string {
  const { page: _p, cursor: _c, ...rest } = s;
  return JSON.stringify(rest);
}

export function hasFilters(s: AuditSearch): boolean {
  return !!(s.actor || s.action || s.entity_type || s.entity_id || s.team || s.range || s.from || s.to);
}

/** `<input type="datetime-local">` value (local time, minutes) for an ISO time. */
export function toLocalInput(iso: string | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** ISO (UTC) for a `datetime-local` value read as local time; undefined when empty or invalid. */
export function fromLocalInput(v: string): string | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(v)) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** Actions the server writes (for suggestions; the filter itself takes any exact action). */
export const KNOWN_ACTIONS = [
  "token.create",
  "token.update",
  "token.rotate",
  "token.revoke",
  "route.create",
  "route.update",
  "route.delete",
  "team.create",
  "team.update",
  "team.delete",
  "team.claim",
  "member.add",
  "member.update_role",
  "member.remove",
  "user.setup",
  "user.create",
  "user.accept_invitation",
  "user.update",
  "user.disable",
  "user.enable",
  "user.change_password",
  "invitation.create",
  "invitation.accept",
  "invitation.revoke",
  "service_account.create",
  "service_account.delete",
  "management_key.create",
  "management_key.update",
  "management_key.rotate",
  "management_key.revoke",
  "auth.sign_in",
  "auth.sign_in_failed",
  "auth.sign_out",
  "authz.denied",
  "sync.resync",
  "alert_rule.create",
  "alert_rule.update",
  "alert_rule.delete",
  "alert_rule.test",
  "alert.delivered",
  "alert.delivery_failed",
];

export const KNOWN_ENTITY_TYPES = [
  "token",
  "route",
  "team",
  "member",
  "user",
  "session",
  "invitation",
  "service_account",
  "management_key",
  "alert_rule",
  "alert_delivery",
];
