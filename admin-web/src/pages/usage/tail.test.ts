import { describe, expect, it } from "vitest";
import { prependBounded, reconnectDelaySeconds } from "./tail";

describe("prependBounded", () => {
  it("puts new rows first, newest first", () => {
    expect(prependBounded([3, 2, 1], [4, 5])).toEqual([5, 4, 3, 2, 1]);
  });
  it("keeps at most the limit", () => {
    expect(prependBounded([3, 2, 1], [4, 5], 4)).toEqual([5, 4, 3, 2]);
    expect(prependBounded([2, 1], [3, 4, 5, 6, 7], 3)).toEqual([7, 6, 5]);
  });
  it("returns the same list when nothing came", () => {
    const cur = [1];
    expect(prependBounded(cur, [])).toBe(cur);
  });
});

describe("reconnectDelaySeconds", () => {
  it("backs off to 15 s", () => {
    expect([0, 1, 2, 3, 4, 10].map(reconnectDelaySeconds)).toEqual([1, 2, 4, 8, 15, 15]);
  });
});
