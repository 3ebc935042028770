import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { ManagementKeySchema, ServiceAccountSchema } from "../../gen/keygate/v1/service_account_pb";
import { dateToTs } from "../../lib/format";
import { keyState, matchesQuery, toKeyExpiry, validateServiceAccountsSearch } from "./search";

describe("service accounts search", () => {
  it("validates the URL", () => {
    expect(validateServiceAccountsSearch({ q: "ci", team: "alpha", open: "sa_1", other: 1 })).toEqual({ q: "ci", team: "alpha", open: "sa_1" });
  });

  it("matches name, description or id, case-insensitively", () => {
    const sa = create(ServiceAccountSchema, { id: "sa_01ab", name: "CI deployer", description: "pushes routes" });
    expect(matchesQuery(sa, undefined)).toBe(true);
    expect(matchesQuery(sa, "deploy")).toBe(true);
    expect(matchesQuery(sa, "ROUTES")).toBe(true);
    expect(matchesQuery(sa, "sa_01")).toBe(true);
    expect(matchesQuery(sa, "billing")).toBe(false);
  });

  it("expiry choices go on the wire as the oneof", () => {
    expect(toKeyExpiry("90")).toEqual({ case: "expiresInDays", value: 90 });
    expect(toKeyExpiry("never")).toEqual({ case: "neverExpires", value: true });
  });
});

describe("keyState", () => {
  const now = new Date("2025-03-10T12:00:00Z");
  const at = (iso: string) => dateToTs(new Date(iso));
  it.each([
    ["active, never expires", {}, "Active", true],
    ["active", { expiresAt: at("2025-06-01T00:00:00Z") }, "Active", true],
    ["expiring", { expiresAt: at("2025-03-12T00:00:00Z") }, "Expiring", true],
    ["expired", { expiresAt: at("2025-03-01T00:00:00Z") }, "Expired", false],
    ["replaced in grace", { expiresAt: at("2025-03-11T00:00:00Z"), replacedById: "mk_2" }, "Replaced", true],
    ["revoked", { revokedAt: at("2025-03-01T00:00:00Z") }, "Revoked", false],
  ])("%s", (_n, fields, label, live) => {
    const s = keyState(create(ManagementKeySchema, fields), now);
    expect([s.label, s.live]).toEqual([label, live]);
  });
});
