import { describe, expect, it } from "vitest";
import { StatusClass } from "../../gen/keygate/v1/usage_pb";
import { tsToDate } from "../../lib/format";
import { classesFor, toUsageQuery } from "./query";
import {
  filtersFrom,
  tailExactStatus,
  tailStatusMatches,
  validateDetailSearch,
  validateTailSearch,
  validateUsageSearch,
} from "./search";

describe("validateUsageSearch", () => {
  it("keeps valid values and drops the rest", () => {
    expect(validateUsageSearch({ range: "7d", team: "payments", status: "5xx", by: "route", order: "errors", bogus: 1 })).toEqual({
      range: "7d",
      team: "payments",
      status: "5xx",
      by: "route",
      order: "errors",
    });
    expect(validateUsageSearch({ range: "2y", status: "6xx", by: "x" })).toEqual({});
  });
  it("keeps a custom range only with a usable start", () => {
    expect(validateUsageSearch({ range: "custom", from: "2026-12-07T08:00Z", to: "nope" })).toEqual({ range: "custom", from: "2026-12-07T08:00Z" });
    expect(validateUsageSearch({ range: "custom", to: "2026-12-07T08:00Z" })).toEqual({});
    // Bounds without range=custom mean nothing.
    expect(validateUsageSearch({ range: "1h", from: "2026-12-07T08:00Z" })).toEqual({ range: "1h" });
  });
  it("drops a gateway combined with team, route or token (the server counts gateways alone)", () => {
    expect(filtersFrom({ gateway: "edge-1", status: "errors" })).toEqual({ gateway: "edge-1", status: "errors" });
    expect(filtersFrom({ gateway: "edge-1", route: "echo" })).toEqual({ route: "echo" });
  });
});

describe("detail and tail searches", () => {
  it("detail keeps range and team", () => {
    expect(validateDetailSearch({ range: "30d", team: "search", route: "x" })).toEqual({ range: "30d", team: "search" });
  });
  it("tail status is a class or an exact code", () => {
    expect(validateTailSearch({ status: "4xx", token: "tok_1" })).toEqual({ status: "4xx", token: "tok_1" });
    expect(validateTailSearch({ status: 404 })).toEqual({ status: "404" });
    expect(validateTailSearch({ status: "700" })).toEqual({});
    expect(tailExactStatus("404")).toBe(404);
    expect(tailExactStatus("4xx")).toBe(0);
    expect(tailExactStatus(undefined)).toBe(0);
  });
  it("tail status matching", () => {
    expect(tailStatusMatches(undefined, 200)).toBe(true);
    expect(tailStatusMatches("errors", 429)).toBe(true);
    expect(tailStatusMatches("errors", 302)).toBe(false);
    expect(tailStatusMatches("5xx", 503)).toBe(true);
    expect(tailStatusMatches("5xx", 404)).toBe(false);
    expect(tailStatusMatches("404", 404)).toBe(true);
    expect(tailStatusMatches("404", 403)).toBe(false);
  });
});

describe("toUsageQuery", () => {
  const r = { start: new Date("2026-12-07T00:00:00Z"), end: new Date("2026-12-07T12:00:00Z") };
  it("carries filters, class and range", () => {
    const q = toUsageQuery({ team: "payments", route: "echo", token: "tok_1", status: "errors" }, r);
    expect(q.teamId).toBe("payments");
    expect(q.route).toBe("echo");
    expect(q.tokenId).toBe("tok_1");
    expect(q.statusClass).toBe(StatusClass.STATUS_CLASS_ERRORS);
    expect(tsToDate(q.startTime)).toEqual(r.start);
    expect(tsToDate(q.endTime)).toEqual(r.end);
  });
  it("a class override replaces the filter's", () => {
    expect(toUsageQuery({ status: "errors" }, r, "5xx").statusClass).toBe(StatusClass.STATUS_CLASS_5XX);
    expect(toUsageQuery({}, r).statusClass).toBe(StatusClass.STATUS_CLASS_UNSPECIFIED);
  });
});

describe("classesFor", () => {
  it("stacks the classes the filter lets through", () => {
    expect(classesFor(undefined)).toEqual(["2xx", "3xx", "4xx", "5xx"]);
    expect(classesFor("errors")).toEqual(["4xx", "5xx"]);
    expect(classesFor("4xx")).toEqual(["4xx"]);
    expect(classesFor("1xx")).toEqual([]);
  });
});
