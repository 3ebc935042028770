import { describe, expect, it } from "vitest";
import { toWireExpiry, validateCustomDays } from "./expiry";

describe("expiry", () => {
  it.each([
    ["30", 0, { case: "expiresInDays", value: 30 }],
    ["custom", 12, { case: "expiresInDays", value: 12 }],
    ["never", 0, { case: "neverExpires", value: true }],
    ["keep", 0, { case: undefined }],
  ] as const)("%s", (mode, days, want) => expect(toWireExpiry(mode, days)).toEqual(want));

  it("validates custom days only in custom mode", () => {
    expect(validateCustomDays("custom", 0)).not.toBeNull();
    expect(validateCustomDays("custom", 3651)).not.toBeNull();
    expect(validateCustomDays("custom", 10)).toBeNull();
    expect(validateCustomDays("30", 0)).toBeNull();
  });
});
