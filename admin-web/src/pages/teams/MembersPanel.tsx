/**
 * A team's members by role: add (user id or email, with suggestions when the caller may list
 * users), change role, remove or leave. The choices offered follow `auth/permissions.ts`
 * (ADMIN any role; MANAGER only DEVELOPER and VIEWER); whatever the server still refuses
 * (e.g. removing the last ADMIN) is shown with its own message.
 */
import { useState } from "react";
import { ActionIcon, Alert, Autocomplete, Button, Group, Select, Stack, Text, Tooltip } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useDebouncedValue } from "@mantine/hooks";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { IconAlertCircle, IconLock, IconLogout, IconTrash, IconUserPlus } from "@tabler/icons-react";
import type { Member } from "../../gen/keygate/v1/team_pb";
import { Role } from "../../gen/keygate/v1/common_pb";
import { teamsApi, usersApi } from "../../api/transport";
import { isCode, toUiError, type UiError } from "../../api/errors";
import { Code } from "@connectrpc/connect";
import { meQuery, useMe } from "../../auth/session";
import { ROLE_LABEL, canListUsers, canRemoveMember, grantableRoles, memberRoleChoices } from "../../auth/permissions";
import { applyServerError } from "../../components/form/serverErrors";
import { confirmAction } from "../../components/form/confirm";
import { notifySuccess } from "../../components/misc/notify";
import { ErrorState, RequestId } from "../../components/states/ErrorState";
import { SkeletonRows } from "../../components/states/LoadingState";
import { EmptyState } from "../../components/states/EmptyState";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { byRole } from "./team";
import classes from "./Teams.module.css";

const PLURAL: Record<Role, string> = {
  [Role.UNSPECIFIED]: "Other",
  [Role.ADMIN]: "Admins",
  [Role.MANAGER]: "Managers",
  [Role.DEVELOPER]: "Developers",
  [Role.VIEWER]: "Viewers",
};

export function membersQueryKey(teamId: string) {
  return ["teams", "members", teamId] as const;
}

export function MembersPanel({ teamId }: { teamId: string }) {
  const me = useMe();
  const qc = useQueryClient();
  const [refusal, setRefusal] = useState<UiError | null>(null);
  const list = useQuery({
    queryKey: membersQueryKey(teamId),
    queryFn: ({ signal }) => teamsApi.listMembers({ teamId }, { signal }),
    select: (r) => r.members,
  });

  const changed = (selfChanged: boolean) => {
    setRefusal(null);
    void qc.invalidateQueries({ queryKey: membersQueryKey(teamId) });
    void qc.invalidateQueries({ queryKey: ["teams"] });
    void qc.invalidateQueries({ queryKey: ["users"] });
    if (selfChanged) void qc.invalidateQueries({ queryKey: meQuery.queryKey });
  };

  const setRole = useMutation({
    mutationFn: (a: { m: Member; role: Role }) => teamsApi.updateMemberRole({ teamId, userId: a.m.userId, role: a.role }),
    onMutate: () => setRefusal(null),
    onSuccess: (_, a) => {
      changed(a.m.userId === me.user?.id);
      notifySuccess(`${a.m.displayName || a.m.email} is now ${ROLE_LABEL[a.role].toLowerCase()}`);
    },
    onError: (e) => setRefusal(toUiError(e)),
  });
  const remove = useMutation({
    mutationFn: (m: Member) => teamsApi.removeMember({ teamId, userId: m.userId }),
    onMutate: () => setRefusal(null),
    onSuccess: (_, m) => {
      const self = m.userId === me.user?.id;
      changed(self);
      notifySuccess(self ? `You left "${teamId}"` : `${m.displayName || m.email} removed`);
    },
    onError: (e) => setRefusal(toUiError(e)),
  });

  const askRemove = (m: Member) => {
    const self = m.userId === me.user?.id;
    confirmAction({
      title: self ? `Leave "${teamId}"?` : `Remove ${m.displayName || m.email}?`,
      body: self
        ? "You lose your role in this team at once, and with it access to its tokens."
        : `${m.email} loses the ${ROLE_LABEL[m.role].toLowerCase()} role in "${teamId}" at once. Tokens they created stay with the team.`,
      confirmLabel: self ? "Leave team" : "Remove member",
      danger: true,
      onConfirm: () => remove.mutate(m),
    });
  };

  const grantable = grantableRoles(me, teamId);

  return (
    <Stack gap="sm">
      {grantable.length > 0 && <AddMember teamId={teamId} roles={grantable} onAdded={() => changed(false)} />}
      {refusal && (
        <Alert color="red" variant="light" icon={<IconAlertCircle size={18} />} role="alert" p="sm" withCloseButton onClose={() => setRefusal(null)} closeButtonLabel="Dismiss">
          <Text size="sm">{refusal.message}</Text>
          {refusal.requestId && <RequestId id={refusal.requestId} />}
        </Alert>
      )}
      {list.isPending ? (
        <SkeletonRows rows={4} height={22} />
      ) : list.error && isCode(list.error, Code.PermissionDenied) ? (
        <EmptyState
          compact
          icon={IconLock}
          title="Members are visible to the team's members"
          description={`The server answered: ${toUiError(list.error).message}.`}
        />
      ) : list.error ? (
        <ErrorState error={list.error} retry={() => void list.refetch()} title="Could not load the members" />
      ) : list.data.length === 0 ? (
        <EmptyState compact title="No members" description="Nobody holds a role in this team. An admin of another team can claim it." />
      ) : (
        byRole(list.data).map((g) => (
          <section key={g.role} aria-label={PLURAL[g.role]}>
            <Text size="xs" fw={600} c="dimmed" tt="uppercase" mb={2}>
              {PLURAL[g.role]} · {g.members.length}
            </Text>
            <div>
              {g.members.map((m) => {
                const self = m.userId === me.user?.id;
                const choices = memberRoleChoices(me, teamId, m.role);
                const who = m.displayName || m.email;
                return (
                  <div key={m.userId} className={classes.memberRow}>
                    <div style={{ minWidth: 0, flex: 1 }}>
                      <Text size="sm" fw={500} className="kg-truncate">
                        {who}
                        {self && (
                          <Text span size="xs" c="dimmed">
                            {" "}
                            (you)
                          </Text>
                        )}
                      </Text>
                      <Text size="xs" c="dimmed" className="kg-truncate">
                        {m.email} · added <TimeAgo ts={m.addedAt} />
                      </Text>
                    </div>
                    {choices.length > 1 ? (
                      <Select
                        size="xs"
                        w={124}
                        aria-label={`Role of ${who}`}
                        data={choices.map((r) => ({ value: String(r), label: ROLE_LABEL[r] }))}
                        value={String(m.role)}
                        allowDeselect={false}
                        disabled={setRole.isPending}
                        onChange={(v) => v && Number(v) !== m.role && setRole.mutate({ m, role: Number(v) as Role })}
                      />
                    ) : (
                      <Text size="sm" c="dimmed" w={124} pl={10}>
                        {ROLE_LABEL[m.role]}
                      </Text>
                    )}
                    {canRemoveMember(me, teamId, m.role, self) ? (
                      <Tooltip label={self ? "Leave team" : "Remove"}>
                        <ActionIcon variant="subtle" color="gray" aria-label={self ? "Leave team" : `Remove ${who}`} onClick={() => askRemove(m)}>
                          {self ? <IconLogout size={16} /> : <IconTrash size={16} />}
                        </ActionIcon>
                      </Tooltip>
                    ) : (
                      <span style={{ width: 28 }} />
                    )}
                  </div>
                );
              })}
            </div>
          </section>
        ))
      )}
    </Stack>
  );
}

