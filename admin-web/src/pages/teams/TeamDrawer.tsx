/** A team's details and members (deep link: /teams?open=<id>), with edit, claim and delete. */
import type { ReactNode } from "react";
import { Button, Drawer, Group, Stack, Table, Text, Title } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { Link } from "@tanstack/react-router";
import type { Team } from "../../gen/keygate/v1/team_pb";
import { teamsApi } from "../../api/transport";
import { useMe } from "../../auth/session";
import { ROLE_LABEL, canChangeTeam, canClaimTeam, roleIn } from "../../auth/permissions";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { CopyIcon } from "../../components/misc/Copy";
import { ErrorState } from "../../components/states/ErrorState";
import { LoadingState } from "../../components/states/LoadingState";
import { count } from "../../lib/format";
import { Role } from "../../gen/keygate/v1/common_pb";
import { TeamAvatar } from "./TeamCard";
import { MembersPanel } from "./MembersPanel";

export function TeamDrawer({
  id,
  onClose,
  onEdit,
  onDelete,
  onClaim,
}: {
  id: string | undefined;
  onClose: () => void;
  onEdit: (t: Team) => void;
  onDelete: (t: Team) => void;
  onClaim: (t: Team) => void;
}) {
  const me = useMe();
  const q = useQuery({
    queryKey: ["teams", "one", id],
    queryFn: ({ signal }) => teamsApi.getTeam({ id: id! }, { signal }),
    enabled: !!id,
  });
  const t = q.data?.team;
  const role = t ? roleIn(me, t.id) : Role.UNSPECIFIED;
  return (
    <Drawer opened={!!id} onClose={onClose} position="right" size={560} title={t ? t.name || t.id : "Team"}>
      {q.isPending ? (
        <LoadingState />
      ) : q.error ? (
        <ErrorState error={q.error} retry={() => void q.refetch()} />
      ) : t ? (
        <Stack gap="md">
          <Group gap="sm" wrap="nowrap" align="flex-start">
            <TeamAvatar team={t} size="lg" />
            <div style={{ minWidth: 0 }}>
              <Group gap={4} wrap="nowrap">
                <span className="kg-mono">{t.id}</span>
                <CopyIcon value={t.id} label="Copy team id" />
              </Group>
              <Text size="sm" c={t.description ? undefined : "dimmed"}>
                {t.description || "No description."}
              </Text>
            </div>
          </Group>
          <Table variant="vertical" layout="fixed" withTableBorder={false} fz="sm">
            <Table.Tbody>
              <Row label="Your role">{role !== Role.UNSPECIFIED ? ROLE_LABEL[role] : me.systemAdmin ? "None (system admin)" : "None"}</Row>
              <Row label="Tokens">
                <Link className="kg-link" to="/tokens" search={{ team: t.id, status: "active" }}>
                  {count(t.tokenCount)} active
                </Link>
              </Row>
              <Row label="Routes">
                <Link className="kg-link" to="/routes" search={{ team: t.id }}>
                  {count(t.routeCount)}
                </Link>
              </Row>
              <Row label="Members">{count(t.memberCount)}</Row>
              <Row label="Created">
                <TimeAgo ts={t.createdAt} />{" "}
                {t.createdBy && (
                  <Text span size="xs" c="dimmed" className="kg-mono">
                    by {t.createdBy}
                  </Text>
                )}
              </Row>
              <Row label="Updated">
                <TimeAgo ts={t.updatedAt} />
              </Row>
            </Table.Tbody>
          </Table>
          {(canChangeTeam(me, t) || canClaimTeam(me, t)) && (
            <Group gap="xs">
              {canClaimTeam(me, t) && (
                <Button size="xs" onClick={() => onClaim(t)}>
                  Claim team
                </Button>
              )}
              {canChangeTeam(me, t) && (
                <>
                  <Button size="xs" variant="default" onClick={() => onEdit(t)}>
                    Edit
                  </Button>
                  <Button size="xs" color="red" variant="light" onClick={() => onDelete(t)}>
                    Delete
                  </Button>
                </>
              )}
            </Group>
          )}
          <div>
            <Title order={2} fz="sm" mb="xs">
              Members
            </Title>
            <MembersPanel teamId={t.id} />
          </div>
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
