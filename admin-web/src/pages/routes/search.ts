/** The route list's URL state (filters, sort, page) and its ListRoutes request (pure). */
import { create } from "@bufbuild/protobuf";
import { ListRoutesRequestSchema, RouteSortField, type ListRoutesRequest } from "../../gen/keygate/v1/route_pb";
import { bool, compact, int, oneOf, str } from "../../lib/search";

export const SORTS = ["name", "path", "created", "updated"] as const;
export type RouteSort = (typeof SORTS)[number];

export interface RoutesSearch {
  /** Substring of name, path prefix, backend URL or description. */
  q?: string;
  team?: string;
  tag?: string;
  sort?: RouteSort;
  desc?: true;
  size?: number;
  page?: number;
  cursor?: string;
  /** A route (id or name) whose details are open. */
  open?: string;
}

export function validateRoutesSearch(s: Record<string, unknown>): RoutesSearch {
  return compact({
    q: str(s.q, 100),
    team: str(s.team, 40),
    tag: str(s.tag, 40),
    sort: oneOf(s.sort, SORTS),
    desc: bool(s.desc),
    size: int(s.size, 1, 500),
    page: int(s.page, 1, 1_000_000),
    cursor: str(s.cursor, 2000),
    open: str(s.open, 64),
  });
}

const SORT_FIELD: Record<RouteSort, RouteSortField> = {
  name: RouteSortField.NAME,
  path: RouteSortField.PATH_PREFIX,
  created: RouteSortField.CREATED_AT,
  updated: RouteSortField.UPDATED_AT,
};

export const DEFAULT_PAGE_SIZE = 50;

/** The sort the table shows: the URL's, or the server default (by name, ascending). */
export function effectiveSort(s: RoutesSearch): { key: RouteSort; desc: boolean } {
  return s.sort ? { key: s.sort, desc: !!s.desc } : { key: "name", desc: false };
}

export function toListRoutesRequest(s: RoutesSearch): ListRoutesRequest {
  const sort = effectiveSort(s);
  return create(ListRoutesRequestSchema, {
    query: s.q ?? "",
    teamId: s.team ?? "",
    tag: s.tag ?? "",
    sortBy: SORT_FIELD[sort.key],
    descending: sort.desc,
    pageSize: s.size ?? DEFAULT_PAGE_SIZE,
    pageToken: s.cursor ?? "",
  });
}

/** The search without paging or the open drawer: what identifies "the same list". */
export function filterKey(s: RoutesSearch): string {
  const { page: _p, cursor: _c, open: _o, ...rest } = s;
  return JSON.stringify(rest);
}

export function hasFilters(s: RoutesSearch): boolean {
  return !!(s.q || s.team || s.tag);
}

/** Drops empty values so the URL carries only what is set. */
export function cleanSearch(s: RoutesSearch): RoutesSearch {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) if (v !== undefined && v !== "" && v !== false) out[k] = v;
  return out as RoutesSearch;
}
