/**
 * A user's details (deep link: /users?open=<id>, GetUser): status, sign-in times, and their
 * team roles with change / remove / add-to-team (TeamService member RPCs) within what the
 * caller may grant; plus edit, disable/enable and links to their audit trail.
 */
import type { ReactNode } from "react";
import { useState } from "react";
import { ActionIcon, Button, Drawer, Group, Select, Stack, Table, Text, Tooltip } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link } from "@tanstack/react-router";
import { IconPlus, IconTrash } from "@tabler/icons-react";
import type { User } from "../../gen/keygate/v1/user_pb";
import type { Team } from "../../gen/keygate/v1/team_pb";
import { Role } from "../../gen/keygate/v1/common_pb";
import { teamsApi, usersApi } from "../../api/transport";
import { toUiError } from "../../api/errors";
import { allTeamsQuery } from "../../api/lists";
import { meQuery, useMe } from "../../auth/session";
import {
  ROLE_LABEL,
  canAdministerUsers,
  canReadSystemAudit,
  canRemoveMember,
  canRenameUser,
  grantableRoles,
  memberRoleChoices,
  teamsWhereCanGrant,
} from "../../auth/permissions";
import { confirmAction } from "../../components/form/confirm";
import { TeamBadge } from "../../components/domain/TeamBadge";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { CopyIcon } from "../../components/misc/Copy";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { notifyError, notifySuccess } from "../../components/misc/notify";
import { EmptyState } from "../../components/states/EmptyState";
import { ErrorState } from "../../components/states/ErrorState";
import { LoadingState } from "../../components/states/LoadingState";
import { UserStatusBadges, userLabel } from "./parts";

export function userQueryKey(id: string | undefined) {
  return ["users", "one", id] as const;
}

export function UserDrawer({
  id,
  onClose,
  onEdit,
  onSetDisabled,
}: {
  id: string | undefined;
  onClose: () => void;
  onEdit: (u: User) => void;
  onSetDisabled: (u: User, disabled: boolean) => void;
}) {
  const me = useMe();
  const q = useQuery({
    queryKey: userQueryKey(id),
    queryFn: ({ signal }) => usersApi.getUser({ id: id! }, { signal }),
    enabled: !!id,
    select: (r) => r.user,
  });
  const u = q.data;
  const isSelf = !!u && me.user?.id === u.id;
  return (
    <Drawer opened={!!id} onClose={onClose} position="right" size="lg" title={u ? userLabel(u) : "User"}>
      {q.isPending ? (
        <LoadingState />
      ) : q.error ? (
        <ErrorState error={q.error} retry={() => void q.refetch()} />
      ) : u ? (
        <Stack gap="md">
          <Group gap="xs">
            <UserStatusBadges user={u} />
            {isSelf && (
              <Text span size="sm" c="dimmed">
                This is you.
              </Text>
            )}
          </Group>
          <Table variant="vertical" layout="fixed" withTableBorder={false} fz="sm">
            <Table.Tbody>
              <Row label="Name">{u.displayName || "—"}</Row>
              <Row label="Email">
                <Group gap={4} wrap="nowrap">
                  <span className="kg-truncate">{u.email}</span>
                  <CopyIcon value={u.email} label="Copy email" />
                </Group>
              </Row>
              <Row label="Id">
                <Group gap={4} wrap="nowrap">
                  <span className="kg-mono kg-truncate">{u.id}</span>
                  <CopyIcon value={u.id} label="Copy user id" />
                </Group>
              </Row>
              <Row label="Last sign-in">
                <TimeAgo ts={u.lastSignInAt} fallback="Never" />
              </Row>
              <Row label="Created">
                <TimeAgo ts={u.createdAt} />
              </Row>
              <Row label="Updated">
                <TimeAgo ts={u.updatedAt} />
              </Row>
              <Row label="Audit">
                <Group gap="md">
                  <Link to="/audit" search={{ actor: u.id }} className="kg-link">
                    What they did
                  </Link>
                  {canReadSystemAudit(me) && (
                    <Link to="/audit" search={{ entity_type: "user", entity_id: u.id }} className="kg-link">
                      Changes to the account
                    </Link>
                  )}
                </Group>
              </Row>
            </Table.Tbody>
          </Table>

          {(canRenameUser(me, u.id) || (canAdministerUsers(me) && !isSelf)) && (
            <Group gap="xs">
              <Button size="xs" variant="default" onClick={() => onEdit(u)}>
                Edit
              </Button>
              {canAdministerUsers(me) &&
                !isSelf &&
                (u.disabled ? (
                  <Button size="xs" variant="default" onClick={() => onSetDisabled(u, false)}>
                    Enable
                  </Button>
                ) : (
                  <Button size="xs" color="red" variant="light" onClick={() => onSetDisabled(u, true)}>
                    Disable
                  </Button>
                ))}
            </Group>
          )}

          <TeamRoles user={u} />
        </Stack>
      ) : null}
    </Drawer>
  );
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <Table.Tr>
      <Table.Th w={120}>{label}</Table.Th>
      <Table.Td>{children}</Table.Td>
    </Table.Tr>
  );
}

