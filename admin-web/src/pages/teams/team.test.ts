import { describe, expect, it } from "vitest";
import { Role } from "../../gen/keygate/v1/common_pb";
import { byRole, iconLength, initials, isTeamColor, slugFromName, slugProblem, textOn } from "./team";
import { validateTeamsSearch } from "./search";

describe("slugFromName", () => {
  it.each([
    ["Payments", "payments"],
    ["Payments & Billing!", "payments-billing"],
    ["  Équipe Données ", "equipe-donnees"],
    ["42 Platform", "platform"],
    ["--x--", "x"],
    ["a".repeat(50), "a".repeat(40)],
    ["ab-" + "c".repeat(36) + " d", "ab-" + "c".repeat(36)],
    ["💳", ""],
  ])("%s -> %s", (name, slug) => expect(slugFromName(name)).toBe(slug));
  it("suggestions are valid once long enough", () => {
    for (const n of ["Payments & Billing!", "Growth team 2", "Ops/SRE"]) expect(slugProblem(slugFromName(n))).toBeNull();
  });
});

describe("slugProblem (contracts validate_team_id)", () => {
  it.each([
    ["payments", null],
    ["a1", null],
    ["core-team-2", null],
    ["a", "2-40 characters"],
    ["a".repeat(41), "2-40 characters"],
    ["1team", "Starts with a lowercase letter"],
    ["-team", "Starts with a lowercase letter"],
    ["Team", "Starts with a lowercase letter"],
    ["team_x", "Only lowercase letters, digits and -"],
    ["teAm", "Only lowercase letters, digits and -"],
    ["a--b", "No double -"],
    ["ab-", "Does not end with -"],
  ])("%s", (slug, want) => expect(slugProblem(slug)).toBe(want));
});

describe("colour and icon", () => {
  it("colours are empty or #rrggbb", () => {
    expect(isTeamColor("")).toBe(true);
    expect(isTeamColor("#A0b1C2")).toBe(true);
    expect(isTeamColor("#abc")).toBe(false);
    expect(isTeamColor("red")).toBe(false);
  });
  it("text colour readable on the team colour", () => {
    expect(textOn("#ffffff")).toBe("#000");
    expect(textOn("#fab005")).toBe("#000");
    expect(textOn("#1c2a6b")).toBe("#fff");
    expect(textOn("")).toBe("#fff");
  });
  it("icon length counts characters, not UTF-16 units", () => {
    expect(iconLength("💳")).toBe(1);
    expect(iconLength("abc")).toBe(3);
  });
  it("initials", () => {
    expect(initials("Platform Ops")).toBe("PO");
    expect(initials("growth")).toBe("GR");
    expect(initials("", "core-team")).toBe("CT");
  });
});

describe("byRole", () => {
  it("groups highest role first, sorted by name", () => {
    const m = (displayName: string, role: Role) => ({ displayName, email: `${displayName.toLowerCase()}@x`, role });
    const groups = byRole([m("Zed", Role.VIEWER), m("Bob", Role.ADMIN), m("Amy", Role.VIEWER), m("Cy", Role.DEVELOPER)]);
    expect(groups.map((g) => [g.role, g.members.map((x) => x.displayName)])).toEqual([
      [Role.ADMIN, ["Bob"]],
      [Role.DEVELOPER, ["Cy"]],
      [Role.VIEWER, ["Amy", "Zed"]],
    ]);
  });
});

describe("validateTeamsSearch", () => {
  it("keeps q and open", () => {
    expect(validateTeamsSearch({ q: " pay ", open: "payments", x: 1 })).toEqual({ q: "pay", open: "payments" });
    expect(validateTeamsSearch({ q: "" })).toEqual({});
  });
});
