/**
 * URL state of the usage pages (overview, live tail, token and route detail), pure and
 * unit-tested. The router imports it: it must not pull generated code into the entry chunk
 * (the requests built from this state are in `query.ts`).
 */
import { compact, oneOf, str } from "../../lib/search";
import { RANGE_KEYS, parseIso, type RangeSearch } from "./range";

export const STATUS_FILTERS = ["2xx", "3xx", "4xx", "5xx", "errors", "1xx"] as const;
export type StatusFilter = (typeof STATUS_FILTERS)[number];

export const STATUS_FILTER_LABEL: Record<StatusFilter, string> = {
  "1xx": "1xx",
  "2xx": "2xx success",
  "3xx": "3xx redirect",
  "4xx": "4xx client error",
  "5xx": "5xx server error",
  errors: "Errors (≥ 400)",
};

export const TOP_BY = ["token", "route", "team", "error", "ip"] as const;
export type TopBy = (typeof TOP_BY)[number];
export const TOP_ORDERS = ["calls", "errors"] as const;
export type TopOrderName = (typeof TOP_ORDERS)[number];

export interface UsageFilters {
  team?: string;
  route?: string;
  token?: string;
  gateway?: string;
  status?: StatusFilter;
}

export interface UsageSearch extends RangeSearch, UsageFilters {
  by?: TopBy;
  order?: TopOrderName;
}

export interface DetailSearch extends RangeSearch {
  /** Route detail: only this team's calls. */
  team?: string;
}

export interface TailSearch {
  team?: string;
  route?: string;
  token?: string;
  /** A class (`4xx`, `errors`: filtered here) or an exact status (`404`: filtered by the server). */
  status?: string;
}

function rangeSearch(s: Record<string, unknown>): RangeSearch {
  const range = oneOf(s.range, RANGE_KEYS);
  if (range !== "custom") return compact({ range });
  const from = str(s.from, 40);
  const to = str(s.to, 40);
  // A custom range without a usable start is the default range.
  if (!parseIso(from)) return {};
  return compact({ range, from, to: parseIso(to) ? to : undefined });
}

/**
 * Filters from the URL. The server counts gateways per status class and range only, so a
 * gateway filter together with a team, route or token is dropped (the narrower filters win).
 */
export function filtersFrom(s: Record<string, unknown>): UsageFilters {
  const team = str(s.team, 40);
  const route = str(s.route, 100);
  const token = str(s.token, 64);
  const gateway = team || route || token ? undefined : str(s.gateway, 100);
  return compact({ team, route, token, gateway, status: oneOf(s.status, STATUS_FILTERS) });
}

export function validateUsageSearch(s: Record<string, unknown>): UsageSearch {
  return compact({ ...rangeSearch(s), ...filtersFrom(s), by: oneOf(s.by, TOP_BY), order: oneOf(s.order, TOP_ORDERS) });
}

export function validateDetailSearch(s: Record<string, unknown>): DetailSearch {
  return compact({ ...rangeSearch(s), team: str(s.team, 40) });
}

export function validateTailSearch(s: Record<string, unknown>): TailSearch {
  const status = str(s.status, 6);
  const ok = status && ((STATUS_FILTERS as readonly string[]).includes(status) || /^[1-5]\d\d$/.test(status));
  return compact({ team: str(s.team, 40), route: str(s.route, 100), token: str(s.token, 64), status: ok ? status : undefined });
}

export function hasFilters(f: UsageFilters): boolean {
  return !!(f.team || f.route || f.token || f.gateway || f.status);
}

/** Whether a tail event's status passes the tail's status filter (client-side for classes). */
export function tailStatusMatches(filter: string | undefined, status: number): boolean {
  if (!filter) return true;
  if (filter === "errors") return status >= 400;
  if (/^[1-5]xx$/.test(filter)) return Math.floor(status / 100) === Number(filter[0]);
  return String(status) === filter;
}

/** The server-side exact status of a tail filter (0: any). */
export function tailExactStatus(filter: string | undefined): number {
  return filter && /^[1-5]\d\d$/.test(filter) ? Number(filter) : 0;
}
