/** Small pieces of the audit page. */
import { Badge } from "@mantine/core";
import { actionKind } from "./diff";

const KIND_COLOR = { create: "teal", change: "blue", remove: "red", deny: "orange", other: "gray" } as const;

export function ActionBadge({ action }: { action: string }) {
  return (
    <Badge color={KIND_COLOR[actionKind(action)]} className="kg-mono kg-fit" style={{ textTransform: "none" }}>
      {action}
    </Badge>
  );
}

/**
 * `Mar 10, 13:05:02` (the year only when not this year) in the browser's zone: an audit log
 * wants seconds. `full` always includes the year.
 */
export function preciseTime(d: Date, full = false, now: Date = new Date()): string {
  return d.toLocaleString(undefined, {
    year: full || d.getFullYear() !== now.getFullYear() ? "numeric" : undefined,
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });
}
