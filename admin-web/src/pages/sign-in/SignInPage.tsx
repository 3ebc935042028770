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

const route = getRouteApi("/sign-in");

export function SignInPage() {
  const { next } = route.useSearch();
  const afterSignIn = useAfterSignIn();
  const [failure, setFailure] = useState<FormFailure | null>(null);
  const form = useForm({
    initialValues: { email: "", password: "" },
    validate: {
      email: (v) => (v.trim() ? null : "Enter your email"),
      password: (v) => (v ? null : "Enter your password"),
    },
  });
  const signIn = useMutation({
    meta: { authFlow: true },
    mutationFn: async (v: typeof form.values) => {
      await authApi.signIn({ email: v.email.trim(), password: v.password });
      await afterSignIn(next);
    },
    onMutate: () => setFailure(null),
    onError: (err) => {
      setFailure(applyServerError(form, err));
      form.setFieldValue("password", "");
    },
  });

  return (
    <AuthLayout
      title="Sign in"
      subtitle="Use the email and password of your Keygate account."
      footer={
        <>
          First start?{" "}
          <Anchor component={Link} to="/setup" size="sm">
            Create the first admin with the setup code
          </Anchor>
        </>
      }
    >
      <form onSubmit={form.onSubmit((v) => signIn.mutate(v))} noValidate>
        <Stack gap="sm">
          <FormFailureAlert failure={failure} />
          <TextInput label="Email" type="email" autoComplete="username" data-autofocus autoFocus required {...form.getInputProps("email")} />
          <PasswordInput label="Password" autoComplete="current-password" required {...form.getInputProps("password")} />
          <Button type="submit" loading={signIn.isPending} fullWidth mt="xs">
            Sign in
          </Button>
        </Stack>
      </form>
    </AuthLayout>
  );
}
