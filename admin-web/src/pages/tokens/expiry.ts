/** The token form's expiry choice and its wire form (pure). */
export const EXPIRY_PRESETS = [
  { value: "30", label: "30 days" },
  { value: "90", label: "90 days" },
  { value: "365", label: "1 year" },
  { value: "custom", label: "Custom" },
  { value: "never", label: "Never" },
] as const;

export type ExpiryMode = (typeof EXPIRY_PRESETS)[number]["value"] | "keep";

export type WireExpiry =
  | { case: "expiresInDays"; value: number }
  | { case: "neverExpires"; value: true }
  | { case: undefined; value?: undefined };

export function toWireExpiry(mode: ExpiryMode, customDays: number | string): WireExpiry {
  if (mode === "keep") return { case: undefined };
  if (mode === "never") return { case: "neverExpires", value: true };
  const days = mode === "custom" ? Number(customDays) : Number(mode);
  return { case: "expiresInDays", value: days };
}

export function validateCustomDays(mode: ExpiryMode, v: number | string): string | null {
  if (mode !== "custom") return null;
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 && n <= 3650 ? null : "1 to 3650 days";
}
