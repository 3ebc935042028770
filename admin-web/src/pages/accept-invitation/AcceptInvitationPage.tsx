import { useState } from "react";
import { Anchor, Button, PasswordInput, Stack, TextInput } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation } from "@tanstack/react-query";
import { Link, getRouteApi } from "@tanstack/react-router";
import { authApi } from "../../api/transport";
import { useAfterSignIn } from "../../auth/useSignedIn";
import { AuthLayout } from "../../components/misc/AuthLayout";
import { FormFailureAlert } from "../../components/form/FormFailureAlert";
import { applyServerError, type FormFailure } from "../../components/form/serverErrors";
import { passwordRules } from "../../lib/passwords";

const route = getRouteApi("/accept-invitation");

export function AcceptInvitationPage() {
  const { code } = route.useSearch();
  const afterSignIn = useAfterSignIn();
  const [failure, setFailure] = useState<FormFailure | null>(null);
  const form = useForm({
    initialValues: { code: code ?? "", displayName: "", password: "", confirm: "" },
    validate: {
      code: (v) => (v.trim() ? null : "Enter the invitation code"),
      displayName: (v) => (v.trim() ? null : "Enter your name"),
      password: passwordRules,
      confirm: (v, all) => (v === all.password ? null : "The passwords differ"),
    },
  });
  const accept = useMutation({
    meta: { authFlow: true },
    mutationFn: async (v: typeof form.values) => {
      await authApi.acceptInvitation({ code: v.code.trim(), displayName: v.displayName.trim(), password: v.password });
      await afterSignIn("/");
    },
    onMutate: () => setFailure(null),
    onError: (err) => setFailure(applyServerError(form, err)),
  });

  return (
    <AuthLayout
      title="Accept invitation"
      subtitle="Create your account. Your email and team roles come from the invitation."
      footer={
        <>
          Already have an account?{" "}
          <Anchor component={Link} to="/sign-in" size="sm">
            Sign in
          </Anchor>
        </>
      }
    >
      <form onSubmit={form.onSubmit((v) => accept.mutate(v))} noValidate>
        <Stack gap="sm">
          <FormFailureAlert failure={failure} />
          {!code && <TextInput label="Invitation code" className="kg-mono" autoComplete="off" required autoFocus {...form.getInputProps("code")} />}
          <TextInput label="Your name" autoComplete="name" required autoFocus={!!code} {...form.getInputProps("displayName")} />
          <PasswordInput label="Password" description="12 to 256 characters" autoComplete="new-password" required {...form.getInputProps("password")} />
          <PasswordInput label="Repeat password" autoComplete="new-password" required {...form.getInputProps("confirm")} />
          <Button type="submit" loading={accept.isPending} fullWidth mt="xs">
            Create account
          </Button>
        </Stack>
      </form>
    </AuthLayout>
  );
}