function AddMember({ teamId, roles, onAdded }: { teamId: string; roles: Role[]; onAdded: () => void }) {
  const me = useMe();
  const form = useForm({
    initialValues: { user: "", role: String(roles.includes(Role.DEVELOPER) ? Role.DEVELOPER : roles[roles.length - 1]) },
    validate: { user: (v) => (v.trim() ? null : "Email or user id") },
  });
  const [failure, setFailure] = useState<string | null>(null);
  const [q] = useDebouncedValue(form.values.user.trim(), 250);
  const mayList = canListUsers(me);
  const users = useQuery({
    queryKey: ["users", "suggest", q],
    queryFn: ({ signal }) => usersApi.listUsers({ query: q, pageSize: 8 }, { signal }),
    enabled: mayList && q.length >= 2 && !q.startsWith("usr_"),
    staleTime: 30_000,
  });
  const names = new Map((users.data?.users ?? []).map((u) => [u.email, u.displayName]));
  const add = useMutation({
    mutationFn: (v: { user: string; role: string }) => teamsApi.addMember({ teamId, user: v.user.trim(), role: Number(v.role) as Role }),
    onMutate: () => setFailure(null),
    onSuccess: (r) => {
      form.reset();
      onAdded();
      notifySuccess(`${r.member?.displayName || r.member?.email || "Member"} added as ${ROLE_LABEL[r.member?.role ?? Role.UNSPECIFIED].toLowerCase()}`);
    },
    onError: (e) => {
      const f = applyServerError(form, e);
      const fieldOnly = Object.keys(f.fields).length > 0 && Object.keys(f.unmatched).length === 0;
      setFailure(fieldOnly ? null : f.message);
    },
  });
  return (
    <form onSubmit={form.onSubmit((v) => add.mutate(v))} noValidate aria-label="Add a member">
      <Group gap="xs" align="flex-start" wrap="nowrap">
        <Autocomplete
          size="xs"
          style={{ flex: 1 }}
          aria-label="User to add (email or user id)"
          placeholder="Add by email or user id"
          data={(users.data?.users ?? []).map((u) => u.email)}
          renderOption={({ option }) => <UserOption email={option.value} name={names.get(option.value)} />}
          autoComplete="off"
          {...form.getInputProps("user")}
        />
        <Select
          size="xs"
          w={124}
          aria-label="Role for the new member"
          data={roles.map((r) => ({ value: String(r), label: ROLE_LABEL[r] }))}
          allowDeselect={false}
          {...form.getInputProps("role")}
        />
        <Button size="xs" type="submit" loading={add.isPending} leftSection={<IconUserPlus size={14} />}>
          Add
        </Button>
      </Group>
      {failure && (
        <Text size="xs" c="red" mt={4} role="alert">
          {failure}
        </Text>
      )}
    </form>
  );
}

function UserOption({ email, name }: { email: string; name: string | undefined }) {
  return (
    <div>
      {name && (
        <Text size="sm" fw={500}>
          {name}
        </Text>
      )}
      <Text size="xs" c={name ? "dimmed" : undefined}>
        {email}
      </Text>
    </div>
  );
}
