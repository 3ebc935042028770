/**
 * Delete a team. The server refuses while the team owns live tokens, routes or service
 * accounts and says which; the dialog shows that answer and offers the cascade (revoke the
 * tokens, delete the routes and accounts in the same transaction), confirmed by typing the id.
 */
import { useEffect, useState } from "react";
import { Alert, Button, Checkbox, Group, List, Modal, Stack, Text, TextInput } from "@mantine/core";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { IconAlertTriangle } from "@tabler/icons-react";
import { Code } from "@connectrpc/connect";
import type { Team } from "../../gen/keygate/v1/team_pb";
import { teamsApi } from "../../api/transport";
import { toUiError, type UiError } from "../../api/errors";
import { meQuery } from "../../auth/session";
import { RequestId } from "../../components/states/ErrorState";
import { notifySuccess } from "../../components/misc/notify";
import { count } from "../../lib/format";

export function DeleteTeamModal({ team, onClose, onDeleted }: { team: Team | undefined; onClose: () => void; onDeleted: (t: Team) => void }) {
  const qc = useQueryClient();
  const [cascade, setCascade] = useState(false);
  const [typed, setTyped] = useState("");
  const [refusal, setRefusal] = useState<UiError | null>(null);
  useEffect(() => {
    setCascade(false);
    setTyped("");
    setRefusal(null);
  }, [team?.id]);

  const del = useMutation({
    mutationFn: (t: Team) => teamsApi.deleteTeam({ id: t.id, cascade }),
    onMutate: () => setRefusal(null),
    onSuccess: (r, t) => {
      void qc.invalidateQueries({ queryKey: ["teams"] });
      void qc.invalidateQueries({ queryKey: ["tokens"] });
      void qc.invalidateQueries({ queryKey: ["routes"] });
      void qc.invalidateQueries({ queryKey: ["dashboard"] });
      void qc.invalidateQueries({ queryKey: meQuery.queryKey });
      const parts = [
        r.revokedTokenIds.length ? `${count(r.revokedTokenIds.length)} token${r.revokedTokenIds.length === 1 ? "" : "s"} revoked` : "",
        r.deletedRouteIds.length ? `${count(r.deletedRouteIds.length)} route${r.deletedRouteIds.length === 1 ? "" : "s"} deleted` : "",
      ].filter(Boolean);
      notifySuccess(`Team "${t.name || t.id}" deleted${parts.length ? `: ${parts.join(", ")}` : ""}`);
      onDeleted(t);
      onClose();
    },
    onError: (e) => setRefusal(toUiError(e)),
  });

  if (!team) return <Modal opened={false} onClose={onClose} title="Delete team" />;
  const owns = team.tokenCount > 0 || team.routeCount > 0;
  const blocked = refusal?.code === Code.FailedPrecondition;
  const needsTyping = cascade;
  const ready = !needsTyping || typed === team.id;

  return (
    <Modal opened onClose={onClose} title={`Delete team "${team.name || team.id}"?`} size="lg">
      <Stack gap="sm">
        <Text size="sm">
          The team, its {count(team.memberCount)} membership{team.memberCount === 1 ? "" : "s"} and pending invitations into it are removed. This
          cannot be undone.
        </Text>
        {owns && !blocked && (
          <Text size="sm">
            It owns{" "}
            {[
              team.tokenCount ? `${count(team.tokenCount)} active token${team.tokenCount === 1 ? "" : "s"}` : "",
              team.routeCount ? `${count(team.routeCount)} route${team.routeCount === 1 ? "" : "s"}` : "",
            ]
              .filter(Boolean)
              .join(" and ")}
            . The server refuses to delete a team that still owns tokens, routes or service accounts, unless they go with it.
          </Text>
        )}
        {refusal && (
          <Alert color={blocked ? "orange" : "red"} variant="light" icon={<IconAlertTriangle size={18} />} title={blocked ? "What blocks it" : "Not deleted"} role="alert" p="sm">
            <Text size="sm">{refusal.message}</Text>
            {refusal.requestId && <RequestId id={refusal.requestId} />}
          </Alert>
        )}
        {(owns || blocked) && (
          <Checkbox
            checked={cascade}
            onChange={(e) => setCascade(e.currentTarget.checked)}
            color="red"
            label="Delete everything it owns"
            description="Revoke its tokens (the gateway refuses them within seconds), delete its routes and service accounts, in the same transaction."
          />
        )}
        {cascade && (
          <>
            <List size="sm" spacing={2}>
              {team.tokenCount > 0 && <List.Item>{count(team.tokenCount)} active token(s) revoked</List.Item>}
              {team.routeCount > 0 && <List.Item>{count(team.routeCount)} route(s) and their backend secrets deleted</List.Item>}
              <List.Item>its service accounts and their keys deleted</List.Item>
            </List>
            <TextInput
              label={
                <>
                  Type <span className="kg-mono">{team.id}</span> to confirm
                </>
              }
              value={typed}
              onChange={(e) => setTyped(e.currentTarget.value)}
              autoComplete="off"
              data-autofocus
            />
          </>
        )}
        <Group justify="flex-end" mt="sm">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button color="red" onClick={() => del.mutate(team)} loading={del.isPending} disabled={!ready} data-autofocus={!cascade || undefined}>
            {cascade ? "Delete team and everything it owns" : "Delete team"}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
