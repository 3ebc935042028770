/**
 * URL state of the usage pages (overview, live tail, token and route detail) and the
 * analytics requests built from it (pure; unit-tested).
 */
import { create } from "@bufbuild/protobuf";
import { StatusClass, TopDimension, TopOrder, UsageQuerySchema, type UsageQuery } from "../../gen/keygate/v1/usage_pb";
import { dateToTs } from "../../lib/format";
import { compact, oneOf, str } from "../../lib/search";
import { RANGE_KEYS, parseIso, type RangeSearch, type ResolvedRange } from "./range";

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

const CLASS: Record<StatusFilter, StatusClass> = {
  "1xx": StatusClass.STATUS_CLASS_1XX,
  "2xx": StatusClass.STATUS_CLASS_2XX,
  "3xx": StatusClass.STATUS_CLASS_3XX,
  "4xx": StatusClass.STATUS_CLASS_4XX,
  "5xx": StatusClass.STATUS_CLASS_5XX,
  errors: StatusClass.STATUS_CLASS_ERRORS,
};

/** The analytics query of the filters over a range; `status` overrides the filter's class. */
export function toUsageQuery(f: UsageFilters, r: Pick<ResolvedRange, "start" | "end">, status?: StatusFilter): UsageQuery {
  const cls = status ?? f.status;
  return create(UsageQuerySchema, {
    teamId: f.team ?? "",
    route: f.route ?? "",
    tokenId: f.token ?? "",
    gateway: f.gateway ?? "",
    statusClass: cls ? CLASS[cls] : StatusClass.STATUS_CLASS_UNSPECIFIED,
    startTime: dateToTs(r.start),
    endTime: dateToTs(r.end),
  });
}

/** The status classes the traffic chart stacks for a status filter (each is one summary call). */
export function classesFor(status: StatusFilter | undefined): ("2xx" | "3xx" | "4xx" | "5xx")[] {
  switch (status) {
    case undefined:
      return ["2xx", "3xx", "4xx", "5xx"];
    case "errors":
      return ["4xx", "5xx"];
    case "1xx":
      return [];
    default:
      return [status];
  }
}

export const TOP_DIMENSION: Record<TopBy, TopDimension> = {
  token: TopDimension.TOKEN,
  route: TopDimension.ROUTE,
  team: TopDimension.TEAM,
  error: TopDimension.ERROR_CODE,
  ip: TopDimension.CLIENT_IP,
};

export const TOP_ORDER: Record<TopOrderName, TopOrder> = { calls: TopOrder.CALLS, errors: TopOrder.ERRORS };

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
