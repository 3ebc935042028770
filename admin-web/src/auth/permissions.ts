/**
 * What the UI offers to the signed-in caller. The server decides (control-plane `policy.rs`);
 * this module only reads what the server says, so pages never re-implement a rule:
 *
 * - per object: the output-only `caller_can_change` on Token, Route and Team;
 * - per team: the allowed actions `GetCurrentUser` returns for each team.
 *
 * FALLBACK (remove when the server fields land): until those fields exist in the generated
 * code, the answers below are derived from the roles `GetCurrentUser` returns today, mirroring
 * policy.rs. A wrong answer here only hides or shows a control; the server still refuses.
 */
import type { GetCurrentUserResponse } from "../gen/keygate/v1/auth_pb";
import { Role } from "../gen/keygate/v1/common_pb";

export type Me = GetCurrentUserResponse;

/** `created_by` of things this caller creates (`user:usr_...` / `service_account:sa_...`). */
function reference(me: Me): string {
  return me.user ? `user:${me.user.id}` : `service_account:${me.serviceAccountId}`;
}

export function roleIn(me: Me, teamId: string): Role {
  return me.roles.find((r) => r.teamId === teamId)?.role ?? Role.UNSPECIFIED;
}

/** The server's per-object flag, when the generated type has it (protobuf-es sets every field). */
function serverFlag(obj: object): boolean | undefined {
  const v = (obj as { callerCanChange?: unknown }).callerCanChange;
  return typeof v === "boolean" ? v : undefined;
}

/** The server's per-team allowed actions, when GetCurrentUser returns them. */
function serverTeamAction(me: Me, teamId: string, action: string): boolean | undefined {
  const teams = (me as { teams?: unknown }).teams;
  if (!Array.isArray(teams)) return undefined;
  const entry = teams.find((t: { teamId?: string }) => t?.teamId === teamId) as { allowedActions?: unknown } | undefined;
  if (!entry || !Array.isArray(entry.allowedActions)) return false;
  return (entry.allowedActions as string[]).includes(action);
}

interface Owned {
  teamId: string;
  createdBy: string;
  /** The server's answer, once the generated type has the field. */
  callerCanChange?: boolean;
}

/** May the caller change (edit, rotate, revoke, delete) this token or route? */
export function canChange(me: Me, obj: Owned & object): boolean {
  const flag = serverFlag(obj);
  if (flag !== undefined) return flag;
  // FALLBACK: policy.rs ChangeToken/ChangeRoute.
  if (me.systemAdmin) return true;
  const role = roleIn(me, obj.teamId);
  if (role >= Role.MANAGER) return true;
  return role === Role.DEVELOPER && obj.createdBy === reference(me);
}

/** May the caller change this team (edit, delete)? */
export function canChangeTeam(me: Me, team: { id: string; callerCanChange?: boolean }): boolean {
  const flag = serverFlag(team);
  if (flag !== undefined) return flag;
  // FALLBACK: policy.rs UpdateTeam/DeleteTeam.
  return me.systemAdmin || roleIn(me, team.id) === Role.ADMIN;
}

/** Teams where the caller may create tokens (`kind: "token"`) or routes (`"route"`). */
export function teamsWhereCanCreate(me: Me, kind: "token" | "route", allTeamIds: string[] = []): string[] {
  const action = kind === "token" ? "token.create" : "route.create";
  const ids = me.systemAdmin ? Array.from(new Set([...allTeamIds, ...me.roles.map((r) => r.teamId)])) : me.roles.map((r) => r.teamId);
  return ids.filter((id) => {
    const s = serverTeamAction(me, id, action);
    if (s !== undefined) return s;
    // FALLBACK: policy.rs CreateToken/CreateRoute need DEVELOPER.
    return me.systemAdmin || roleIn(me, id) >= Role.DEVELOPER;
  });
}

export function canCreate(me: Me, kind: "token" | "route"): boolean {
  return me.systemAdmin || teamsWhereCanCreate(me, kind).length > 0;
}

/** Users page: ListUsers needs ADMIN or MANAGER in some team (or system admin). */
export function canListUsers(me: Me): boolean {
  // FALLBACK: policy.rs ListUsers.
  return me.systemAdmin || (!!me.user && me.roles.some((r) => r.role >= Role.MANAGER));
}

export function isSystemAdmin(me: Me): boolean {
  return me.systemAdmin;
}

export const ROLE_LABEL: Record<Role, string> = {
  [Role.UNSPECIFIED]: "—",
  [Role.VIEWER]: "Viewer",
  [Role.DEVELOPER]: "Developer",
  [Role.MANAGER]: "Manager",
  [Role.ADMIN]: "Admin",
};

/** The highest role over all teams (for the user menu). */
export function highestRole(me: Me): Role {
  return me.roles.reduce<Role>((max, r) => (r.role > max ? r.role : max), Role.UNSPECIFIED);
}
