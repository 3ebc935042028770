/** Revoke one token or many (bulk), with an optional reason kept in the audit log. */
import { useEffect, useState } from "react";
import { Button, Group, List, Modal, Stack, Text, Textarea } from "@mantine/core";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { Token } from "../../gen/keygate/v1/token_pb";
import { tokensApi } from "../../api/transport";
import { toUiError } from "../../api/errors";
import { notifySuccess } from "../../components/misc/notify";

export interface BulkResult {
  ok: string[];
  failed: { token: Token; message: string }[];
}

/** Revokes one after another, a few at a time; every failure is reported, none stops the rest. */
async function revokeAll(tokens: Token[], reason: string): Promise<BulkResult> {
  const result: BulkResult = { ok: [], failed: [] };
  const queue = [...tokens];
  const worker = async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      try {
        await tokensApi.revokeToken({ id: t.id, reason });
        result.ok.push(t.id);
      } catch (e) {
        result.failed.push({ token: t, message: toUiError(e).message });
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return result;
}

export function RevokeModal({ tokens, onClose, onDone }: { tokens: Token[]; onClose: () => void; onDone: (r: BulkResult) => void }) {
  const qc = useQueryClient();
  const [reason, setReason] = useState("");
  useEffect(() => setReason(""), [tokens]);
  const revoke = useMutation({
    mutationFn: () => revokeAll(tokens, reason.trim()),
    onSuccess: (r) => {
      void qc.invalidateQueries({ queryKey: ["tokens"] });
      void qc.invalidateQueries({ queryKey: ["dashboard"] });
      if (r.failed.length === 0) {
        notifySuccess(r.ok.length === 1 ? "Token revoked" : `${r.ok.length} tokens revoked`);
        onClose();
      }
      onDone(r);
    },
  });
  const one = tokens.length === 1;
  const failed = revoke.data?.failed ?? [];
  return (
    <Modal opened={tokens.length > 0} onClose={onClose} title={one ? `Revoke "${tokens[0]!.name}"?` : `Revoke ${tokens.length} tokens?`}>
      <Stack gap="sm">
        <Text size="sm">
          {one ? "The gateway refuses this token" : "The gateway refuses these tokens"} within seconds. This cannot be undone: clients need a new token.
        </Text>
        {!one && (
          <List size="sm" className="kg-mono" spacing={2} style={{ maxHeight: 160, overflow: "auto" }}>
            {tokens.map((t) => (
              <List.Item key={t.id}>
                {t.name} <span className="kg-muted">{t.preview}</span>
              </List.Item>
            ))}
          </List>
        )}
        <Textarea label="Reason (optional)" description="Kept in the audit log." maxLength={500} autosize minRows={2} value={reason} onChange={(e) => setReason(e.currentTarget.value)} />
        {failed.length > 0 && (
          <Text size="sm" c="red" role="alert">
            {failed.length} could not be revoked:{" "}
            {failed.map((f) => `${f.token.name}: ${f.message}`).join("; ")}
          </Text>
        )}
        <Group justify="flex-end" mt="sm">
          <Button variant="default" onClick={onClose}>
            {failed.length ? "Close" : "Cancel"}
          </Button>
          <Button color="red" onClick={() => revoke.mutate()} loading={revoke.isPending} data-autofocus>
            {one ? "Revoke token" : `Revoke ${tokens.length} tokens`}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
