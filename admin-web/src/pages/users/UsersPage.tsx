/**
 * Users and invitations. Users: search and team filter in the URL, cursor pages (ListUsers),
 * details with team roles (GetUser + TeamService member RPCs), edit (UpdateUser), disable /
 * enable (system admins). Invitations: pending list (ListInvitations), invite with the code
 * and accept link shown once (CreateInvitation), revoke (RevokeInvitation).
 */
import { useMemo, useRef, useState } from "react";
import { Menu, Tabs, Text, UnstyledButton } from "@mantine/core";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { getRouteApi, useNavigate } from "@tanstack/react-router";
import { IconLock, IconMailPlus, IconSearch, IconUsers } from "@tabler/icons-react";
import type { User } from "../../gen/keygate/v1/user_pb";
import type { CreateInvitationResponse } from "../../gen/keygate/v1/invitation_pb";
import { usersApi } from "../../api/transport";
import { allTeamsQuery } from "../../api/lists";
import { useMe } from "../../auth/session";
import { ROLE_LABEL, canAdministerUsers, canListUsers, canRenameUser, teamsWhereCanInvite } from "../../auth/permissions";
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
import { TeamSelect } from "../../components/domain/TeamSelect";
import { ShownOnceModal } from "../../components/misc/ShownOnceModal";
import { confirmAction } from "../../components/form/confirm";
import { notifyError, notifySuccess } from "../../components/misc/notify";
import { CursorTrail } from "../../lib/pager";
import { absoluteTime, tsToDate } from "../../lib/format";
import { DEFAULT_PAGE_SIZE, acceptInvitationUrl, filterKey, toListUsersRequest, type UsersSearch } from "./search";
import { RoleBadges, UserStatusBadges, userLabel } from "./parts";
import { UserDrawer } from "./UserDrawer";
import { EditUserModal } from "./EditUserModal";
import { InviteModal } from "./InviteModal";
import { InvitationsPanel } from "./InvitationsPanel";

const route = getRouteApi("/app/users");

export function UsersPage() {
  const me = useMe();
  if (!canListUsers(me)) {
    return (
      <>
        <PageHeader title="Users & invitations" />
        <div className="kg-card">
          <EmptyState
            icon={IconLock}
            title="Only team admins and managers see users"
            description="You need the ADMIN or MANAGER role in a team to list users and invite people. Ask one of your team's admins."
          />
        </div>
      </>
    );
  }
  return <Users />;
}

