import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { StatusCountSchema, UsagePointSchema, UsageStatsSchema, type UsagePoint } from "../../gen/keygate/v1/usage_pb";
import { dateToTs } from "../../lib/format";
import { classMix, latencyRows, latencySummary, statusMix, trafficRows, trafficSummary } from "./series";

const t0 = Date.UTC(2026, 11, 7, 10, 0);
const MIN = 60_000;
const span = { start: new Date(t0), end: new Date(t0 + 3 * MIN), stepSeconds: 60 };

function pt(t: number, calls: number, errors = 0, p50 = 0): UsagePoint {
  return create(UsagePointSchema, {
    time: dateToTs(new Date(t)),
    stats: create(UsageStatsSchema, { calls: BigInt(calls), errors: BigInt(errors), latencyP50Us: BigInt(p50), latencyP95Us: BigInt(p50 * 2), latencyP99Us: BigInt(p50 * 3) }),
  });
}

describe("trafficRows", () => {
  it("fills missing steps and splits ok and errors", () => {
    const rows = trafficRows([pt(t0, 10, 2), pt(t0 + 2 * MIN, 5)], span);
    expect(rows.map((r) => [r.calls, r.errors, r.ok])).toEqual([
      [10, 2, 8],
      [0, 0, 0],
      [5, 0, 5],
    ]);
    expect(rows[0]!.t).toBe(t0);
    expect(typeof rows[0]!.label).toBe("string");
  });
  it("adds class counts and what no class covers", () => {
    const rows = trafficRows([pt(t0, 10, 3)], span, { "2xx": [pt(t0, 6)], "4xx": [pt(t0, 3)] });
    expect(rows[0]).toMatchObject({ "2xx": 6, "4xx": 3, other: 1 });
    expect(rows[1]).toMatchObject({ "2xx": 0, "4xx": 0, other: 0 });
  });
});

describe("latencyRows", () => {
  it("percentiles in ms, gaps where there were no calls", () => {
    const rows = latencyRows([pt(t0, 4, 0, 1500), pt(t0 + MIN, 0)], span);
    expect(rows[0]).toMatchObject({ p50: 1.5, p95: 3, p99: 4.5 });
    expect(rows[1]).toMatchObject({ p50: null, p95: null, p99: null });
    expect(rows).toHaveLength(3);
  });
});

describe("mixes", () => {
  it("by class, with the rest as other", () => {
    expect(classMix({ "2xx": 90, "3xx": 0, "4xx": 8, "5xx": 1 }, 100)).toEqual([
      { key: "2xx", label: "2xx success", calls: 90, share: 0.9, color: "teal" },
      { key: "4xx", label: "4xx client error", calls: 8, share: 0.08, color: "orange" },
      { key: "5xx", label: "5xx server error", calls: 1, share: 0.01, color: "red" },
      { key: "other", label: "Other classes", calls: 1, share: 0.01, color: "gray" },
    ]);
    expect(classMix({}, 0)).toEqual([]);
  });
  it("by status, most calls first", () => {
    const m = statusMix([create(StatusCountSchema, { status: 404, calls: 5n }), create(StatusCountSchema, { status: 200, calls: 15n })]);
    expect(m.map((e) => [e.key, e.share, e.color])).toEqual([
      ["200", 0.75, "teal"],
      ["404", 0.25, "orange"],
    ]);
  });
});

describe("summaries", () => {
  it("say what the chart shows", () => {
    const rows = trafficRows([pt(t0, 10, 1), pt(t0 + MIN, 30)], span);
    expect(trafficSummary(rows)).toMatch(/^40 calls, 1 errors \(97\.5% success\) over 3 steps; busiest step .* with 30 calls\.$/);
    expect(trafficSummary(trafficRows([], span))).toBe("No calls in this range.");
    expect(latencySummary(undefined)).toMatch(/No calls/);
    expect(latencySummary(create(UsageStatsSchema, { calls: 3n, latencyP50Us: 1500n, latencyP95Us: 9000n, latencyP99Us: 53600n, latencyAvgUs: 4300n, latencyMaxUs: 180000n }))).toBe(
      "Over the range: p50 1.5 ms, p95 9 ms, p99 54 ms; mean 4.3 ms, max 180 ms.",
    );
  });
});
