/**
 * What the UI offers to the signed-in caller. The server decides (control-plane `policy.rs`);
 * this module only reads what the server says, so pages never re-implement a rule:
 *
 * - per object: the output-only `caller_can_change` on Token, Route and Team;
 * - per team: `GetCurrentUserResponse.teams[].allowed_actions`, plus
 *   `all_teams_allowed_actions` (every team: system admins) and the global
 *   `allowed_actions` (team.create, user.list, ...). Action names: auth.proto.
 *
 * FALLBACK (delete once every control plane sends those fields): against a control plane
 * that does not send them yet, the answers are derived from the roles GetCurrentUser
 * returns, mirroring policy.rs. A wrong answer here only hides or shows a control; the
 * server still refuses.
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

// ---- the server's answers (read structurally: older generated code lacks the fields)

interface ServerPermissions {
  teams: { teamId: string; allowedActions: string[] }[];
  allowedActions: string[];
  allTeamsAllowedActions: string[];
}

function server(me: Me): ServerPermissions | undefined {
  const m = me as unknown as Partial<ServerPermissions>;
  const teams = Array.isArray(m.teams) ? m.teams : [];
  const global = Array.isArray(m.allowedActions) ? m.allowedActions : [];
  const all = Array.isArray(m.allTeamsAllowedActions) ? m.allTeamsAllowedActions : [];
  // A control plane that knows the fields sends an entry per role and global actions for
  // any person; all empty means an older control plane (or a caller with no rights at all,
  // for whom the role fallback gives the same empty answer).
  if (teams.length === 0 && global.length === 0 && all.length === 0) return undefined;
  return { teams, allowedActions: global, allTeamsAllowedActions: all };
}

/** Does the server allow `action` in `teamId`? undefined: the server did not say. */
export function teamAllows(me: Me, teamId: string, action: string): boolean | undefined {
  const s = server(me);
  if (!s) return undefined;
  if (s.allTeamsAllowedActions.includes(action)) return true;
  return s.teams.find((t) => t.teamId === teamId)?.allowedActions.includes(action) ?? false;
}

/** Does the server allow `action` in some team? */
function someTeamAllows(me: Me, action: string): boolean | undefined {
  const s = server(me);
  if (!s) return undefined;
  return s.allTeamsAllowedActions.includes(action) || s.teams.some((t) => t.allowedActions.includes(action));
}

/** Does the server allow the global `action` (team.create, user.list, ...)? */
export function globalAllows(me: Me, action: string): boolean | undefined {
  const s = server(me);
  return s ? s.allowedActions.includes(action) : undefined;
}

/** The per-object `caller_can_change`, when this control plane sends it. */
function serverFlag(me: Me, obj: object): boolean | undefined {
  const v = (obj as { callerCanChange?: unknown }).callerCanChange;
  // Generated code always has the field once the proto does; only a control plane that
  // sends permissions (server(me)) fills it in.
  return typeof v === "boolean" && server(me) ? v : undefined;
}

interface Owned {
  teamId: string;
  createdBy: string;
  /** The server's answer, once the generated type has the field. */
  callerCanChange?: boolean;
}

/** May the caller change (edit, rotate, revoke, delete) this token or route? */
export function canChange(me: Me, obj: Owned & object): boolean {
  const flag = serverFlag(me, obj);
  if (flag !== undefined) return flag;
  // FALLBACK: policy.rs ChangeToken/ChangeRoute.
  if (me.systemAdmin) return true;
  const role = roleIn(me, obj.teamId);
  if (role >= Role.MANAGER) return true;
  return role === Role.DEVELOPER && obj.createdBy === reference(me);
}

/** May the caller change this team (edit, delete)? */
export function canChangeTeam(me: Me, team: { id: string; callerCanChange?: boolean }): boolean {
  const flag = serverFlag(me, team) ?? teamAllows(me, team.id, "team.update");
  if (flag !== undefined) return flag;
  // FALLBACK: policy.rs UpdateTeam/DeleteTeam.
  return me.systemAdmin || roleIn(me, team.id) === Role.ADMIN;
}

/** May the caller create teams (and so become the new team's ADMIN)? */
export function canCreateTeam(me: Me): boolean {
  const s = globalAllows(me, "team.create");
  if (s !== undefined) return s;
  // FALLBACK: policy.rs CreateTeam: a person who is ADMIN in some team, or a system admin.
  return me.systemAdmin || (!!me.user && me.roles.some((r) => r.role === Role.ADMIN));
}

