/**
 * The usage charts (Recharts through @mantine/charts; only the lazy usage pages import this)
 * and their text alternatives: each chart panel has a one-sentence summary (its caption for
 * screen readers) and a Chart/Table toggle showing the same numbers as a table.
 */
import { useState, type ReactNode } from "react";
import { SegmentedControl, Table, Text } from "@mantine/core";
import { BarChart, LineChart } from "@mantine/charts";
import "@mantine/charts/styles.css";
import { IconActivity } from "@tabler/icons-react";
import { Panel } from "../../components/misc/Panel";
import { EmptyState } from "../../components/states/EmptyState";
import { ErrorState } from "../../components/states/ErrorState";
import { SkeletonRows } from "../../components/states/LoadingState";
import { count, percent } from "../../lib/format";
import { msLabel } from "./format";
import { CLASS_COLOR, type ChartClass, type LatencyRow, type MixEntry, type TrafficRow } from "./series";
import classes from "./Usage.module.css";

type View = "chart" | "table";

/** A panel holding a chart, its summary (caption) and a table view of the same data. */
export function ChartPanel({
  title,
  summary,
  loading,
  error,
  retry,
  empty,
  chart,
  table,
  extra,
}: {
  title: string;
  summary: string | undefined;
  loading: boolean;
  error: unknown;
  retry: () => void;
  /** Shown instead of the chart when set (no data). */
  empty?: ReactNode;
  chart: () => ReactNode;
  table: () => ReactNode;
  extra?: ReactNode;
}) {
  const [view, setView] = useState<View>("chart");
  let body: ReactNode;
  if (error) body = <ErrorState error={error} retry={retry} title={`Could not load ${title.toLowerCase()}`} />;
  else if (loading) body = <SkeletonRows rows={5} height={24} />;
  else if (empty) body = empty;
  else
    body = (
      <figure className={classes.figure}>
        <figcaption className="kg-visually-hidden">{summary}</figcaption>
        {view === "chart" ? <div className={classes.chartWrap}>{chart()}</div> : <div className={classes.scroll}>{table()}</div>}
      </figure>
    );
  return (
    <Panel
      title={title}
      actions={
        <div style={{ display: "flex", gap: 8, alignItems: "center" }}>
          {extra}
          <SegmentedControl
            size="xs"
            aria-label={`Show ${title.toLowerCase()} as`}
            value={view}
            onChange={(v) => setView(v as View)}
            data={[
              { value: "chart", label: "Chart" },
              { value: "table", label: "Table" },
            ]}
          />
        </div>
      }
    >
      {body}
    </Panel>
  );
}

export function NoTraffic({ what = "No calls in this range" }: { what?: string }) {
  return (
    <EmptyState
      compact
      icon={IconActivity}
      title={what}
      description="Calls through the gateway are counted within seconds (each gateway reports every 10 s by default). Try a longer range or fewer filters."
    />
  );
}

const CLASS_SERIES: Record<ChartClass | "other", { label: string; color: string }> = {
  "2xx": { label: "2xx", color: `${CLASS_COLOR["2xx"]}.6` },
  "3xx": { label: "3xx", color: `${CLASS_COLOR["3xx"]}.5` },
  "4xx": { label: "4xx", color: `${CLASS_COLOR["4xx"]}.5` },
  "5xx": { label: "5xx", color: `${CLASS_COLOR["5xx"]}.6` },
  other: { label: "Other", color: "gray.5" },
};

/** Calls per step (bars: counts, not a curve): stacked by status class when `classes` is
 * given, else successes and errors. */
export function TrafficChart({ rows, classes: cls }: { rows: TrafficRow[]; classes?: ChartClass[] }) {
  // Only the classes that occur: a calmer legend.
  const seen = (k: string) => rows.some((r) => Number(r[k] ?? 0) > 0);
  const series = cls
    ? [...cls.filter(seen).map((c) => ({ name: c, ...CLASS_SERIES[c] })), ...(seen("other") ? [{ name: "other", ...CLASS_SERIES.other }] : [])]
    : [
        { name: "ok", label: "Successful", color: "indigo.5" },
        { name: "errors", label: "Errors", color: "red.6" },
      ];
  return (
    <BarChart
      h={230}
      data={rows}
      dataKey="label"
      type="stacked"
      series={series}
      tickLine="none"
      gridAxis="x"
      strokeDasharray="3 3"
      withLegend
      legendProps={{ verticalAlign: "top", height: 28 }}
      valueFormatter={(v) => count(v)}
      xAxisProps={{ interval: "preserveStartEnd", minTickGap: 28 }}
      yAxisProps={{ allowDecimals: false, width: 48 }}
      maxBarWidth={18}
      barProps={{ radius: 1 }}
      fillOpacity={0.85}
    />
  );
}

