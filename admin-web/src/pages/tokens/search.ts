/** The token list's URL state (filters, sort, page) and its ListTokens request (pure). */
import { create } from "@bufbuild/protobuf";
import { ListTokensRequestSchema, TokenSortField, type ListTokensRequest } from "../../gen/keygate/v1/token_pb";
import { TokenStatus } from "../../gen/keygate/v1/common_pb";
import { dateToTs } from "../../lib/format";
import { bool, compact, int, oneOf, str } from "../../lib/search";

export const STATUSES = ["active", "expired", "revoked"] as const;
export const SORTS = ["created", "name", "last_used", "expires"] as const;
export type TokenSort = (typeof SORTS)[number];

export interface TokensSearch {
  q?: string;
  team?: string;
  scope?: string;
  status?: (typeof STATUSES)[number];
  /** Active tokens expiring within this many days. */
  expiring?: number;
  /** Used, but not within this many days. */
  unused?: number;
  /** Never used. */
  never?: true;
  /** Only tokens imported with their old key format (`ntk_...`). */
  legacy?: true;
  sort?: TokenSort;
  desc?: true;
  size?: number;
  page?: number;
  cursor?: string;
  /** A token whose details are open. */
  open?: string;
}

export function validateTokensSearch(s: Record<string, unknown>): TokensSearch {
  const unused = int(s.unused, 1, 3650);
  return compact({
    q: str(s.q),
    team: str(s.team, 40),
    scope: str(s.scope, 200),
    status: oneOf(s.status, STATUSES),
    expiring: int(s.expiring, 1, 3650),
    unused,
    never: unused === undefined ? bool(s.never) : undefined,
    legacy: bool(s.legacy),
    sort: oneOf(s.sort, SORTS),
    desc: bool(s.desc),
    size: int(s.size, 1, 500),
    page: int(s.page, 1, 1_000_000),
    cursor: str(s.cursor, 2000),
    open: str(s.open, 64),
  });
}

const SORT_FIELD: Record<TokenSort, TokenSortField> = {
  created: TokenSortField.CREATED_AT,
  name: TokenSortField.NAME,
  last_used: TokenSortField.LAST_USED_AT,
  expires: TokenSortField.EXPIRES_AT,
};

const STATUS: Record<(typeof STATUSES)[number], TokenStatus> = {
  active: TokenStatus.ACTIVE,
  expired: TokenStatus.EXPIRED,
  revoked: TokenStatus.REVOKED,
};

export const DEFAULT_PAGE_SIZE = 50;
const DAY = 86_400_000;

/** The sort the table shows: the URL's, or the server default (newest first). */
export function effectiveSort(s: TokensSearch): { key: TokenSort; desc: boolean } {
  return s.sort ? { key: s.sort, desc: !!s.desc } : { key: "created", desc: true };
}

export function toListTokensRequest(s: TokensSearch, now: Date): ListTokensRequest {
  const sort = effectiveSort(s);
  return create(ListTokensRequestSchema, {
    query: s.q ?? "",
    teamId: s.team ?? "",
    scope: s.scope ?? "",
    status: s.expiring ? TokenStatus.ACTIVE : s.status ? STATUS[s.status] : TokenStatus.UNSPECIFIED,
    expiringBefore: s.expiring ? dateToTs(new Date(now.getTime() + s.expiring * DAY)) : undefined,
    lastUsedBefore: s.unused ? dateToTs(new Date(now.getTime() - s.unused * DAY)) : undefined,
    neverUsed: !s.unused && !!s.never,
    legacy: !!s.legacy,
    sortBy: SORT_FIELD[sort.key],
    descending: sort.desc,
    pageSize: s.size ?? DEFAULT_PAGE_SIZE,
    pageToken: s.cursor ?? "",
  });
}

/** The search without paging: what identifies "the same list". */
export function filterKey(s: TokensSearch): string {
  const { page: _p, cursor: _c, open: _o, ...rest } = s;
  return JSON.stringify(rest);
}

export function hasFilters(s: TokensSearch): boolean {
  return !!(s.q || s.team || s.scope || s.status || s.expiring || s.unused || s.never || s.legacy);
}
