import { useState } from "react";
import { Anchor, Button, PasswordInput, Stack, Text, TextInput } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation } from "@tanstack/react-query";
import { Link, getRouteApi } from "@tanstack/react-router";
import { authApi } from "../../api/transport";
import { useAfterSignIn } from "../../auth/useSignedIn";
import { AuthLayout } from "../../components/misc/AuthLayout";
import { FormFailureAlert } from "../../components/form/FormFailureAlert";
import { applyServerError, type FormFailure } from "../../components/form/serverErrors";
import { passwordRules } from "../../lib/passwords";

const route = getRouteApi("/setup");

export function SetupPage() {
  const { code } = route.useSearch();
  const afterSignIn = useAfterSignIn();
  const [failure, setFailure] = useState<FormFailure | null>(null);
  const form = useForm({
    initialValues: { setupCode: code ?? "", email: "", displayName: "", password: "", confirm: "" },
    validate: {
      setupCode: (v) => (v.trim() ? null : "Enter the setup code"),
      email: (v) => (v.trim() ? null : "Enter an email"),
      password: passwordRules,
      confirm: (v, all) => (v === all.password ? null : "The passwords differ"),
    },
  });
  const setup = useMutation({
    meta: { authFlow: true },
    mutationFn: async (v: typeof form.values) => {
      await authApi.completeSetup({
        setupCode: v.setupCode.trim(),
        email: v.email.trim(),
        displayName: v.displayName.trim(),
        password: v.password,
      });
      await afterSignIn("/");
    },
    onMutate: () => setFailure(null),
    onError: (err) => setFailure(applyServerError(form, err)),
  });

  return (
    <AuthLayout
      title="Set up Keygate"
      subtitle={
        <>
          Create the first system admin. The one-time setup code is in the control plane's data directory
          (<span className="kg-mono">setup-code</span>) and its log.
        </>
      }
      footer={
        <Anchor component={Link} to="/sign-in" size="sm">
          Back to sign in
        </Anchor>
      }
    >
      <form onSubmit={form.onSubmit((v) => setup.mutate(v))} noValidate>
        <Stack gap="sm">
          <FormFailureAlert failure={failure} />
          <TextInput label="Setup code" className="kg-mono" autoComplete="off" required autoFocus={!code} {...form.getInputProps("setupCode")} />
          <TextInput label="Email" type="email" autoComplete="username" required autoFocus={!!code} {...form.getInputProps("email")} />
          <TextInput label="Display name" autoComplete="name" {...form.getInputProps("displayName")} />
          <PasswordInput label="Password" description="12 to 256 characters" autoComplete="new-password" required {...form.getInputProps("password")} />
          <PasswordInput label="Repeat password" autoComplete="new-password" required {...form.getInputProps("confirm")} />
          <Button type="submit" loading={setup.isPending} fullWidth mt="xs">
            Create admin and sign in
          </Button>
          <Text size="xs" c="dimmed">
            The code works once, for 24 hours after the first start.
          </Text>
        </Stack>
      </form>
    </AuthLayout>
  );
}
