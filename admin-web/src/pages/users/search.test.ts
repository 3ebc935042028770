import { describe, expect, it } from "vitest";
import { acceptInvitationUrl, filterKey, roleRowErrors, toListUsersRequest, validateUsersSearch } from "./search";

describe("validateUsersSearch", () => {
  it("keeps what is valid", () => {
    expect(validateUsersSearch({ tab: "invitations", q: " ada ", team: "alpha", size: "25", page: "2", cursor: "c", open: "usr_1" })).toEqual({
      tab: "invitations",
      q: "ada",
      team: "alpha",
      size: 25,
      page: 2,
      cursor: "c",
      open: "usr_1",
    });
    expect(validateUsersSearch({ tab: "users", size: "0", team: "x".repeat(41) })).toEqual({});
  });

  it("builds the ListUsers request", () => {
    const r = toListUsersRequest({ q: "ada", team: "alpha", cursor: "c" });
    expect([r.query, r.teamId, r.pageSize, r.pageToken]).toEqual(["ada", "alpha", 50, "c"]);
    expect(filterKey({ q: "a", page: 2, cursor: "c", open: "usr_1" })).toBe(filterKey({ q: "a" }));
  });
});

describe("invitations", () => {
  it("links to the accept page with the code escaped", () => {
    expect(acceptInvitationUrl("https://kg.example.com/", "kginv_a+b/c")).toBe("https://kg.example.com/accept-invitation?code=kginv_a%2Bb%2Fc");
  });

  it("checks role rows", () => {
    expect(
      roleRowErrors([
        { teamId: "a", role: 2 },
        { teamId: "", role: 2 },
        { teamId: "b", role: 0 },
        { teamId: "a", role: 1 },
      ]),
    ).toEqual([null, "Pick a team", "Pick a role", "Each team once"]);
  });
});
