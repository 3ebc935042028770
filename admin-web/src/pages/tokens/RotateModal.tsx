/** Rotate: issue a replacement with the same settings; the old token works for a grace period. */
import { useState } from "react";
import { Button, Group, Modal, Radio, Stack, Text } from "@mantine/core";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { RotateTokenResponse, Token } from "../../gen/keygate/v1/token_pb";
import { tokensApi } from "../../api/transport";
import { FormFailureAlert } from "../../components/form/FormFailureAlert";
import { toUiError } from "../../api/errors";

const GRACE = [
  { value: "0", label: "Revoke the old token now" },
  { value: "3600", label: "1 hour" },
  { value: "86400", label: "24 hours" },
  { value: "604800", label: "7 days" },
  { value: "2592000", label: "30 days" },
];

export function RotateModal({
  token,
  onClose,
  onRotated,
}: {
  token: Token | undefined;
  onClose: () => void;
  onRotated: (r: RotateTokenResponse) => void;
}) {
  const qc = useQueryClient();
  const [grace, setGrace] = useState("86400");
  const rotate = useMutation({
    mutationFn: () => tokensApi.rotateToken({ id: token!.id, gracePeriodSeconds: Number(grace) }),
    onSuccess: (r) => {
      void qc.invalidateQueries({ queryKey: ["tokens"] });
      void qc.invalidateQueries({ queryKey: ["dashboard"] });
      onClose();
      onRotated(r);
    },
  });
  const failure = rotate.error ? { ...toUiError(rotate.error), unmatched: toUiError(rotate.error).fields } : null;
  return (
    <Modal opened={!!token} onClose={onClose} title={`Rotate "${token?.name ?? ""}"`} size="md">
      <Stack gap="sm">
        <Text size="sm">
          Issues a new token with the same team, scopes, expiry and rate limit. Switch your clients to it; the old token keeps
          working for the grace period (never past its own expiry).
        </Text>
        <FormFailureAlert failure={failure} />
        <Radio.Group label="Old token keeps working for" value={grace} onChange={setGrace}>
          <Stack gap={6} mt={6}>
            {GRACE.map((g) => (
              <Radio key={g.value} value={g.value} label={g.label} />
            ))}
          </Stack>
        </Radio.Group>
        <Group justify="flex-end" mt="sm">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button onClick={() => rotate.mutate()} loading={rotate.isPending} data-autofocus>
            Rotate
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
