import { Pill } from "../misc/Pill";
import type { Token } from "../../gen/keygate/v1/token_pb";
import { TokenStatus } from "../../gen/keygate/v1/common_pb";
import { absoluteTime, daysUntil, tsToDate } from "../../lib/format";

/** Active / expiring (within 7 days) / replaced (rotation grace) / expired / revoked. */
export function tokenState(t: Token, now = new Date()): { label: string; color: string; hint?: string } {
  if (t.status === TokenStatus.REVOKED) return { label: "Revoked", color: "red" };
  if (t.status === TokenStatus.EXPIRED) return { label: "Expired", color: "gray" };
  const exp = tsToDate(t.expiresAt);
  if (t.replacedById) {
    return { label: "Replaced", color: "orange", hint: exp ? `Rotated; works until ${absoluteTime(exp)}` : "Rotated" };
  }
  if (exp && daysUntil(exp, now) < 7) return { label: "Expiring", color: "yellow", hint: `Expires ${absoluteTime(exp)}` };
  return { label: "Active", color: "teal" };
}

export function TokenStatusBadge({ token }: { token: Token }) {
  const s = tokenState(token);
  return (
    <Pill color={s.color} title={s.hint}>
      {s.label}
    </Pill>
  );
}
