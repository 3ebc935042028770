/**
 * System health, refreshed every 5 s (pausable, with a visible indicator): the control plane
 * (reachable, API round trip), the change feed and its kv-sync followers (GetSyncStatus), and
 * the gateways that report usage with their config revision, version, last report and
 * drops (ListGateways). System admins only (the server refuses everyone else).
 */
import { useEffect, useState, type ReactNode } from "react";
import { ActionIcon, Alert, Badge, Button, Group, Table, Text, Tooltip } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { IconHeartRateMonitor, IconPlayerPause, IconPlayerPlay, IconRefresh, IconServer2 } from "@tabler/icons-react";
import { syncApi, usageApi } from "../../api/transport";
import { useMe } from "../../auth/session";
import { isSystemAdmin } from "../../auth/permissions";
import { PageHeader } from "../../components/misc/PageHeader";
import { Panel } from "../../components/misc/Panel";
import { StatCard } from "../../components/misc/StatCard";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { EmptyState } from "../../components/states/EmptyState";
import { ErrorState } from "../../components/states/ErrorState";
import { SkeletonRows } from "../../components/states/LoadingState";
import { count } from "../../lib/format";
import { LEVEL_COLOR, LEVEL_LABEL, assessFollower, assessGateway, worst, type Assessment, type Level } from "./health";
import classes from "./System.module.css";

const REFRESH_MS = 5_000;

export function SystemPage() {
  const me = useMe();
  if (!isSystemAdmin(me)) {
    return (
      <>
        <PageHeader title="System health" />
        <div className="kg-card">
          <EmptyState icon={IconHeartRateMonitor} title="For system admins" description="Database, sync and gateway status are shown to system admins only." />
        </div>
      </>
    );
  }
  return <SystemHealth />;
}

