/**
 * Service accounts: search and team filter in the URL (ListServiceAccounts; the list is not
 * paged), create (CreateServiceAccount), details with management keys (ListKeys, CreateKey,
 * RotateKey, RevokeKey; plaintext shown once), delete (DeleteServiceAccount).
 */
import { useMemo, useState } from "react";
import { Badge, Menu, Text, Tooltip, UnstyledButton } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { getRouteApi } from "@tanstack/react-router";
import { IconLock, IconRobot, IconSearch } from "@tabler/icons-react";
import type { ManagementKey, ServiceAccount } from "../../gen/keygate/v1/service_account_pb";
import { ServiceAccountCapability } from "../../gen/keygate/v1/service_account_pb";
import { serviceAccountsApi } from "../../api/transport";
import { allTeamsQuery } from "../../api/lists";
import { useMe } from "../../auth/session";
import { ROLE_LABEL, canListServiceAccounts, canManageServiceAccount, teamsWhereCanManageServiceAccounts } from "../../auth/permissions";
import { RefreshButton } from "../../components/misc/RefreshButton";
import { CreateButton } from "../../components/misc/CreateButton";
import { PageHeader } from "../../components/misc/PageHeader";
import { FilterBar } from "../../components/list/FilterBar";
import { SearchBox } from "../../components/list/SearchBox";
import { RowActions } from "../../components/table/RowActions";
import { DataTable, type Column } from "../../components/table/DataTable";
import { EmptyState } from "../../components/states/EmptyState";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { TeamBadge } from "../../components/domain/TeamBadge";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { ShownOnceModal } from "../../components/misc/ShownOnceModal";
import { confirmAction } from "../../components/form/confirm";
import { notifyError, notifySuccess } from "../../components/misc/notify";
import { CAPABILITY_HINT, CAPABILITY_LABEL, matchesQuery, type ServiceAccountsSearch } from "./search";
import { CreateServiceAccountModal } from "./CreateServiceAccountModal";
import { CreateKeyModal, RotateKeyModal, type IssuedKey } from "./KeyModals";
import { ServiceAccountDrawer } from "./ServiceAccountDrawer";

const route = getRouteApi("/app/service-accounts");

export function ServiceAccountsPage() {
  const me = useMe();
  if (!canListServiceAccounts(me)) {
    return (
      <>
        <PageHeader title="Service accounts" />
        <div className="kg-card">
          <EmptyState
            icon={IconLock}
            title="Only team admins and managers see service accounts"
            description="Service accounts and their management keys are visible to the ADMIN and MANAGER of their team."
          />
        </div>
      </>
    );
  }
  return <ServiceAccounts />;
}