/** May the caller claim this team (become its ADMIN)? Only a team without members. */
export function canClaimTeam(me: Me, team: { id: string; memberCount: number }): boolean {
  if (team.memberCount > 0 || !me.user) return false;
  const s = globalAllows(me, "team.claim");
  if (s !== undefined) return s;
  // FALLBACK: policy.rs ClaimTeam: ADMIN of another team, or a system admin.
  return me.systemAdmin || me.roles.some((r) => r.teamId !== team.id && r.role === Role.ADMIN);
}

/** Teams where the caller may create tokens (`kind: "token"`) or routes (`"route"`). */
export function teamsWhereCanCreate(me: Me, kind: "token" | "route", allTeamIds: string[] = []): string[] {
  const action = kind === "token" ? "token.create" : "route.create";
  const ids = me.systemAdmin ? Array.from(new Set([...allTeamIds, ...me.roles.map((r) => r.teamId)])) : me.roles.map((r) => r.teamId);
  return ids.filter((id) => {
    const s = teamAllows(me, id, action);
    if (s !== undefined) return s;
    // FALLBACK: policy.rs CreateToken/CreateRoute need DEVELOPER.
    return me.systemAdmin || roleIn(me, id) >= Role.DEVELOPER;
  });
}

/** Could the caller change some token or route at all (shows selection and row actions)? */
export function mayChangeSome(me: Me): boolean {
  const s = server(me) && (someTeamAllows(me, "token.update") || someTeamAllows(me, "token.update_own"));
  if (s !== undefined) return !!s;
  // FALLBACK: DEVELOPER changes its own, MANAGER+ any of the team's.
  return me.systemAdmin || me.roles.some((r) => r.role >= Role.DEVELOPER);
}

export function canCreate(me: Me, kind: "token" | "route"): boolean {
  const s = someTeamAllows(me, kind === "token" ? "token.create" : "route.create");
  if (s !== undefined) return s;
  return me.systemAdmin || teamsWhereCanCreate(me, kind).length > 0;
}

