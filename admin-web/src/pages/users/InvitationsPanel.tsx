/** Pending invitations (ListInvitations) with revoke (RevokeInvitation). */
import type { ReactNode } from "react";
import { useMemo } from "react";
import { ActionIcon, Badge, Group, Text, Tooltip } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { IconMailPlus, IconSearch, IconX } from "@tabler/icons-react";
import type { Invitation } from "../../gen/keygate/v1/invitation_pb";
import type { Team } from "../../gen/keygate/v1/team_pb";
import { invitationsApi } from "../../api/transport";
import { useMe } from "../../auth/session";
import { canRevokeInvitation } from "../../auth/permissions";
import { CreateButton } from "../../components/misc/CreateButton";
import { confirmAction } from "../../components/form/confirm";
import { DataTable, type Column } from "../../components/table/DataTable";
import { EmptyState } from "../../components/states/EmptyState";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { notifyError, notifySuccess } from "../../components/misc/notify";
import { RoleBadges } from "./parts";

export function InvitationsPanel({
  team,
  teams,
  canInvite,
  onInvite,
  filters,
}: {
  team: string | undefined;
  teams: Map<string, Team>;
  canInvite: boolean;
  onInvite: () => void;
  filters: ReactNode;
}) {
  const me = useMe();
  const qc = useQueryClient();
  const list = useQuery({
    queryKey: ["invitations", "list", team ?? ""],
    queryFn: ({ signal }) => invitationsApi.listInvitations({ teamId: team ?? "" }, { signal }),
    select: (r) => r.invitations,
  });
  const revoke = useMutation({
    mutationFn: (inv: Invitation) => invitationsApi.revokeInvitation({ id: inv.id }),
    onSuccess: (_r, inv) => {
      notifySuccess(`Invitation for ${inv.email} revoked`);
      void qc.invalidateQueries({ queryKey: ["invitations"] });
    },
    onError: (e) => notifyError(e, "Not revoked"),
  });

  const columns: Column<Invitation>[] = useMemo(
    () => [
      { key: "email", header: "Email", cell: (i) => <Text size="sm" fw={500}>{i.email}</Text> },
      {
        key: "roles",
        header: "Teams and roles",
        cell: (i) => (
          <Group gap={4} wrap="nowrap">
            <RoleBadges roles={i.roles} teams={teams} />
            {i.systemAdmin && (
              <Badge color="indigo" className="kg-fit" title="Becomes a system admin on accepting (imported from the old system)">
                System admin
              </Badge>
            )}
          </Group>
        ),
      },
      { key: "expires", header: "Expires", cell: (i) => <TimeAgo ts={i.expiresAt} /> },
      { key: "created", header: "Invited", cell: (i) => <TimeAgo ts={i.createdAt} /> },
      {
        key: "by",
        header: "By",
        cell: (i) => (
          <Text size="xs" c="dimmed" className="kg-mono kg-truncate" maw={220} title={i.createdBy}>
            {i.createdBy === `user:${me.user?.id}` ? "You" : i.createdBy}
          </Text>
        ),
      },
      {
        key: "actions",
        header: <span className="kg-visually-hidden">Actions</span>,
        align: "right",
        width: 44,
        cell: (i) =>
          canRevokeInvitation(me, i.roles) ? (
            <Tooltip label="Revoke">
              <ActionIcon
                variant="subtle"
                color="red"
                aria-label={`Revoke the invitation for ${i.email}`}
                onClick={() =>
                  confirmAction({
                    title: `Revoke the invitation for ${i.email}?`,
                    body: "The code stops working at once. You can invite them again later.",
                    confirmLabel: "Revoke",
                    danger: true,
                    onConfirm: () => revoke.mutate(i),
                  })
                }
              >
                <IconX size={16} />
              </ActionIcon>
            </Tooltip>
          ) : null,
      },
    ],
    [teams, me],
  );

  const n = list.data?.length;
  return (
    <>
      {filters}
      <DataTable
        label="Pending invitations"
        columns={columns}
        rows={list.data}
        rowKey={(i) => i.id}
        loading={list.isPending}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={
          team ? (
            <EmptyState icon={IconSearch} title="No pending invitation into this team" description="Clear the team filter to see all." compact />
          ) : (
            <EmptyState
              icon={IconMailPlus}
              title="No pending invitations"
              description="Invite people by email: they choose their name and password on the accept page and start with the roles you give."
              action={
                canInvite && (
                  <CreateButton size="xs" icon={IconMailPlus} onClick={onInvite}>Invite someone</CreateButton>
                )
              }
            />
          )
        }
        footer={
          n !== undefined && n > 0 ? (
            <Group justify="space-between" w="100%">
              <Text size="sm" c="dimmed">
                {n} pending invitation{n === 1 ? "" : "s"}
              </Text>
              <Text size="xs" c="dimmed">
                Accepted, revoked and expired invitations are not listed; the audit log keeps them.
              </Text>
            </Group>
          ) : undefined
        }
      />
    </>
  );
}
