/**
 * The audit log: filters (actor, action, entity type and id, team, time range) in the URL,
 * total and cursor pages (ListAuditEvents), an event's details with before/after, export of
 * the whole filtered result (ExportAuditEvents stream, CSV or NDJSON) and, for system admins,
 * chain verification (VerifyAuditChain).
 */
import { useEffect, useMemo, useRef, useState } from "react";
import { Alert, Autocomplete, Badge, Button, Group, Menu, Select, Text, TextInput, Tooltip, UnstyledButton } from "@mantine/core";
import { keepPreviousData, useMutation, useQuery } from "@tanstack/react-query";
import { getRouteApi } from "@tanstack/react-router";
import {
  IconChevronDown,
  IconDownload,
  IconListDetails,
  IconSearch,
  IconShieldCheck,
  IconShieldX,
} from "@tabler/icons-react";
import type { AuditEvent, VerifyAuditChainResponse } from "../../gen/keygate/v1/audit_pb";
import { auditApi } from "../../api/transport";
import { allTeamsQuery } from "../../api/lists";
import { useMe } from "../../auth/session";
import { auditTeams, canVerifyAuditChain } from "../../auth/permissions";
import { RefreshButton } from "../../components/misc/RefreshButton";
import { PageHeader } from "../../components/misc/PageHeader";
import { FilterBar } from "../../components/list/FilterBar";
import { SearchBox } from "../../components/list/SearchBox";
import { DataTable, type Column } from "../../components/table/DataTable";
import { Pager } from "../../components/table/Pager";
import { EmptyState } from "../../components/states/EmptyState";
import { TeamBadge } from "../../components/domain/TeamBadge";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { ErrorState } from "../../components/states/ErrorState";
import { CursorTrail } from "../../lib/pager";
import { count, relativeTime, tsToDate } from "../../lib/format";
import { parseDiff } from "./diff";
import { AuditDrawer } from "./AuditDrawer";
import { ExportModal, type ExportRequest } from "./ExportModal";
import { ActionBadge, preciseTime } from "./parts";
import {
  DEFAULT_PAGE_SIZE,
  KNOWN_ACTIONS,
  KNOWN_ENTITY_TYPES,
  RANGES,
  RANGE_LABEL,
  filterKey,
  fromLocalInput,
  hasFilters,
  toAuditFilter,
  toLocalInput,
  type AuditRange,
  type AuditSearch,
} from "./search";

const route = getRouteApi("/app/audit");

