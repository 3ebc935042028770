/**
 * Routes: which backend serves each gateway path prefix. Search, team and tag filters, server
 * sort, total and cursor pages (all in the URL); create, edit and delete; copy the path, the
 * backend URL and a ready cURL command; details in a drawer (`?open=<id>`).
 */
import { useMemo, useRef, useState } from "react";
import { Badge, Group, Menu, Select, Text, Tooltip, UnstyledButton } from "@mantine/core";
import { useClipboard } from "@mantine/hooks";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { getRouteApi } from "@tanstack/react-router";
import { IconLock, IconRoute, IconSearch } from "@tabler/icons-react";
import type { Route } from "../../gen/keygate/v1/route_pb";
import { routesApi } from "../../api/transport";
import { allTeamsQuery, routeTagsQuery, serverInfoQuery } from "../../api/lists";
import { useMe } from "../../auth/session";
import { canChange, teamsWhereCanCreate } from "../../auth/permissions";
import { gatewayBaseUrl, TOKEN_HEADER } from "../../config/gateway";
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
import { TeamBadge } from "../../components/domain/TeamBadge";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { CopyIcon } from "../../components/misc/Copy";
import { confirmAction } from "../../components/form/confirm";
import { notifyError, notifySuccess } from "../../components/misc/notify";
import { CursorTrail } from "../../lib/pager";
import { count } from "../../lib/format";
import { cleanSearch, DEFAULT_PAGE_SIZE, effectiveSort, filterKey, hasFilters, toListRoutesRequest, type RouteSort, type RoutesSearch } from "./search";
import { routeCurl } from "./curl";
import { AUTH_LABEL, authKindOf } from "./form";
import { RouteFormModal } from "./RouteFormModal";
import { RouteDrawer } from "./RouteDrawer";

const api = getRouteApi("/app/routes");

type Dialog = { kind: "create" } | { kind: "edit"; route: Route } | null;