function SystemHealth() {
  const [paused, setPaused] = useState(false);
  const interval = paused ? false : REFRESH_MS;

  const sync = useQuery({
    queryKey: ["system", "sync"],
    queryFn: async ({ signal }) => {
      const t0 = performance.now();
      const r = await syncApi.getSyncStatus({}, { signal });
      return { r, roundTripMs: performance.now() - t0 };
    },
    refetchInterval: interval,
    retry: false,
  });
  const gateways = useQuery({
    queryKey: ["system", "gateways"],
    queryFn: ({ signal }) => usageApi.listGateways({}, { signal }),
    refetchInterval: interval,
    retry: false,
  });

  const now = new Date(Math.max(sync.dataUpdatedAt, gateways.dataUpdatedAt) || Date.now());
  const followers = (sync.data?.r.followers ?? []).map((f) => ({ f, a: assessFollower(f, now) }));
  const gws = (gateways.data?.gateways ?? []).map((g) => ({ g, a: assessGateway(g, now) }));
  const head = sync.data?.r.headRevision;

  const reachable = !sync.error || !!gateways.data;
  const findings: { level: Level; text: string }[] = [];
  if (sync.error && gateways.error) findings.push({ level: "bad", text: "The control plane does not answer." });
  if (sync.data && followers.length === 0) findings.push({ level: "warn", text: "No kv-sync follower has reported: gateways receive no token or route changes." });
  for (const { f, a } of followers) if (a.level !== "ok") findings.push({ level: a.level, text: `kv-sync ${f.follower}: ${a.reason}` });
  for (const { g, a } of gws) if (a.level === "warn" || a.level === "bad") findings.push({ level: a.level, text: `Gateway ${g.name}: ${a.reason}` });
  const overall = sync.isPending && gateways.isPending ? undefined : worst(findings.map((x) => x.level));

  const refresh = () => {
    void sync.refetch();
    void gateways.refetch();
  };

  return (
    <>
      <PageHeader
        title="System health"
        description="Control plane, edge sync and gateways"
        actions={
          <RefreshControl
            paused={paused}
            fetching={sync.isFetching || gateways.isFetching}
            updatedAt={Math.max(sync.dataUpdatedAt, gateways.dataUpdatedAt)}
            onToggle={() => setPaused((p) => !p)}
            onRefresh={refresh}
          />
        }
      />

      {overall && (findings.length === 0 ? (
        <div className={`kg-card ${classes.okBar}`} role="status">
          <span className={classes.live} aria-hidden />
          <Text size="sm" fw={600}>
            All systems normal
          </Text>
          <Text size="sm" c="dimmed">
            The control plane answers, every kv-sync follower is current and no gateway dropped data in the last hour.
          </Text>
        </div>
      ) : (
        <Alert color={LEVEL_COLOR[overall]} variant="light" mb="md" title={overall === "bad" ? "Something is failing" : "Needs attention"} role="status">
          <ul className={classes.findings}>
            {findings.map((x, i) => (
              <li key={i}>
                <Text size="sm">{x.text}</Text>
              </li>
            ))}
          </ul>
        </Alert>
      ))}

      <div className={classes.stats}>
        <StatCard
          label="Control plane"
          loading={sync.isPending && gateways.isPending}
          value={<LevelText level={reachable ? "ok" : "bad"} text={reachable ? "Reachable" : "Unreachable"} />}
          hint={sync.data && `API round trip ${Math.round(sync.data.roundTripMs)} ms`}
        />
        <StatCard
          label="Change feed"
          loading={sync.isPending}
          value={head !== undefined ? `rev ${count(head)}` : "—"}
          hint={sync.data && `kept from rev ${count(sync.data.r.compactedRevision)}`}
        />
        <StatCard
          label="kv-sync followers"
          loading={sync.isPending}
          value={sync.data ? <LevelText level={worst(followers.map((x) => x.a.level))} text={`${followers.filter((x) => x.a.level === "ok").length} / ${followers.length} current`} /> : "—"}
          hint={followers.length ? `max lag ${count(followers.reduce((m, x) => (x.f.lagRevisions > m ? x.f.lagRevisions : m), 0n))} revisions` : "none reported"}
        />
        <StatCard
          label="Gateways"
          loading={gateways.isPending}
          value={gateways.data ? <LevelText level={worst(gws.map((x) => x.a.level))} text={`${gws.filter((x) => x.a.level === "ok").length} / ${gws.length} reporting`} /> : "—"}
          hint={gateways.data && `${count(gws.reduce((s, x) => s + x.g.requestsLastHour, 0n))} requests in the last hour`}
        />
      </div>

      <Panel title="Edge sync (kv-sync)" flush actions={head !== undefined && <Text size="xs" c="dimmed">head revision {count(head)}</Text>}>
        {sync.error ? (
          <Pad>
            <ErrorState error={sync.error} retry={() => void sync.refetch()} title="Could not load the sync status" />
          </Pad>
        ) : !sync.data ? (
          <SkeletonRows rows={2} height={22} />
        ) : followers.length === 0 ? (
          <EmptyState compact icon={IconServer2} title="No follower has reported" description="kv-sync reports its position every few seconds once it runs (./scripts/run.sh starts one)." />
        ) : (
          <div className={classes.scroll}>
            <Table className={classes.table} highlightOnHover aria-label="kv-sync followers">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Follower</Table.Th>
                  <Table.Th>State</Table.Th>
                  <Table.Th className={classes.num}>Applied revision</Table.Th>
                  <Table.Th className={classes.num}>Lag</Table.Th>
                  <Table.Th className={classes.num}>Changes applied</Table.Th>
                  <Table.Th>Last report</Table.Th>
                  <Table.Th>Last error</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {followers.map(({ f, a }) => (
                  <Table.Tr key={f.follower}>
                    <Table.Td className="kg-mono">{f.follower}</Table.Td>
                    <Table.Td>
                      <LevelBadge a={a} />
                      {f.resyncRequested && (
                        <Badge size="sm" variant="light" color="blue" ml={4} className="kg-fit">
                          resync requested
                        </Badge>
                      )}
                    </Table.Td>
                    <Table.Td className={classes.num}>{count(f.appliedRevision)}</Table.Td>
                    <Table.Td className={classes.num}>{count(f.lagRevisions)}</Table.Td>
                    <Table.Td className={classes.num}>{count(f.appliedChanges)}</Table.Td>
                    <Table.Td>
                      <TimeAgo ts={f.reportedAt} fallback="never" />
                    </Table.Td>
                    <Table.Td className="kg-truncate" style={{ maxWidth: 280 }} title={f.lastError || undefined}>
                      {f.lastError ? <span className="kg-bad">{f.lastError}</span> : <Text span size="sm" c="dimmed">none</Text>}
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </div>
        )}
      </Panel>

      <div style={{ height: 12 }} />

      <Panel title="Gateways" flush actions={<Text size="xs" c="dimmed">as last reported with their usage</Text>}>
        {gateways.error ? (
          <Pad>
            <ErrorState error={gateways.error} retry={() => void gateways.refetch()} title="Could not load the gateways" />
          </Pad>
        ) : !gateways.data ? (
          <SkeletonRows rows={2} height={22} />
        ) : gws.length === 0 ? (
          <EmptyState
            compact
            icon={IconServer2}
            title="No gateway has reported"
            description="A gateway appears here with its first usage report (it reports every 10 s while it answers requests, with a GATEWAY service-account key)."
          />
        ) : (
          <div className={classes.scroll}>
            <Table className={classes.table} highlightOnHover aria-label="Gateways">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Gateway</Table.Th>
                  <Table.Th>State</Table.Th>
                  <Table.Th>Version</Table.Th>
                  <Table.Th className={classes.num}>Config revision</Table.Th>
                  <Table.Th>Last report</Table.Th>
                  <Table.Th className={classes.num}>Requests, 1 h</Table.Th>
                  <Table.Th className={classes.num}>Dropped, 1 h</Table.Th>
                  <Table.Th className={classes.num}>Sampled out, 1 h</Table.Th>
                  <Table.Th className={classes.num}>Events stored</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {gws.map(({ g, a }) => (
                  <Table.Tr key={g.name}>
                    <Table.Td>
                      <Tooltip label={`Reported by ${g.reportedBy}; first seen ${g.firstSeenAt ? new Date(Number(g.firstSeenAt.seconds) * 1000).toLocaleString() : "—"}`}>
                        <span className="kg-mono">{g.name}</span>
                      </Tooltip>
                    </Table.Td>
                    <Table.Td>
                      <LevelBadge a={a} />
                    </Table.Td>
                    <Table.Td className="kg-mono">{g.version || "—"}</Table.Td>
                    <Table.Td className={classes.num}>
                      {count(g.configRevision)}
                      {head !== undefined && head > g.configRevision && (
                        <Text span size="xs" c="dimmed">
                          {" "}
                          ({count(head - g.configRevision)} behind head)
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      <TimeAgo ts={g.lastSeenAt} fallback="never" />
                    </Table.Td>
                    <Table.Td className={classes.num}>{count(g.requestsLastHour)}</Table.Td>
                    <Table.Td className={classes.num}>
                      <span className={g.eventsDroppedLastHour + g.rollupsDroppedLastHour > 0n ? "kg-bad" : undefined}>
                        {count(g.rollupsDroppedLastHour)} counts · {count(g.eventsDroppedLastHour)} events
                      </span>
                    </Table.Td>
                    <Table.Td className={classes.num}>{count(g.sampledOutLastHour)}</Table.Td>
                    <Table.Td className={classes.num}>{count(g.eventsTotal)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </div>
        )}
      </Panel>
      <Text size="xs" c="dimmed" mt="sm">
        Database (backend, ping, schema version) and server details (version, gateway URL, token prefix, usage on) appear here once the control plane offers
        GetSystemStatus and GetServerInfo.
      </Text>
    </>
  );
}

function Pad({ children }: { children: ReactNode }) {
  return <div style={{ padding: "0 12px" }}>{children}</div>;
}

function LevelText({ level, text }: { level: Level; text: string }) {
  const tone = level === "ok" ? "kg-good" : level === "warn" ? "kg-warn" : level === "bad" ? "kg-bad" : undefined;
  return <span className={tone}>{text}</span>;
}

function LevelBadge({ a }: { a: Assessment }) {
  const badge = (
    <Badge size="sm" variant="light" color={LEVEL_COLOR[a.level]} className="kg-fit">
      {LEVEL_LABEL[a.level]}
    </Badge>
  );
  return a.reason ? <Tooltip label={a.reason}>{badge}</Tooltip> : badge;
}

/** "Updated 3 s ago", a pulse while fetching, pause/resume and refresh now. */
function RefreshControl({
  paused,
  fetching,
  updatedAt,
  onToggle,
  onRefresh,
}: {
  paused: boolean;
  fetching: boolean;
  updatedAt: number;
  onToggle: () => void;
  onRefresh: () => void;
}) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(id);
  }, []);
  const age = updatedAt ? Math.max(0, Math.round((now - updatedAt) / 1000)) : undefined;
  return (
    <Group gap={8} wrap="nowrap">
      <Group gap={6} wrap="nowrap" role="status" aria-live="off">
        <span className={paused ? classes.idle : fetching ? classes.busy : classes.live} aria-hidden />
        <Text size="xs" c="dimmed" className="kg-nowrap">
          {paused ? "Auto-refresh paused" : "Every 5 s"}
          {age !== undefined && ` · updated ${age} s ago`}
        </Text>
      </Group>
      <Button size="xs" variant="default" leftSection={paused ? <IconPlayerPlay size={14} /> : <IconPlayerPause size={14} />} onClick={onToggle}>
        {paused ? "Resume" : "Pause"}
      </Button>
      <Tooltip label="Refresh now">
        <ActionIcon variant="default" size="md" aria-label="Refresh now" onClick={onRefresh} loading={fetching}>
          <IconRefresh size={14} />
        </ActionIcon>
      </Tooltip>
    </Group>
  );
}
