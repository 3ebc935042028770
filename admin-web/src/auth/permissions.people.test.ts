import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { GetCurrentUserResponseSchema } from "../gen/keygate/v1/auth_pb";
import { Role } from "../gen/keygate/v1/common_pb";
import {
  auditTeams,
  canChangeMember,
  canListServiceAccounts,
  canManageServiceAccount,
  canRemoveMember,
  canRenameUser,
  canRevokeInvitation,
  grantableRoles,
  memberRoleChoices,
  teamsWhereCanInvite,
} from "./permissions";

const me = (roles: [string, Role][], systemAdmin = false, person = true) =>
  create(GetCurrentUserResponseSchema, {
    user: person ? { id: "usr_1", email: "a@example.com" } : undefined,
    serviceAccountId: person ? "" : "sa_1",
    roles: roles.map(([teamId, role]) => ({ teamId, role })),
    systemAdmin,
  });

describe("people permissions fallback (roles)", () => {
  it("grantable roles follow ADMIN / MANAGER limits", () => {
    const m = me([
      ["a", Role.ADMIN],
      ["b", Role.MANAGER],
      ["c", Role.DEVELOPER],
    ]);
    expect(grantableRoles(m, "a")).toEqual([Role.ADMIN, Role.MANAGER, Role.DEVELOPER, Role.VIEWER]);
    expect(grantableRoles(m, "b")).toEqual([Role.DEVELOPER, Role.VIEWER]);
    expect(grantableRoles(m, "c")).toEqual([]);
    expect(grantableRoles(m, "z")).toEqual([]);
    expect(teamsWhereCanInvite(m)).toEqual(["a", "b"]);
  });

  it("service accounts manage no people", () => {
    expect(grantableRoles(me([["a", Role.ADMIN]], false, false), "a")).toEqual([]);
  });

  it("system admins grant anything in any team", () => {
    expect(teamsWhereCanInvite(me([], true), ["x", "y"])).toEqual(["x", "y"]);
  });

  it("a MANAGER never touches ADMIN or MANAGER members", () => {
    const m = me([["b", Role.MANAGER]]);
    expect(canChangeMember(m, "b", Role.DEVELOPER)).toBe(true);
    expect(canChangeMember(m, "b", Role.ADMIN)).toBe(false);
    expect(memberRoleChoices(m, "b", Role.VIEWER)).toEqual([Role.DEVELOPER, Role.VIEWER]);
    expect(memberRoleChoices(m, "b", Role.MANAGER)).toEqual([Role.MANAGER]);
    expect(canRemoveMember(m, "b", Role.MANAGER, false)).toBe(false);
    expect(canRemoveMember(m, "b", Role.MANAGER, true)).toBe(true);
  });

  it("invitations are revocable by whoever could create them", () => {
    const m = me([["b", Role.MANAGER]]);
    expect(canRevokeInvitation(m, [{ teamId: "b", role: Role.VIEWER }])).toBe(true);
    expect(canRevokeInvitation(m, [{ teamId: "b", role: Role.ADMIN }])).toBe(false);
    expect(canRevokeInvitation(m, [{ teamId: "b", role: Role.VIEWER }, { teamId: "c", role: Role.VIEWER }])).toBe(false);
  });

  it("service accounts: MANAGER manages DEVELOPER/VIEWER accounts only", () => {
    const m = me([["b", Role.MANAGER]]);
    expect(canListServiceAccounts(m)).toBe(true);
    expect(canListServiceAccounts(me([["b", Role.DEVELOPER]]))).toBe(false);
    expect(canManageServiceAccount(m, { teamId: "b", role: Role.DEVELOPER })).toBe(true);
    expect(canManageServiceAccount(m, { teamId: "b", role: Role.ADMIN })).toBe(false);
    // Object flags count only from a control plane that sends permissions (see permissions.ts).
    expect(canManageServiceAccount(m, { teamId: "b", role: Role.ADMIN, callerCanChange: true })).toBe(false);
  });

  it("rename: oneself or a system admin", () => {
    expect(canRenameUser(me([]), "usr_1")).toBe(true);
    expect(canRenameUser(me([]), "usr_2")).toBe(false);
    expect(canRenameUser(me([], true), "usr_2")).toBe(true);
  });

  it("audit team filter: the caller's teams, or every team for system admins", () => {
    expect(auditTeams(me([["a", Role.VIEWER], ["b", Role.ADMIN]]))).toEqual(["a", "b"]);
    expect(auditTeams(me([["a", Role.VIEWER]], true))).toBeUndefined();
  });
});
