import { describe, expect, it } from "vitest";
import { compactCount, count, dateToTs, daysUntil, percent, relativeTime, tsToDate } from "./format";

const now = new Date("2025-06-01T12:00:00Z");
const at = (s: number) => new Date(now.getTime() + s * 1000);

describe("format", () => {
  it("round-trips timestamps", () => {
    const d = new Date("2025-06-01T12:34:56.789Z");
    expect(tsToDate(dateToTs(d))?.toISOString()).toBe(d.toISOString());
    expect(tsToDate(undefined)).toBeUndefined();
  });

  it.each([
    [10, "just now"],
    [-10, "just now"],
    [-120, "2 minutes ago"],
    [-3 * 3600, "3 hours ago"],
    [5 * 86400, "in 5 days"],
    [-86400, "yesterday"],
    [-40 * 86400, "last month"],
  ])("relativeTime(%i s) = %s", (s, want) => expect(relativeTime(at(s), now)).toBe(want));

  it.each([
    [1, "100%"],
    [0, "0%"],
    [0.995, "99.50%"],
    [0.5, "50.0%"],
    [Number.NaN, "—"],
  ])("percent(%f) = %s", (r, want) => expect(percent(r)).toBe(want));

  it("percent without data", () => expect(percent(1, false)).toBe("—"));

  it("counts", () => {
    expect(count(1234567)).toBe("1,234,567");
    expect(count(12n)).toBe("12");
    expect(compactCount(999)).toBe("999");
    expect(compactCount(1234)).toBe("1.2K");
    expect(compactCount(2_500_000)).toBe("2.5M");
  });

  it("daysUntil", () => {
    expect(daysUntil(at(3 * 86400 + 100), now)).toBe(3);
    expect(daysUntil(at(-86400 * 2), now)).toBe(-2);
  });
});