export function RoutesPage() {
  const search = api.useSearch();
  const navigate = api.useNavigate();
  const me = useMe();
  const qc = useQueryClient();
  const clipboard = useClipboard({ timeout: 1500 });
  const teams = useQuery(allTeamsQuery);
  const tags = useQuery(routeTagsQuery);
  const teamById = useMemo(() => new Map((teams.data ?? []).map((t) => [t.id, t])), [teams.data]);
  const creatable = teamsWhereCanCreate(me, "route", (teams.data ?? []).map((t) => t.id));
  const info = useQuery(serverInfoQuery);
  const gateway = gatewayBaseUrl(info.data?.gatewayPublicUrl);
  const [dialog, setDialog] = useState<Dialog>(null);

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

  const list = useQuery({
    queryKey: ["routes", "list", search.q, search.team, search.tag, search.sort, search.desc, search.size, search.cursor],
    queryFn: ({ signal }) => routesApi.listRoutes(toListRoutesRequest(search), { signal }),
    placeholderData: keepPreviousData,
  });
  const rows = list.data?.routes;
  const total = list.data ? Number(list.data.totalSize) : undefined;

  const setFilters = (patch: Partial<RoutesSearch>) =>
    void navigate({ search: (prev) => cleanSearch({ ...prev, ...patch, page: undefined, cursor: undefined }), replace: true });
  const setOpen = (id: string | undefined) => void navigate({ search: (prev) => cleanSearch({ ...prev, open: id }) });

  const remove = useMutation({
    mutationFn: (r: Route) => routesApi.deleteRoute({ id: r.id }),
    onSuccess: (_, r) => {
      void qc.invalidateQueries({ queryKey: ["routes"] });
      void qc.invalidateQueries({ queryKey: ["teams"] });
      void qc.invalidateQueries({ queryKey: ["dashboard"] });
      if (search.open === r.id || search.open === r.name) setOpen(undefined);
      notifySuccess(`Route "${r.name}" deleted`);
    },
    onError: (e, r) => notifyError(e, `Could not delete "${r.name}"`),
  });
  const askDelete = (r: Route) =>
    confirmAction({
      title: `Delete route "${r.name}"?`,
      body: (
        <Text size="sm">
          The gateway stops serving <span className="kg-mono">{r.pathPrefix}</span> within seconds, and the route&apos;s stored backend
          secret is deleted. Tokens with the scope <span className="kg-mono">{r.name}</span> keep working for their other routes. This
          cannot be undone.
        </Text>
      ),
      confirmLabel: "Delete route",
      danger: true,
      onConfirm: () => remove.mutate(r),
    });

  const copy = (value: string, what: string) => {
    clipboard.copy(value);
    notifySuccess(`${what} copied`);
  };

  const sort = effectiveSort(search);
  const columns: Column<Route>[] = [
    {
      key: "name",
      header: "Route",
      sortKey: "name",
      cell: (r) => (
        <div style={{ minWidth: 140, maxWidth: 240 }}>
          <UnstyledButton
            onClick={() => setOpen(r.id)}
            className="kg-truncate"
            fw={500}
            fz="sm"
            display="block"
            maw="100%"
            title={r.description || undefined}
          >
            {r.name}
          </UnstyledButton>
          <Group gap={2} wrap="nowrap">
            <span className="kg-mono kg-truncate kg-muted" style={{ fontSize: 12 }}>
              {r.pathPrefix}
            </span>
            <CopyIcon value={r.pathPrefix} label={`Copy path of ${r.name}`} />
          </Group>
        </div>
      ),
    },
    {
      key: "backend",
      header: "Backend",
      cell: (r) => {
        const kind = authKindOf(r.backendAuth?.type);
        return (
          <Group gap={6} wrap="nowrap" maw={180}>
            <span className="kg-mono kg-truncate" title={r.backendUrl}>
              {shortUrl(r.backendUrl)}
            </span>
            {kind !== "none" && (
              <Tooltip label={`Adds ${AUTH_LABEL[kind].toLowerCase()} credentials${r.backendAuth?.secretSet ? "" : " (no secret stored)"}`}>
                <IconLock size={14} aria-label={`Backend auth: ${AUTH_LABEL[kind]}`} className="kg-muted" style={{ flex: "none" }} />
              </Tooltip>
            )}
          </Group>
        );
      },
    },
    { key: "team", header: "Team", cell: (r) => <TeamBadge teamId={r.teamId} team={teamById.get(r.teamId)} /> },
    { key: "methods", header: "Methods", cell: (r) => <Methods methods={r.methods} /> },
    { key: "tags", header: "Tags", cell: (r) => <Chips values={r.tags} empty="—" onClick={(t) => setFilters({ tag: t })} /> },
    {
      key: "allowed",
      header: "Allowed",
      cell: (r) =>
        r.allowedTeamIds.length === 0 ? (
          <Text span size="sm" c="dimmed">
            All
          </Text>
        ) : (
          <Chips values={r.allowedTeamIds} max={1} />
        ),
    },
    {
      key: "cors",
      header: "CORS",
      cell: (r) =>
        r.corsOrigins.length === 0 ? (
          <Text span size="sm" c="dimmed">
            Off
          </Text>
        ) : r.corsOrigins[0] === "*" ? (
          <Tooltip label="Every origin (*)">
            <Text span size="sm" className="kg-warn">
              Any
            </Text>
          </Tooltip>
        ) : (
          <Tooltip label={r.corsOrigins.join(", ")}>
            <Text span size="sm" className="kg-nowrap">
              {r.corsOrigins.length === 1 ? "1 origin" : `${r.corsOrigins.length} origins`}
            </Text>
          </Tooltip>
        ),
    },
    {
      key: "rate",
      header: "Limit",
      align: "right",
      cell: (r) =>
        r.rateLimitPerMinute ? (
          <span className="kg-nowrap">{count(r.rateLimitPerMinute)}/min</span>
        ) : (
          <Text span size="sm" c="dimmed">
            —
          </Text>
        ),
    },
    { key: "updated", header: "Updated", sortKey: "updated", cell: (r) => <TimeAgo ts={r.updatedAt} /> },
    {
      key: "actions",
      header: <span className="kg-visually-hidden">Actions</span>,
      align: "right",
      width: 44,
      cell: (r) => (
        <RowActions label={`Actions for ${r.name}`}>
          <Menu.Item onClick={() => setOpen(r.id)}>Details</Menu.Item>
          <Menu.Item onClick={() => copy(r.pathPrefix, "Path")}>Copy path</Menu.Item>
          <Menu.Item onClick={() => copy(r.backendUrl, "Backend URL")}>Copy backend URL</Menu.Item>
          <Menu.Item onClick={() => copy(routeCurl(gateway.url, r, TOKEN_HEADER), "cURL command")}>Copy cURL</Menu.Item>
          {canChange(me, r) && (
            <>
              <Menu.Divider />
              <Menu.Item onClick={() => setDialog({ kind: "edit", route: r })}>Edit</Menu.Item>
              <Menu.Item color="red" onClick={() => askDelete(r)}>
                Delete
              </Menu.Item>
            </>
          )}
        </RowActions>
      ),
    },
  ];

  const filtered = hasFilters(search);
  const tagData = (tags.data ?? []).map((t) => ({ value: t.tag, label: `${t.tag} (${t.routeCount})` }));
  if (search.tag && !tagData.some((t) => t.value === search.tag)) tagData.push({ value: search.tag, label: search.tag });

  return (
    <>
      <PageHeader
        title="Routes"
        description="Which backend serves each path prefix at the gateway, and who may call it."
        actions={
          <>
            <RefreshButton onClick={() => void list.refetch()} loading={list.isFetching} />
            {creatable.length > 0 && (
              <CreateButton onClick={() => setDialog({ kind: "create" })}>Create route</CreateButton>
            )}
          </>
        }
      />

      <FilterBar
        label="Filter routes"
        onClear={filtered ? () => void navigate({ search: (prev) => cleanSearch({ sort: prev.sort, desc: prev.desc, size: prev.size }) }) : undefined}
      >
        <SearchBox w={260} aria-label="Search routes" placeholder="Search name, path, backend or description" value={search.q} onSearch={(q) => setFilters({ q })} />
        <TeamSelect size="xs" w={160} aria-label="Team" placeholder="Any team" clearable value={search.team} onChange={(v) => setFilters({ team: v })} />
        <Select
          size="xs"
          w={160}
          aria-label="Tag"
          placeholder="Any tag"
          clearable
          searchable
          nothingFoundMessage="No tag matches"
          data={tagData}
          value={search.tag ?? null}
          onChange={(v) => setFilters({ tag: v ?? undefined })}
        />
        <Select
          size="xs"
          w={150}
          aria-label="Sort by"
          data={SORT_OPTIONS}
          value={sort.key}
          allowDeselect={false}
          onChange={(v) =>
            v &&
            void navigate({
              search: (prev) =>
                cleanSearch({ ...prev, sort: v === "name" ? undefined : (v as RouteSort), desc: v === "updated" || v === "created" ? true : undefined, page: undefined, cursor: undefined }),
            })
          }
        />
      </FilterBar>

      <DataTable
        label="Routes"
        columns={columns}
        rows={rows}
        rowKey={(r) => r.id}
        loading={list.isPending || (list.isFetching && list.isPlaceholderData)}
        error={list.error}
        onRetry={() => void list.refetch()}
        sort={sort}
        onSortChange={(s) =>
          void navigate({ search: (prev) => cleanSearch({ ...prev, sort: s.key as RouteSort, desc: s.desc || undefined, page: undefined, cursor: undefined }) })
        }
        empty={
          filtered ? (
            <EmptyState icon={IconSearch} title="No route matches" description="Change or clear the filters." compact />
          ) : (
            <EmptyState
              icon={IconRoute}
              title="No routes yet"
              description={
                creatable.length > 0
                  ? "A route maps a path prefix at the gateway to a backend URL. Tokens are granted routes by name or tag."
                  : "Routes of every team appear here. You need the DEVELOPER role in a team to create them."
              }
              action={
                creatable.length > 0 && (
                  <CreateButton size="xs" onClick={() => setDialog({ kind: "create" })}>Create route</CreateButton>
                )
              }
            />
          )
        }
        footer={
          <Pager
            noun="routes"
            page={page}
            pageSize={search.size ?? DEFAULT_PAGE_SIZE}
            count={rows?.length ?? 0}
            total={total}
            hasNext={!!list.data?.nextPageToken}
            onPrev={() => {
              const prevToken = trail.current.tokenFor(page - 1);
              void navigate({
                search: (prev) => cleanSearch({ ...prev, page: prevToken === undefined || page <= 2 ? undefined : page - 1, cursor: prevToken || undefined }),
              });
            }}
            onNext={() => {
              const next = list.data!.nextPageToken;
              trail.current.remember(page + 1, next);
              void navigate({ search: (prev) => cleanSearch({ ...prev, page: page + 1, cursor: next }) });
            }}
            onPageSize={(n) => setFilters({ size: n === DEFAULT_PAGE_SIZE ? undefined : n })}
          />
        }
      />

      <RouteFormModal
        opened={dialog !== null}
        route={dialog?.kind === "edit" ? dialog.route : undefined}
        onClose={() => setDialog(null)}
        creatableTeams={creatable}
        defaultTeam={search.team}
        onSaved={(r, created) => {
          if (created) setOpen(r.id);
        }}
      />
      <RouteDrawer
        id={search.open}
        teamById={teamById}
        onClose={() => setOpen(undefined)}
        canChange={(r) => canChange(me, r)}
        onEdit={(r) => setDialog({ kind: "edit", route: r })}
        onDelete={askDelete}
      />
    </>
  );
}

