/** The users page's URL state (tab, search, team, page, open user) and requests (pure). */
import { create } from "@bufbuild/protobuf";
import { ListUsersRequestSchema, type ListUsersRequest } from "../../gen/keygate/v1/user_pb";
import { compact, int, oneOf, str } from "../../lib/search";

export const TABS = ["users", "invitations"] as const;
export type UsersTab = (typeof TABS)[number];

export interface UsersSearch {
  /** Absent: users. */
  tab?: "invitations";
  /** Substring of email or display name. */
  q?: string;
  /** Only members of (users) / invitations into (invitations) this team. */
  team?: string;
  size?: number;
  page?: number;
  cursor?: string;
  /** The user whose details are open (`usr_...`). */
  open?: string;
}

export function validateUsersSearch(s: Record<string, unknown>): UsersSearch {
  return compact({
    tab: oneOf(s.tab, ["invitations"] as const),
    q: str(s.q, 100),
    team: str(s.team, 40),
    size: int(s.size, 1, 500),
    page: int(s.page, 1, 1_000_000),
    cursor: str(s.cursor, 2000),
    open: str(s.open, 64),
  });
}

export const DEFAULT_PAGE_SIZE = 50;

export function toListUsersRequest(s: UsersSearch): ListUsersRequest {
  return create(ListUsersRequestSchema, {
    query: s.q ?? "",
    teamId: s.team ?? "",
    pageSize: s.size ?? DEFAULT_PAGE_SIZE,
    pageToken: s.cursor ?? "",
  });
}

/** The search without paging or the open drawer: what identifies "the same list". */
export function filterKey(s: UsersSearch): string {
  const { page: _p, cursor: _c, open: _o, ...rest } = s;
  return JSON.stringify(rest);
}

/** The accept page's link for an invitation code (the code is the only secret in it). */
export function acceptInvitationUrl(origin: string, code: string): string {
  return `${origin.replace(/\/+$/, "")}/accept-invitation?code=${encodeURIComponent(code)}`;
}

/** Invitation lifetimes offered in the form, in hours (the server allows 1-720). */
export const INVITATION_EXPIRY = [
  { value: "24", label: "1 day" },
  { value: "72", label: "3 days" },
  { value: "168", label: "7 days" },
  { value: "336", label: "14 days" },
  { value: "720", label: "30 days" },
] as const;

export interface RoleRow {
  teamId: string;
  role: number;
}

/** Client-side checks of the invitation's role rows (the server checks again). */
export function roleRowErrors(rows: RoleRow[]): (string | null)[] {
  const seen = new Set<string>();
  return rows.map((r) => {
    if (!r.teamId) return "Pick a team";
    if (!r.role) return "Pick a role";
    if (seen.has(r.teamId)) return "Each team once";
    seen.add(r.teamId);
    return null;
  });
}
