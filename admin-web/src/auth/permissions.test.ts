import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { GetCurrentUserResponseSchema } from "../gen/keygate/v1/auth_pb";
import { Role } from "../gen/keygate/v1/common_pb";
import { canChange, canChangeTeam, canCreate, canListUsers, teamsWhereCanCreate } from "./permissions";

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

  it("the server flag wins when present", () => {
    expect(canChange(me([["a", Role.ADMIN]]), { ...token("a", "x"), callerCanChange: false })).toBe(false);
    expect(canChange(me([]), { ...token("a", "x"), callerCanChange: true })).toBe(true);
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
