/**
 * A service account (deep link: /service-accounts?open=<id>, GetServiceAccount) and its
 * management keys (ListKeys): issue, rotate, revoke; delete the account.
 */
import type { ReactNode } from "react";
import { ActionIcon, Badge, Button, Drawer, Group, Menu, Stack, Table, Text, Tooltip } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link } from "@tanstack/react-router";
import { IconDots, IconKey, IconPlus } from "@tabler/icons-react";
import type { ManagementKey, ServiceAccount } from "../../gen/keygate/v1/service_account_pb";
import type { Team } from "../../gen/keygate/v1/team_pb";
import { serviceAccountsApi } from "../../api/transport";
import { useMe } from "../../auth/session";
import { ROLE_LABEL, canManageServiceAccount } from "../../auth/permissions";
import { confirmAction } from "../../components/form/confirm";
import { TeamBadge } from "../../components/domain/TeamBadge";
import { CopyIcon } from "../../components/misc/Copy";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { notifyError, notifySuccess } from "../../components/misc/notify";
import { EmptyState } from "../../components/states/EmptyState";
import { ErrorState } from "../../components/states/ErrorState";
import { LoadingState, SkeletonRows } from "../../components/states/LoadingState";
import { CAPABILITY_HINT, CAPABILITY_LABEL, keyState } from "./search";
import { keysQueryKey } from "./KeyModals";
import { createdByLabel } from "./parts";

export function ServiceAccountDrawer({
  id,
  team,
  onClose,
  onIssueKey,
  onRotateKey,
  onDelete,
}: {
  id: string | undefined;
  team: (teamId: string) => Team | undefined;
  onClose: () => void;
  onIssueKey: (sa: ServiceAccount) => void;
  onRotateKey: (k: ManagementKey) => void;
  onDelete: (sa: ServiceAccount) => void;
}) {
  const me = useMe();
  const q = useQuery({
    queryKey: ["service-accounts", "one", id],
    queryFn: ({ signal }) => serviceAccountsApi.getServiceAccount({ id: id! }, { signal }),
    enabled: !!id,
    select: (r) => r.serviceAccount,
  });
  const sa = q.data;
  const may = !!sa && canManageServiceAccount(me, sa);
  return (
    <Drawer opened={!!id} onClose={onClose} position="right" size="lg" title={sa ? sa.name : "Service account"}>
      {q.isPending ? (
        <LoadingState />
      ) : q.error ? (
        <ErrorState error={q.error} retry={() => void q.refetch()} />
      ) : sa ? (
        <Stack gap="md">
          {sa.description && <Text size="sm">{sa.description}</Text>}
          <Table variant="vertical" layout="fixed" withTableBorder={false} fz="sm">
            <Table.Tbody>
              <Row label="Id">
                <Group gap={4} wrap="nowrap">
                  <span className="kg-mono kg-truncate">{sa.id}</span>
                  <CopyIcon value={sa.id} label="Copy service account id" />
                </Group>
              </Row>
              <Row label="Team">
                <TeamBadge teamId={sa.teamId} team={team(sa.teamId)} />
              </Row>
              <Row label="Role">{ROLE_LABEL[sa.role]}</Row>
              <Row label="Capability">
                {CAPABILITY_LABEL[sa.capability]}
                <Text span size="xs" c="dimmed">
                  {" "}
                  — {CAPABILITY_HINT[sa.capability]}
                </Text>
              </Row>
              <Row label="Created">
                <TimeAgo ts={sa.createdAt} />{" "}
                <Text span size="xs" c="dimmed">
                  by {createdByLabel(me, sa.createdBy)}
                </Text>
              </Row>
              <Row label="Audit">
                <Group gap="md">
                  <Link to="/audit" search={{ actor: sa.id }} className="kg-link">
                    What it did
                  </Link>
                  <Link to="/audit" search={{ entity_type: "service_account", entity_id: sa.id }} className="kg-link">
                    Changes to the account
                  </Link>
                </Group>
              </Row>
            </Table.Tbody>
          </Table>
          <Keys account={sa} may={may} onIssueKey={() => onIssueKey(sa)} onRotateKey={onRotateKey} />
          {may && (
            <Group>
              <Button size="xs" color="red" variant="light" onClick={() => onDelete(sa)}>
                Delete service account
              </Button>
            </Group>
          )}
        </Stack>
      ) : null}
    </Drawer>
  );
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <Table.Tr>
      <Table.Th w={110}>{label}</Table.Th>
      <Table.Td>{children}</Table.Td>
    </Table.Tr>
  );
}

