/** A route's details (deep link: /routes?open=<id or name>): copy path, backend URL and cURL; edit, delete. */
import type { ReactNode } from "react";
import { Badge, Button, Drawer, Group, Stack, Table, Text } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { useNavigate } from "@tanstack/react-router";
import type { Route } from "../../gen/keygate/v1/route_pb";
import type { Team } from "../../gen/keygate/v1/team_pb";
import { routesApi } from "../../api/transport";
import { serverInfoQuery } from "../../api/lists";
import { gatewayBaseUrl, TOKEN_HEADER } from "../../config/gateway";
import { TeamBadge } from "../../components/domain/TeamBadge";
import { TimeAgo } from "../../components/misc/TimeAgo";
import { CopyIcon, CopyTextButton } from "../../components/misc/Copy";
import { ErrorState } from "../../components/states/ErrorState";
import { LoadingState } from "../../components/states/LoadingState";
import { count } from "../../lib/format";
import { routeCurl, routeUrl, TOKEN_ENV } from "./curl";
import { AUTH_LABEL, authKindOf } from "./form";

export function RouteDrawer({
  id,
  teamById,
  onClose,
  canChange,
  onEdit,
  onDelete,
}: {
  id: string | undefined;
  teamById: Map<string, Team>;
  onClose: () => void;
  canChange: (r: Route) => boolean;
  onEdit: (r: Route) => void;
  onDelete: (r: Route) => void;
}) {
  const q = useQuery({
    queryKey: ["routes", "one", id],
    queryFn: ({ signal }) => routesApi.getRoute({ id: id! }, { signal }),
    enabled: !!id,
  });
  const r = q.data?.route;
  const info = useQuery(serverInfoQuery);
  const gw = gatewayBaseUrl(info.data?.gatewayPublicUrl);
  const navigate = useNavigate();
  return (
    <Drawer opened={!!id} onClose={onClose} position="right" size="lg" title={r ? r.name : "Route"}>
      {q.isPending ? (
        <LoadingState />
      ) : q.error ? (
        <ErrorState error={q.error} retry={() => void q.refetch()} />
      ) : r ? (
        <Stack gap="md">
          {r.description && <Text size="sm">{r.description}</Text>}
          <Table variant="vertical" layout="fixed" withTableBorder={false} fz="sm">
            <Table.Tbody>
              <Row label="Path">
                <Copyable value={r.pathPrefix} label="Copy path" />
              </Row>
              <Row label="Gateway URL">
                <Copyable value={routeUrl(gw.url, r.pathPrefix)} label="Copy gateway URL" />
              </Row>
              <Row label="Backend">
                <Copyable value={r.backendUrl} label="Copy backend URL" />
              </Row>
              <Row label="Team">
                <TeamBadge teamId={r.teamId} team={teamById.get(r.teamId)} />
              </Row>
              <Row label="Methods">{r.methods.length ? <Badges values={r.methods} mono /> : "Any"}</Row>
              <Row label="Tags">{r.tags.length ? <Badges values={r.tags} /> : <Dim>None</Dim>}</Row>
              <Row label="Allowed teams">{r.allowedTeamIds.length ? <Badges values={r.allowedTeamIds} /> : "Every team"}</Row>
              <Row label="CORS">
                {r.corsOrigins.length === 0 ? (
                  <Dim>Off</Dim>
                ) : r.corsOrigins[0] === "*" ? (
                  "Any origin (*)"
                ) : (
                  <Badges values={r.corsOrigins} mono />
                )}
              </Row>
              <Row label="Rate limit">{r.rateLimitPerMinute ? `${count(r.rateLimitPerMinute)} per minute per token` : <Dim>No per-route limit</Dim>}</Row>
              <Row label="Prefix">{r.stripPrefix ? "Stripped before forwarding" : "Forwarded as is"}</Row>
              <Row label="Timeout">{count(r.timeoutMs)} ms</Row>
              <Row label="Backend auth">
                <BackendAuth route={r} />
              </Row>
              <Row label="Id">
                <Group gap={4} wrap="nowrap">
                  <span className="kg-mono kg-truncate">{r.id}</span>
                  <CopyIcon value={r.id} label="Copy route id" />
                </Group>
              </Row>
              <Row label="Created">
                <TimeAgo ts={r.createdAt} />{" "}
                <Text span size="xs" c="dimmed" className="kg-mono">
                  by {r.createdBy}
                </Text>
              </Row>
              <Row label="Updated">
                <TimeAgo ts={r.updatedAt} />
              </Row>
            </Table.Tbody>
          </Table>

          <div>
            <Text size="sm" fw={500} mb={4}>
              Try it
            </Text>
            <pre className="kg-snippet" aria-label="cURL command">
              {routeCurl(gw.url, r, TOKEN_HEADER)}
            </pre>
            <Group justify="space-between" mt={6} wrap="nowrap" align="flex-start">
              <Text size="xs" c="dimmed">
                Set {TOKEN_ENV} to a token with the scope <span className="kg-mono">{r.name}</span>
                {r.tags.length ? `, a tag:${r.tags[0]} scope` : ""} or *.
                {gw.assumed && " Gateway address assumed (this host, port 8080)."}
              </Text>
              <CopyTextButton value={routeCurl(gw.url, r, TOKEN_HEADER)} label="Copy cURL" />
            </Group>
          </div>

          <Group gap="xs">
            <Button size="xs" variant="default" onClick={() => void navigate({ to: "/tokens", search: { scope: r.name } })}>
              Tokens with this scope
            </Button>
            {canChange(r) && (
              <>
                <Button size="xs" variant="default" onClick={() => onEdit(r)}>
                  Edit
                </Button>
                <Button size="xs" color="red" variant="light" onClick={() => onDelete(r)}>
                  Delete
                </Button>
              </>
            )}
          </Group>
        </Stack>
      ) : null}
    </Drawer>
  );
}

function BackendAuth({ route }: { route: Route }) {
  const a = route.backendAuth;
  const kind = authKindOf(a?.type);
  if (kind === "none") return <Dim>None</Dim>;
  return (
    <Stack gap={2}>
      <span>
        {AUTH_LABEL[kind]}
        {kind === "apiKey" && a?.headerName && (
          <>
            {" "}
            in <span className="kg-mono">{a.headerName}</span>
          </>
        )}
        {kind === "basic" && a?.username && (
          <>
            {" "}
            as <span className="kg-mono">{a.username}</span>
          </>
        )}
      </span>
      <Text size="xs" c={a?.secretSet ? "dimmed" : "orange"}>
        {a?.secretSet ? "Secret stored (write-only, never shown)" : "No secret stored"}
      </Text>
    </Stack>
  );
}

function Copyable({ value, label }: { value: string; label: string }) {
  return (
    <Group gap={4} wrap="nowrap">
      <span className="kg-mono kg-truncate" title={value}>
        {value}
      </span>
      <CopyIcon value={value} label={label} />
    </Group>
  );
}

function Badges({ values, mono }: { values: string[]; mono?: boolean }) {
  return (
    <Group gap={4}>
      {values.map((v) => (
        <Badge key={v} variant="default" className={mono ? "kg-mono" : undefined}>
          {v}
        </Badge>
      ))}
    </Group>
  );
}

function Dim({ children }: { children: ReactNode }) {
  return (
    <Text span size="sm" c="dimmed">
      {children}
    </Text>
  );
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <Table.Tr>
      <Table.Th w={130}>{label}</Table.Th>
      <Table.Td>{children}</Table.Td>
    </Table.Tr>
  );
}
