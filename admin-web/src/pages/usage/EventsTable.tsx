/** Raw usage events (recent calls on detail pages, the live tail): one dense row each. */
import { useMemo } from "react";
import { Badge, Table, Text, Tooltip } from "@mantine/core";
import { useQueries } from "@tanstack/react-query";
import { Link } from "@tanstack/react-router";
import type { UsageEvent } from "../../gen/keygate/v1/usage_pb";
import { tokensApi } from "../../api/transport";
import { absoluteTime, tsToDate } from "../../lib/format";
import { latency, statusColor } from "./format";
import classes from "./Usage.module.css";

/** Token names for the ids shown (each looked up once and cached; at most `max` ids). */
export function useTokenNames(ids: string[], max = 60): Map<string, string> {
  const unique = useMemo(() => [...new Set(ids.filter(Boolean))].slice(0, max), [ids, max]);
  const results = useQueries({
    queries: unique.map((id) => ({
      queryKey: ["tokens", "get", id],
      queryFn: ({ signal }: { signal: AbortSignal }) => tokensApi.getToken({ id }, { signal }),
      staleTime: 5 * 60_000,
      retry: false,
    })),
  });
  const names = new Map<string, string>();
  results.forEach((r, i) => {
    const t = r.data?.token;
    if (t) names.set(unique[i]!, t.name);
  });
  return names;
}

export interface EventRow {
  /** Stable React key (gateway + event id). */
  key: string;
  e: UsageEvent;
}

export function eventKey(e: UsageEvent): string {
  return `${e.gateway}/${e.eventId}`;
}

function time(e: UsageEvent, withDate: boolean): string {
  const d = tsToDate(e.time);
  if (!d) return "—";
  const t = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  return withDate ? `${d.toLocaleDateString(undefined, { month: "short", day: "numeric" })} ${t}` : `${t}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

export function EventsTable({
  rows,
  label,
  hide = [],
  withDate = false,
  animate = false,
}: {
  rows: EventRow[];
  label: string;
  /** Columns that say nothing on this page (e.g. the token on a token's page). */
  hide?: ("token" | "route" | "gateway")[];
  withDate?: boolean;
  animate?: boolean;
}) {
  const names = useTokenNames(useMemo(() => (hide.includes("token") ? [] : rows.map((r) => r.e.tokenId)), [rows, hide]));
  const show = (c: "token" | "route" | "gateway") => !hide.includes(c);
  return (
    <Table className={classes.table} highlightOnHover stickyHeader aria-label={label}>
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Time</Table.Th>
          <Table.Th>Status</Table.Th>
          <Table.Th>Method</Table.Th>
          {show("route") && <Table.Th>Route</Table.Th>}
          {show("token") && <Table.Th>Token</Table.Th>}
          <Table.Th className={classes.num}>Latency</Table.Th>
          <Table.Th>Client</Table.Th>
          <Table.Th>Error</Table.Th>
          {show("gateway") && <Table.Th>Gateway</Table.Th>}
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {rows.map(({ key, e }) => {
          const d = tsToDate(e.time);
          return (
            <Table.Tr key={key} className={animate ? classes.newRow : undefined}>
              <Table.Td className="kg-nowrap kg-mono">
                <Tooltip label={d ? absoluteTime(d) : ""} disabled={!d} openDelay={300}>
                  <time dateTime={d?.toISOString()}>{time(e, withDate)}</time>
                </Tooltip>
              </Table.Td>
              <Table.Td>
                <Badge size="sm" variant="light" color={statusColor(e.status)} className="kg-fit">
                  {e.status}
                </Badge>
              </Table.Td>
              <Table.Td className="kg-mono">{e.method || "—"}</Table.Td>
              {show("route") && (
                <Table.Td className="kg-truncate" style={{ maxWidth: 160 }}>
                  {e.route ? (
                    <Link to="/usage/routes/$route" params={{ route: e.route }} className="kg-link kg-mono">
                      {e.route}
                    </Link>
                  ) : (
                    <Text span size="xs" c="dimmed">
                      none
                    </Text>
                  )}
                </Table.Td>
              )}
              {show("token") && (
                <Table.Td className="kg-truncate" style={{ maxWidth: 180 }}>
                  {e.tokenId ? (
                    <Link to="/usage/tokens/$tokenId" params={{ tokenId: e.tokenId }} className="kg-link" title={e.tokenId}>
                      {names.get(e.tokenId) ?? e.tokenId}
                    </Link>
                  ) : (
                    <Text span size="xs" c="dimmed">
                      {e.tokenHash ? "unknown key" : "no key"}
                    </Text>
                  )}
                </Table.Td>
              )}
              <Table.Td className={classes.num}>{latency(e.latencyUs)}</Table.Td>
              <Table.Td className="kg-mono kg-truncate" style={{ maxWidth: 140 }} title={e.userAgent || undefined}>
                {e.clientIp || "—"}
              </Table.Td>
              <Table.Td className="kg-mono">{e.error || ""}</Table.Td>
              {show("gateway") && <Table.Td className="kg-truncate" style={{ maxWidth: 120 }}>{e.gateway}</Table.Td>}
            </Table.Tr>
          );
        })}
      </Table.Tbody>
    </Table>
  );
}
