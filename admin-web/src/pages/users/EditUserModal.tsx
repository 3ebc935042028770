/** UpdateUser: the display name (oneself, or a system admin) and the system-admin flag (system admins). */
import { useEffect, useState } from "react";
import { Alert, Button, Group, Modal, Stack, Switch, TextInput } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { User } from "../../gen/keygate/v1/user_pb";
import { usersApi } from "../../api/transport";
import { meQuery, useMe } from "../../auth/session";
import { canAdministerUsers, canRenameUser } from "../../auth/permissions";
import { FormFailureAlert } from "../../components/form/FormFailureAlert";
import { applyServerError, type FormFailure } from "../../components/form/serverErrors";
import { notifySuccess } from "../../components/misc/notify";
import { userLabel } from "./parts";

interface Values {
  displayName: string;
  systemAdmin: boolean;
}

export function EditUserModal({ user, onClose }: { user: User | null; onClose: () => void }) {
  const me = useMe();
  const qc = useQueryClient();
  const [failure, setFailure] = useState<FormFailure | null>(null);
  const form = useForm<Values>({
    initialValues: { displayName: "", systemAdmin: false },
    validate: { displayName: (v) => (v.trim() ? null : "Enter a name") },
  });
  useEffect(() => {
    if (user) {
      form.setInitialValues({ displayName: user.displayName, systemAdmin: user.systemAdmin });
      form.reset();
      setFailure(null);
    }
  }, [user?.id]);

  const mayRename = !!user && canRenameUser(me, user.id);
  const mayAdmin = canAdministerUsers(me);
  const isSelf = !!user && me.user?.id === user.id;

  const save = useMutation({
    mutationFn: (v: Values) =>
      usersApi.updateUser({
        id: user!.id,
        displayName: mayRename && v.displayName.trim() !== user!.displayName ? v.displayName.trim() : undefined,
        systemAdmin: mayAdmin && v.systemAdmin !== user!.systemAdmin ? v.systemAdmin : undefined,
      }),
    onMutate: () => setFailure(null),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ["users"] });
      if (isSelf) void qc.invalidateQueries({ queryKey: meQuery.queryKey });
      notifySuccess("User saved");
      onClose();
    },
    onError: (err) => setFailure(applyServerError(form, err, { display_name: "displayName", system_admin: "systemAdmin" })),
  });

  return (
    <Modal opened={!!user} onClose={onClose} title={user ? `Edit ${userLabel(user)}` : "Edit user"}>
      <form onSubmit={form.onSubmit((v) => save.mutate(v))} noValidate>
        <Stack gap="sm">
          <FormFailureAlert failure={failure} />
          <TextInput
            label="Display name"
            required
            maxLength={100}
            data-autofocus
            disabled={!mayRename}
            description={mayRename ? undefined : "Only the user or a system admin may rename them."}
            {...form.getInputProps("displayName")}
          />
          <TextInput label="Email" value={user?.email ?? ""} disabled description="The sign-in email cannot be changed." readOnly />
          {mayAdmin && (
            <Switch
              label="System admin"
              description="Every permission in every team, including disabling accounts and verifying the audit chain."
              {...form.getInputProps("systemAdmin", { type: "checkbox" })}
            />
          )}
          {mayAdmin && isSelf && user?.systemAdmin && !form.values.systemAdmin && (
            <Alert color="orange" variant="light" p="sm">
              You are removing your own system-admin rights. Another system admin is needed to give them back.
            </Alert>
          )}
          <Group justify="flex-end" mt="sm">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={save.isPending} disabled={!form.isDirty()}>
              Save
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
