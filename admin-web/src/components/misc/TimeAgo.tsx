import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Text, Tooltip } from "@mantine/core";
import { absoluteTime, relativeTime, tsToDate } from "../../lib/format";

/** Relative time with the absolute time on hover; `fallback` when absent. */
export function TimeAgo({ ts, fallback = "—" }: { ts: Timestamp | undefined; fallback?: string }) {
  const d = tsToDate(ts);
  if (!d) {
    return (
      <Text span size="sm" c="dimmed">
        {fallback}
      </Text>
    );
  }
  return (
    <Tooltip label={absoluteTime(d)}>
      <time dateTime={d.toISOString()} className="kg-nowrap">
        {relativeTime(d)}
      </time>
    </Tooltip>
  );
}