function Users() {
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const goTo = useNavigate();
  const me = useMe();
  const qc = useQueryClient();
  const teams = useQuery(allTeamsQuery);
  const teamById = useMemo(() => new Map((teams.data ?? []).map((t) => [t.id, t])), [teams.data]);
  const inviteTeams = teamsWhereCanInvite(me, (teams.data ?? []).map((t) => t.id));
  const tab = search.tab ?? "users";

  const [editing, setEditing] = useState<User | null>(null);
  const [inviting, setInviting] = useState(false);
  const [invited, setInvited] = useState<CreateInvitationResponse | null>(null);

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
    queryKey: ["users", "list", search.q ?? "", search.team ?? "", search.size ?? 0, search.cursor ?? ""],
    queryFn: ({ signal }) => usersApi.listUsers(toListUsersRequest(search), { signal }),
    placeholderData: keepPreviousData,
    enabled: tab === "users",
  });
  const rows = list.data?.users;

  const setFilters = (patch: Partial<UsersSearch>) =>
    void navigate({ search: (prev) => clean({ ...prev, ...patch, page: undefined, cursor: undefined }), replace: true });
  const setOpen = (id: string | undefined) => void navigate({ search: (prev) => clean({ ...prev, open: id }) });

  const setDisabled = useMutation({
    mutationFn: async (a: { user: User; disabled: boolean }) => {
      if (a.disabled) await usersApi.disableUser({ id: a.user.id });
      else await usersApi.enableUser({ id: a.user.id });
    },
    onSuccess: (_r, a) => {
      notifySuccess(a.disabled ? `${userLabel(a.user)} disabled` : `${userLabel(a.user)} enabled`);
      void qc.invalidateQueries({ queryKey: ["users"] });
    },
    onError: (e, a) => notifyError(e, a.disabled ? "Not disabled" : "Not enabled"),
  });
  const askSetDisabled = (user: User, disabled: boolean) =>
    disabled
      ? confirmAction({
          title: `Disable ${userLabel(user)}?`,
          body: "Their sessions end at once and they cannot sign in until a system admin enables the account again. Their team roles are kept.",
          confirmLabel: "Disable account",
          danger: true,
          onConfirm: () => setDisabled.mutate({ user, disabled }),
        })
      : setDisabled.mutate({ user, disabled });

  const isSelf = (u: User) => me.user?.id === u.id;
  const columns: Column<User>[] = [
    {
      key: "user",
      header: "User",
      cell: (u) => (
        <div style={{ minWidth: 200, maxWidth: 320 }}>
          <UnstyledButton onClick={() => setOpen(u.id)} className="kg-truncate" fw={500} fz="sm" display="block" maw="100%">
            {u.displayName || u.email}
            {isSelf(u) && (
              <Text span size="xs" c="dimmed">
                {" "}
                (you)
              </Text>
            )}
          </UnstyledButton>
          <Text size="xs" c="dimmed" className="kg-truncate">
            {u.email}
          </Text>
        </div>
      ),
    },
    { key: "status", header: "Status", cell: (u) => <UserStatusBadges user={u} /> },
    {
      key: "highest",
      header: "Highest role",
      cell: (u) => {
        const top = u.roles.reduce((m, r) => (r.role > m ? r.role : m), 0);
        return top ? ROLE_LABEL[top as keyof typeof ROLE_LABEL] : <Text span size="sm" c="dimmed">—</Text>;
      },
    },
    { key: "roles", header: "Teams and roles", cell: (u) => <RoleBadges roles={u.roles} teams={teamById} max={2} /> },
    { key: "last", header: "Last sign-in", cell: (u) => <TimeAgo ts={u.lastSignInAt} fallback="Never" /> },
    {
      key: "actions",
      header: <span className="kg-visually-hidden">Actions</span>,
      align: "right",
      width: 44,
      cell: (u) => (
        <RowActions label={`Actions for ${userLabel(u)}`}>
          <Menu.Item onClick={() => setOpen(u.id)}>Details and team roles</Menu.Item>
          {(canRenameUser(me, u.id) || canAdministerUsers(me)) && <Menu.Item onClick={() => setEditing(u)}>Edit</Menu.Item>}
          <Menu.Item onClick={() => void goTo({ to: "/audit", search: { actor: u.id } })}>Audit log of their actions</Menu.Item>
          {canAdministerUsers(me) && !isSelf(u) && (
            <>
              <Menu.Divider />
              {u.disabled ? (
                <Menu.Item onClick={() => askSetDisabled(u, false)}>Enable</Menu.Item>
              ) : (
                <Menu.Item color="red" onClick={() => askSetDisabled(u, true)}>
                  Disable
                </Menu.Item>
              )}
            </>
          )}
        </RowActions>
      ),
    },
  ];

  const filtered = !!(search.q || search.team);
  const teamFilter = (
    <TeamSelect size="xs" w={170} aria-label="Team" placeholder="Any team" clearable value={search.team} onChange={(v) => setFilters({ team: v })} />
  );

  return (
    <>
      <PageHeader
        title="Users & invitations"
        description="People who sign in, their roles per team, and invitations not yet accepted."
        actions={
          <>
            <RefreshButton
              loading={list.isFetching}
              onClick={() => void qc.invalidateQueries({ queryKey: tab === "users" ? ["users"] : ["invitations"] })}
            />
            {inviteTeams.length > 0 && (
              <CreateButton icon={IconMailPlus} onClick={() => setInviting(true)}>Invite</CreateButton>
            )}
          </>
        }
      />

      <Tabs
        value={tab}
        onChange={(v) => void navigate({ search: (prev) => clean({ q: prev.q, team: prev.team, tab: v === "invitations" ? "invitations" : undefined }) })}
        keepMounted={false}
      >
        <Tabs.List mb="sm">
          <Tabs.Tab value="users">Users</Tabs.Tab>
          <Tabs.Tab value="invitations">Pending invitations</Tabs.Tab>
        </Tabs.List>

        <Tabs.Panel value="users">
          <FilterBar label="Filter users" onClear={filtered ? () => void navigate({ search: (prev) => clean({ size: prev.size }) }) : undefined}>
            <SearchBox w={240} aria-label="Search users" placeholder="Search name or email" value={search.q} onSearch={(q) => setFilters({ q })} />
            {teamFilter}
          </FilterBar>
          <DataTable
            label="Users"
            columns={columns}
            rows={rows}
            rowKey={(u) => u.id}
            loading={list.isPending || (list.isFetching && list.isPlaceholderData)}
            error={list.error}
            onRetry={() => void list.refetch()}
            empty={
              filtered ? (
                <EmptyState icon={IconSearch} title="No user matches" description="Change or clear the search and team filter." compact />
              ) : (
                <EmptyState
                  icon={IconUsers}
                  title="No users you can see"
                  description="You see the members of teams where you are ADMIN or MANAGER. Invite people to add them."
                  action={
                    inviteTeams.length > 0 && (
                      <CreateButton size="xs" icon={IconMailPlus} onClick={() => setInviting(true)}>Invite someone</CreateButton>
                    )
                  }
                />
              )
            }
            footer={
              <Pager
                noun="users"
                page={page}
                pageSize={search.size ?? DEFAULT_PAGE_SIZE}
                count={rows?.length ?? 0}
                total={undefined}
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
          {!me.systemAdmin && (
            <Text size="xs" c="dimmed" mt={6}>
              Only members of teams where you are ADMIN or MANAGER are listed, with their roles in those teams.
            </Text>
          )}
        </Tabs.Panel>

        <Tabs.Panel value="invitations">
          <InvitationsPanel
            team={search.team}
            teams={teamById}
            canInvite={inviteTeams.length > 0}
            onInvite={() => setInviting(true)}
            filters={<FilterBar label="Filter invitations">{teamFilter}</FilterBar>}
          />
        </Tabs.Panel>
      </Tabs>

      <UserDrawer id={search.open} onClose={() => setOpen(undefined)} onEdit={setEditing} onSetDisabled={askSetDisabled} />
      <EditUserModal user={editing} onClose={() => setEditing(null)} />
      <InviteModal opened={inviting} onClose={() => setInviting(false)} teams={inviteTeams} defaultTeam={search.team} onCreated={setInvited} />
      <ShownOnceModal
        opened={!!invited}
        onClose={() => {
          setInvited(null);
          if (tab !== "invitations") void navigate({ search: (prev) => clean({ ...prev, tab: "invitations", page: undefined, cursor: undefined }) });
        }}
        title={`Invitation for ${invited?.invitation?.email ?? ""}`}
        warning="Send the link (or the code) to the invitee now. It works once and Keygate keeps only its hash: it cannot be shown again."
        values={
          invited
            ? [
                { label: "Invitation link", value: acceptInvitationUrl(window.location.origin, invited.code), copyLabel: "Copy link", testId: "invitation-link" },
                { label: "Code", value: invited.code, copyLabel: "Copy code", testId: "invitation-code" },
              ]
            : []
        }
      >
        {invited?.invitation && (
          <Text size="sm" c="dimmed">
            Valid until {absoluteTime(tsToDate(invited.invitation.expiresAt) ?? new Date())}. With the CLI:{" "}
            <span className="kg-mono">keygate invite accept --code-file FILE --name NAME</span>. Lost it? Revoke it under
            Pending invitations and invite again.
          </Text>
        )}
      </ShownOnceModal>
    </>
  );
}

function clean(s: UsersSearch): UsersSearch {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) if (v !== undefined && v !== "") out[k] = v;
  return out as UsersSearch;
}
