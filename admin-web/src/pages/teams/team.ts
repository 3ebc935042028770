/**
 * Pure helpers of the teams page: a slug suggested from the name and its rules (shown live
 * while typing; the server's `validate_team_id` decides), colours, icons, members by role.
 */
import { Role } from "../../gen/keygate/v1/common_pb";

export const SLUG_MIN = 2;
export const SLUG_MAX = 40;
export const ICON_MAX = 8;

/** "Payments & Billing!" -> "payments-billing": a team id suggested from a display name. */
export function slugFromName(name: string): string {
  const s = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .slice(0, SLUG_MAX)
    .replace(/-+$/, "");
  return s;
}

/**
 * Why `slug` is not a valid team id, or null. Mirrors contracts `validate_team_id`: 2-40
 * lowercase letters, digits and `-`, starting with a letter, no `--`, not ending with `-`.
 */
export function slugProblem(slug: string): string | null {
  if (slug.length < SLUG_MIN || slug.length > SLUG_MAX) return `${SLUG_MIN}-${SLUG_MAX} characters`;
  if (!/^[a-z]/.test(slug)) return "Starts with a lowercase letter";
  if (/[^a-z0-9-]/.test(slug)) return "Only lowercase letters, digits and -";
  if (slug.includes("--")) return "No double -";
  if (slug.endsWith("-")) return "Does not end with -";
  return null;
}

/** `#rrggbb` (any case), or empty. */
export function isTeamColor(v: string): boolean {
  return v === "" || /^#[0-9a-fA-F]{6}$/.test(v);
}

/** Characters as the server counts them (Unicode scalar values). */
export function iconLength(icon: string): number {
  return [...icon].length;
}

/** Up to two initials for a team without an icon: "Platform Ops" -> "PO", "growth" -> "GR". */
export function initials(name: string, id = ""): string {
  const words = (name || id).split(/[\s\-_]+/).filter(Boolean);
  if (words.length >= 2) return (words[0]![0]! + words[1]![0]!).toUpperCase();
  return (words[0] ?? "?").slice(0, 2).toUpperCase();
}

/** Black or white, whichever reads better on `hex` (WCAG relative luminance). */
export function textOn(hex: string): "#000" | "#fff" {
  if (!/^#[0-9a-fA-F]{6}$/.test(hex)) return "#fff";
  const [r, g, b] = [1, 3, 5].map((i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  const l = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  // Contrast with white (1.05 / (l + 0.05)) against contrast with black ((l + 0.05) / 0.05).
  return 1.05 / (l + 0.05) >= (l + 0.05) / 0.05 ? "#fff" : "#000";
}

/** Swatches offered by the colour picker (Mantine's palette, shade 6-7). */
export const TEAM_COLORS = ["#4c6ef5", "#228be6", "#15aabf", "#12b886", "#40c057", "#fab005", "#fd7e14", "#fa5252", "#e64980", "#be4bdb", "#7950f2", "#868e96"];

export const ROLE_ORDER = [Role.ADMIN, Role.MANAGER, Role.DEVELOPER, Role.VIEWER] as const;

/** Members grouped by role, highest first, each group by name then email; empty groups dropped. */
export function byRole<M extends { role: Role; displayName: string; email: string }>(members: M[]): { role: Role; members: M[] }[] {
  return ROLE_ORDER.map((role) => ({
    role,
    members: members
      .filter((m) => m.role === role)
      .sort((a, b) => (a.displayName || a.email).localeCompare(b.displayName || b.email) || a.email.localeCompare(b.email)),
  })).filter((g) => g.members.length > 0);
}
