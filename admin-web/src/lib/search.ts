/**
 * Search-param readers for `validateSearch`: the URL is user input, so every value is
 * checked and anything unexpected is dropped (never thrown), which keeps old or hand-edited
 * links working. Filters live in the URL so that a link is a deep link.
 */

export function str(v: unknown, max = 200): string | undefined {
  if (typeof v === "number") v = String(v);
  if (typeof v !== "string") return undefined;
  const s = v.trim();
  return s && s.length <= max ? s : undefined;
}

export function int(v: unknown, min: number, max: number): number | undefined {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
  return Number.isInteger(n) && n >= min && n <= max ? n : undefined;
}

export function oneOf<const T extends string>(v: unknown, values: readonly T[]): T | undefined {
  return typeof v === "string" && (values as readonly string[]).includes(v) ? (v as T) : undefined;
}

export function bool(v: unknown): true | undefined {
  return v === true || v === "true" || v === "1" || v === 1 ? true : undefined;
}

/** Removes undefined values so URLs carry only what is set. */
export function compact<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== "") out[k] = v;
  return out as T;
}

/** A safe in-app path for `?next=`: only same-origin absolute paths, never `//host`. */
export function safeNext(v: unknown): string | undefined {
  const s = str(v, 2000);
  if (!s || !s.startsWith("/") || s.startsWith("//") || s.startsWith("/\\")) return undefined;
  if (s.startsWith("/sign-in")) return undefined;
  return s;
}
