import { describe, expect, it } from "vitest";
import { bool, compact, int, oneOf, safeNext, str } from "./search";

describe("search param readers", () => {
  it.each([
    ["abc", "abc"],
    ["  a ", "a"],
    ["", undefined],
    [12, "12"],
    [null, undefined],
    [{}, undefined],
    ["x".repeat(201), undefined],
  ])("str(%j) = %j", (input, want) => expect(str(input)).toBe(want));

  it.each([
    [5, 5],
    ["5", 5],
    ["5.5", undefined],
    [0, undefined],
    [501, undefined],
    ["", undefined],
    ["abc", undefined],
  ])("int(%j, 1, 500) = %j", (input, want) => expect(int(input, 1, 500)).toBe(want));

  it("oneOf accepts listed values only", () => {
    expect(oneOf("active", ["active", "revoked"] as const)).toBe("active");
    expect(oneOf("other", ["active", "revoked"] as const)).toBeUndefined();
    expect(oneOf(1, ["active"] as const)).toBeUndefined();
  });

  it.each([
    [true, true],
    ["true", true],
    ["1", true],
    [false, undefined],
    ["false", undefined],
    [undefined, undefined],
  ])("bool(%j) = %j", (input, want) => expect(bool(input)).toBe(want));

  it("compact drops undefined and empty", () => {
    expect(compact({ a: 1, b: undefined, c: "", d: "x" })).toEqual({ a: 1, d: "x" });
  });

  it.each([
    ["/tokens?team=a", "/tokens?team=a"],
    ["/", "/"],
    ["//evil.example/x", undefined],
    ["/\\evil.example", undefined],
    ["https://evil.example/", undefined],
    ["/sign-in?next=/x", undefined],
    [undefined, undefined],
  ])("safeNext(%j) = %j", (input, want) => expect(safeNext(input)).toBe(want));
});
