import { describe, expect, it } from "vitest";
import { CursorTrail, rangeText } from "./pager";

describe("rangeText", () => {
  it.each([
    [1, 50, 50, 1234, "1–50 of 1,234 tokens"],
    [2, 50, 50, 1234, "51–100 of 1,234 tokens"],
    [25, 50, 34, 1234, "1,201–1,234 of 1,234 tokens"],
    [1, 50, 0, 0, "No tokens"],
    [1, 50, 3, undefined, "1–3"],
  ])("page %i size %i count %i total %s", (page, size, count, total, want) =>
    expect(rangeText(page, size, count, total, "tokens")).toBe(want),
  );
});

describe("CursorTrail", () => {
  it("remembers tokens per page", () => {
    const t = new CursorTrail();
    expect(t.tokenFor(1)).toBe("");
    t.remember(2, "abc");
    expect(t.tokenFor(2)).toBe("abc");
    expect(t.tokenFor(3)).toBeUndefined();
    t.reset();
    expect(t.tokenFor(2)).toBeUndefined();
  });
});
