import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { GetCurrentUserResponseSchema } from "../gen/keygate/v1/auth_pb";
import { Role } from "../gen/keygate/v1/common_pb";
import {
  canChange,
  canChangeTeam,
  canCreate,
  canCreateTeam,
  canListUsers,
  grantableRoles,
  mayChangeSome,
  teamsWhereCanCreate,
  type Me,
} from "./permissions";

const me = (roles: [string, Role][], systemAdmin = false) =>
  create(GetCurrentUserResponseSchema, {
    user: { id: "usr_1", email: "a@example.com" },
    roles: roles.map(([teamId, role]) => ({ teamId, role })),
    systemAdmin,
  });

describe("permissions fallback (roles)", () => {
  const token = (teamId: string, createdBy: string) => ({ teamId, createdBy });

  it.each([
    ["viewer cannot change", [["a", Role.VIEWER]] as [string, Role][], token("a", "user:usr_1"), false],
    ["developer changes own", [["a", Role.DEVELOPER]] as [string, Role][], token("a", "user:usr_1"), true],
    ["developer not others'", [["a", Role.DEVELOPER]] as [string, Role][], token("a", "user:usr_2"), false],
    ["manager changes any", [["a", Role.MANAGER]] as [string, Role][], token("a", "user:usr_2"), true],
    ["no role in team", [["b", Role.ADMIN]] as [string, Role][], token("a", "user:usr_1"), false],
  ])("%s", (_name, roles, obj, want) => expect(canChange(me(roles), obj)).toBe(want));

  it("system admin changes everything", () => {
    expect(canChange(me([], true), token("a", "user:x"))).toBe(true);
    expect(canChangeTeam(me([], true), { id: "a" })).toBe(true);
  });

  it("the object flag is ignored from a control plane that sends no permissions", () => {
    expect(canChange(me([["a", Role.ADMIN]]), { ...token("a", "x"), callerCanChange: false })).toBe(true);
  });

  it("create needs DEVELOPER", () => {
    const m = me([
      ["a", Role.VIEWER],
      ["b", Role.DEVELOPER],
    ]);
    expect(teamsWhereCanCreate(m, "token")).toEqual(["b"]);
    expect(canCreate(m, "token")).toBe(true);
    expect(canCreate(me([["a", Role.VIEWER]]), "token")).toBe(false);
  });

  it("users list needs MANAGER somewhere", () => {
    expect(canListUsers(me([["a", Role.DEVELOPER]]))).toBe(false);
    expect(canListUsers(me([["a", Role.MANAGER]]))).toBe(true);
  });
});

describe("permissions from the server", () => {
  // Built structurally: works whether or not the generated type has the fields yet.
  const withServer = (base: Me, teams: [string, string[]][], global: string[] = [], allTeams: string[] = []): Me =>
    ({
      ...base,
      teams: teams.map(([teamId, allowedActions]) => ({ teamId, allowedActions })),
      allowedActions: global,
      allTeamsAllowedActions: allTeams,
    }) as unknown as Me;

  it("per-object flag wins over roles", () => {
    const m = withServer(me([["a", Role.ADMIN]]), [["a", ["token.read"]]]);
    expect(canChange(m, { teamId: "a", createdBy: "x", callerCanChange: false })).toBe(false);
    expect(canChange(m, { teamId: "a", createdBy: "x", callerCanChange: true })).toBe(true);
  });

  it("per-team actions decide create, whatever the role says", () => {
    const m = withServer(me([["a", Role.ADMIN], ["b", Role.VIEWER]]), [
      ["a", ["token.read"]],
      ["b", ["token.read", "token.create"]],
    ]);
    expect(teamsWhereCanCreate(m, "token")).toEqual(["b"]);
    expect(canCreate(m, "token")).toBe(true);
    expect(canCreate(m, "route")).toBe(false);
    expect(mayChangeSome(m)).toBe(false);
  });

  it("all-teams actions cover teams without a role (system admin)", () => {
    const m = withServer(me([], true), [], ["team.create", "user.list"], ["token.create", "token.update"]);
    expect(teamsWhereCanCreate(m, "token", ["x", "y"])).toEqual(["x", "y"]);
    expect(mayChangeSome(m)).toBe(true);
    expect(canListUsers(m)).toBe(true);
    expect(canCreateTeam(m)).toBe(true);
  });

  it("global actions", () => {
    const m = withServer(me([["a", Role.ADMIN]]), [["a", ["team.update"]]], []);
    expect(canListUsers(m)).toBe(false);
    expect(canCreateTeam(m)).toBe(false);
    expect(canChangeTeam(m, { id: "a" })).toBe(true);
    expect(canChangeTeam(m, { id: "b" })).toBe(false);
  });

  it("grantable roles from the manage / manage_privileged pair", () => {
    const m = withServer(me([["a", Role.MANAGER], ["b", Role.ADMIN]]), [
      ["a", ["team.members.manage", "invitation.create"]],
      ["b", ["team.members.manage", "team.members.manage_privileged"]],
    ]);
    expect(grantableRoles(m, "a")).toEqual([Role.DEVELOPER, Role.VIEWER]);
    expect(grantableRoles(m, "b")).toEqual([Role.ADMIN, Role.MANAGER, Role.DEVELOPER, Role.VIEWER]);
    expect(grantableRoles(m, "b", "invitation.create")).toEqual([]);
    expect(grantableRoles(m, "a", "invitation.create")).toEqual([Role.DEVELOPER, Role.VIEWER]);
  });
});