function Keys({ account, may, onIssueKey, onRotateKey }: { account: ServiceAccount; may: boolean; onIssueKey: () => void; onRotateKey: (k: ManagementKey) => void }) {
  const qc = useQueryClient();
  const keys = useQuery({
    queryKey: keysQueryKey(account.id),
    queryFn: ({ signal }) => serviceAccountsApi.listKeys({ serviceAccountId: account.id }, { signal }),
    select: (r) => [...r.keys].sort((a, b) => Number(keyState(b).live) - Number(keyState(a).live) || Number((b.createdAt?.seconds ?? 0n) - (a.createdAt?.seconds ?? 0n))),
  });
  const revoke = useMutation({
    mutationFn: (k: ManagementKey) => serviceAccountsApi.revokeKey({ id: k.id }),
    onSuccess: (_r, k) => {
      notifySuccess(`Key "${k.name}" revoked`);
      void qc.invalidateQueries({ queryKey: keysQueryKey(account.id) });
    },
    onError: (e) => notifyError(e, "Not revoked"),
  });
  const askRevoke = (k: ManagementKey) =>
    confirmAction({
      title: `Revoke key "${k.name}"?`,
      body: "Calls with this key are refused from now on. This cannot be undone: the service needs a new key.",
      confirmLabel: "Revoke key",
      danger: true,
      onConfirm: () => revoke.mutate(k),
    });

  const live = keys.data?.filter((k) => keyState(k).live).length ?? 0;
  return (
    <div>
      <Group justify="space-between" mb={6}>
        <Text fw={600} size="sm" component="h3">
          Management keys{keys.data ? ` (${live} live)` : ""}
        </Text>
        {may && (
          <Button size="xs" variant="default" leftSection={<IconPlus size={14} />} onClick={onIssueKey}>
            Issue key
          </Button>
        )}
      </Group>
      {keys.isPending ? (
        <SkeletonRows rows={2} />
      ) : keys.error ? (
        <ErrorState error={keys.error} retry={() => void keys.refetch()} />
      ) : keys.data.length === 0 ? (
        <EmptyState
          compact
          icon={IconKey}
          title="No keys"
          description={may ? "Issue a key for each place the account runs; the key is shown once." : "A team ADMIN or MANAGER issues keys."}
        />
      ) : (
        <div className="kg-card" style={{ overflowX: "auto" }}>
          <Table fz="sm" aria-label="Management keys" verticalSpacing={5}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Key</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th w={40}>
                  <span className="kg-visually-hidden">Actions</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {keys.data.map((k) => {
                const s = keyState(k);
                const badge = (
                  <Badge color={s.color} className="kg-fit">
                    {s.label}
                  </Badge>
                );
                return (
                  <Table.Tr key={k.id}>
                    <Table.Td>
                      <Text size="sm" fw={500} className="kg-truncate" maw={160} title={k.name}>
                        {k.name}
                      </Text>
                      <Text size="xs" c="dimmed">
                        created <TimeAgo ts={k.createdAt} />
                      </Text>
                    </Table.Td>
                    <Table.Td className="kg-mono kg-nowrap">{k.preview}</Table.Td>
                    <Table.Td>{s.hint ? <Tooltip label={s.hint}>{badge}</Tooltip> : badge}</Table.Td>
                    <Table.Td>
                      <TimeAgo ts={k.lastUsedAt} fallback="Never" />
                    </Table.Td>
                    <Table.Td>{k.revokedAt ? <Text span size="sm" c="dimmed">—</Text> : <TimeAgo ts={k.expiresAt} fallback="Never" />}</Table.Td>
                    <Table.Td>
                      {may && s.live && (
                        <Menu position="bottom-end" withinPortal>
                          <Menu.Target>
                            <ActionIcon variant="subtle" color="gray" aria-label={`Actions for key ${k.name}`}>
                              <IconDots size={16} />
                            </ActionIcon>
                          </Menu.Target>
                          <Menu.Dropdown>
                            {!k.replacedById && <Menu.Item onClick={() => onRotateKey(k)}>Rotate</Menu.Item>}
                            <Menu.Item color="red" onClick={() => askRevoke(k)}>
                              Revoke
                            </Menu.Item>
                          </Menu.Dropdown>
                        </Menu>
                      )}
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </div>
      )}
    </div>
  );
}
