/**
 * Tokens: search, filters (team, scope, status, expiring, unused, legacy), sort, total and
 * pagination — all in the URL — plus create, edit, rotate, revoke and bulk revoke.
 */
import { Suspense, lazy, useEffect, useMemo, useRef, useState } from "react";
import { Button, Checkbox, Menu, NativeSelect, SegmentedControl, Text } from "@mantine/core";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { getRouteApi } from "@tanstack/react-router";
import { IconKey, IconSearch } from "@tabler/icons-react";
import type { Token } from "../../gen/keygate/v1/token_pb";
import { TokenStatus } from "../../gen/keygate/v1/common_pb";
import { allTeamsQuery } from "../../api/lists";
import { useMe } from "../../auth/session";
import { canChange, mayChangeSome, teamsWhereCanCreate } from "../../auth/permissions";
import { RefreshButton } from "../../components/misc/RefreshButton";
import { CreateButton } from "../../components/misc/CreateButton";
import { PageHeader } from "../../components/misc/PageHeader";
import { FilterBar } from "../../components/list/FilterBar";
import { SearchBox } from "../../components/list/SearchBox";
import { RowActions } from "../../components/table/RowActions";
import { DataTable, type Column } from "../../components/table/DataTable";
import { Pager } from "../../components/table/Pager";
import { EmptyState } from "../../components/states/EmptyState";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { Pill } from "../../components/misc/Pill";
import { TokenStatusBadge } from "../../components/domain/TokenStatusBadge";
import { TeamBadge } from "../../components/domain/TeamBadge";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { ScopeFilter } from "../../components/domain/ScopePicker";
import { CursorTrail } from "../../lib/pager";
import { count } from "../../lib/format";
import { DEFAULT_PAGE_SIZE, effectiveSort, filterKey, hasFilters, type TokenSort, type TokensSearch } from "./search";
import { tokensListQuery } from "./queries";
import type { Dialog } from "./TokenDialogs";

const route = getRouteApi("/app/tokens");

// The dialogs and the drawer load on their own, after the list: a first paint does not wait
// for their code (forms, snippets).
const TokenDialogs = lazy(() => import("./TokenDialogs"));

