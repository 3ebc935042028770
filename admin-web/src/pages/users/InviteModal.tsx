/**
 * CreateInvitation: an email, 1-20 team roles (only teams and roles the caller may grant) and
 * a lifetime. The single-use code comes back once; the caller shows it with the accept link.
 */
import { useEffect, useState } from "react";
import { ActionIcon, Button, Group, Modal, Select, Stack, Text, TextInput } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { IconPlus, IconTrash } from "@tabler/icons-react";
import type { CreateInvitationResponse } from "../../gen/keygate/v1/invitation_pb";
import { Role } from "../../gen/keygate/v1/common_pb";
import { invitationsApi } from "../../api/transport";
import { useMe } from "../../auth/session";
import { ROLE_LABEL, grantableRoles } from "../../auth/permissions";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { FormFailureAlert } from "../../components/form/FormFailureAlert";
import { applyServerError, type FormFailure } from "../../components/form/serverErrors";
import { INVITATION_EXPIRY, roleRowErrors, type RoleRow } from "./search";

interface Values {
  email: string;
  roles: RoleRow[];
  expiresInHours: string;
}

const MAX_ROLES = 20;

export function InviteModal({
  opened,
  onClose,
  teams,
  defaultTeam,
  onCreated,
}: {
  opened: boolean;
  onClose: () => void;
  /** Teams where the caller may invite. */
  teams: string[];
  defaultTeam?: string | undefined;
  onCreated: (r: CreateInvitationResponse) => void;
}) {
  const me = useMe();
  const qc = useQueryClient();
  const [failure, setFailure] = useState<FormFailure | null>(null);
  const initial = (): Values => {
    const team = defaultTeam && teams.includes(defaultTeam) ? defaultTeam : teams.length === 1 ? teams[0]! : "";
    return { email: "", roles: [{ teamId: team, role: team ? defaultRole(grantableRoles(me, team, "invitation.create")) : 0 }], expiresInHours: "168" };
  };
  const form = useForm<Values>({
    initialValues: initial(),
    validate: {
      email: (v) => (/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v.trim()) ? null : "Enter an email address"),
      roles: (rows) => roleRowErrors(rows).find((e) => e) ?? null,
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
      invitationsApi.createInvitation({
        email: v.email.trim(),
        roles: v.roles.map((r) => ({ teamId: r.teamId, role: r.role as Role })),
        expiresInHours: Number(v.expiresInHours),
      }),
    onMutate: () => setFailure(null),
    onSuccess: (r) => {
      void qc.invalidateQueries({ queryKey: ["invitations"] });
      onClose();
      onCreated(r);
    },
    onError: (err) =>
      setFailure(applyServerError(form, err, { "roles.team_id": "roles", "roles.role": "roles", expires_in_hours: "expiresInHours" })),
  });

  const rows = form.values.roles;
  const used = new Set(rows.map((r) => r.teamId).filter(Boolean));

  return (
    <Modal opened={opened} onClose={onClose} title="Invite someone" size="lg">
      <form onSubmit={form.onSubmit((v) => create.mutate(v))} noValidate>
        <Stack gap="sm">
          <FormFailureAlert failure={failure} />
          <TextInput label="Email" type="email" required data-autofocus placeholder="name@example.com" maxLength={254} {...form.getInputProps("email")} />
          <div role="group" aria-labelledby="invite-roles-label">
            <Text size="sm" fw={500} id="invite-roles-label">
              Teams and roles
            </Text>
            <Text size="xs" c="dimmed" mb={6}>
              The account is created with these roles when the invitation is accepted.
            </Text>
            <Stack gap={6}>
              {rows.map((r, i) => {
                const choices = r.teamId ? grantableRoles(me, r.teamId, "invitation.create") : [];
                return (
                  <Group key={i} gap="xs" wrap="nowrap" align="flex-start">
                    <TeamSelect
                      size="sm"
                      style={{ flex: 1 }}
                      aria-label={`Team ${i + 1}`}
                      placeholder="Pick a team"
                      allowDeselect={false}
                      only={teams.filter((t) => t === r.teamId || !used.has(t))}
                      value={r.teamId || undefined}
                      onChange={(v) => {
                        const allowed = v ? grantableRoles(me, v, "invitation.create") : [];
                        form.setFieldValue(`roles.${i}`, { teamId: v ?? "", role: allowed.includes(r.role as Role) ? r.role : defaultRole(allowed) });
                      }}
                    />
                    <Select
                      size="sm"
                      w={150}
                      aria-label={`Role in team ${i + 1}`}
                      placeholder="Role"
                      disabled={!r.teamId}
                      allowDeselect={false}
                      value={r.role ? String(r.role) : null}
                      data={choices.map((c) => ({ value: String(c), label: ROLE_LABEL[c] }))}
                      onChange={(v) => form.setFieldValue(`roles.${i}.role`, Number(v))}
                    />
                    <ActionIcon
                      variant="subtle"
                      color="gray"
                      size="lg"
                      aria-label={`Remove team ${i + 1}`}
                      disabled={rows.length === 1}
                      onClick={() => form.removeListItem("roles", i)}
                    >
                      <IconTrash size={15} />
                    </ActionIcon>
                  </Group>
                );
              })}
            </Stack>
            {form.errors.roles && (
              <Text size="xs" c="red" mt={4} role="alert">
                {form.errors.roles}
              </Text>
            )}
            {rows.length < Math.min(MAX_ROLES, teams.length) && (
              <Button
                mt={6}
                size="xs"
                variant="subtle"
                leftSection={<IconPlus size={14} />}
                onClick={() => form.insertListItem("roles", { teamId: "", role: 0 })}
              >
                Add another team
              </Button>
            )}
          </div>
          <Select
            label="Expires after"
            description="The code works once, until then."
            w={220}
            allowDeselect={false}
            data={INVITATION_EXPIRY.map((e) => ({ ...e }))}
            {...form.getInputProps("expiresInHours")}
          />
          <Group justify="flex-end" mt="sm">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={create.isPending}>
              Create invitation
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/** The least privilege the caller may give: VIEWER < DEVELOPER. Developer is the common case. */
function defaultRole(allowed: Role[]): number {
  if (allowed.includes(Role.DEVELOPER)) return Role.DEVELOPER;
  return allowed[allowed.length - 1] ?? 0;
}
