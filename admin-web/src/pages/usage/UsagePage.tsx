/**
 * Usage overview: a range (1 h, 24 h, 7 d, 30 d, custom) and filters (team, route, token,
 * gateway, status class) in the URL; totals and latency percentiles, calls over time stacked
 * by status class, the status mix and latency percentiles over time (GetUsageSummary: one
 * call for the totals and one per status class, all at the same step), rankings
 * (ListTopUsage) and export (ExportUsage).
 */
import { Alert, Button, Text, Tooltip } from "@mantine/core";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { getRouteApi } from "@tanstack/react-router";
import { AnchorLink, ButtonLink } from "./links";
import { IconBroadcast, IconFilterOff } from "@tabler/icons-react";
import type { GetUsageSummaryResponse } from "../../gen/keygate/v1/usage_pb";
import { usageApi } from "../../api/transport";
import { serverInfoQuery } from "../../api/lists";
import { useMe } from "../../auth/session";
import { isSystemAdmin } from "../../auth/permissions";
import { PageHeader } from "../../components/misc/PageHeader";
import { StatCard } from "../../components/misc/StatCard";
import { Panel } from "../../components/misc/Panel";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { ErrorState } from "../../components/states/ErrorState";
import { SkeletonRows } from "../../components/states/LoadingState";
import { compactCount, count, percent } from "../../lib/format";
import { compact } from "../../lib/search";
import { TIER_LABEL, bytes, latency, rateTone } from "./format";
import { RangePicker } from "./RangePicker";
import { ChartPanel, LatencyChart, LatencyTable, MixList, NoTraffic, TrafficChart, TrafficTable } from "./charts";
import { GatewaySelect, RouteSelect, StatusSelect, TokenSelect, useGateways } from "./pickers";
import { TopUsagePanel } from "./TopUsagePanel";
import { ExportMenu } from "./ExportMenu";
import { resolveRange, stepLabel, type RangeSearch, type ResolvedRange } from "./range";
import { classMix, latencyRows, latencySummary, trafficRows, trafficSummary, type ChartClass } from "./series";
import { hasFilters, type UsageFilters, type UsageSearch } from "./search";
import { classesFor, toUsageQuery } from "./query";
import classes from "./Usage.module.css";

const route = getRouteApi("/app/usage");

interface Overview {
  range: ResolvedRange;
  main: GetUsageSummaryResponse;
  byClass: Partial<Record<ChartClass, GetUsageSummaryResponse>>;
  classes: ChartClass[];
}