export function AuditPage() {
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const me = useMe();
  const teams = useQuery(allTeamsQuery);
  const teamById = useMemo(() => new Map((teams.data ?? []).map((t) => [t.id, t])), [teams.data]);
  const [open, setOpen] = useState<AuditEvent | null>(null);
  const [exporting, setExporting] = useState<ExportRequest | null>(null);

  const trail = useRef(new CursorTrail());
  const key = filterKey(search);
  const lastKey = useRef(key);
  if (lastKey.current !== key) {
    lastKey.current = key;
    trail.current.reset();
  }
  const page = search.page ?? 1;
  if (search.cursor) trail.current.remember(page, search.cursor);

  const list = useQuery({
    queryKey: ["audit", "list", key, search.cursor ?? ""],
    queryFn: ({ signal }) =>
      auditApi.listAuditEvents(
        { filter: toAuditFilter(search, new Date()), pageSize: search.size ?? DEFAULT_PAGE_SIZE, pageToken: search.cursor ?? "" },
        { signal },
      ),
    placeholderData: keepPreviousData,
  });
  const rows = list.data?.events;
  const total = list.data ? Number(list.data.totalSize) : undefined;
  const filtered = hasFilters(search);

  const setFilters = (patch: Partial<AuditSearch>) =>
    void navigate({ search: (prev) => clean({ ...prev, ...patch, page: undefined, cursor: undefined }), replace: true });

  const verify = useMutation({ mutationFn: () => auditApi.verifyAuditChain({}) });

  const startExport = (kind: "csv" | "ndjson") =>
    setExporting({
      kind,
      filter: toAuditFilter(search, new Date()),
      expected: total,
      scope: filtered ? "matching the filters" : "in the audit log",
    });

  const columns: Column<AuditEvent>[] = [
    {
      key: "time",
      header: "Time",
      cell: (e) => {
        const d = tsToDate(e.time);
        return d ? (
          <Tooltip label={relativeTime(d)}>
            <time dateTime={d.toISOString()} className="kg-nowrap">
              {preciseTime(d)}
            </time>
          </Tooltip>
        ) : (
          "—"
        );
      },
    },
    {
      key: "actor",
      header: "Actor",
      cell: (e) => (
        <Group gap={6} wrap="nowrap" maw={180}>
          <Text size="sm" className="kg-truncate" title={e.actorId || undefined}>
            {e.actorName || e.actorId || (e.actorType === "anonymous" ? "Anonymous" : "—")}
          </Text>
          {e.actorType && e.actorType !== "user" && (
            <Badge variant="default" size="xs" className="kg-fit">
              {e.actorType.replace("_", " ")}
            </Badge>
          )}
        </Group>
      ),
    },
    {
      key: "action",
      header: "Action",
      cell: (e) => (
        <UnstyledButton onClick={() => setOpen(e)} aria-label={`Event #${e.seq}: ${e.action}, details`}>
          <ActionBadge action={e.action} />
        </UnstyledButton>
      ),
    },
    {
      key: "entity",
      header: "Entity",
      cell: (e) => (
        <Group gap={6} wrap="nowrap" maw={210}>
          <Text span size="xs" c="dimmed" className="kg-nowrap">
            {e.entityType.replace("_", " ")}
          </Text>
          <Text span size="sm" className="kg-mono kg-truncate" title={e.entityId}>
            {e.entityId || "—"}
          </Text>
        </Group>
      ),
    },
    {
      key: "team",
      header: "Team",
      cell: (e) => (e.teamId ? <TeamBadge teamId={e.teamId} team={teamById.get(e.teamId)} /> : <Text span size="sm" c="dimmed">—</Text>),
    },
    {
      key: "changes",
      header: "Changed",
      cell: (e) => <ChangedFields json={e.diffJson} />,
    },
    {
      key: "seq",
      header: "#",
      align: "right",
      cell: (e) => (
        <Text span size="xs" c="dimmed" className="kg-mono">
          {String(e.seq)}
        </Text>
      ),
    },
  ];

  return (
    <>
      <PageHeader
        title="Audit log"
        description="Every change, hash-chained and written in the change's own transaction."
        actions={
          <>
            <RefreshButton onClick={() => void list.refetch()} loading={list.isFetching} />
            {canVerifyAuditChain(me) && (
              <Button variant="default" leftSection={<IconShieldCheck size={16} />} loading={verify.isPending} onClick={() => verify.mutate()}>
                Verify chain
              </Button>
            )}
            <Menu position="bottom-end" withinPortal>
              <Menu.Target>
                <Button leftSection={<IconDownload size={16} />} rightSection={<IconChevronDown size={14} />} disabled={total === 0}>
                  Export
                </Button>
              </Menu.Target>
              <Menu.Dropdown>
                <Menu.Label>{filtered ? "Every event matching the filters" : "The whole audit log"}</Menu.Label>
                <Menu.Item onClick={() => startExport("csv")}>CSV (spreadsheets)</Menu.Item>
                <Menu.Item onClick={() => startExport("ndjson")}>NDJSON (one JSON object a line)</Menu.Item>
              </Menu.Dropdown>
            </Menu>
          </>
        }
      />

      <VerifyResult result={verify.data} error={verify.error} retry={() => verify.mutate()} onDismiss={() => verify.reset()} />

      <Filters search={search} setFilters={setFilters} teams={auditTeams(me)} clear={() => void navigate({ search: (prev) => clean({ size: prev.size }) })} />

      <DataTable
        label="Audit events"
        columns={columns}
        rows={rows}
        rowKey={(e) => String(e.seq)}
        loading={list.isPending || (list.isFetching && list.isPlaceholderData)}
        error={list.error}
        onRetry={() => void list.refetch()}
        onRowClick={setOpen}
        empty={
          filtered ? (
            <EmptyState icon={IconSearch} title="No event matches" description="Change or clear the filters. Actions and ids match exactly." compact />
          ) : (
            <EmptyState
              icon={IconListDetails}
              title="No audit events yet"
              description="Changes to tokens, routes, teams, members and accounts are recorded here as they happen."
            />
          )
        }
        footer={
          <Pager
            noun="events"
            page={page}
            pageSize={search.size ?? DEFAULT_PAGE_SIZE}
            count={rows?.length ?? 0}
            total={total}
            hasNext={!!list.data?.nextPageToken}
            onPrev={() => {
              const prevToken = trail.current.tokenFor(page - 1);
              void navigate({ search: (prev) => clean({ ...prev, page: prevToken === undefined || page <= 2 ? undefined : page - 1, cursor: prevToken || undefined }) });
            }}
            onNext={() => {
              const next = list.data!.nextPageToken;
              trail.current.remember(page + 1, next);
              void navigate({ search: (prev) => clean({ ...prev, page: page + 1, cursor: next }) });
            }}
            onPageSize={(n) => setFilters({ size: n === DEFAULT_PAGE_SIZE ? undefined : n })}
          />
        }
      />
      {total !== undefined && total > 0 && (
        <Text size="xs" c="dimmed" mt={6}>
          {count(total)} {total === 1 ? "event matches" : "events match"}
          {filtered ? " the filters" : ""}. Export includes all of them.
        </Text>
      )}

      <AuditDrawer
        event={open}
        team={open ? teamById.get(open.teamId) : undefined}
        onClose={() => setOpen(null)}
        onFilter={(patch) => {
          setOpen(null);
          setFilters(patch);
        }}
      />
      <ExportModal request={exporting} onClose={() => setExporting(null)} />
    </>
  );
}

