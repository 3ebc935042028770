import { describe, expect, it } from "vitest";
import { actionKind, formatValue, parseDiff } from "./diff";
import { RecordCounter, byteSize } from "./export";
import { filterKey, fromLocalInput, hasFilters, isoParam, timeWindow, toAuditFilter, toLocalInput, validateAuditSearch } from "./search";

const enc = (s: string) => new TextEncoder().encode(s);

describe("validateAuditSearch", () => {
  it("keeps known filters and drops junk", () => {
    expect(
      validateAuditSearch({
        actor: "usr_1",
        action: "token.create",
        entity_type: "token",
        entity_id: "tok_1",
        team: "alpha",
        size: "100",
        page: "2",
        cursor: "abc",
        junk: "x",
      }),
    ).toEqual({ actor: "usr_1", action: "token.create", entity_type: "token", entity_id: "tok_1", team: "alpha", size: 100, page: 2, cursor: "abc" });
  });

  it("a relative range wins over from/to", () => {
    expect(validateAuditSearch({ range: "7d", from: "2025-01-01T00:00:00Z" })).toEqual({ range: "7d" });
    expect(validateAuditSearch({ range: "2w" })).toEqual({});
  });

  it("normalises absolute times and drops bad ones", () => {
    expect(validateAuditSearch({ from: "2025-01-01T00:00:00Z", to: "nope" })).toEqual({ from: "2025-01-01T00:00:00.000Z" });
    expect(isoParam("2025-02-03T04:05:06+02:00")).toBe("2025-02-03T02:05:06.000Z");
    expect(isoParam(42)).toBeUndefined();
    expect(isoParam("2025-02-30x")).toBeUndefined();
  });
});

describe("toAuditFilter", () => {
  const now = new Date("2025-03-10T12:00:00Z");

  it("turns a relative range into a start time", () => {
    const f = toAuditFilter({ range: "24h", team: "alpha" }, now);
    expect(f.teamId).toBe("alpha");
    expect(Number(f.startTime!.seconds)).toBe(Date.parse("2025-03-09T12:00:00Z") / 1000);
    expect(f.endTime).toBeUndefined();
  });

  it("passes an absolute window through", () => {
    const w = timeWindow({ from: "2025-03-01T00:00:00.000Z", to: "2025-03-02T00:00:00.000Z" }, now);
    expect(w.start!.toISOString()).toBe("2025-03-01T00:00:00.000Z");
    expect(w.end!.toISOString()).toBe("2025-03-02T00:00:00.000Z");
    const f = toAuditFilter({ actor: "usr_1", action: "a.b", entity_type: "t", entity_id: "i" }, now);
    expect([f.actorId, f.action, f.entityType, f.entityId, f.startTime]).toEqual(["usr_1", "a.b", "t", "i", undefined]);
  });

  it("paging is not part of the filter key", () => {
    expect(filterKey({ team: "a", page: 3, cursor: "x" })).toBe(filterKey({ team: "a" }));
    expect(hasFilters({ size: 100 })).toBe(false);
    expect(hasFilters({ range: "1h" })).toBe(true);
  });
});

describe("datetime-local round trip", () => {
  it("reads and writes local minutes", () => {
    const iso = fromLocalInput("2025-03-01T09:30")!;
    expect(toLocalInput(iso)).toBe("2025-03-01T09:30");
    expect(fromLocalInput("")).toBeUndefined();
    expect(fromLocalInput("2025-13-01")).toBeUndefined();
    expect(toLocalInput(undefined)).toBe("");
  });
});

describe("parseDiff", () => {
  it("rows per field, sorted, with times and lists readable", () => {
    const rows = parseDiff(
      JSON.stringify({ revoked_at: [null, 1741608000000], scopes: [["a"], ["a", "b"]], name: ["old", "new"], rate: [0, 10], desc: ["", "x"] }),
    );
    expect(rows).toEqual([
      { field: "desc", before: "(empty)", after: "x" },
      { field: "name", before: "old", after: "new" },
      { field: "rate", before: "0", after: "10" },
      { field: "revoked_at", before: null, after: "2025-03-10T12:00:00Z" },
      { field: "scopes", before: "a", after: "a, b" },
    ]);
  });

  it("objects stay JSON; non-diffs are reported", () => {
    expect(parseDiff('{"auth":[null,{"kind":"none"}]}')).toEqual([{ field: "auth", before: null, after: '{"kind":"none"}' }]);
    expect(parseDiff("")).toEqual([]);
    expect(parseDiff("not json")).toBeNull();
    expect(parseDiff("[1,2]")).toBeNull();
    expect(formatValue("count", 1741608000000)).toBe("1741608000000");
  });

  it("classifies actions", () => {
    expect(actionKind("token.create")).toBe("create");
    expect(actionKind("member.update_role")).toBe("change");
    expect(actionKind("route.delete")).toBe("remove");
    expect(actionKind("authz.denied")).toBe("deny");
    expect(actionKind("auth.sign_in_failed")).toBe("deny");
    expect(actionKind("auth.sign_in")).toBe("other");
  });
});

describe("RecordCounter", () => {
  it("counts NDJSON lines across chunk borders", () => {
    const c = new RecordCounter("ndjson");
    c.push(enc('{"a":1}\n{"a"'));
    expect(c.records).toBe(1);
    c.push(enc(":2}\n"));
    expect(c.records).toBe(2);
  });

  it("counts CSV records without the header and ignores quoted newlines", () => {
    const c = new RecordCounter("csv");
    c.push(enc("seq,diff\r\n1,\"{\"\"a\"\":\r\n"));
    expect(c.records).toBe(0);
    c.push(enc('1}"\r\n2,x\r\n'));
    expect(c.records).toBe(2);
  });

  it("formats sizes", () => {
    expect(byteSize(999)).toBe("999 B");
    expect(byteSize(1536)).toBe("1.5 kB");
    expect(byteSize(250_000_000)).toBe("250 MB");
  });
});