function ServiceAccounts() {
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const me = useMe();
  const qc = useQueryClient();
  const teams = useQuery(allTeamsQuery);
  const teamById = useMemo(() => new Map((teams.data ?? []).map((t) => [t.id, t])), [teams.data]);
  const manageable = teamsWhereCanManageServiceAccounts(me, (teams.data ?? []).map((t) => t.id));

  const [creating, setCreating] = useState(false);
  const [keyFor, setKeyFor] = useState<ServiceAccount | null>(null);
  const [rotating, setRotating] = useState<ManagementKey | null>(null);
  const [issued, setIssued] = useState<IssuedKey | null>(null);

  const list = useQuery({
    queryKey: ["service-accounts", "list", search.team ?? ""],
    queryFn: ({ signal }) => serviceAccountsApi.listServiceAccounts({ teamId: search.team ?? "" }, { signal }),
    select: (r) => [...r.serviceAccounts].sort((a, b) => a.teamId.localeCompare(b.teamId) || a.name.localeCompare(b.name)),
  });
  const rows = list.data?.filter((sa) => matchesQuery(sa, search.q));

  const setFilters = (patch: Partial<ServiceAccountsSearch>) => void navigate({ search: (prev) => clean({ ...prev, ...patch }), replace: true });
  const setOpen = (id: string | undefined) => void navigate({ search: (prev) => clean({ ...prev, open: id }) });

  const remove = useMutation({
    mutationFn: (sa: ServiceAccount) => serviceAccountsApi.deleteServiceAccount({ id: sa.id }),
    onSuccess: (_r, sa) => {
      notifySuccess(`Service account "${sa.name}" deleted`);
      if (search.open === sa.id) setOpen(undefined);
      void qc.invalidateQueries({ queryKey: ["service-accounts"] });
    },
    onError: (e) => notifyError(e, "Not deleted"),
  });
  const askDelete = (sa: ServiceAccount) =>
    confirmAction({
      title: `Delete "${sa.name}"?`,
      body: "The account is deleted and every one of its keys is revoked at once: services using them are refused. This cannot be undone.",
      confirmLabel: "Delete account",
      danger: true,
      onConfirm: () => remove.mutate(sa),
    });

  const columns: Column<ServiceAccount>[] = [
    {
      key: "name",
      header: "Name",
      cell: (sa) => (
        <div style={{ minWidth: 180, maxWidth: 360 }}>
          <UnstyledButton onClick={() => setOpen(sa.id)} className="kg-truncate" fw={500} fz="sm" display="block" maw="100%">
            {sa.name}
          </UnstyledButton>
          {sa.description && (
            <Text size="xs" c="dimmed" className="kg-truncate" title={sa.description}>
              {sa.description}
            </Text>
          )}
        </div>
      ),
    },
    { key: "team", header: "Team", cell: (sa) => <TeamBadge teamId={sa.teamId} team={teamById.get(sa.teamId)} /> },
    { key: "role", header: "Role", cell: (sa) => ROLE_LABEL[sa.role] },
    {
      key: "capability",
      header: "Capability",
      cell: (sa) =>
        sa.capability === ServiceAccountCapability.UNSPECIFIED ? (
          <Text span size="sm" c="dimmed">
            —
          </Text>
        ) : (
          <Tooltip label={CAPABILITY_HINT[sa.capability]}>
            <Badge color="grape" className="kg-fit">
              {CAPABILITY_LABEL[sa.capability]}
            </Badge>
          </Tooltip>
        ),
    },
    { key: "created", header: "Created", cell: (sa) => <TimeAgo ts={sa.createdAt} /> },
    {
      key: "actions",
      header: <span className="kg-visually-hidden">Actions</span>,
      align: "right",
      width: 44,
      cell: (sa) => (
        <RowActions label={`Actions for ${sa.name}`}>
          <Menu.Item onClick={() => setOpen(sa.id)}>Details and keys</Menu.Item>
          {canManageServiceAccount(me, sa) && (
            <>
              <Menu.Item onClick={() => setKeyFor(sa)}>Issue key</Menu.Item>
              <Menu.Divider />
              <Menu.Item color="red" onClick={() => askDelete(sa)}>
                Delete
              </Menu.Item>
            </>
          )}
        </RowActions>
      ),
    },
  ];

  const filtered = !!(search.q || search.team);
  const n = rows?.length ?? 0;

  return (
    <>
      <PageHeader
        title="Service accounts"
        description="Identities for automation (CI, kv-sync, gateways): a role in one team, signing in with management keys."
        actions={
          <>
            <RefreshButton onClick={() => void list.refetch()} loading={list.isFetching} />
            {manageable.length > 0 && (
              <CreateButton onClick={() => setCreating(true)}>Create service account</CreateButton>
            )}
          </>
        }
      />

      <FilterBar label="Filter service accounts" onClear={filtered ? () => void navigate({ search: {} }) : undefined}>
        <SearchBox w={240} aria-label="Search service accounts" placeholder="Search name, description or id" value={search.q} delay={200} onSearch={(q) => setFilters({ q })} />
        <TeamSelect size="xs" w={170} aria-label="Team" placeholder="Any team" clearable value={search.team} onChange={(v) => setFilters({ team: v })} />
      </FilterBar>

      <DataTable
        label="Service accounts"
        columns={columns}
        rows={rows}
        rowKey={(sa) => sa.id}
        loading={list.isPending}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={
          filtered ? (
            <EmptyState icon={IconSearch} title="No service account matches" description="Change or clear the search and team filter." compact />
          ) : (
            <EmptyState
              icon={IconRobot}
              title="No service accounts yet"
              description="Create one for each automated client of the control plane (CI pipelines, kv-sync, gateways); issue it a key and keep people's passwords out of scripts."
              action={
                manageable.length > 0 && (
                  <CreateButton size="xs" onClick={() => setCreating(true)}>Create service account</CreateButton>
                )
              }
            />
          )
        }
        footer={
          list.data && n > 0 ? (
            <Text size="sm" c="dimmed">
              {n === list.data.length ? `${n} service account${n === 1 ? "" : "s"}` : `${n} of ${list.data.length} service accounts`}
            </Text>
          ) : undefined
        }
      />

      <ServiceAccountDrawer
        id={search.open}
        team={(id) => teamById.get(id)}
        onClose={() => setOpen(undefined)}
        onIssueKey={setKeyFor}
        onRotateKey={setRotating}
        onDelete={askDelete}
      />
      <CreateServiceAccountModal
        opened={creating}
        onClose={() => setCreating(false)}
        teams={manageable}
        defaultTeam={search.team}
        onCreated={(sa) => {
          notifySuccess(`Service account "${sa.name}" created`);
          setOpen(sa.id);
          setKeyFor(sa);
        }}
      />
      <CreateKeyModal account={keyFor} onClose={() => setKeyFor(null)} onIssued={setIssued} />
      <RotateKeyModal keyToRotate={rotating} onClose={() => setRotating(null)} onIssued={setIssued} />
      <ShownOnceModal
        opened={!!issued}
        onClose={() => setIssued(null)}
        title={issued?.title ?? ""}
        warning="Copy the key now. Keygate keeps only its hash: it cannot be shown again."
        values={issued ? [{ label: `Management key${issued.key ? ` "${issued.key.name}"` : ""}`, value: issued.plaintext, copyLabel: "Copy key", testId: "key-plaintext" }] : []}
      >
        {issued?.note && <Text size="sm">{issued.note}</Text>}
        <Text size="sm" c="dimmed">
          Services send it as <span className="kg-mono">authorization: Bearer &lt;key&gt;</span>; the CLI reads it from{" "}
          <span className="kg-mono">--key-file</span> or <span className="kg-mono">KEYGATE_KEY_FILE</span>.
        </Text>
      </ShownOnceModal>
    </>
  );
}

function clean(s: ServiceAccountsSearch): ServiceAccountsSearch {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) if (v !== undefined && v !== "") out[k] = v;
  return out as ServiceAccountsSearch;
}
