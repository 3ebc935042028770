/**
 * The home page: DashboardService.GetDashboard in one call (counts, today's traffic,
 * expiring / unused tokens, tokens created per day, recent audit), plus the last 24 hours of
 * traffic (GetUsageSummary) and the week's top tokens and routes (ListTopUsage).
 */
import type { ReactNode } from "react";
import { Anchor, Badge, Group, SegmentedControl, Text, Tooltip } from "@mantine/core";
import { AreaChart, BarChart } from "@mantine/charts";
import "@mantine/charts/styles.css";
import { useQuery } from "@tanstack/react-query";
import { Link, getRouteApi } from "@tanstack/react-router";
import { IconActivity, IconClockExclamation, IconKey, IconListDetails, IconZzz } from "@tabler/icons-react";
import { useState } from "react";
import type { Token } from "../../gen/keygate/v1/token_pb";
import type { usageApi } from "../../api/transport";
import { EXPIRING_DAYS, UNUSED_DAYS, dashboardQuery, dashboardUsageQuery, topUsageQuery, type TopBy } from "./queries";
import { PageHeader } from "../../components/misc/PageHeader";
import { StatCard } from "../../components/misc/StatCard";
import { Panel } from "../../components/misc/Panel";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { EmptyState } from "../../components/states/EmptyState";
import { ErrorState } from "../../components/states/ErrorState";
import { SkeletonRows } from "../../components/states/LoadingState";
import { compactCount, count, percent, tsToDate } from "../../lib/format";
import { hourLabel, dayLabel } from "./chart";
import classes from "./Dashboard.module.css";

const route = getRouteApi("/app/");

