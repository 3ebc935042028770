/** A token's details (deep link: /tokens?open=<id>), with its actions. */
import type { ReactNode } from "react";
import { Anchor, Badge, Button, Drawer, Group, Stack, Table, Text } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { Link } from "@tanstack/react-router";
import type { Token } from "../../gen/keygate/v1/token_pb";
import { TokenStatus } from "../../gen/keygate/v1/common_pb";
import { tokensApi } from "../../api/transport";
import { TokenStatusBadge } from "../../components/domain/TokenStatusBadge";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { CopyIcon } from "../../components/misc/Copy";
import { ErrorState } from "../../components/states/ErrorState";
import { LoadingState } from "../../components/states/LoadingState";
import { count } from "../../lib/format";

export function TokenDrawer({
  id,
  onClose,
  onOpen,
  canChange,
  onEdit,
  onRotate,
  onRevoke,
}: {
  id: string | undefined;
  onClose: () => void;
  onOpen: (id: string) => void;
  canChange: (t: Token) => boolean;
  onEdit: (t: Token) => void;
  onRotate: (t: Token) => void;
  onRevoke: (t: Token) => void;
}) {
  const q = useQuery({
    queryKey: ["tokens", "one", id],
    queryFn: ({ signal }) => tokensApi.getToken({ id: id! }, { signal }),
    enabled: !!id,
  });
  const t = q.data?.token;
  const live = t && t.status === TokenStatus.ACTIVE;
  return (
    <Drawer opened={!!id} onClose={onClose} position="right" size="md" title={t ? t.name : "Token"} zIndex={150}>
      {q.isPending ? (
        <LoadingState />
      ) : q.error ? (
        <ErrorState error={q.error} retry={() => void q.refetch()} />
      ) : t ? (
        <Stack gap="md">
          <Group gap="xs">
            <TokenStatusBadge token={t} />
            <span className="kg-mono">{t.preview}</span>
          </Group>
          {t.description && <Text size="sm">{t.description}</Text>}
          <Table variant="vertical" layout="fixed" withTableBorder={false} fz="sm">
            <Table.Tbody>
              <Row label="Id">
                <Group gap={4} wrap="nowrap">
                  <span className="kg-mono kg-truncate">{t.id}</span>
                  <CopyIcon value={t.id} label="Copy token id" />
                </Group>
              </Row>
              <Row label="Team">{t.teamId}</Row>
              <Row label="Scopes">
                <Group gap={4}>
                  {t.scopes.map((s) => (
                    <Badge key={s} variant="default" className="kg-mono">
                      {s}
                    </Badge>
                  ))}
                </Group>
              </Row>
              <Row label="Rate limit">{t.rateLimitPerMinute ? `${count(t.rateLimitPerMinute)} / min` : "No per-token limit"}</Row>
              <Row label="Expires">
                <TimeAgo ts={t.expiresAt} fallback="Never" />
              </Row>
              <Row label="Last used">
                <Group gap="xs" wrap="nowrap">
                  <TimeAgo ts={t.lastUsedAt} fallback="Never used" />
                  <Link to="/usage/tokens/$tokenId" params={{ tokenId: t.id }} className="kg-link">
                    Usage
                  </Link>
                </Group>
              </Row>
              <Row label="Created">
                <TimeAgo ts={t.createdAt} />
                <Text size="xs" c="dimmed" className="kg-mono kg-truncate" title={t.createdBy}>
                  by {t.createdBy}
                </Text>
              </Row>
              <Row label="Updated">
                <TimeAgo ts={t.updatedAt} />
              </Row>
              {t.revokedAt && (
                <Row label="Revoked">
                  <TimeAgo ts={t.revokedAt} />
                </Row>
              )}
              {t.rotatedFromId && (
                <Row label="Replaces">
                  <Anchor component="button" size="sm" className="kg-mono" onClick={() => onOpen(t.rotatedFromId)}>
                    {t.rotatedFromId}
                  </Anchor>
                </Row>
              )}
              {t.replacedById && (
                <Row label="Replaced by">
                  <Anchor component="button" size="sm" className="kg-mono" onClick={() => onOpen(t.replacedById)}>
                    {t.replacedById}
                  </Anchor>
                </Row>
              )}
            </Table.Tbody>
          </Table>
          {live && canChange(t) && (
            <Group gap="xs">
              <Button size="xs" variant="default" onClick={() => onEdit(t)}>
                Edit
              </Button>
              <Button size="xs" variant="default" onClick={() => onRotate(t)}>
                Rotate
              </Button>
              <Button size="xs" color="red" variant="light" onClick={() => onRevoke(t)}>
                Revoke
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