/** The user's team roles (as far as the caller may see them), editable within the caller's limits. */
function TeamRoles({ user }: { user: User }) {
  const me = useMe();
  const qc = useQueryClient();
  const teams = useQuery(allTeamsQuery);
  const teamById = new Map((teams.data ?? []).map((t) => [t.id, t] as [string, Team]));
  const isSelf = me.user?.id === user.id;

  const done = (message: string) => {
    notifySuccess(message);
    void qc.invalidateQueries({ queryKey: ["users"] });
    void qc.invalidateQueries({ queryKey: ["teams"] });
    if (isSelf) void qc.invalidateQueries({ queryKey: meQuery.queryKey });
  };

  const setRole = useMutation({
    mutationFn: (a: { teamId: string; role: Role }) => teamsApi.updateMemberRole({ teamId: a.teamId, userId: user.id, role: a.role }),
    onSuccess: (_r, a) => done(`Now ${ROLE_LABEL[a.role]} in ${a.teamId}`),
    onError: (e) => notifyError(e, "Role not changed"),
  });
  const remove = useMutation({
    mutationFn: (teamId: string) => teamsApi.removeMember({ teamId, userId: user.id }),
    onSuccess: (_r, teamId) => done(`Removed from ${teamId}`),
    onError: (e) => notifyError(e, "Not removed"),
  });

  const sorted = [...user.roles].sort((a, b) => b.role - a.role || a.teamId.localeCompare(b.teamId));
  const memberOf = new Set(user.roles.map((r) => r.teamId));
  const addable = teamsWhereCanGrant(me, (teams.data ?? []).map((t) => t.id)).filter((t) => !memberOf.has(t));

  return (
    <div>
      <Text fw={600} size="sm" mb={6} component="h3">
        Teams and roles
      </Text>
      {sorted.length === 0 ? (
        <EmptyState compact title="In no team you can see" description="Add them to a team below, or invite them again with a role." />
      ) : (
        <div className="kg-card">
          <Table fz="sm" aria-label="Team roles" verticalSpacing={4}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Team</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th w={44}>
                  <span className="kg-visually-hidden">Actions</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {sorted.map((r) => {
                const choices = memberRoleChoices(me, r.teamId, r.role);
                const team = teamById.get(r.teamId);
                const teamName = team?.name || r.teamId;
                return (
                  <Table.Tr key={r.teamId}>
                    <Table.Td>
                      <TeamBadge teamId={r.teamId} team={team} />
                    </Table.Td>
                    <Table.Td>
                      {choices.length > 1 ? (
                        <Select
                          size="xs"
                          w={140}
                          aria-label={`Role in ${teamName}`}
                          value={String(r.role)}
                          allowDeselect={false}
                          disabled={setRole.isPending}
                          data={choices.map((c) => ({ value: String(c), label: ROLE_LABEL[c] }))}
                          onChange={(v) => {
                            const role = Number(v) as Role;
                            if (role === r.role) return;
                            if (isSelf && role < r.role) {
                              confirmAction({
                                title: "Lower your own role?",
                                body: `You will be ${ROLE_LABEL[role]} in ${teamName} and may not be able to undo this yourself.`,
                                confirmLabel: "Lower my role",
                                danger: true,
                                onConfirm: () => setRole.mutate({ teamId: r.teamId, role }),
                              });
                            } else {
                              setRole.mutate({ teamId: r.teamId, role });
                            }
                          }}
                        />
                      ) : (
                        ROLE_LABEL[r.role]
                      )}
                    </Table.Td>
                    <Table.Td>
                      {canRemoveMember(me, r.teamId, r.role, isSelf) && (
                        <Tooltip label={isSelf ? "Leave team" : "Remove from team"}>
                          <ActionIcon
                            variant="subtle"
                            color="red"
                            aria-label={isSelf ? `Leave ${teamName}` : `Remove from ${teamName}`}
                            onClick={() =>
                              confirmAction({
                                title: isSelf ? `Leave ${teamName}?` : `Remove ${userLabel(user)} from ${teamName}?`,
                                body: isSelf
                                  ? "You lose access to the team's tokens, routes and audit log."
                                  : "They lose access to the team's tokens, routes and audit log. Tokens they created stay with the team.",
                                confirmLabel: isSelf ? "Leave team" : "Remove",
                                danger: true,
                                onConfirm: () => remove.mutate(r.teamId),
                              })
                            }
                          >
                            <IconTrash size={15} />
                          </ActionIcon>
                        </Tooltip>
                      )}
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </div>
      )}
      {!isSelf && <SetEverywhere user={user} onDone={done} />}
      {addable.length > 0 && !user.disabled && <AddToTeam userId={user.id} teams={addable} onAdded={(t, role) => done(`Added to ${t} as ${ROLE_LABEL[role]}`)} />}
    </div>
  );
}

/** One role in every team where the caller may give it (the old admin's "bulk set"). */
function SetEverywhere({ user, onDone }: { user: User; onDone: (message: string) => void }) {
  const me = useMe();
  const [role, setRole] = useState<string | null>(null);
  const changeable = user.roles.filter((r) => memberRoleChoices(me, r.teamId, r.role).length > 1);
  const target = Number(role) as Role;
  const todo = role ? changeable.filter((r) => r.role !== target && memberRoleChoices(me, r.teamId, r.role).includes(target)) : [];
  const apply = useMutation({
    mutationFn: async () => {
      const failed: string[] = [];
      for (const r of todo) {
        try {
          await teamsApi.updateMemberRole({ teamId: r.teamId, userId: user.id, role: target });
        } catch (e) {
          failed.push(`${r.teamId}: ${toUiError(e).message}`);
        }
      }
      return failed;
    },
    onSuccess: (failed) => {
      if (failed.length) notifyError(new Error(failed.join("; ")), `${failed.length} of ${todo.length} not changed`);
      if (failed.length < todo.length) onDone(`${ROLE_LABEL[target]} in ${todo.length - failed.length} team${todo.length - failed.length === 1 ? "" : "s"}`);
      setRole(null);
    },
  });
  if (changeable.length < 2) return null;
  const choices = Array.from(new Set(changeable.flatMap((r) => memberRoleChoices(me, r.teamId, r.role)))).sort((a, b) => b - a);
  return (
    <Group gap="xs" mt="sm" align="flex-end" role="group" aria-label="Set one role in every team">
      <Select
        size="xs"
        w={190}
        label="Same role in every team"
        placeholder="Pick a role"
        value={role}
        onChange={setRole}
        data={choices.map((r) => ({ value: String(r), label: ROLE_LABEL[r] }))}
      />
      <Button size="xs" variant="default" disabled={todo.length === 0} loading={apply.isPending} onClick={() => apply.mutate()}>
        {role ? `Apply to ${todo.length} team${todo.length === 1 ? "" : "s"}` : "Apply"}
      </Button>
    </Group>
  );
}

function AddToTeam({ userId, teams, onAdded }: { userId: string; teams: string[]; onAdded: (teamId: string, role: Role) => void }) {
  const me = useMe();
  const [teamId, setTeamId] = useState<string | undefined>();
  const [role, setRole] = useState<string | null>(null);
  const roles = teamId ? grantableRoles(me, teamId) : [];
  const add = useMutation({
    mutationFn: () => teamsApi.addMember({ teamId: teamId!, user: userId, role: Number(role) as Role }),
    onSuccess: () => {
      onAdded(teamId!, Number(role) as Role);
      setTeamId(undefined);
      setRole(null);
    },
    onError: (e) => notifyError(e, "Not added"),
  });
  return (
    <Group gap="xs" mt="sm" align="flex-end" role="group" aria-label="Add to a team">
      <TeamSelect
        size="xs"
        w={190}
        label="Add to team"
        placeholder="Pick a team"
        only={teams}
        value={teamId}
        onChange={(v) => {
          setTeamId(v);
          const allowed = v ? grantableRoles(me, v) : [];
          if (role && !allowed.includes(Number(role) as Role)) setRole(null);
        }}
      />
      <Select
        size="xs"
        w={140}
        label="Role"
        placeholder="Pick a role"
        disabled={!teamId}
        value={role}
        onChange={setRole}
        data={roles.map((r) => ({ value: String(r), label: ROLE_LABEL[r] }))}
      />
      <Button size="xs" variant="default" leftSection={<IconPlus size={14} />} disabled={!teamId || !role} loading={add.isPending} onClick={() => add.mutate()}>
        Add
      </Button>
    </Group>
  );
}
