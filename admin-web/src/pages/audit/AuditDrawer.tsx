/** One audit event: who, what, where from, the before/after of each field, and its chain hashes. */
import type { ReactNode } from "react";
import { Anchor, Badge, Code, Drawer, Group, Stack, Table, Text, Tooltip } from "@mantine/core";
import type { AuditEvent } from "../../gen/keygate/v1/audit_pb";
import type { Team } from "../../gen/keygate/v1/team_pb";
import { CopyIcon } from "../../components/misc/Copy";
import { TeamBadge } from "../../components/domain/TeamBadge";
import { EmptyState } from "../../components/states/EmptyState";
import { relativeTime, tsToDate } from "../../lib/format";
import { parseDiff } from "./diff";
import { ActionBadge, preciseTime } from "./parts";
import type { AuditSearch } from "./search";

export function AuditDrawer({
  event,
  team,
  onClose,
  onFilter,
}: {
  event: AuditEvent | null;
  team: Team | undefined;
  onClose: () => void;
  onFilter: (patch: Partial<AuditSearch>) => void;
}) {
  const e = event;
  const when = tsToDate(e?.time);
  const rows = e ? parseDiff(e.diffJson) : [];
  return (
    <Drawer opened={!!e} onClose={onClose} position="right" size="lg" title={e ? `Audit event #${e.seq}` : "Audit event"}>
      {e && (
        <Stack gap="md">
          <Group gap="xs">
            <ActionBadge action={e.action} />
            {when && (
              <Text size="sm" c="dimmed">
                {preciseTime(when, true)} · {relativeTime(when)}
              </Text>
            )}
          </Group>
          <Table variant="vertical" layout="fixed" withTableBorder={false} fz="sm">
            <Table.Tbody>
              <Row label="Actor">
                <Stack gap={2}>
                  <Text size="sm" fw={500}>
                    {e.actorName || e.actorId || (e.actorType === "anonymous" ? "Anonymous (no credentials)" : "—")}
                  </Text>
                  <Group gap={6} wrap="nowrap">
                    <Badge variant="default" size="sm">
                      {e.actorType || "unknown"}
                    </Badge>
                    {e.actorId && (
                      <>
                        <span className="kg-mono kg-truncate">{e.actorId}</span>
                        <CopyIcon value={e.actorId} label="Copy actor id" />
                        <FilterLink onClick={() => onFilter({ actor: e.actorId })} what="this actor" />
                      </>
                    )}
                  </Group>
                </Stack>
              </Row>
              <Row label="Entity">
                <Group gap={6} wrap="nowrap">
                  <Badge variant="default" size="sm">
                    {e.entityType || "—"}
                  </Badge>
                  {e.entityId && (
                    <>
                      <span className="kg-mono kg-truncate">{e.entityId}</span>
                      <CopyIcon value={e.entityId} label="Copy entity id" />
                      <FilterLink onClick={() => onFilter({ entity_type: e.entityType || undefined, entity_id: e.entityId })} what="this entity" />
                    </>
                  )}
                </Group>
              </Row>
              <Row label="Team">{e.teamId ? <TeamBadge teamId={e.teamId} team={team} /> : <Text span size="sm" c="dimmed">None (system-wide)</Text>}</Row>
              <Row label="Request id">
                {e.requestId ? (
                  <Group gap={4} wrap="nowrap">
                    <span className="kg-mono kg-truncate">{e.requestId}</span>
                    <CopyIcon value={e.requestId} label="Copy request id" />
                  </Group>
                ) : (
                  "—"
                )}
              </Row>
              <Row label="Source IP">{e.sourceIp ? <span className="kg-mono">{e.sourceIp}</span> : "—"}</Row>
              <Row label="User agent">
                {e.userAgent ? (
                  <Text size="sm" style={{ wordBreak: "break-word" }}>
                    {e.userAgent}
                  </Text>
                ) : (
                  "—"
                )}
              </Row>
            </Table.Tbody>
          </Table>

          <div>
            <Text fw={600} size="sm" mb={6} component="h3">
              Changes
            </Text>
            {rows === null ? (
              <Code block className="kg-snippet">
                {e.diffJson}
              </Code>
            ) : rows.length === 0 ? (
              <EmptyState compact title="No field changes recorded" description="This event records that it happened, without before/after values." />
            ) : (
              <div className="kg-card" style={{ overflow: "auto" }}>
                <Table fz="sm" aria-label="Changed fields" layout="fixed">
                  <Table.Thead>
                    <Table.Tr>
                      <Table.Th w="28%">Field</Table.Th>
                      <Table.Th>Before</Table.Th>
                      <Table.Th>After</Table.Th>
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {rows.map((r) => (
                      <Table.Tr key={r.field}>
                        <Table.Td className="kg-mono" style={{ wordBreak: "break-word" }}>
                          {r.field}
                        </Table.Td>
                        <Table.Td className="kg-mono kg-muted" style={{ wordBreak: "break-word" }}>
                          {r.before ?? <Absent />}
                        </Table.Td>
                        <Table.Td className="kg-mono" style={{ wordBreak: "break-word" }}>
                          {r.after ?? <Absent />}
                        </Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </div>
            )}
          </div>

          <div>
            <Text fw={600} size="sm" mb={6} component="h3">
              Hash chain
            </Text>
            <Table variant="vertical" layout="fixed" withTableBorder={false} fz="xs">
              <Table.Tbody>
                <Row label="Previous">
                  <Hash value={e.prevHash} />
                </Row>
                <Row label="This event">
                  <Hash value={e.hash} />
                </Row>
              </Table.Tbody>
            </Table>
          </div>
        </Stack>
      )}
    </Drawer>
  );
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <Table.Tr>
      <Table.Th w={110}>{label}</Table.Th>
      <Table.Td style={{ minWidth: 0 }}>{children}</Table.Td>
    </Table.Tr>
  );
}

function FilterLink({ onClick, what }: { onClick: () => void; what: string }) {
  return (
    <Tooltip label={`Show only events of ${what}`}>
      <Anchor component="button" type="button" size="xs" onClick={onClick} className="kg-nowrap">
        Filter
      </Anchor>
    </Tooltip>
  );
}

function Absent() {
  return <span aria-label="none">—</span>;
}

function Hash({ value }: { value: string }) {
  return (
    <Group gap={4} wrap="nowrap">
      <span className="kg-mono kg-truncate" style={{ fontSize: 11 }} title={value}>
        {value}
      </span>
      {value && <CopyIcon value={value} label="Copy hash" />}
    </Group>
  );
}