export function DashboardPage() {
  const { team } = route.useSearch();
  const navigate = route.useNavigate();
  const teamId = team ?? "";

  const dash = useQuery(dashboardQuery(teamId));
  const usage = useQuery(dashboardUsageQuery(teamId));
  const d = dash.data;

  return (
    <>
      <PageHeader
        title="Dashboard"
        description={team ? `Team ${team}` : "Every team you can see"}
        actions={
          <TeamSelect
            size="xs"
            w={200}
            aria-label="Team"
            placeholder="All teams"
            clearable
            value={team}
            onChange={(v) => void navigate({ search: v ? { team: v } : {} })}
          />
        }
      />
      {dash.error ? (
        <ErrorState error={dash.error} retry={() => void dash.refetch()} title="Could not load the dashboard" />
      ) : (
        <>
          <div className={classes.stats}>
            <StatCard label="Active tokens" value={d && count(d.activeTokens)} loading={!d} hint={d && <Link to="/tokens" search={{ status: "active", team }} className="kg-link">View tokens</Link>} />
            <StatCard label="Routes" value={d && count(d.routes)} loading={!d} />
            <StatCard label="Teams" value={d && count(d.teams)} loading={!d} />
            <StatCard label="Users" value={d && count(d.users)} loading={!d} />
            <StatCard label="Calls today" value={d && compactCount(d.callsToday)} loading={!d} hint={d && `${count(d.errorsToday)} ${Number(d.errorsToday) === 1 ? "error" : "errors"} since 0:00 UTC`} />
            <StatCard
              label="Success rate today"
              value={d && <SuccessRate rate={d.successRateToday} calls={Number(d.callsToday)} />}
              loading={!d}
              hint="Answers below 400"
            />
          </div>

          <div className={classes.row}>
            <Panel title="Traffic, last 24 hours" actions={usage.data && <Text size="xs" c="dimmed">{count(usage.data.total?.calls ?? 0n)} calls · p95 {latency(usage.data.total?.latencyP95Us)}</Text>}>
              <UsageChart usage={usage} />
            </Panel>
            <TopPanel teamId={teamId} />
          </div>

          <div className={classes.row3}>
            <TokenListPanel
              title={`Expiring within ${EXPIRING_DAYS} days`}
              total={d?.expiringCount}
              tokens={d?.expiring}
              loading={!d}
              icon={IconClockExclamation}
              emptyText="No active token expires this week."
              link={<Link to="/tokens" search={{ expiring: EXPIRING_DAYS, team, sort: "expires" }} className="kg-link">View all</Link>}
              right={(t) => <TimeAgo ts={t.expiresAt} />}
            />
            <TokenListPanel
              title={`Unused for ${UNUSED_DAYS} days`}
              total={d?.unusedCount}
              tokens={d?.unused}
              loading={!d}
              icon={IconZzz}
              emptyText="Every token was used this month."
              link={<Link to="/tokens" search={{ unused: UNUSED_DAYS, team, status: "active" }} className="kg-link">View all</Link>}
              right={(t) => <TimeAgo ts={t.lastUsedAt} />}
            />
            <TokenListPanel
              title="Never used"
              total={d?.neverUsedCount}
              tokens={d?.neverUsed}
              loading={!d}
              icon={IconKey}
              emptyText="Every token has been used at least once."
              link={<Link to="/tokens" search={{ never: true, team, status: "active" }} className="kg-link">View all</Link>}
              right={(t) => (
                <Text span size="xs" c="dimmed">
                  created <TimeAgo ts={t.createdAt} />
                </Text>
              )}
            />
          </div>

          <div className={classes.row}>
            <Panel
              title="Recent activity"
              flush
              actions={
                <Anchor component={Link} to="/audit" size="xs">
                  Audit log
                </Anchor>
              }
            >
              {!d ? (
                <SkeletonRows rows={5} height={20} />
              ) : d.recentAudit.length === 0 ? (
                <EmptyState compact icon={IconListDetails} title="No activity yet" description="Changes to tokens, routes and teams appear here." />
              ) : (
                <ul className={classes.list}>
                  {d.recentAudit.map((e) => (
                    <li key={String(e.seq)}>
                      <Badge variant="default" className="kg-mono" miw={110}>
                        {e.action}
                      </Badge>
                      <span className={`${classes.grow} kg-truncate`}>
                        <Text span fw={500} size="sm">
                          {e.actorName || e.actorId}
                        </Text>{" "}
                        <Text span size="sm" c="dimmed" className="kg-mono">
                          {e.entityId}
                        </Text>
                      </span>
                      {e.teamId && <Text span size="xs" c="dimmed">{e.teamId}</Text>}
                      <Text span size="xs" c="dimmed" className="kg-nowrap">
                        <TimeAgo ts={e.time} />
                      </Text>
                    </li>
                  ))}
                </ul>
              )}
            </Panel>
            <Panel title="Tokens created, last 30 days">
              {!d ? (
                <SkeletonRows rows={4} height={24} />
              ) : (
                <BarChart
                  h={200}
                  data={d.tokensCreated.map((p) => ({ day: dayLabel(tsToDate(p.day)!), tokens: Number(p.count) }))}
                  dataKey="day"
                  series={[{ name: "tokens", label: "Tokens created", color: "indigo.5" }]}
                  tickLine="none"
                  gridAxis="x"
                  withTooltip
                  xAxisProps={{ interval: 6 }}
                  yAxisProps={{ allowDecimals: false, width: 32 }}
                />
              )}
            </Panel>
          </div>

          {d && d.tokensPerTeam.length > 0 && (
            <Panel title="Active tokens per team" flush>
              <ul className={classes.list}>
                {d.tokensPerTeam.slice(0, 10).map((t) => {
                  const max = Number(d.tokensPerTeam[0]!.activeTokens) || 1;
                  return (
                    <li key={t.teamId}>
                      <Link to="/tokens" search={{ team: t.teamId, status: "active" }} className={`kg-link ${classes.grow} kg-truncate`}>
                        {t.teamName || t.teamId}
                      </Link>
                      <div className={classes.barTrack} aria-hidden>
                        <div className={classes.bar} style={{ width: `${(Number(t.activeTokens) / max) * 100}%` }} />
                      </div>
                      <Text span size="sm" w={48} ta="right" className="kg-nowrap">
                        {count(t.activeTokens)}
                      </Text>
                    </li>
                  );
                })}
              </ul>
            </Panel>
          )}
        </>
      )}
    </>
  );
}

function SuccessRate({ rate, calls }: { rate: number; calls: number }) {
  const tone = calls === 0 ? undefined : rate >= 0.99 ? "kg-good" : rate >= 0.95 ? "kg-warn" : "kg-bad";
  return <span className={tone}>{percent(rate, calls > 0)}</span>;
}