export function TokensPage() {
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const me = useMe();
  const teams = useQuery(allTeamsQuery);
  const teamById = useMemo(() => new Map((teams.data ?? []).map((t) => [t.id, t])), [teams.data]);
  const creatable = teamsWhereCanCreate(me, "token", (teams.data ?? []).map((t) => t.id));

  const [dialog, setDialog] = useState<Dialog>(null);
  const [selected, setSelected] = useState<Set<string>>(new Set());

  // Paging: remember page tokens so "previous" works; a new filter starts again.
  const trail = useRef(new CursorTrail());
  const key = filterKey(search);
  const lastKey = useRef(key);
  if (lastKey.current !== key) {
    lastKey.current = key;
    trail.current.reset();
  }
  const page = search.page ?? 1;
  if (search.cursor) trail.current.remember(page, search.cursor);
  useEffect(() => setSelected(new Set()), [key, page]);

  const list = useQuery({ ...tokensListQuery(search), placeholderData: keepPreviousData });
  const rows = list.data?.tokens;
  const total = list.data ? Number(list.data.totalSize) : undefined;

  const setFilters = (patch: Partial<TokensSearch>) =>
    void navigate({ search: (prev) => clean({ ...prev, ...patch, page: undefined, cursor: undefined }), replace: true });
  const setOpen = (id: string | undefined) => void navigate({ search: (prev) => clean({ ...prev, open: id }) });

  const sort = effectiveSort(search);
  const may = (t: Token) => t.status === TokenStatus.ACTIVE && canChange(me, t);

  const columns: Column<Token>[] = [
    {
      key: "name",
      header: "Name",
      sortKey: "name",
      cell: (t) => (
        <div style={{ minWidth: 140, maxWidth: 320 }}>
          <button type="button" onClick={() => setOpen(t.id)} className="kg-cell-title kg-truncate">
            {t.name}
          </button>
          {t.description && (
            <div className="kg-cell-sub kg-truncate" title={t.description}>
              {t.description}
            </div>
          )}
        </div>
      ),
    },
    {
      key: "preview",
      header: "Token",
      cell: (t) => (
        <span className="kg-row-4 kg-nowrap">
          <span className="kg-mono">{t.preview}</span>
          {t.legacyPrefix && (
            <Pill
              color="orange"
              title={`Imported from the old system with its ${t.legacyPrefix}_ key: gateways accept it only while KEYGATE_LEGACY_PREFIXES includes ${t.legacyPrefix}. Rotate it to give the workflow a new key.`}
            >
              legacy
            </Pill>
          )}
        </span>
      ),
    },
    { key: "team", header: "Team", cell: (t) => <TeamBadge teamId={t.teamId} team={teamById.get(t.teamId)} /> },
    { key: "scopes", header: "Scopes", cell: (t) => <Scopes scopes={t.scopes} /> },
    { key: "status", header: "Status", cell: (t) => <TokenStatusBadge token={t} /> },
    { key: "last_used", header: "Last used", sortKey: "last_used", cell: (t) => <TimeAgo ts={t.lastUsedAt} fallback="Never" /> },
    { key: "expires", header: "Expires", sortKey: "expires", cell: (t) => <Expiry token={t} /> },
    { key: "created", header: "Created", sortKey: "created", cell: (t) => <TimeAgo ts={t.createdAt} /> },
    {
      key: "actions",
      header: <span className="kg-visually-hidden">Actions</span>,
      align: "right",
      width: 44,
      cell: (t) => (
        <RowActions label={`Actions for ${t.name}`}>
          <Menu.Item onClick={() => setOpen(t.id)}>Details</Menu.Item>
          <Menu.Item onClick={() => void navigate({ to: "/usage/tokens/$tokenId", params: { tokenId: t.id } })}>Usage</Menu.Item>
          {may(t) && (
            <>
              <Menu.Item onClick={() => setDialog({ kind: "edit", token: t })}>Edit</Menu.Item>
              <Menu.Item onClick={() => setDialog({ kind: "rotate", token: t })}>Rotate</Menu.Item>
              <Menu.Divider />
              <Menu.Item color="red" onClick={() => setDialog({ kind: "revoke", tokens: [t] })}>
                Revoke
              </Menu.Item>
            </>
          )}
        </RowActions>
      ),
    },
  ];

  const selectedTokens = (rows ?? []).filter((t) => selected.has(t.id));
  const filtered = hasFilters(search);

  return (
    <>
      <PageHeader
        title="Tokens"
        description="API tokens that workflows present to the gateway as X-API-Key."
        actions={
          <>
            <RefreshButton onClick={() => void list.refetch()} loading={list.isFetching} />
            {creatable.length > 0 && (
              <CreateButton onClick={() => setDialog({ kind: "create" })}>Create token</CreateButton>
            )}
          </>
        }
      />

      <FilterBar
        label="Filter tokens"
        onClear={filtered ? () => void navigate({ search: (prev) => clean({ sort: prev.sort, desc: prev.desc, size: prev.size }) }) : undefined}
      >
        <SearchBox w={220} aria-label="Search tokens" placeholder="Search name or description" value={search.q} onSearch={(q) => setFilters({ q })} />
        <TeamSelect size="xs" w={150} aria-label="Team" placeholder="Any team" clearable value={search.team} onChange={(v) => setFilters({ team: v })} />
        <ScopeFilter value={search.scope} onChange={(v) => setFilters({ scope: v })} />
        <SegmentedControl
          size="xs"
          aria-label="Status"
          value={search.expiring ? "active" : search.status ?? "all"}
          onChange={(v) => setFilters({ status: v === "all" ? undefined : (v as TokensSearch["status"]), expiring: v === "active" ? search.expiring : undefined })}
          data={[
            { value: "all", label: "All" },
            { value: "active", label: "Active" },
            { value: "expired", label: "Expired" },
            { value: "revoked", label: "Revoked" },
          ]}
        />
        <NativeSelect
          size="xs"
          w={160}
          aria-label="Expiring"
          value={search.expiring ? String(search.expiring) : ""}
          onChange={(e) => {
            const v = e.currentTarget.value;
            setFilters({ expiring: v ? Number(v) : undefined, status: v ? undefined : search.status });
          }}
          data={[
            { value: "", label: "Expiring: any" },
            { value: "7", label: "Expiring in 7 days" },
            { value: "30", label: "Expiring in 30 days" },
            { value: "90", label: "Expiring in 90 days" },
          ]}
        />
        <NativeSelect
          size="xs"
          w={150}
          aria-label="Usage"
          value={search.never ? "never" : search.unused ? String(search.unused) : ""}
          onChange={(e) => {
            const v = e.currentTarget.value;
            setFilters({ never: v === "never" ? true : undefined, unused: v && v !== "never" ? Number(v) : undefined });
          }}
          data={[
            { value: "", label: "Usage: any" },
            { value: "30", label: "Unused 30+ days" },
            { value: "90", label: "Unused 90+ days" },
            { value: "never", label: "Never used" },
          ]}
        />
        <Checkbox
          size="xs"
          label="Legacy keys only"
          aria-label="Legacy keys only"
          checked={!!search.legacy}
          onChange={(e) => setFilters({ legacy: e.currentTarget.checked ? true : undefined })}
        />
      </FilterBar>

      <DataTable
        label="Tokens"
        columns={columns}
        rows={rows}
        rowKey={(t) => t.id}
        loading={list.isPending || (list.isFetching && list.isPlaceholderData)}
        error={list.error}
        onRetry={() => void list.refetch()}
        sort={sort}
        onSortChange={(s) => void navigate({ search: (prev) => clean({ ...prev, sort: s.key as TokenSort, desc: s.desc || undefined, page: undefined, cursor: undefined }) })}
        selection={mayChangeSome(me) ? { selected, onChange: setSelected, isSelectable: may } : undefined}
        bulkActions={
          <>
            <Button size="xs" color="red" variant="light" onClick={() => setDialog({ kind: "revoke", tokens: selectedTokens })}>
              Revoke selected
            </Button>
            <Button size="xs" variant="subtle" color="gray" onClick={() => setSelected(new Set())}>
              Clear selection
            </Button>
          </>
        }
        empty={
          filtered ? (
            <EmptyState icon={IconSearch} title="No token matches" description="Change or clear the filters." compact />
          ) : (
            <EmptyState
              icon={IconKey}
              title="No tokens yet"
              description={
                creatable.length > 0
                  ? "Create a token for each workflow that calls your APIs through the gateway."
                  : "Tokens of your teams appear here. You need the DEVELOPER role in a team to create them."
              }
              action={
                creatable.length > 0 && (
                  <CreateButton size="xs" onClick={() => setDialog({ kind: "create" })}>Create token</CreateButton>
                )
              }
            />
          )
        }
        footer={
          <Pager
            noun="tokens"
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

      <Suspense fallback={null}>
        <TokenDialogs
          dialog={dialog}
          setDialog={setDialog}
          open={search.open}
          setOpen={setOpen}
          creatableTeams={creatable}
          defaultTeam={search.team}
          canChange={may}
          onRevoked={(ok) => setSelected((s) => new Set([...s].filter((id) => !ok.includes(id))))}
        />
      </Suspense>
      {total !== undefined && total > 0 && (
        <Text size="xs" c="dimmed" mt={6}>
          {count(total)} {total === 1 ? "token matches" : "tokens match"}
          {filtered ? " the filters" : ""}.
        </Text>
      )}
    </>
  );
}

function clean(s: TokensSearch): TokensSearch {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) if (v !== undefined && v !== "" && v !== false) out[k] = v;
  return out as TokensSearch;
}

function Scopes({ scopes }: { scopes: string[] }) {
  const shown = scopes.slice(0, 2);
  const rest = scopes.length - shown.length;
  return (
    <span className="kg-row-4">
      {shown.map((s) => (
        <Pill key={s} variant="default" className="kg-mono">
          {s}
        </Pill>
      ))}
      {rest > 0 && (
        <Pill variant="default" title={scopes.slice(2).join(", ")}>
          +{rest}
        </Pill>
      )}
    </span>
  );
}

function Expiry({ token }: { token: Token }) {
  if (!token.expiresAt) {
    return <span className="kg-muted">Never</span>;
  }
  return <TimeAgo ts={token.expiresAt} />;
}
