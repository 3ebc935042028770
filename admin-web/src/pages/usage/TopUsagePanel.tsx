/** Rankings (ListTopUsage): tokens, routes, teams, error codes or client IPs, by calls or errors. */
import { Group, SegmentedControl, Select, Table, Text, Tooltip } from "@mantine/core";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { Link } from "@tanstack/react-router";
import { IconTrophy } from "@tabler/icons-react";
import type { TopUsageEntry } from "../../gen/keygate/v1/usage_pb";
import { usageApi } from "../../api/transport";
import { Panel } from "../../components/misc/Panel";
import { EmptyState } from "../../components/states/EmptyState";
import { ErrorState } from "../../components/states/ErrorState";
import { SkeletonRows } from "../../components/states/LoadingState";
import { count, percent } from "../../lib/format";
import { rateTone } from "./format";
import { DAY, resolveRange, type RangeSearch } from "./range";
import { TOP_BY, type TopBy, type TopOrderName, type UsageFilters } from "./search";
import { TOP_DIMENSION, TOP_ORDER, toUsageQuery } from "./query";
import classes from "./Usage.module.css";

const BY_LABEL: Record<TopBy, string> = { token: "Tokens", route: "Routes", team: "Teams", error: "Error codes", ip: "Client IPs" };
const NONE_LABEL: Record<TopBy, string> = { token: "no token", route: "no route", team: "no team", error: "no error code", ip: "no address" };
const LIMIT = 10;

export function TopUsagePanel({
  range,
  filters,
  by,
  order,
  onChange,
  onFilter,
}: {
  range: RangeSearch;
  filters: UsageFilters;
  by: TopBy;
  order: TopOrderName;
  onChange: (p: { by?: TopBy; order?: TopOrderName }) => void;
  /** Narrow the overview to an entry (team, route, token). */
  onFilter: (f: UsageFilters) => void;
}) {
  const perGateway = !!filters.gateway;
  const top = useQuery({
    queryKey: ["usage", "top", range, filters, by, order],
    queryFn: ({ signal }) => {
      const r = resolveRange(range, new Date());
      return usageApi.listTopUsage({ query: toUsageQuery(filters, r), by: TOP_DIMENSION[by], order: TOP_ORDER[order], limit: LIMIT }, { signal });
    },
    enabled: !perGateway,
    placeholderData: keepPreviousData,
    refetchInterval: range.range === "custom" ? false : 60_000,
  });
  const entries = top.data?.entries ?? [];
  const max = Math.max(1, ...entries.map((e) => Number(order === "errors" ? e.errors : e.calls)));

  let body;
  if (perGateway) {
    body = <EmptyState compact icon={IconTrophy} title="Not counted per gateway" description="Gateways are counted per status class only. Clear the gateway filter to rank tokens, routes and teams." />;
  } else if (top.error) {
    body = (
      <div style={{ padding: "0 12px" }}>
        <ErrorState error={top.error} retry={() => void top.refetch()} title="Could not load the ranking" />
      </div>
    );
  } else if (!top.data) {
    body = <SkeletonRows rows={6} height={20} />;
  } else if (entries.length === 0) {
    body = (
      <EmptyState
        compact
        icon={IconTrophy}
        title={order === "errors" ? "No errors in this range" : "No calls in this range"}
        description={by === "ip" ? "Client addresses come from raw events only (refusals, 5xx and each token's first call per minute)." : undefined}
      />
    );
  } else {
    body = (
      <div className={classes.scroll}>
        <Table className={classes.table} highlightOnHover aria-label={`Top ${BY_LABEL[by].toLowerCase()} by ${order}`} aria-busy={top.isFetching || undefined}>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>{BY_LABEL[by].replace(/s$/, "")}</Table.Th>
              <Table.Th aria-hidden />
              <Table.Th className={classes.num}>Calls</Table.Th>
              <Table.Th className={classes.num}>Errors</Table.Th>
              <Table.Th className={classes.num}>Success</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {entries.map((e) => (
              <Table.Tr key={e.key || "(none)"}>
                <Table.Td style={{ maxWidth: 220 }} className="kg-truncate">
                  <EntryName by={by} e={e} onFilter={onFilter} range={range} />
                </Table.Td>
                <Table.Td w={90}>
                  <div className={classes.track} aria-hidden>
                    <div
                      className={classes.fill}
                      style={{
                        width: `${(Number(order === "errors" ? e.errors : e.calls) / max) * 100}%`,
                        background: order === "errors" ? "var(--mantine-color-red-5)" : "var(--mantine-color-indigo-5)",
                      }}
                    />
                  </div>
                </Table.Td>
                <Table.Td className={classes.num}>{count(e.calls)}</Table.Td>
                <Table.Td className={classes.num}>{count(e.errors)}</Table.Td>
                <Table.Td className={classes.num}>
                  <span className={rateTone(e.successRate, e.calls)}>{percent(e.successRate, e.calls > 0n)}</span>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </div>
    );
  }

  return (
    <Panel
      title="Top"
      flush
      actions={
        <Group gap={6} wrap="nowrap">
          <Select
            size="xs"
            w={130}
            aria-label="Rank"
            value={by}
            allowDeselect={false}
            onChange={(v) => v && onChange({ by: v as TopBy })}
            data={TOP_BY.map((b) => ({ value: b, label: BY_LABEL[b] }))}
          />
          <SegmentedControl
            size="xs"
            aria-label="Rank by"
            value={order}
            onChange={(v) => onChange({ order: v as TopOrderName })}
            data={[
              { value: "calls", label: "Calls" },
              { value: "errors", label: "Errors" },
            ]}
          />
        </Group>
      }
    >
      {body}
      {!perGateway && top.data && spansWeek(range) && (
        <Text size="xs" c="dimmed" px={14} py={6}>
          Rankings of 7 days or more count whole UTC days.
        </Text>
      )}
    </Panel>
  );
}

/** Rankings of 7 days or more read whole UTC days (the server widens them). */
function spansWeek(r: RangeSearch): boolean {
  const x = resolveRange(r, new Date());
  return x.end.getTime() - x.start.getTime() >= 7 * DAY;
}

function EntryName({ by, e, onFilter, range }: { by: TopBy; e: TopUsageEntry; onFilter: (f: UsageFilters) => void; range: RangeSearch }) {
  if (!e.key) {
    return (
      <Text span size="sm" c="dimmed" fs="italic">
        {NONE_LABEL[by]}
      </Text>
    );
  }
  switch (by) {
    case "token":
      return (
        <Tooltip label={e.key}>
          <Link to="/usage/tokens/$tokenId" params={{ tokenId: e.key }} search={range} className="kg-link">
            {e.label || e.key}
          </Link>
        </Tooltip>
      );
    case "route":
      return (
        <Link to="/usage/routes/$route" params={{ route: e.key }} search={range} className="kg-link kg-mono">
          {e.key}
        </Link>
      );
    case "team":
      return (
        <button type="button" className={`kg-link ${classes.linkButton}`} onClick={() => onFilter({ team: e.key })} title="Show this team's usage">
          {e.label && e.label !== e.key ? `${e.label} (${e.key})` : e.key}
        </button>
      );
    default:
      return <span className="kg-mono">{e.key}</span>;
  }
}