/** Users page: ListUsers needs ADMIN or MANAGER in some team (or system admin). */
export function canListUsers(me: Me): boolean {
  const s = globalAllows(me, "user.list");
  if (s !== undefined) return s;
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

// ---- people, invitations, service accounts, audit (users / service-accounts / audit pages)

const ALL_ROLES = [Role.ADMIN, Role.MANAGER, Role.DEVELOPER, Role.VIEWER];
const BELOW_MANAGER = [Role.DEVELOPER, Role.VIEWER];

/**
 * Roles the caller may grant in `teamId` (invite, add a member, manage a service account):
 * ADMIN any, MANAGER only DEVELOPER/VIEWER; nothing for service accounts (people only).
 * `action` is the server's per-team action name once GetCurrentUser carries them.
 */
export function grantableRoles(me: Me, teamId: string, action = "member.add"): Role[] {
  if (!me.user && !me.systemAdmin) return [];
  const [plain, privileged] = SERVER_GRANT_ACTIONS[GRANT_KIND[action] ?? "members"];
  const mayPlain = teamAllows(me, teamId, plain);
  if (mayPlain !== undefined) {
    if (teamAllows(me, teamId, privileged)) return ALL_ROLES;
    return mayPlain ? BELOW_MANAGER : [];
  }
  // FALLBACK: policy.rs AddMember/Invite/ManageServiceAccount.
  if (me.systemAdmin) return ALL_ROLES;
  const role = roleIn(me, teamId);
  if (role === Role.ADMIN) return ALL_ROLES;
  if (role === Role.MANAGER) return BELOW_MANAGER;
  return [];
}

/** The pages' action names -> which pair of server actions grants DEVELOPER/VIEWER and ADMIN/MANAGER. */
const GRANT_KIND: Record<string, "members" | "invitations" | "serviceAccounts"> = {
  "member.add": "members",
  "member.update_role": "members",
  "member.remove": "members",
  "invitation.create": "invitations",
  "service_account.create": "serviceAccounts",
};
const SERVER_GRANT_ACTIONS = {
  members: ["team.members.manage", "team.members.manage_privileged"],
  invitations: ["invitation.create", "invitation.create_privileged"],
  serviceAccounts: ["service_account.manage", "service_account.manage_privileged"],
} as const;

/** Teams where the caller may grant some role (`allTeamIds` matters for system admins). */
export function teamsWhereCanGrant(me: Me, allTeamIds: string[] = [], action = "member.add"): string[] {
  const ids = me.systemAdmin ? Array.from(new Set([...allTeamIds, ...me.roles.map((r) => r.teamId)])) : me.roles.map((r) => r.teamId);
  return ids.filter((id) => grantableRoles(me, id, action).length > 0);
}

/** May the caller move a member of `teamId` from `current` to another role / remove them? */
export function canChangeMember(me: Me, teamId: string, current: Role): boolean {
  const grantable = grantableRoles(me, teamId, "member.update_role");
  return grantable.includes(current) && grantable.length > 1;
}

/** Roles a member holding `current` may be moved to by the caller (includes `current`). */
export function memberRoleChoices(me: Me, teamId: string, current: Role): Role[] {
  return canChangeMember(me, teamId, current) ? grantableRoles(me, teamId, "member.update_role") : [current];
}

export function canRemoveMember(me: Me, teamId: string, current: Role, isSelf: boolean): boolean {
  // FALLBACK: policy.rs RemoveMember (anyone may leave; the server keeps the last ADMIN).
  if (isSelf && !!me.user && roleIn(me, teamId) !== Role.UNSPECIFIED) return true;
  return grantableRoles(me, teamId, "member.remove").includes(current);
}

/** Teams where the caller may invite people (and the roles it may give: grantableRoles). */
export function teamsWhereCanInvite(me: Me, allTeamIds: string[] = []): string[] {
  return teamsWhereCanGrant(me, allTeamIds, "invitation.create");
}

/** Revoke an invitation: the caller could have created it (every role it grants). */
export function canRevokeInvitation(me: Me, roles: { teamId: string; role: Role }[]): boolean {
  return me.systemAdmin || (roles.length > 0 && roles.every((r) => grantableRoles(me, r.teamId, "invitation.create").includes(r.role)));
}

/** Rename: oneself, or anyone as a system admin. */
export function canRenameUser(me: Me, userId: string): boolean {
  return me.systemAdmin || me.user?.id === userId;
}

/** Disable/enable accounts and set the system-admin flag: system admins only. */
export function canAdministerUsers(me: Me): boolean {
  const s = globalAllows(me, "user.manage");
  if (s !== undefined) return s;
  return me.systemAdmin;
}

/** Service accounts: listing needs MANAGER in a team (people only) or a system admin. */
export function canListServiceAccounts(me: Me): boolean {
  const s = someTeamAllows(me, "service_account.read");
  if (s !== undefined) return s;
  // FALLBACK: policy.rs ReadServiceAccounts.
  return me.systemAdmin || me.roles.some((r) => r.role >= Role.MANAGER);
}

/** Teams where the caller may create service accounts (roles: grantableRoles). */
export function teamsWhereCanManageServiceAccounts(me: Me, allTeamIds: string[] = []): string[] {
  return teamsWhereCanGrant(me, allTeamIds, "service_account.create");
}

/** Delete the account, issue/rotate/revoke its keys. */
export function canManageServiceAccount(me: Me, sa: { teamId: string; role: Role; callerCanChange?: boolean }): boolean {
  const flag = serverFlag(me, sa);
  if (flag !== undefined) return flag;
  return grantableRoles(me, sa.teamId, "service_account.create").includes(sa.role);
}

/** Capabilities (SYNC, GATEWAY) are granted by system admins only. */
export function canGrantCapability(me: Me): boolean {
  const s = globalAllows(me, "service_account.grant_capability");
  if (s !== undefined) return s;
  return me.systemAdmin;
}

/** VerifyAuditChain reads the whole log: system admins only. */
export function canVerifyAuditChain(me: Me): boolean {
  const s = globalAllows(me, "audit.read_all");
  if (s !== undefined) return s;
  return me.systemAdmin;
}

/** Audit rows without a team (accounts, sign-ins, system) are readable by system admins only. */
export function canReadSystemAudit(me: Me): boolean {
  const s = globalAllows(me, "audit.read_all");
  if (s !== undefined) return s;
  // FALLBACK: policy.rs ReadGlobalAudit.
  return me.systemAdmin;
}

/** Teams whose audit rows the caller may read (the audit team filter); undefined: every team. */
export function auditTeams(me: Me): string[] | undefined {
  if (canReadSystemAudit(me)) return undefined;
  // FALLBACK: policy.rs ReadAudit needs any role in the team.
  return me.roles.map((r) => r.teamId).filter((id) => teamAllows(me, id, "audit.read") ?? true);
}
