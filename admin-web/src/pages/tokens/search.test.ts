import { describe, expect, it } from "vitest";
import { TokenSortField } from "../../gen/keygate/v1/token_pb";
import { TokenStatus } from "../../gen/keygate/v1/common_pb";
import { tsToDate } from "../../lib/format";
import { effectiveSort, filterKey, hasFilters, toListTokensRequest, validateTokensSearch } from "./search";

const now = new Date("2025-06-01T00:00:00Z");

describe("validateTokensSearch", () => {
  it("keeps valid values and drops the rest", () => {
    expect(
      validateTokensSearch({ q: "ci", status: "active", sort: "name", desc: "true", size: "100", bogus: 1, expiring: "0" }),
    ).toEqual({ q: "ci", status: "active", sort: "name", desc: true, size: 100 });
  });
  it("never and unused are exclusive (unused wins)", () => {
    expect(validateTokensSearch({ unused: 30, never: true })).toEqual({ unused: 30 });
    expect(validateTokensSearch({ never: "1" })).toEqual({ never: true });
  });
});

describe("toListTokensRequest", () => {
  it("defaults to newest first, 50 a page", () => {
    const r = toListTokensRequest({}, now);
    expect(r.sortBy).toBe(TokenSortField.CREATED_AT);
    expect(r.descending).toBe(true);
    expect(r.pageSize).toBe(50);
    expect(r.status).toBe(TokenStatus.UNSPECIFIED);
    expect(r.expiringBefore).toBeUndefined();
  });
  it("expiring means active and before now + days", () => {
    const r = toListTokensRequest({ expiring: 7, status: "revoked" }, now);
    expect(r.status).toBe(TokenStatus.ACTIVE);
    expect(tsToDate(r.expiringBefore)?.toISOString()).toBe("2025-06-08T00:00:00.000Z");
  });
  it("unused for N days and never used", () => {
    expect(tsToDate(toListTokensRequest({ unused: 30 }, now).lastUsedBefore)?.toISOString()).toBe("2025-05-02T00:00:00.000Z");
    const never = toListTokensRequest({ never: true }, now);
    expect(never.neverUsed).toBe(true);
    expect(never.lastUsedBefore).toBeUndefined();
  });
  it("legacy keys only", () => {
    expect(validateTokensSearch({ legacy: "1" })).toEqual({ legacy: true });
    expect(toListTokensRequest({ legacy: true }, now).legacy).toBe(true);
    expect(toListTokensRequest({}, now).legacy).toBe(false);
    expect(hasFilters({ legacy: true })).toBe(true);
  });
  it("sort and cursor", () => {
    const r = toListTokensRequest({ sort: "expires", cursor: "abc", size: 25 }, now);
    expect(r.sortBy).toBe(TokenSortField.EXPIRES_AT);
    expect(r.descending).toBe(false);
    expect(r.pageToken).toBe("abc");
    expect(r.pageSize).toBe(25);
    expect(effectiveSort({ sort: "name", desc: true })).toEqual({ key: "name", desc: true });
  });
  it("filterKey ignores paging and the open drawer", () => {
    expect(filterKey({ q: "a", page: 3, cursor: "x", open: "tok" })).toBe(filterKey({ q: "a" }));
  });
});
