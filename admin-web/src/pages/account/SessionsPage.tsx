import { Badge, Button, Text } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { IconDeviceLaptop } from "@tabler/icons-react";
import type { Session } from "../../gen/keygate/v1/auth_pb";
import { authApi } from "../../api/transport";
import { PageHeader } from "../../components/misc/PageHeader";
import { DataTable, type Column } from "../../components/table/DataTable";
import { EmptyState } from "../../components/states/EmptyState";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { confirmAction } from "../../components/form/confirm";
import { notifyError, notifySuccess } from "../../components/misc/notify";
import { describeUserAgent } from "../../lib/userAgent";

const sessionsQuery = { queryKey: ["auth", "sessions"], queryFn: () => authApi.listSessions({}) };

export function SessionsPage() {
  const qc = useQueryClient();
  const sessions = useQuery(sessionsQuery);
  const revoke = useMutation({
    mutationFn: (id: string) => authApi.revokeSession({ id }),
    onSuccess: () => {
      notifySuccess("Session signed out");
      void qc.invalidateQueries({ queryKey: sessionsQuery.queryKey });
    },
    onError: (e) => notifyError(e, "Could not sign the session out"),
  });

  const columns: Column<Session>[] = [
    {
      key: "device",
      header: "Device",
      cell: (s) => (
        <div>
          <Text size="sm">
            {describeUserAgent(s.userAgent)} {s.current && <Badge color="teal" ml={6}>This session</Badge>}
          </Text>
          <Text size="xs" c="dimmed" className="kg-mono kg-truncate" maw={420} title={s.userAgent}>
            {s.userAgent || "unknown client"}
          </Text>
        </div>
      ),
    },
    { key: "ip", header: "Address", cell: (s) => <span className="kg-mono">{s.sourceIp || "—"}</span> },
    { key: "created", header: "Signed in", cell: (s) => <TimeAgo ts={s.createdAt} /> },
    { key: "last", header: "Last active", cell: (s) => <TimeAgo ts={s.lastUsedAt} /> },
    { key: "expires", header: "Expires", cell: (s) => <TimeAgo ts={s.expiresAt} /> },
    {
      key: "actions",
      header: <span className="kg-visually-hidden">Actions</span>,
      align: "right",
      cell: (s) =>
        s.current ? null : (
          <Button
            size="xs"
            variant="subtle"
            color="red"
            loading={revoke.isPending && revoke.variables === s.id}
            onClick={() =>
              confirmAction({
                title: "Sign this session out?",
                body: `${describeUserAgent(s.userAgent)} from ${s.sourceIp || "an unknown address"} will have to sign in again.`,
                confirmLabel: "Sign out session",
                danger: true,
                onConfirm: () => revoke.mutate(s.id),
              })
            }
          >
            Sign out
          </Button>
        ),
    },
  ];

  return (
    <>
      <PageHeader title="My sessions" description="Where your account is signed in. Sign out sessions you do not recognise." />
      <DataTable
        label="Sessions"
        columns={columns}
        rows={sessions.data?.sessions}
        rowKey={(s) => s.id}
        loading={sessions.isPending}
        error={sessions.error}
        onRetry={() => void sessions.refetch()}
        empty={<EmptyState icon={IconDeviceLaptop} title="No sessions" description="Signed in with a key, not a session." />}
      />
    </>
  );
}
