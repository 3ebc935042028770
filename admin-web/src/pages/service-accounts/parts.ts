import type { Me } from "../../auth/permissions";

/** `user:usr_...` -> "you" for the caller's own; the reference otherwise. */
export function createdByLabel(me: Me, createdBy: string): string {
  if (me.user && createdBy === `user:${me.user.id}`) return "you";
  if (me.serviceAccountId && createdBy === `service_account:${me.serviceAccountId}`) return "this service account";
  return createdBy || "unknown";
}
