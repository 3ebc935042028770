/**
 * Live tail (TailUsageEvents, a grpc-web server stream): raw events as the control plane
 * stores them, newest first, at most 500 kept. Team, route, token and an exact status are
 * filtered by the server, status classes here. Pause keeps the stream and holds new events
 * back (counted) until resume; leaving the page ends the stream. A dropped stream reconnects
 * with backoff.
 */
import { useEffect, useRef, useState } from "react";
import { Button, Group, Select, Text } from "@mantine/core";
import { Code } from "@connectrpc/connect";
import { getRouteApi } from "@tanstack/react-router";
import { AnchorLink } from "./links";
import { IconArrowLeft, IconBroadcast, IconPlayerPause, IconPlayerPlay, IconTrash } from "@tabler/icons-react";
import type { UsageEvent } from "../../gen/keygate/v1/usage_pb";
import { usageApi } from "../../api/transport";
import { toUiError } from "../../api/errors";
import { PageHeader } from "../../components/misc/PageHeader";
import { Panel } from "../../components/misc/Panel";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { EmptyState } from "../../components/states/EmptyState";
import { ErrorState } from "../../components/states/ErrorState";
import { count } from "../../lib/format";
import { compact } from "../../lib/search";
import { EventsTable, eventKey, type EventRow } from "./EventsTable";
import { RouteSelect, TokenSelect } from "./pickers";
import { tailExactStatus, tailStatusMatches, type TailSearch } from "./search";
import { TAIL_LIMIT, prependBounded, reconnectDelaySeconds } from "./tail";
import classes from "./Usage.module.css";

const route = getRouteApi("/app/usage/tail");
const FLUSH_MS = 250;
/** Errors a reconnect will not fix. */
const FINAL = [Code.InvalidArgument, Code.NotFound, Code.PermissionDenied, Code.Unauthenticated];

type Conn =
  | { state: "connecting" }
  | { state: "live"; since: Date }
  | { state: "retrying"; error: unknown; at: number }
  | { state: "failed"; error: unknown };

const STATUS_OPTIONS = [
  { group: "Classes", items: ["2xx", "3xx", "4xx", "5xx", "errors"].map((v) => ({ value: v, label: v === "errors" ? "Errors (≥ 400)" : v })) },
  { group: "Exact", items: ["200", "401", "403", "404", "429", "500", "502", "503", "504"].map((v) => ({ value: v, label: v })) },
];

