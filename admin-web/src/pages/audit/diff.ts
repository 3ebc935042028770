/** An audit event's `diff_json` (`{field: [before, after]}`) as rows for a table (pure). */

export interface DiffRow {
  field: string;
  before: string | null;
  after: string | null;
}

/** Rows sorted by field; `null` when the text is not a diff object (show it raw then). */
export function parseDiff(json: string): DiffRow[] | null {
  if (!json.trim()) return [];
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return null;
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return null;
  const rows: DiffRow[] = [];
  for (const [field, pair] of Object.entries(v as Record<string, unknown>)) {
    if (Array.isArray(pair) && pair.length === 2) {
      rows.push({ field, before: formatValue(field, pair[0]), after: formatValue(field, pair[1]) });
    } else {
      rows.push({ field, before: null, after: formatValue(field, pair) });
    }
  }
  return rows.sort((a, b) => a.field.localeCompare(b.field));
}

/**
 * One side of a change as text; `null` for absent (JSON null). Times the server stores as
 * epoch milliseconds (fields named `*_at`) are shown as ISO 8601 UTC.
 */
export function formatValue(field: string, v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "number" && /(_at|_time)$/.test(field) && v > 1e11 && v < 1e14) {
    return new Date(v).toISOString().replace(".000Z", "Z");
  }
  if (typeof v === "string") return v === "" ? "(empty)" : v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v.length ? v.join(", ") : "[]";
  return JSON.stringify(v);
}

/** `token.create` -> "create", for a badge colour: creations, changes, removals, the rest. */
export function actionKind(action: string): "create" | "change" | "remove" | "deny" | "other" {
  const verb = action.split(".").pop() ?? "";
  if (action === "authz.denied" || verb.endsWith("failed")) return "deny";
  if (["create", "add", "setup", "accept", "accept_invitation", "claim"].includes(verb)) return "create";
  if (["revoke", "delete", "remove", "disable"].includes(verb)) return "remove";
  if (["update", "update_role", "rotate", "enable", "change_password", "resync"].includes(verb)) return "change";
  return "other";
}