function clean(s: AuditSearch): AuditSearch {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) if (v !== undefined && v !== "") out[k] = v;
  return out as AuditSearch;
}

function ChangedFields({ json }: { json: string }) {
  const rows = parseDiff(json);
  if (!rows || rows.length === 0) return <Text span size="sm" c="dimmed">—</Text>;
  const names = rows.map((r) => r.field);
  const text = names.slice(0, 3).join(", ") + (names.length > 3 ? ` +${names.length - 3}` : "");
  return (
    <Text size="sm" c="dimmed" className="kg-truncate" maw={130} title={names.join(", ")}>
      {text}
    </Text>
  );
}

function VerifyResult({
  result: r,
  error,
  retry,
  onDismiss,
}: {
  result: VerifyAuditChainResponse | undefined;
  error: unknown;
  retry: () => void;
  onDismiss: () => void;
}) {
  if (error) return <ErrorState error={error} title="Could not verify the chain" retry={retry} />;
  if (!r) return null;
  return r.ok ? (
    <Alert
      color="teal"
      variant="light"
      icon={<IconShieldCheck size={20} />}
      title="Audit chain intact"
      withCloseButton
      closeButtonLabel="Dismiss"
      onClose={onDismiss}
      mb="md"
      role="status"
    >
      <Text size="sm">
        All {count(Number(r.eventsChecked))} events were recomputed and every hash matches: no row was changed, removed or inserted.
      </Text>
    </Alert>
  ) : (
    <Alert
      color="red"
      variant="light"
      icon={<IconShieldX size={20} />}
      title={`Audit chain broken at event #${r.firstBadSeq}`}
      withCloseButton
      closeButtonLabel="Dismiss"
      onClose={onDismiss}
      mb="md"
      role="alert"
    >
      <Text size="sm">{r.message}</Text>
      <Text size="sm" mt={4}>
        {count(Number(r.eventsChecked))} events checked. Rows from #{String(r.firstBadSeq)} on cannot be trusted: compare them with a backup or an
        earlier export.
      </Text>
    </Alert>
  );
}

