/**
 * The body of a token's or a route's usage page (GetTokenUsage / GetRouteUsage answer the
 * same shape): totals and percentiles, first and last use, calls over time, status codes,
 * latency percentiles over time, the breakdown (routes a token called, tokens that called a
 * route) and the most recent raw events (ListUsageEvents).
 */
import type { ReactNode } from "react";
import { Table, Text } from "@mantine/core";
import type { UseQueryResult } from "@tanstack/react-query";
import { useQuery } from "@tanstack/react-query";
import { IconListDetails } from "@tabler/icons-react";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { UsageBreakdown, UsageFilter, UsagePoint, UsageStats, UsageTier, StatusCount } from "../../gen/keygate/v1/usage_pb";
import { usageApi } from "../../api/transport";
import { StatCard } from "../../components/misc/StatCard";
import { Panel } from "../../components/misc/Panel";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { EmptyState } from "../../components/states/EmptyState";
import { ErrorState } from "../../components/states/ErrorState";
import { SkeletonRows } from "../../components/states/LoadingState";
import { compactCount, count, dateToTs, percent, tsToDate } from "../../lib/format";
import { latency, rateTone } from "./format";
import { ChartPanel, LatencyChart, LatencyTable, MixList, NoTraffic, TrafficChart, TrafficTable } from "./charts";
import type { ResolvedRange } from "./range";
import { latencyRows, latencySummary, statusMix, trafficRows, trafficSummary } from "./series";
import { EventsTable, eventKey } from "./EventsTable";
import classes from "./Usage.module.css";

/** What both detail RPCs answer. */
export interface DetailAnswer {
  total?: UsageStats;
  series: UsagePoint[];
  statuses: StatusCount[];
  firstUsedAt?: Timestamp;
  lastUsedAt?: Timestamp;
  stepSeconds: number;
  tier: UsageTier;
}

export interface DetailData {
  range: ResolvedRange;
  answer: DetailAnswer;
  breakdown: UsageBreakdown[];
}