export function TrafficTable({ rows, classes: cls }: { rows: TrafficRow[]; classes?: ChartClass[] }) {
  return (
    <Table className={classes.table} striped={false} highlightOnHover stickyHeader aria-label="Calls per step">
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Time</Table.Th>
          <Table.Th className={classes.num}>Calls</Table.Th>
          <Table.Th className={classes.num}>Errors</Table.Th>
          <Table.Th className={classes.num}>Success</Table.Th>
          {cls?.map((c) => (
            <Table.Th key={c} className={classes.num}>
              {c}
            </Table.Th>
          ))}
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {rows.map((r) => (
          <Table.Tr key={r.t}>
            <Table.Td className="kg-nowrap">{new Date(r.t).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })}</Table.Td>
            <Table.Td className={classes.num}>{count(r.calls)}</Table.Td>
            <Table.Td className={classes.num}>{count(r.errors)}</Table.Td>
            <Table.Td className={classes.num}>{percent((r.calls - r.errors) / r.calls, r.calls > 0)}</Table.Td>
            {cls?.map((c) => (
              <Table.Td key={c} className={classes.num}>
                {count(Number(r[c] ?? 0))}
              </Table.Td>
            ))}
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

export function LatencyChart({ rows }: { rows: LatencyRow[] }) {
  // Steps without calls are gaps; with few steps holding calls, lines alone would not show.
  const sparse = rows.filter((r) => r.p50 !== null).length < 24;
  return (
    <LineChart
      h={230}
      data={rows}
      dataKey="label"
      series={[
        { name: "p50", label: "p50", color: "indigo.5" },
        { name: "p95", label: "p95", color: "violet.4" },
        { name: "p99", label: "p99", color: "pink.5" },
      ]}
      curveType="monotone"
      withDots={sparse}
      dotProps={{ r: 2.5, strokeWidth: 0 }}
      strokeWidth={1.5}
      connectNulls={false}
      tickLine="none"
      gridAxis="x"
      strokeDasharray="3 3"
      withLegend
      legendProps={{ verticalAlign: "top", height: 28 }}
      valueFormatter={msLabel}
      xAxisProps={{ interval: "preserveStartEnd", minTickGap: 28 }}
      yAxisProps={{ width: 56, tickFormatter: (v: number) => (v === 0 ? "0" : msLabel(v)) }}
    />
  );
}

export function LatencyTable({ rows }: { rows: LatencyRow[] }) {
  const ms = (v: number | null) => (v === null ? "—" : msLabel(v));
  return (
    <Table className={classes.table} highlightOnHover stickyHeader aria-label="Latency percentiles per step">
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Time</Table.Th>
          <Table.Th className={classes.num}>p50</Table.Th>
          <Table.Th className={classes.num}>p95</Table.Th>
          <Table.Th className={classes.num}>p99</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {rows.map((r) => (
          <Table.Tr key={r.t}>
            <Table.Td className="kg-nowrap">{new Date(r.t).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })}</Table.Td>
            <Table.Td className={classes.num}>{ms(r.p50)}</Table.Td>
            <Table.Td className={classes.num}>{ms(r.p95)}</Table.Td>
            <Table.Td className={classes.num}>{ms(r.p99)}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

/** A status mix: one stacked bar, then each entry with its count and share (text, so it is
 * its own alternative). */
export function MixList({ entries, label }: { entries: MixEntry[]; label: string }) {
  if (entries.length === 0) {
    return (
      <Text size="sm" c="dimmed">
        No calls in this range.
      </Text>
    );
  }
  return (
    <>
      <div className={classes.stack} aria-hidden>
        {entries.map((e) => (
          <div key={e.key} style={{ width: `${e.share * 100}%`, background: `var(--mantine-color-${e.color}-6)` }} />
        ))}
      </div>
      <ul className={classes.mix} aria-label={label}>
        {entries.map((e) => (
          <li key={e.key}>
            <span className={classes.swatch} style={{ background: `var(--mantine-color-${e.color}-6)` }} aria-hidden />
            <span className={`${classes.grow} kg-truncate`}>{e.label}</span>
            <span className={classes.num}>{count(e.calls)}</span>
            <Text span size="xs" c="dimmed" w={52} ta="right" className={classes.num}>
              {percent(e.share)}
            </Text>
          </li>
        ))}
      </ul>
    </>
  );
}
