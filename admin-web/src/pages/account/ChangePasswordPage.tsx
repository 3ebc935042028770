import { useState } from "react";
import { Alert, Button, Group, Paper, PasswordInput, Stack } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { authApi } from "../../api/transport";
import { PageHeader } from "../../components/misc/PageHeader";
import { FormFailureAlert } from "../../components/form/FormFailureAlert";
import { applyServerError, type FormFailure } from "../../components/form/serverErrors";
import { passwordRules } from "../../lib/passwords";

export function ChangePasswordPage() {
  const qc = useQueryClient();
  const [failure, setFailure] = useState<FormFailure | null>(null);
  const form = useForm({
    initialValues: { currentPassword: "", newPassword: "", confirm: "" },
    validate: {
      currentPassword: (v) => (v ? null : "Enter your current password"),
      newPassword: (v, all) => passwordRules(v) ?? (v === all.currentPassword ? "Choose a different password" : null),
      confirm: (v, all) => (v === all.newPassword ? null : "The passwords differ"),
    },
  });
  const change = useMutation({
    mutationFn: (v: typeof form.values) => authApi.changePassword({ currentPassword: v.currentPassword, newPassword: v.newPassword }),
    onMutate: () => setFailure(null),
    onSuccess: () => {
      form.reset();
      void qc.invalidateQueries({ queryKey: ["auth", "sessions"] });
    },
    onError: (err) => setFailure(applyServerError(form, err)),
  });

  return (
    <>
      <PageHeader title="Change password" description="Changing your password signs out your other sessions." />
      <Paper withBorder p="lg" maw={440} radius="md">
        <form onSubmit={form.onSubmit((v) => change.mutate(v))} noValidate>
          <Stack gap="sm">
            {change.isSuccess && (
              <Alert color="teal" variant="light" role="status">
                Password changed. Your other sessions were signed out.
              </Alert>
            )}
            <FormFailureAlert failure={failure} />
            <PasswordInput label="Current password" autoComplete="current-password" required {...form.getInputProps("currentPassword")} />
            <PasswordInput label="New password" description="12 to 256 characters" autoComplete="new-password" required {...form.getInputProps("newPassword")} />
            <PasswordInput label="Repeat new password" autoComplete="new-password" required {...form.getInputProps("confirm")} />
            <Group justify="flex-end" mt="xs">
              <Button type="submit" loading={change.isPending}>
                Change password
              </Button>
            </Group>
          </Stack>
        </form>
      </Paper>
    </>
  );
}
