import { describe, expect, it } from "vitest";
import {
  DAY,
  HOUR,
  MINUTE,
  axisLabel,
  chooseStepSeconds,
  customRangeProblem,
  fillSeries,
  fromLocalInput,
  parseIso,
  resolveRange,
  stepLabel,
  tierFloorMs,
  toIsoMinute,
  toLocalInput,
} from "./range";

const now = new Date("2026-12-07T12:00:00Z");
const ago = (ms: number) => new Date(now.getTime() - ms);

describe("resolveRange", () => {
  it("defaults to the last 24 hours at 30-minute steps", () => {
    const r = resolveRange({}, now);
    expect(r.key).toBe("24h");
    expect(r.end).toEqual(now);
    expect(r.start).toEqual(ago(DAY));
    expect(r.stepSeconds).toBe(1800);
    expect(r.live).toBe(true);
  });
  it.each([
    ["1h", HOUR, 60],
    ["24h", DAY, 1800],
    ["7d", 7 * DAY, 3 * 3600],
    ["30d", 30 * DAY, 12 * 3600],
  ] as const)("preset %s", (range, span, step) => {
    const r = resolveRange({ range }, now);
    expect(r.end.getTime() - r.start.getTime()).toBe(span);
    expect(r.stepSeconds).toBe(step);
  });
  it("takes a usable custom range and falls back otherwise", () => {
    const r = resolveRange({ range: "custom", from: "2026-12-07T08:00Z", to: "2026-12-07T10:00Z" }, now);
    expect(r.key).toBe("custom");
    expect(r.start.toISOString()).toBe("2026-12-07T08:00:00.000Z");
    // Two hours at 1-minute steps would be 120 points: 5 minutes.
    expect(r.stepSeconds).toBe(300);
    expect(r.live).toBe(false);
    // Open end: until now.
    expect(resolveRange({ range: "custom", from: "2026-12-07T08:00Z" }, now).end).toEqual(now);
    // Backwards, unparsable, too long.
    expect(resolveRange({ range: "custom", from: "2026-12-07T10:00Z", to: "2026-12-07T08:00Z" }, now).key).toBe("24h");
    expect(resolveRange({ range: "custom", from: "yesterday" }, now).key).toBe("24h");
    expect(resolveRange({ range: "custom", from: "2024-01-01T00:00Z", to: "2026-01-01T00:00Z" }, now).key).toBe("24h");
  });
});

describe("steps", () => {
  it("follow the tier that still holds the start", () => {
    expect(tierFloorMs(ago(47 * HOUR), now)).toBe(MINUTE);
    expect(tierFloorMs(ago(3 * DAY), now)).toBe(HOUR);
    expect(tierFloorMs(ago(100 * DAY), now)).toBe(DAY);
  });
  it("give at most 90 points in multiples of the tier bucket", () => {
    // Two hours three days ago: hours (the minute tier no longer holds it).
    expect(chooseStepSeconds(ago(3 * DAY), ago(3 * DAY - 2 * HOUR), now)).toBe(3600);
    expect(chooseStepSeconds(ago(90 * MINUTE), now, now)).toBe(60);
    expect(chooseStepSeconds(ago(2 * HOUR), now, now)).toBe(300);
    expect(chooseStepSeconds(ago(200 * DAY), now, now)).toBe(7 * 86400);
    expect(chooseStepSeconds(now, now, now)).toBe(60);
  });
  it("read as words", () => {
    expect(stepLabel(60)).toBe("1 min");
    expect(stepLabel(1800)).toBe("30 min");
    expect(stepLabel(10800)).toBe("3 h");
    expect(stepLabel(86400)).toBe("1 day");
    expect(stepLabel(7 * 86400)).toBe("7 days");
  });
});

describe("custom range input", () => {
  it("round-trips local input values", () => {
    const d = new Date(2026, 11, 7, 9, 5);
    expect(toLocalInput(d)).toBe("2026-12-07T09:05");
    expect(fromLocalInput("2026-12-07T09:05")).toEqual(d);
    expect(fromLocalInput("2026-12-07")).toBeUndefined();
  });
  it("explains what is wrong", () => {
    expect(customRangeProblem(undefined, now)).toMatch(/start/);
    expect(customRangeProblem(now, undefined)).toMatch(/end/);
    expect(customRangeProblem(now, ago(HOUR))).toMatch(/after/);
    expect(customRangeProblem(ago(401 * DAY), now)).toMatch(/400 days/);
    expect(customRangeProblem(ago(HOUR), now)).toBeUndefined();
  });
  it("URL bounds are ISO minutes", () => {
    expect(toIsoMinute(new Date("2026-12-07T05:03:27.5Z"))).toBe("2026-12-07T05:03Z");
    expect(parseIso("2026-12-07T05:03Z")?.toISOString()).toBe("2026-12-07T05:03:00.000Z");
    expect(parseIso("1700000000")).toBeUndefined();
    expect(parseIso("2026-13-45T99:99Z")).toBeUndefined();
  });
});

describe("fillSeries", () => {
  const t0 = Date.UTC(2026, 11, 7, 10, 0);
  it("adds the missing steps on the epoch-aligned grid", () => {
    const pts = [
      { t: t0, v: 1 },
      { t: t0 + 2 * MINUTE, v: 3 },
    ];
    expect(fillSeries(pts, t0 + 20_000, t0 + 4 * MINUTE, MINUTE, () => 0)).toEqual([
      { t: t0, v: 1 },
      { t: t0 + MINUTE, v: 0 },
      { t: t0 + 2 * MINUTE, v: 3 },
      { t: t0 + 3 * MINUTE, v: 0 },
    ]);
  });
  it("drops points off the grid and handles empty input", () => {
    expect(fillSeries([{ t: t0 + 30_000, v: 9 }], t0, t0 + 2 * MINUTE, MINUTE, () => 0).map((p) => p.v)).toEqual([0, 0]);
    // 30-minute steps from a start at :54 begin at :30.
    expect(fillSeries([], t0 - 6 * MINUTE, t0 + MINUTE, 30 * MINUTE, () => 0).map((p) => p.t)).toEqual([t0 - 30 * MINUTE, t0]);
    expect(fillSeries([], t0, t0 + 3 * MINUTE, MINUTE, (t) => t - t0).map((p) => p.v)).toEqual([0, MINUTE, 2 * MINUTE]);
    expect(fillSeries([], t0, t0, MINUTE, () => 0)).toEqual([]);
    expect(fillSeries([], t0, t0 + MINUTE, 0, () => 0)).toEqual([]);
  });
});

describe("axisLabel", () => {
  it("shows dates for day steps and times within a day", () => {
    const t = new Date(2026, 11, 7, 14, 30);
    expect(axisLabel(t, 86400, 30 * DAY)).not.toMatch(/14/);
    expect(axisLabel(t, 60, HOUR)).toMatch(/30/);
    expect(axisLabel(t, 3 * 3600, 7 * DAY)).toMatch(/7/);
  });
});
