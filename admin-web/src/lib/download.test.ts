import { describe, expect, it } from "vitest";
import { timestampedFileName } from "./download";

describe("timestampedFileName", () => {
  it("stamps in UTC", () => {
    expect(timestampedFileName("keygate-audit", "csv", new Date("2025-01-31T14:05:02.123Z"))).toBe("keygate-audit-20250131-140502.csv");
  });
});
