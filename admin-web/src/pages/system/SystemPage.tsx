/**
 * System health, refreshed every 5 s (pausable, with a visible indicator), from
 * SystemService.GetSystemStatus: the database (reachable, ping, backend, schema version), the
 * change feed and its kv-sync followers, and the gateways with their config revision,
 * version, last report and drops; plus GetServerInfo (version, gateway public URL, token
 * prefix, usage collection). Against a control plane without SystemService (UNIMPLEMENTED)
 * it reads GetSyncStatus and ListGateways instead. System admins only.
 */
import { useEffect, useState, type ReactNode } from "react";
import { ActionIcon, Alert, Badge, Button, Group, Table, Text, Tooltip } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { Code } from "@connectrpc/connect";
import { IconHeartRateMonitor, IconPlayerPause, IconPlayerPlay, IconRefresh, IconServer2 } from "@tabler/icons-react";
import { syncApi, systemApi, usageApi } from "../../api/transport";
import { serverInfoQuery } from "../../api/lists";
import { isCode } from "../../api/errors";
import { useMe } from "../../auth/session";
import { isSystemAdmin } from "../../auth/permissions";
import { PageHeader } from "../../components/misc/PageHeader";
import { Panel } from "../../components/misc/Panel";
import { StatCard } from "../../components/misc/StatCard";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { EmptyState } from "../../components/states/EmptyState";
import { ErrorState } from "../../components/states/ErrorState";
import { SkeletonRows } from "../../components/states/LoadingState";
import { CopyIcon } from "../../components/misc/Copy";
import { count } from "../../lib/format";
import { LEVEL_COLOR, LEVEL_LABEL, assessDatabase, assessFollower, assessGateway, worst, type Assessment, type Level } from "./health";
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

  // One call when the control plane has SystemService; the two older ones when it answers
  // UNIMPLEMENTED.
  const status = useQuery({
    queryKey: ["system", "status"],
    queryFn: async ({ signal }) => {
      const t0 = performance.now();
      const r = await systemApi.getSystemStatus({}, { signal });
      return { r, roundTripMs: performance.now() - t0 };
    },
    refetchInterval: (q) => (isCode(q.state.error, Code.Unimplemented) ? false : interval),
    retry: false,
  });
  const legacy = isCode(status.error, Code.Unimplemented);
  const sync = useQuery({
    queryKey: ["system", "sync"],
    queryFn: async ({ signal }) => {
      const t0 = performance.now();
      const r = await syncApi.getSyncStatus({}, { signal });
      return { r, roundTripMs: performance.now() - t0 };
    },
    enabled: legacy,
    refetchInterval: interval,
    retry: false,
  });
  const gateways = useQuery({
    queryKey: ["system", "gateways"],
    queryFn: ({ signal }) => usageApi.listGateways({}, { signal }),
    enabled: legacy,
    refetchInterval: interval,
    retry: false,
  });
  const info = useQuery(serverInfoQuery);

  const st = status.data?.r;
  const syncAnswer = legacy ? sync.data?.r : st?.sync;
  const gatewayList = legacy ? gateways.data?.gateways : st?.gateways;
  const db = st?.database;
  const syncError = legacy ? sync.error : status.error;
  const gatewaysError = legacy ? gateways.error : status.error;
  const loading = legacy ? sync.isPending && gateways.isPending : status.isPending;
  const roundTrip = legacy ? sync.data?.roundTripMs : status.data?.roundTripMs;
  const updatedAt = legacy ? Math.max(sync.dataUpdatedAt, gateways.dataUpdatedAt) : status.dataUpdatedAt;
  const fetching = status.isFetching || sync.isFetching || gateways.isFetching;

  const now = new Date(updatedAt || Date.now());
  const followers = (syncAnswer?.followers ?? []).map((f) => ({ f, a: assessFollower(f, now) }));
  const gws = (gatewayList ?? []).map((g) => ({ g, a: assessGateway(g, now) }));
  const head = syncAnswer?.headRevision;
  const dbA = db && assessDatabase(db);

  const reachable = legacy ? !sync.error || !!gateways.data : !!st || !status.error;
  const findings: { level: Level; text: string }[] = [];
  if (!reachable) findings.push({ level: "bad", text: "The control plane does not answer." });
  if (dbA && dbA.level !== "ok") findings.push({ level: dbA.level, text: `Database: ${dbA.reason}` });
  if (syncAnswer && followers.length === 0) findings.push({ level: "warn", text: "No kv-sync follower has reported: gateways receive no token or route changes." });
  for (const { f, a } of followers) if (a.level !== "ok") findings.push({ level: a.level, text: `kv-sync ${f.follower}: ${a.reason}` });
  for (const { g, a } of gws) if (a.level === "warn" || a.level === "bad") findings.push({ level: a.level, text: `Gateway ${g.name}: ${a.reason}` });
  if (info.data && !info.data.usageEnabled) findings.push({ level: "warn", text: "Usage collection is off: gateways' reports are refused and the usage pages stay empty." });
  const overall = loading ? undefined : worst(findings.map((x) => x.level));

  const refresh = () => {
    void status.refetch();
    if (legacy) {
      void sync.refetch();
      void gateways.refetch();
    }
  };

  return (
    <>
      <PageHeader
        title="System health"
        description="Control plane, edge sync and gateways"
        actions={
          <RefreshControl
            paused={paused}
            fetching={fetching}
            updatedAt={updatedAt}
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
            The control plane{db ? " and its database" : ""} answer{db ? "" : "s"}, every kv-sync follower is current and no gateway dropped data in the last hour.
          </Text>
        </div>
      ) : (
        <Alert color={LEVEL_COLOR[overall]} variant="light" mb="md" title={overall === "bad" ? "Something is failing" : "Needs attention"} role="status">
          <ul className={classes.findings}>
            {findings.map((x, i) => (
              <li key={i}>
                <Text size="sm" lineClamp={2} title={x.text}>
                  {x.text}
                </Text>
              </li>
            ))}
          </ul>
        </Alert>
      ))}

      <div className={classes.stats}>
        <StatCard
          label="Control plane"
          loading={loading}
          value={<LevelText level={reachable ? "ok" : "bad"} text={reachable ? "Reachable" : "Unreachable"} />}
          hint={roundTrip !== undefined && `API round trip ${Math.round(roundTrip)} ms${st?.serverVersion ? ` · v${st.serverVersion}` : ""}`}
        />
        <StatCard
          label="Database"
          loading={loading}
          value={db ? <LevelText level={dbA!.level} text={db.reachable ? "Reachable" : "Unreachable"} /> : "—"}
          hint={db ? `${db.backend} · ping ${pingText(db.pingMicros)} · schema ${count(db.schemaVersion)}` : legacy ? "needs GetSystemStatus" : undefined}
        />
        <StatCard
          label="Change feed"
          loading={loading}
          value={head !== undefined ? `rev ${count(head)}` : "—"}
          hint={syncAnswer && `kept from rev ${count(syncAnswer.compactedRevision)}`}
        />
        <StatCard
          label="kv-sync followers"
          loading={loading}
          value={syncAnswer ? <LevelText level={worst(followers.map((x) => x.a.level))} text={`${followers.filter((x) => x.a.level === "ok").length} / ${followers.length} current`} /> : "—"}
          hint={followers.length ? `max lag ${count(followers.reduce((m, x) => (x.f.lagRevisions > m ? x.f.lagRevisions : m), 0n))} revisions` : "none reported"}
        />
        <StatCard
          label="Gateways"
          loading={loading}
          value={gatewayList ? <LevelText level={worst(gws.map((x) => x.a.level))} text={`${gws.filter((x) => x.a.level === "ok").length} / ${gws.length} active`} /> : "—"}
          hint={gatewayList && `${count(gws.reduce((s, x) => s + x.g.requestsLastHour, 0n))} requests in the last hour`}
        />
      </div>

      <div className={classes.half}>
        <Panel title="Server">
          {isCode(info.error, Code.Unimplemented) ? (
            <Text size="sm" c="dimmed">
              This control plane does not offer GetServerInfo yet: version, gateway URL and token prefix are not available.
            </Text>
          ) : info.error ? (
            <ErrorState error={info.error} retry={() => void info.refetch()} title="Could not load the server details" />
          ) : !info.data ? (
            <SkeletonRows rows={4} height={18} />
          ) : (
            <dl className={classes.meta}>
              <dt>Version</dt>
              <dd className="kg-mono">{info.data.version || "—"}</dd>
              <dt>Gateway public URL</dt>
              <dd>
                <Group gap={4} wrap="nowrap">
                  <span className="kg-mono kg-truncate">{info.data.gatewayPublicUrl || "—"}</span>
                  {info.data.gatewayPublicUrl && <CopyIcon value={info.data.gatewayPublicUrl} label="Copy the gateway URL" />}
                </Group>
              </dd>
              <dt>Token prefix</dt>
              <dd className="kg-mono">{info.data.tokenPrefix ? `${info.data.tokenPrefix.replace(/_?$/, "_")}…` : "—"}</dd>
              <dt>Usage collection</dt>
              <dd>{info.data.usageEnabled ? <span className="kg-good">On</span> : <span className="kg-warn">Off</span>}</dd>
            </dl>
          )}
        </Panel>
        <Panel title="Database">
          {legacy ? (
            <Text size="sm" c="dimmed">
              This control plane does not offer GetSystemStatus yet: database details are not available.
            </Text>
          ) : status.error ? (
            <ErrorState error={status.error} retry={() => void status.refetch()} title="Could not load the system status" />
          ) : !db ? (
            <SkeletonRows rows={4} height={18} />
          ) : (
            <dl className={classes.meta}>
              <dt>State</dt>
              <dd>
                <LevelBadge a={dbA!} />
              </dd>
              <dt>Backend</dt>
              <dd>{db.backend === "postgres" ? "PostgreSQL" : db.backend === "sqlite" ? "SQLite" : db.backend}</dd>
              <dt>Ping</dt>
              <dd>{db.reachable ? pingText(db.pingMicros) : "—"}</dd>
              <dt>Schema</dt>
              <dd>
                {count(db.schemaVersion)}
                {db.schemaDescription && (
                  <Text span size="sm" c="dimmed">
                    {" "}
                    · {db.schemaDescription}
                  </Text>
                )}
              </dd>
              {db.error && (
                <>
                  <dt>Error</dt>
                  <dd className="kg-bad">{db.error}</dd>
                </>
              )}
            </dl>
          )}
        </Panel>
      </div>

      <Panel title="Edge sync (kv-sync)" flush actions={head !== undefined && <Text size="xs" c="dimmed">head revision {count(head)}</Text>}>
        {syncError && !syncAnswer ? (
          <Pad>
            <ErrorState error={syncError} retry={refresh} title="Could not load the sync status" />
          </Pad>
        ) : !syncAnswer ? (
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
        {gatewaysError && !gatewayList ? (
          <Pad>
            <ErrorState error={gatewaysError} retry={refresh} title="Could not load the gateways" />
          </Pad>
        ) : !gatewayList ? (
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
                    <Table.Td className={classes.num}>{count(g.configRevision)}</Table.Td>
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
    </>
  );
}

function pingText(us: bigint): string {
  const v = Number(us);
  return v < 1000 ? `${v} µs` : `${(v / 1000).toFixed(v < 10_000 ? 1 : 0)} ms`;
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
