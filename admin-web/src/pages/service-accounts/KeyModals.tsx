/** Issue a management key (CreateKey) and rotate one (RotateKey); both return a plaintext once. */
import { useEffect, useState } from "react";
import { Button, Group, Modal, Radio, SegmentedControl, Stack, Text, TextInput } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { ManagementKey, ServiceAccount } from "../../gen/keygate/v1/service_account_pb";
import { serviceAccountsApi } from "../../api/transport";
import { toUiError } from "../../api/errors";
import { absoluteTime, tsToDate } from "../../lib/format";
import { FormFailureAlert } from "../../components/form/FormFailureAlert";
import { applyServerError, type FormFailure } from "../../components/form/serverErrors";
import { KEY_EXPIRY, ROTATE_GRACE, toKeyExpiry, type KeyExpiry } from "./search";

export interface IssuedKey {
  title: string;
  key: ManagementKey | undefined;
  plaintext: string;
  note?: string;
}

export function keysQueryKey(saId: string) {
  return ["service-accounts", "keys", saId] as const;
}

export function CreateKeyModal({ account, onClose, onIssued }: { account: ServiceAccount | null; onClose: () => void; onIssued: (k: IssuedKey) => void }) {
  const qc = useQueryClient();
  const [failure, setFailure] = useState<FormFailure | null>(null);
  const form = useForm<{ name: string; expiry: KeyExpiry }>({
    initialValues: { name: "", expiry: "90" },
    validate: { name: (v) => (v.trim() ? null : "Name the key after where it is used") },
  });
  useEffect(() => {
    if (account) {
      form.reset();
      setFailure(null);
    }
  }, [account?.id]);
  const create = useMutation({
    mutationFn: (v: { name: string; expiry: KeyExpiry }) =>
      serviceAccountsApi.createKey({ serviceAccountId: account!.id, name: v.name.trim(), expiry: toKeyExpiry(v.expiry) }),
    onMutate: () => setFailure(null),
    onSuccess: (r) => {
      void qc.invalidateQueries({ queryKey: keysQueryKey(account!.id) });
      onClose();
      onIssued({ title: `Key for ${account!.name}`, key: r.key, plaintext: r.plaintext });
    },
    onError: (err) => setFailure(applyServerError(form, err, { expires_in_days: "expiry", never_expires: "expiry" })),
  });
  return (
    <Modal opened={!!account} onClose={onClose} title={`Issue a key for ${account?.name ?? ""}`}>
      <form onSubmit={form.onSubmit((v) => create.mutate(v))} noValidate>
        <Stack gap="sm">
          <FormFailureAlert failure={failure} />
          <TextInput label="Name" required data-autofocus maxLength={100} placeholder="e.g. github-actions" {...form.getInputProps("name")} />
          <div>
            <Text size="sm" fw={500} mb={4} id="key-expiry-label">
              Expires
            </Text>
            <SegmentedControl aria-labelledby="key-expiry-label" size="xs" data={KEY_EXPIRY.map((e) => ({ ...e }))} {...form.getInputProps("expiry")} />
            {form.errors.expiry && (
              <Text size="xs" c="red" mt={4}>
                {form.errors.expiry}
              </Text>
            )}
          </div>
          <Group justify="flex-end" mt="sm">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={create.isPending}>
              Issue key
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

export function RotateKeyModal({ keyToRotate: k, onClose, onIssued }: { keyToRotate: ManagementKey | null; onClose: () => void; onIssued: (k: IssuedKey) => void }) {
  const qc = useQueryClient();
  const [grace, setGrace] = useState("86400");
  useEffect(() => setGrace("86400"), [k?.id]);
  const rotate = useMutation({
    mutationFn: () => serviceAccountsApi.rotateKey({ id: k!.id, gracePeriodSeconds: Number(grace) }),
    onSuccess: (r) => {
      void qc.invalidateQueries({ queryKey: keysQueryKey(k!.serviceAccountId) });
      onClose();
      const prev = r.previous;
      const until = tsToDate(prev?.expiresAt);
      onIssued({
        title: `Key "${k!.name}" rotated`,
        key: r.key,
        plaintext: r.plaintext,
        note: prev?.revokedAt ? "The old key was revoked." : until ? `The old key keeps working until ${absoluteTime(until)}.` : undefined,
      });
    },
  });
  const failure = rotate.error ? { ...toUiError(rotate.error), unmatched: toUiError(rotate.error).fields } : null;
  return (
    <Modal opened={!!k} onClose={onClose} title={`Rotate "${k?.name ?? ""}"`}>
      <Stack gap="sm">
        <Text size="sm">Issues a new key with the same name. Switch the service to it; the old key keeps working for the grace period (never past its own expiry).</Text>
        <FormFailureAlert failure={failure} />
        <Radio.Group label="Old key keeps working for" value={grace} onChange={setGrace}>
          <Stack gap={6} mt={6}>
            {ROTATE_GRACE.map((g) => (
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