const ALL_METHODS = 7;

/** Backend URLs in the table: `https://` is implied; plain `http://` stays visible. */
function shortUrl(url: string): string {
  return url.replace(/^https:\/\//, "");
}

const SORT_OPTIONS = [
  { value: "name", label: "Sort: name" },
  { value: "path", label: "Sort: path" },
  { value: "created", label: "Sort: created" },
  { value: "updated", label: "Sort: updated" },
];

function Methods({ methods }: { methods: string[] }) {
  if (methods.length === 0 || methods.length === ALL_METHODS) {
    return (
      <Text span size="sm" c="dimmed">
        Any
      </Text>
    );
  }
  return (
    <span className="kg-mono kg-nowrap" style={{ fontSize: 12 }}>
      {methods.join(" ")}
    </span>
  );
}

/** Up to `max` small badges, then "+n" with the rest in a tooltip. */
function Chips({ values, empty, mono, onClick, max = 2 }: { values: string[]; empty?: string; mono?: boolean; onClick?: (v: string) => void; max?: number }) {
  if (values.length === 0) {
    return empty ? (
      <Text span size="sm" c="dimmed">
        {empty}
      </Text>
    ) : null;
  }
  const shown = values.slice(0, max);
  const rest = values.length - shown.length;
  return (
    <Group gap={4} wrap="nowrap">
      {shown.map((v) =>
        onClick ? (
          <UnstyledButton key={v} onClick={() => onClick(v)} aria-label={`Filter by tag ${v}`}>
            <Badge variant="default" className={mono ? "kg-mono kg-fit" : "kg-fit"} style={{ cursor: "pointer" }}>
              {v}
            </Badge>
          </UnstyledButton>
        ) : (
          <Badge key={v} variant="default" className={mono ? "kg-mono kg-fit" : "kg-fit"}>
            {v}
          </Badge>
        ),
      )}
      {rest > 0 && (
        <Tooltip label={values.slice(max).join(", ")}>
          <Badge variant="default" className="kg-fit">
            +{rest}
          </Badge>
        </Tooltip>
      )}
    </Group>
  );
}