export function DetailView({
  q,
  breakdownTitle,
  breakdownKey,
  renderKey,
  events,
  eventsHide,
}: {
  q: UseQueryResult<DetailData>;
  breakdownTitle: string;
  breakdownKey: string;
  renderKey: (b: UsageBreakdown) => ReactNode;
  /** The recent-events filter (without range). */
  events: Omit<UsageFilter, "$typeName" | "startTime" | "endTime"> & { key: string };
  eventsHide: ("token" | "route")[];
}) {
  const d = q.data;
  if (q.error && !d) return <ErrorState error={q.error} retry={() => void q.refetch()} title="Could not load usage" />;
  const total = d?.answer.total;
  const calls = Number(total?.calls ?? 0n);
  const span = d && { start: d.range.start, end: d.range.end, stepSeconds: d.answer.stepSeconds || d.range.stepSeconds };
  const rows = d && span ? trafficRows(d.answer.series, span) : [];
  const lat = d && span ? latencyRows(d.answer.series, span) : [];
  const loading = !d;
  const last = tsToDate(d?.answer.lastUsedAt);
  const first = tsToDate(d?.answer.firstUsedAt);

  return (
    <>
      <div className={classes.stats}>
        <StatCard label="Calls" value={total && compactCount(total.calls)} loading={loading} hint={total && `${count(total.calls)} in ${d!.range.label.toLowerCase()}`} />
        <StatCard
          label="Success rate"
          value={total && <span className={rateTone(total.successRate, total.calls)}>{percent(total.successRate, calls > 0)}</span>}
          loading={loading}
          hint={total && `${count(total.errors)} errors (≥ 400)`}
        />
        <StatCard label="p50 latency" value={total && latency(total.latencyP50Us, calls > 0)} loading={loading} hint={total && `mean ${latency(total.latencyAvgUs, calls > 0)}`} />
        <StatCard label="p95 latency" value={total && latency(total.latencyP95Us, calls > 0)} loading={loading} hint={total && `min ${latency(total.latencyMinUs, calls > 0)}`} />
        <StatCard label="p99 latency" value={total && latency(total.latencyP99Us, calls > 0)} loading={loading} hint={total && `max ${latency(total.latencyMaxUs, calls > 0)}`} />
        <StatCard
          label="Last used"
          value={d && <span className={classes.smallValue}>{last ? <TimeAgo ts={d.answer.lastUsedAt} /> : "Never"}</span>}
          loading={loading}
          hint={d && (first ? `first ${first.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })}` : "No use kept (400 days)")}
        />
      </div>

      <div className={classes.row}>
        <ChartPanel
          title="Calls over time"
          summary={trafficSummary(rows)}
          loading={loading}
          error={undefined}
          retry={() => void q.refetch()}
          empty={d && calls === 0 ? <NoTraffic /> : undefined}
          chart={() => <TrafficChart rows={rows} />}
          table={() => <TrafficTable rows={rows} />}
        />
        <Panel title="Status codes">
          {loading ? <SkeletonRows rows={4} height={18} /> : <MixList entries={statusMix(d!.answer.statuses)} label="Calls by status code" />}
        </Panel>
      </div>

      <div className={classes.half}>
        <ChartPanel
          title="Latency percentiles"
          summary={latencySummary(total)}
          loading={loading}
          error={undefined}
          retry={() => void q.refetch()}
          empty={d && calls === 0 ? <NoTraffic what="No calls, so no latency" /> : undefined}
          chart={() => <LatencyChart rows={lat} />}
          table={() => <LatencyTable rows={lat} />}
        />
        <Panel title={breakdownTitle} flush>
          {loading ? (
            <SkeletonRows rows={5} height={20} />
          ) : d!.breakdown.length === 0 ? (
            <EmptyState compact icon={IconListDetails} title="None in this range" />
          ) : (
            <div className={classes.scroll}>
              <Table className={classes.table} highlightOnHover stickyHeader aria-label={breakdownTitle}>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>{breakdownKey}</Table.Th>
                    <Table.Th className={classes.num}>Calls</Table.Th>
                    <Table.Th className={classes.num}>Errors</Table.Th>
                    <Table.Th className={classes.num}>Success</Table.Th>
                    <Table.Th className={classes.num}>p95</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {d!.breakdown.map((b) => {
                    const s = b.stats;
                    return (
                      <Table.Tr key={b.key || "(none)"}>
                        <Table.Td className="kg-truncate" style={{ maxWidth: 220 }}>
                          {renderKey(b)}
                        </Table.Td>
                        <Table.Td className={classes.num}>{count(s?.calls ?? 0n)}</Table.Td>
                        <Table.Td className={classes.num}>{count(s?.errors ?? 0n)}</Table.Td>
                        <Table.Td className={classes.num}>
                          <span className={rateTone(s?.successRate ?? 0, s?.calls ?? 0n)}>{percent(s?.successRate ?? 0, (s?.calls ?? 0n) > 0n)}</span>
                        </Table.Td>
                        <Table.Td className={classes.num}>{latency(s?.latencyP95Us, (s?.calls ?? 0n) > 0n)}</Table.Td>
                      </Table.Tr>
                    );
                  })}
                </Table.Tbody>
              </Table>
            </div>
          )}
        </Panel>
      </div>

      {d && <RecentEvents filter={events} range={d.range} hide={eventsHide} />}
    </>
  );
}

const RECENT = 25;

function RecentEvents({ filter, range, hide }: { filter: Omit<UsageFilter, "$typeName" | "startTime" | "endTime"> & { key: string }; range: ResolvedRange; hide: ("token" | "route")[] }) {
  const { key, ...f } = filter;
  const q = useQuery({
    queryKey: ["usage", "events", key, range.start.getTime(), range.end.getTime()],
    queryFn: ({ signal }) =>
      usageApi.listUsageEvents(
        { filter: { ...f, startTime: dateToTs(range.start), endTime: dateToTs(range.end) }, pageSize: RECENT },
        { signal },
      ),
  });
  const rows = (q.data?.events ?? []).map((e) => ({ key: eventKey(e), e }));
  return (
    <Panel title="Recent raw events" flush actions={<Text size="xs" c="dimmed">refusals, 5xx and the first call per token and minute</Text>}>
      {q.error ? (
        <div style={{ padding: "0 12px" }}>
          <ErrorState error={q.error} retry={() => void q.refetch()} title="Could not load events" />
        </div>
      ) : !q.data ? (
        <SkeletonRows rows={4} height={20} />
      ) : rows.length === 0 ? (
        <EmptyState compact icon={IconListDetails} title="No raw events in this range" description="Successful calls are kept as counts; a raw event is kept for refusals, 5xx and each token's first call of a minute." />
      ) : (
        <div className={classes.scroll}>
          <EventsTable rows={rows} label="Recent raw events" hide={hide} withDate />
        </div>
      )}
    </Panel>
  );
}