function Filters({
  search,
  setFilters,
  clear,
  teams,
}: {
  search: AuditSearch;
  setFilters: (p: Partial<AuditSearch>) => void;
  clear: () => void;
  /** Teams the caller may read the audit of; undefined: all. */
  teams: string[] | undefined;
}) {
  const [action, setAction] = useState(search.action ?? "");
  useEffect(() => setAction(search.action ?? ""), [search.action]);
  const commitAction = (v: string) => {
    if ((v.trim() || undefined) !== search.action) setFilters({ action: v.trim() || undefined });
  };
  const custom = !search.range && !!(search.from || search.to);
  const [showCustom, setShowCustom] = useState(custom);
  useEffect(() => setShowCustom(custom), [custom]);
  const timeValue = search.range ?? (showCustom ? "custom" : "any");

  return (
    <FilterBar label="Filter audit events" align="flex-end" onClear={hasFilters(search) ? clear : undefined}>
      <SearchBox w={170} aria-label="Actor id" placeholder="Actor id (usr_…, sa_…)" value={search.actor} delay={400} onSearch={(actor) => setFilters({ actor })} />
      <Autocomplete
        size="xs"
        w={180}
        aria-label="Action"
        placeholder="Action, e.g. token.create"
        data={KNOWN_ACTIONS}
        limit={40}
        value={action}
        onChange={setAction}
        onOptionSubmit={commitAction}
        onBlur={() => commitAction(action)}
        onKeyDown={(e) => {
          if (e.key === "Enter") commitAction(e.currentTarget.value);
        }}
        clearable
        onClear={() => setFilters({ action: undefined })}
      />
      <Select
        size="xs"
        w={140}
        aria-label="Entity type"
        placeholder="Any entity"
        data={Array.from(new Set([...KNOWN_ENTITY_TYPES, ...(search.entity_type ? [search.entity_type] : [])]))}
        value={search.entity_type ?? null}
        onChange={(v) => setFilters({ entity_type: v ?? undefined })}
        clearable
        searchable
      />
      <SearchBox
        w={160}
        aria-label="Entity id"
        placeholder="Entity id"
        leftSection={null}
        value={search.entity_id}
        delay={400}
        onSearch={(entity_id) => setFilters({ entity_id })}
      />
      <TeamSelect
        size="xs"
        w={140}
        aria-label="Team"
        placeholder="Any team"
        clearable
        only={teams}
        value={search.team}
        onChange={(v) => setFilters({ team: v })}
      />
      <Select
        size="xs"
        w={140}
        aria-label="Time range"
        value={timeValue}
        allowDeselect={false}
        data={[
          { value: "any", label: "Any time" },
          ...RANGES.map((r) => ({ value: r, label: RANGE_LABEL[r] })),
          { value: "custom", label: "Custom range…" },
        ]}
        onChange={(v) => {
          if (v === "custom") {
            setShowCustom(true);
            setFilters({ range: undefined });
          } else {
            setShowCustom(false);
            setFilters({ range: v === "any" ? undefined : (v as AuditRange), from: undefined, to: undefined });
          }
        }}
      />
      {showCustom && (
        <>
          <TextInput
            size="xs"
            type="datetime-local"
            aria-label="From (inclusive)"
            title="From (inclusive, your local time)"
            value={toLocalInput(search.from)}
            onChange={(e) => setFilters({ from: fromLocalInput(e.currentTarget.value), range: undefined })}
          />
          <Text size="xs" c="dimmed" aria-hidden>
            to
          </Text>
          <TextInput
            size="xs"
            type="datetime-local"
            aria-label="To (exclusive)"
            title="To (exclusive, your local time)"
            value={toLocalInput(search.to)}
            onChange={(e) => setFilters({ to: fromLocalInput(e.currentTarget.value), range: undefined })}
            error={search.from && search.to && search.to < search.from ? "Before From" : undefined}
          />
        </>
      )}
    </FilterBar>
  );
}