function latency(us: bigint | undefined): string {
  if (!us) return "—";
  const ms = Number(us) / 1000;
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

function UsageChart({ usage }: { usage: ReturnType<typeof useQuery<Awaited<ReturnType<typeof usageApi.getUsageSummary>>>> }) {
  if (usage.error) return <ErrorState error={usage.error} retry={() => void usage.refetch()} title="Could not load traffic" />;
  if (!usage.data) return <SkeletonRows rows={5} height={24} />;
  const data = usage.data.series.map((p) => {
    const calls = Number(p.stats?.calls ?? 0n);
    const errors = Number(p.stats?.errors ?? 0n);
    return { hour: hourLabel(tsToDate(p.time)!), ok: calls - errors, errors };
  });
  if (data.every((p) => p.ok === 0 && p.errors === 0)) {
    return (
      <EmptyState
        compact
        icon={IconActivity}
        title="No traffic in the last 24 hours"
        description="Calls through the gateway show here within seconds of being answered."
      />
    );
  }
  return (
    <AreaChart
      h={220}
      data={data}
      dataKey="hour"
      type="stacked"
      series={[
        { name: "ok", label: "Successful", color: "indigo.5" },
        { name: "errors", label: "Errors", color: "red.5" },
      ]}
      curveType="monotone"
      withDots={false}
      tickLine="none"
      gridAxis="x"
      withLegend
      legendProps={{ verticalAlign: "top", height: 28 }}
      xAxisProps={{ interval: 3 }}
      yAxisProps={{ allowDecimals: false, width: 44 }}
      fillOpacity={0.25}
    />
  );
}

function TopPanel({ teamId }: { teamId: string }) {
  const [by, setBy] = useState<TopBy>("tokens");
  const top = useQuery(topUsageQuery(teamId, by));
  const entries = top.data?.entries ?? [];
  const max = Math.max(1, ...entries.map((e) => Number(e.calls)));
  return (
    <Panel
      title="Top, last 7 days"
      flush
      actions={
        <SegmentedControl
          size="xs"
          aria-label="Rank by"
          value={by}
          onChange={(v) => setBy(v as TopBy)}
          data={[
            { value: "tokens", label: "Tokens" },
            { value: "routes", label: "Routes" },
          ]}
        />
      }
    >
      {top.error ? (
        <div style={{ padding: "0 12px" }}>
          <ErrorState error={top.error} retry={() => void top.refetch()} />
        </div>
      ) : !top.data ? (
        <SkeletonRows rows={5} height={20} />
      ) : entries.length === 0 ? (
        <EmptyState compact icon={IconActivity} title="No calls this week" />
      ) : (
        <ul className={classes.list}>
          {entries.map((e) => (
            <li key={e.key || "(none)"}>
              <span className={`${classes.grow} kg-truncate`}>
                {by === "tokens" ? (
                  e.key ? (
                    <Link to="/tokens" search={{ open: e.key }} className={"kg-link"}>
                      {e.label || e.key}
                    </Link>
                  ) : (
                    <Text span size="sm" c="dimmed">no token</Text>
                  )
                ) : (
                  <Text span size="sm" className="kg-mono">
                    {e.key || "no route"}
                  </Text>
                )}
              </span>
              <div className={classes.barTrack} aria-hidden>
                <div className={classes.bar} style={{ width: `${(Number(e.calls) / max) * 100}%` }} />
              </div>
              <Tooltip label={`${count(e.calls)} calls, ${count(e.errors)} errors, ${percent(e.successRate, e.calls > 0n)} success`}>
                <Text span size="sm" w={56} ta="right" className="kg-nowrap">
                  {compactCount(e.calls)}
                </Text>
              </Tooltip>
            </li>
          ))}
        </ul>
      )}
    </Panel>
  );
}

function TokenListPanel({
  title,
  total,
  tokens,
  loading,
  icon,
  emptyText,
  link,
  right,
}: {
  title: string;
  total: bigint | undefined;
  tokens: Token[] | undefined;
  loading: boolean;
  icon: typeof IconKey;
  emptyText: string;
  link: ReactNode;
  right: (t: Token) => ReactNode;
}) {
  return (
    <Panel
      title={
        <Group gap={6} component="span">
          {title}
          {total !== undefined && <Badge color={total > 0n ? "yellow" : "gray"}>{count(total)}</Badge>}
        </Group>
      }
      actions={total !== undefined && total > 0n ? <Text size="xs">{link}</Text> : null}
      flush
    >
      {loading ? (
        <SkeletonRows rows={4} height={20} />
      ) : !tokens || tokens.length === 0 ? (
        <EmptyState compact icon={icon} title="Nothing here" description={emptyText} />
      ) : (
        <ul className={classes.list}>
          {tokens.map((t) => (
            <li key={t.id}>
              <span className={`${classes.grow} kg-truncate`}>
                <Link to="/tokens" search={{ open: t.id }} className={"kg-link"}>
                  {t.name}
                </Link>{" "}
                <Text span size="xs" c="dimmed">
                  {t.teamId}
                </Text>
              </span>
              <Text span size="xs" className="kg-nowrap">
                {right(t)}
              </Text>
            </li>
          ))}
        </ul>
      )}
    </Panel>
  );
}
