/**
 * CreateServiceAccount: owning team, name, description, role in the team (what the caller may
 * grant there) and, for system admins, a capability (SYNC / GATEWAY). The proto has no update:
 * an account's team, role and capability are fixed once created.
 */
import { useEffect, useState } from "react";
import { Button, Group, Modal, SegmentedControl, Select, Stack, Text, TextInput, Textarea } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { ServiceAccount } from "../../gen/keygate/v1/service_account_pb";
import { ServiceAccountCapability } from "../../gen/keygate/v1/service_account_pb";
import { Role } from "../../gen/keygate/v1/common_pb";
import { serviceAccountsApi } from "../../api/transport";
import { useMe } from "../../auth/session";
import { ROLE_LABEL, canGrantCapability, grantableRoles } from "../../auth/permissions";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { FormFailureAlert } from "../../components/form/FormFailureAlert";
import { applyServerError, type FormFailure } from "../../components/form/serverErrors";
import { CAPABILITY_HINT, CAPABILITY_LABEL } from "./search";

interface Values {
  teamId: string;
  name: string;
  description: string;
  role: string;
  capability: string;
}

export function CreateServiceAccountModal({
  opened,
  onClose,
  teams,
  defaultTeam,
  onCreated,
}: {
  opened: boolean;
  onClose: () => void;
  /** Teams where the caller may manage service accounts. */
  teams: string[];
  defaultTeam?: string | undefined;
  onCreated: (sa: ServiceAccount) => void;
}) {
  const me = useMe();
  const qc = useQueryClient();
  const [failure, setFailure] = useState<FormFailure | null>(null);
  const initial = (): Values => {
    const team = defaultTeam && teams.includes(defaultTeam) ? defaultTeam : teams.length === 1 ? teams[0]! : "";
    return { teamId: team, name: "", description: "", role: team ? String(defaultRole(team)) : "", capability: String(ServiceAccountCapability.UNSPECIFIED) };
  };
  const defaultRole = (team: string) => {
    const allowed = grantableRoles(me, team, "service_account.create");
    return allowed.includes(Role.DEVELOPER) ? Role.DEVELOPER : allowed[allowed.length - 1] ?? Role.UNSPECIFIED;
  };
  const form = useForm<Values>({
    initialValues: initial(),
    validate: {
      teamId: (v) => (v ? null : "Pick the owning team"),
      name: (v) => (v.trim() ? null : "Give the account a name"),
      role: (v) => (v ? null : "Pick a role"),
    },
  });
  useEffect(() => {
    if (opened) {
      form.setInitialValues(initial());
      form.reset();
      setFailure(null);
    }
  }, [opened]);

  const create = useMutation({
    mutationFn: (v: Values) =>
      serviceAccountsApi.createServiceAccount({
        teamId: v.teamId,
        name: v.name.trim(),
        description: v.description.trim(),
        role: Number(v.role) as Role,
        capability: Number(v.capability) as ServiceAccountCapability,
      }),
    onMutate: () => setFailure(null),
    onSuccess: (r) => {
      void qc.invalidateQueries({ queryKey: ["service-accounts"] });
      onClose();
      if (r.serviceAccount) onCreated(r.serviceAccount);
    },
    onError: (err) => setFailure(applyServerError(form, err, { team_id: "teamId" })),
  });

  const roles = form.values.teamId ? grantableRoles(me, form.values.teamId, "service_account.create") : [];
  const capability = Number(form.values.capability) as ServiceAccountCapability;

  return (
    <Modal opened={opened} onClose={onClose} title="Create service account" size="lg">
      <form onSubmit={form.onSubmit((v) => create.mutate(v))} noValidate>
        <Stack gap="sm">
          <FormFailureAlert failure={failure} />
          <TextInput label="Name" required data-autofocus maxLength={100} placeholder="e.g. ci-deployer" {...form.getInputProps("name")} />
          <Textarea label="Description" autosize minRows={2} maxRows={4} maxLength={1000} placeholder="What uses it, who owns it" {...form.getInputProps("description")} />
          <Group gap="sm" align="flex-start" grow>
            <TeamSelect
              label="Team"
              description="Owns the account."
              placeholder="Pick a team"
              allowDeselect={false}
              required
              only={teams}
              value={form.values.teamId || undefined}
              onChange={(v) => {
                form.setFieldValue("teamId", v ?? "");
                const allowed = v ? grantableRoles(me, v, "service_account.create") : [];
                if (!allowed.includes(Number(form.values.role) as Role)) form.setFieldValue("role", v ? String(defaultRole(v)) : "");
              }}
              error={form.errors.teamId}
            />
            <Select
              label="Role"
              description="What its keys may do in that team."
              placeholder="Pick a role"
              required
              disabled={!form.values.teamId}
              allowDeselect={false}
              data={roles.map((r) => ({ value: String(r), label: ROLE_LABEL[r] }))}
              {...form.getInputProps("role")}
            />
          </Group>
          {canGrantCapability(me) && (
            <div>
              <Text size="sm" fw={500} id="sa-capability-label">
                Capability
              </Text>
              <SegmentedControl
                mt={4}
                size="xs"
                aria-labelledby="sa-capability-label"
                data={[ServiceAccountCapability.UNSPECIFIED, ServiceAccountCapability.SYNC, ServiceAccountCapability.GATEWAY].map((c) => ({
                  value: String(c),
                  label: CAPABILITY_LABEL[c],
                }))}
                {...form.getInputProps("capability")}
              />
              <Text size="xs" c="dimmed" mt={4}>
                {CAPABILITY_HINT[capability]} Only system admins grant capabilities.
              </Text>
            </div>
          )}
          <Text size="xs" c="dimmed">
            Team, role and capability cannot be changed later: create another account and delete this one instead.
          </Text>
          <Group justify="flex-end" mt="sm">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={create.isPending}>
              Create account
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