export function UsagePage() {
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const me = useMe();
  const admin = isSystemAdmin(me);
  const gateways = useGateways(admin);
  const info = useQuery(serverInfoQuery);

  const rangeSearch: RangeSearch = { range: search.range, from: search.from, to: search.to };
  const filters: UsageFilters = { team: search.team, route: search.route, token: search.token, gateway: search.gateway, status: search.status };
  const live = search.range !== "custom";

  const overview = useQuery({
    queryKey: ["usage", "overview", rangeSearch, filters],
    queryFn: async ({ signal }): Promise<Overview> => {
      const range = resolveRange(rangeSearch, new Date());
      const cls = classesFor(filters.status);
      const ask = (status?: ChartClass) =>
        usageApi.getUsageSummary({ query: toUsageQuery(filters, range, status), stepSeconds: range.stepSeconds }, { signal });
      const [main, ...rest] = await Promise.all([ask(), ...cls.map((c) => ask(c))]);
      return { range, main: main!, byClass: Object.fromEntries(cls.map((c, i) => [c, rest[i]!])), classes: cls };
    },
    placeholderData: keepPreviousData,
    refetchInterval: live ? 30_000 : false,
  });

  const set = (patch: Partial<UsageSearch>) => void navigate({ search: (prev) => compact({ ...prev, ...patch }), replace: true });
  const setFilter = (patch: UsageFilters) => {
    // A gateway combines with the status class only; the other filters with anything but a gateway.
    const gw = "gateway" in patch && patch.gateway;
    const narrow = (["team", "route", "token"] as const).some((k) => k in patch && patch[k]);
    set({ ...patch, ...(gw ? { team: undefined, route: undefined, token: undefined } : {}), ...(narrow ? { gateway: undefined } : {}) });
  };

  const d = overview.data;
  const total = d?.main.total;
  const calls = Number(total?.calls ?? 0n);
  const rows = d ? trafficRows(d.main.series, { start: d.range.start, end: d.range.end, stepSeconds: d.main.stepSeconds || d.range.stepSeconds }, Object.fromEntries(Object.entries(d.byClass).map(([c, r]) => [c, r!.series]))) : [];
  const lat = d ? latencyRows(d.main.series, { start: d.range.start, end: d.range.end, stepSeconds: d.main.stepSeconds || d.range.stepSeconds }) : [];
  const mix = d ? classMix(Object.fromEntries(Object.entries(d.byClass).map(([c, r]) => [c, Number(r!.total?.calls ?? 0n)])), calls) : [];
  const loading = !d;
  const gatewayNames = (gateways.data?.gateways ?? []).map((g) => g.name);

  return (
    <>
      <PageHeader
        title="Usage"
        description={
          d ? (
            <>
              {d.range.label} · {stepLabel(d.main.stepSeconds || d.range.stepSeconds)} steps · read from the {TIER_LABEL[d.main.tier]} tier
              {overview.isFetching && " · updating…"}
            </>
          ) : (
            "Calls through the gateways, from per-minute rollups"
          )
        }
        actions={
          <>
            <ExportMenu range={rangeSearch} filters={filters} />
            <ButtonLink size="xs" variant="default" to="/usage/tail" search={{ team: filters.team, route: filters.route, token: filters.token }} leftSection={<IconBroadcast size={14} />}>
              Live tail
            </ButtonLink>
          </>
        }
      />

      {info.data && !info.data.usageEnabled && (
        <Alert color="yellow" variant="light" mb="md" title="Usage collection is off">
          This control plane refuses the gateways' usage reports (KEYGATE_USAGE_INGESTION), so new calls are not counted here.
        </Alert>
      )}

      <div className={`kg-card ${classes.filters}`} role="group" aria-label="Range and filters">
        <RangePicker value={rangeSearch} onChange={(r) => set({ range: r.range, from: r.from, to: r.to })} />
        <TeamSelect size="xs" w={150} aria-label="Team" placeholder="All teams" clearable value={filters.team} onChange={(v) => setFilter({ team: v })} />
        <RouteSelect size="xs" w={130} aria-label="Route" placeholder="All routes" value={filters.route} onChange={(v) => setFilter({ route: v })} />
        <TokenSelect size="xs" w={170} aria-label="Token" placeholder="All tokens" value={filters.token} onChange={(v) => setFilter({ token: v })} />
        {admin && gatewayNames.length > 0 && (
          <Tooltip label="Gateways are counted per status class only: this clears team, route and token." openDelay={400}>
            <div>
              <GatewaySelect size="xs" w={140} aria-label="Gateway" placeholder="All gateways" names={gatewayNames} value={filters.gateway} onChange={(v) => setFilter({ gateway: v })} />
            </div>
          </Tooltip>
        )}
        <StatusSelect size="xs" w={150} aria-label="Status" placeholder="Any status" value={filters.status} onChange={(v) => set({ status: v })} />
        {hasFilters(filters) && (
          <Button size="xs" variant="subtle" color="gray" leftSection={<IconFilterOff size={14} />} onClick={() => set({ team: undefined, route: undefined, token: undefined, gateway: undefined, status: undefined })}>
            Clear filters
          </Button>
        )}
      </div>

      {overview.error && !d ? (
        <ErrorState error={overview.error} retry={() => void overview.refetch()} title="Could not load usage" />
      ) : (
        <>
          <div className={classes.stats}>
            <StatCard label="Calls" value={total && compactCount(total.calls)} loading={loading} hint={total && `${count(total.calls)} in ${d!.range.label.toLowerCase()}`} />
            <StatCard
              label="Errors"
              value={total && <span className={total.errors > 0n ? "kg-bad" : undefined}>{compactCount(total.errors)}</span>}
              loading={loading}
              hint={total && (calls ? `${percent(Number(total.errors) / calls)} of calls (≥ 400)` : "Status 400 and above")}
            />
            <StatCard
              label="Success rate"
              value={total && <span className={rateTone(total.successRate, total.calls)}>{percent(total.successRate, calls > 0)}</span>}
              loading={loading}
              hint="Answers below 400"
            />
            <StatCard label="p50 latency" value={total && latency(total.latencyP50Us, calls > 0)} loading={loading} hint={total && `mean ${latency(total.latencyAvgUs, calls > 0)}`} />
            <StatCard label="p95 latency" value={total && latency(total.latencyP95Us, calls > 0)} loading={loading} hint={total && `min ${latency(total.latencyMinUs, calls > 0)}`} />
            <StatCard label="p99 latency" value={total && latency(total.latencyP99Us, calls > 0)} loading={loading} hint={total && `max ${latency(total.latencyMaxUs, calls > 0)} · out ${bytes(total.responseBytes)}`} />
          </div>

          <div className={classes.row}>
            <ChartPanel
              title="Calls over time"
              summary={trafficSummary(rows)}
              loading={loading}
              error={undefined}
              retry={() => void overview.refetch()}
              empty={d && calls === 0 ? <NoTraffic /> : undefined}
              chart={() => <TrafficChart rows={rows} classes={d!.classes.length ? d!.classes : undefined} />}
              table={() => <TrafficTable rows={rows} classes={d!.classes} />}
            />
            <Panel title="Status mix">
              {loading ? (
                <SkeletonRows rows={4} height={18} />
              ) : filters.status === "1xx" ? (
                <Text size="sm" c="dimmed">
                  Filtered to 1xx answers.
                </Text>
              ) : (
                <MixList entries={mix} label="Calls by status class" />
              )}
              {d && calls > 0 && (
                <Text size="xs" c="dimmed" mt="sm">
                  Exact status codes per token and route are on their detail pages (pick one in Top).
                </Text>
              )}
            </Panel>
          </div>

          <div className={classes.half}>
            <ChartPanel
              title="Latency percentiles"
              summary={latencySummary(total)}
              loading={loading}
              error={undefined}
              retry={() => void overview.refetch()}
              empty={d && calls === 0 ? <NoTraffic what="No calls, so no latency" /> : undefined}
              chart={() => <LatencyChart rows={lat} />}
              table={() => <LatencyTable rows={lat} />}
            />
            <TopUsagePanel
              range={rangeSearch}
              filters={filters}
              by={search.by ?? "token"}
              order={search.order ?? "calls"}
              onChange={(p) => set(p)}
              onFilter={(f) => setFilter(f)}
            />
          </div>
          <Text size="xs" c="dimmed">
            Every answered call is counted (rollups per minute, kept 48 h; per hour, 90 days; per day, 400 days). Latency is from request received to response headers sent; percentiles are within 1 %.{" "}
            <AnchorLink to="/usage/tail" size="xs" underline="always">
              Live tail
            </AnchorLink>{" "}
            shows raw events as they arrive.
          </Text>
        </>
      )}
    </>
  );
}
