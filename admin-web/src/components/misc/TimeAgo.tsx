import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { absoluteTime, relativeTime, tsToDate } from "../../lib/format";

/** Relative time with the absolute time on hover (the native title: tables show hundreds of
 * these, and a Mantine Tooltip each would cost more to mount than the row); `fallback` when
 * absent. */
export function TimeAgo({ ts, fallback = "—" }: { ts: Timestamp | undefined; fallback?: string }) {
  const d = tsToDate(ts);
  if (!d) {
    return <span className="kg-muted">{fallback}</span>;
  }
  return (
    <time dateTime={d.toISOString()} title={absoluteTime(d)} className="kg-nowrap">
      {relativeTime(d)}
    </time>
  );
}