export function TailPage() {
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const set = (patch: Partial<TailSearch>) => void navigate({ search: (prev) => compact({ ...prev, ...patch }), replace: true });

  const [rows, setRows] = useState<EventRow[]>([]);
  const [held, setHeld] = useState<EventRow[]>([]);
  const [paused, setPaused] = useState(false);
  const [received, setReceived] = useState(0);
  const [conn, setConn] = useState<Conn>({ state: "connecting" });
  const [attemptNow, setAttemptNow] = useState(0);

  // Stream callbacks read the latest settings through refs (the stream outlives renders).
  const incoming = useRef<EventRow[]>([]);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  const statusRef = useRef(search.status);
  statusRef.current = search.status;

  const exact = tailExactStatus(search.status);
  const streamKey = JSON.stringify([search.team, search.route, search.token, exact, attemptNow]);

  useEffect(() => {
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let attempt = 0;
    let open = false;
    const connected = () => {
      if (open) return;
      open = true;
      attempt = 0;
      setConn({ state: "live", since: new Date() });
    };
    const connect = async () => {
      open = false;
      setConn({ state: "connecting" });
      try {
        const stream = usageApi.tailUsageEvents(
          { filter: { teamId: search.team ?? "", route: search.route ?? "", tokenId: search.token ?? "", status: exact } },
          {
            signal: ctl.signal,
            // A tail runs until the page goes: no deadline.
            timeoutMs: 0,
            onHeader: connected,
          },
        );
        for await (const e of stream) {
          connected();
          push(e);
        }
        if (ctl.signal.aborted) return;
        // The server ended the stream (restart, deploy): start again.
        schedule(new Error("The control plane ended the stream."));
      } catch (err) {
        if (ctl.signal.aborted) return;
        const code = toUiError(err).code;
        // Refusals and bad filters will not fix themselves.
        if (code !== undefined && FINAL.includes(code)) setConn({ state: "failed", error: err });
        else schedule(err);
      }
    };
    const schedule = (error: unknown) => {
      const secs = reconnectDelaySeconds(attempt++);
      setConn({ state: "retrying", error, at: Date.now() + secs * 1000 });
      timer = setTimeout(() => void connect(), secs * 1000);
    };
    const push = (e: UsageEvent) => {
      if (!tailStatusMatches(statusRef.current, e.status)) return;
      incoming.current.push({ key: eventKey(e), e });
      if (incoming.current.length > TAIL_LIMIT) incoming.current.splice(0, incoming.current.length - TAIL_LIMIT);
    };
    void connect();
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
    // streamKey carries every input of the stream.
  }, [streamKey]);

  // Batch what arrived into the list a few times a second (not one render per event).
  useEffect(() => {
    const id = setInterval(() => {
      const got = incoming.current;
      if (got.length === 0) return;
      incoming.current = [];
      setReceived((n) => n + got.length);
      if (pausedRef.current) setHeld((h) => prependBounded(h, got));
      else setRows((r) => prependBounded(r, got));
    }, FLUSH_MS);
    return () => clearInterval(id);
  }, []);

  const resume = () => {
    setRows((r) => prependBounded(r, [...held].reverse()));
    setHeld([]);
    setPaused(false);
  };
  const clear = () => {
    setRows([]);
    setHeld([]);
    setReceived(0);
  };

  const shown = search.status ? rows.filter((r) => tailStatusMatches(search.status, r.e.status)) : rows;

  return (
    <>
      <AnchorLink to="/usage" size="xs" c="dimmed">
        <Group gap={4} component="span">
          <IconArrowLeft size={12} /> Usage
        </Group>
      </AnchorLink>
      <PageHeader
        title="Live tail"
        description="Raw events as gateways report them: every refusal and 5xx (within each gateway's budget) and each token's first success per minute. Every call is counted in the charts."
      />

      <div className={`kg-card ${classes.filters}`} role="group" aria-label="Tail filters">
        <TeamSelect size="xs" w={170} aria-label="Team" placeholder="All teams" clearable value={search.team} onChange={(v) => set({ team: v })} />
        <RouteSelect size="xs" w={150} aria-label="Route" placeholder="All routes" value={search.route} onChange={(v) => set({ route: v })} />
        <TokenSelect size="xs" w={190} aria-label="Token" placeholder="All tokens" value={search.token} onChange={(v) => set({ token: v })} />
        <Select size="xs" w={150} aria-label="Status" placeholder="Any status" clearable data={STATUS_OPTIONS} value={search.status ?? null} onChange={(v) => set({ status: v ?? undefined })} />
        <div style={{ flex: 1 }} />
        <ConnBadge conn={conn} paused={paused} />
        {paused ? (
          <Button size="xs" leftSection={<IconPlayerPlay size={14} />} onClick={resume}>
            Resume{held.length ? ` (${count(held.length)} new)` : ""}
          </Button>
        ) : (
          <Button size="xs" variant="default" leftSection={<IconPlayerPause size={14} />} onClick={() => setPaused(true)}>
            Pause
          </Button>
        )}
        <Button size="xs" variant="subtle" color="gray" leftSection={<IconTrash size={14} />} onClick={clear} disabled={rows.length === 0 && held.length === 0}>
          Clear
        </Button>
      </div>

      {conn.state === "failed" ? (
        <ErrorState error={conn.error} retry={() => setAttemptNow((n) => n + 1)} title="The live tail stopped" />
      ) : (
        <Panel
          title={
            <span aria-live="polite">
              {count(shown.length)} event{shown.length === 1 ? "" : "s"}
              {received > shown.length ? ` (last ${TAIL_LIMIT} kept; ${count(received)} received)` : ""}
            </span>
          }
          flush
        >
          {shown.length === 0 ? (
            <EmptyState
              compact
              icon={IconBroadcast}
              title={conn.state === "live" ? "Waiting for events" : "Connecting…"}
              description="New events show here within a few seconds of a gateway reporting them (every 10 s by default). Refusals (401, 403, 429) and 5xx always produce one."
            />
          ) : (
            <div className={classes.tailScroll}>
              <EventsTable rows={shown} label="Live usage events" animate />
            </div>
          )}
        </Panel>
      )}
    </>
  );
}

function ConnBadge({ conn, paused }: { conn: Conn; paused: boolean }) {
  const [, tick] = useState(0);
  useEffect(() => {
    if (conn.state !== "retrying") return;
    const id = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(id);
  }, [conn.state]);
  let dot = classes.idle;
  let text: string;
  switch (conn.state) {
    case "connecting":
      text = "Connecting…";
      break;
    case "live":
      dot = paused ? classes.idle : classes.live;
      text = paused ? "Paused (stream open)" : `Live since ${conn.since.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })}`;
      break;
    case "retrying":
      dot = classes.down;
      text = `Disconnected (${toUiError(conn.error).message}); retrying in ${Math.max(0, Math.ceil((conn.at - Date.now()) / 1000))} s`;
      break;
    default:
      dot = classes.down;
      text = "Stopped";
  }
  return (
    <Group gap={6} wrap="nowrap" role="status" aria-live="polite">
      <span className={dot} aria-hidden />
      <Text size="xs" c="dimmed" className="kg-truncate" maw={340}>
        {text}
      </Text>
    </Group>
  );
}
