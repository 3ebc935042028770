/**
 * Create a route, or edit one (its team cannot change). Every field of the route; backend
 * secrets are write-only: never shown, and on edit an empty secret keeps the stored one.
 */
import { useEffect, useState, type ReactNode } from "react";
import {
  Button,
  Checkbox,
  Divider,
  Group,
  Input,
  Modal,
  MultiSelect,
  NumberInput,
  PasswordInput,
  SegmentedControl,
  Stack,
  Switch,
  TagsInput,
  Text,
  TextInput,
  Textarea,
} from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type { Route } from "../../gen/keygate/v1/route_pb";
import { routesApi } from "../../api/transport";
import { allTeamsQuery, routeTagsQuery } from "../../api/lists";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { FormFailureAlert } from "../../components/form/FormFailureAlert";
import { applyServerError, type FormFailure } from "../../components/form/serverErrors";
import { notifySuccess } from "../../components/misc/notify";
import {
  AUTH_KINDS,
  DEFAULT_TIMEOUT_MS,
  FIELD_MAP,
  MAX_TIMEOUT_MS,
  METHODS,
  authKindOf,
  initialValues,
  secretMode,
  toCreateRequest,
  toUpdateRequest,
  type AuthKind,
  type RouteFormValues,
} from "./form";

export function RouteFormModal({
  opened,
  onClose,
  route,
  creatableTeams,
  defaultTeam,
  onSaved,
}: {
  opened: boolean;
  onClose: () => void;
  /** Set to edit this route; absent to create one. */
  route?: Route | undefined;
  creatableTeams: string[];
  defaultTeam?: string | undefined;
  onSaved?: (r: Route, created: boolean) => void;
}) {
  const qc = useQueryClient();
  const editing = !!route;
  const teams = useQuery(allTeamsQuery);
  const tags = useQuery(routeTagsQuery);
  const [failure, setFailure] = useState<FormFailure | null>(null);
  const team0 = defaultTeam && creatableTeams.includes(defaultTeam) ? defaultTeam : creatableTeams.length === 1 ? creatableTeams[0]! : "";
  const form = useForm<RouteFormValues>({
    initialValues: initialValues(route, team0),
    validate: {
      name: (v) => (v.trim() ? null : "Give the route a name"),
      teamId: (v) => (v ? null : "Pick the owning team"),
      pathPrefix: (v) => (v.trim().startsWith("/") ? null : "Starts with /"),
      backendUrl: (v) => (v.trim() ? null : "Where the gateway forwards to"),
      secret: (v, all) => (secretMode(route, all.authKind) === "required" && !v ? "Required for this credential type" : null),
      headerName: (v, all) => (all.authKind === "apiKey" && !v.trim() ? "Name the header" : null),
      username: (v, all) => (all.authKind === "basic" && !v ? "Required for basic auth" : null),
    },
  });

  useEffect(() => {
    if (opened) {
      form.setInitialValues(initialValues(route, team0));
      form.reset();
      setFailure(null);
    }
  }, [opened, route?.id]);

  const save = useMutation({
    mutationFn: async (v: RouteFormValues): Promise<{ route: Route | undefined; created: boolean; unchanged?: boolean }> => {
      if (!route) return { route: (await routesApi.createRoute(toCreateRequest(v))).route, created: true };
      const req = toUpdateRequest(route, v);
      if (!req) return { route, created: false, unchanged: true };
      return { route: (await routesApi.updateRoute(req)).route, created: false };
    },
    onMutate: () => setFailure(null),
    onSuccess: (res) => {
      void qc.invalidateQueries({ queryKey: ["routes"] });
      void qc.invalidateQueries({ queryKey: ["teams"] });
      void qc.invalidateQueries({ queryKey: ["dashboard"] });
      onClose();
      notifySuccess(res.unchanged ? "Nothing changed" : res.created ? `Route "${res.route?.name}" created` : "Route saved");
      if (res.route) onSaved?.(res.route, res.created);
    },
    onError: (err) => setFailure(applyServerError(form, err, FIELD_MAP)),
  });

  const v = form.values;
  const mode = secretMode(route, v.authKind);
  const teamChoices = (teams.data ?? []).map((t) => ({ value: t.id, label: t.name && t.name !== t.id ? `${t.name} (${t.id})` : t.id }));
  for (const id of v.allowedTeamIds) if (!teamChoices.some((c) => c.value === id)) teamChoices.push({ value: id, label: id });
  const secretProps = {
    required: mode === "required",
    autoComplete: "new-password",
    placeholder: mode === "keep" ? "Leave empty to keep the stored value" : undefined,
    description:
      mode === "keep" ? "Write-only. A value is stored; leave empty to keep it." : "Write-only: stored encrypted, never shown again.",
    ...form.getInputProps("secret"),
  };

  return (
    <Modal opened={opened} onClose={onClose} title={editing ? `Edit route "${route!.name}"` : "Create route"} size="xl">
      <form onSubmit={form.onSubmit((vals) => save.mutate(vals))} noValidate>
        <Stack gap="sm">
          <FormFailureAlert failure={failure} />
          <Row>
            <TextInput
              label="Name"
              description="Unique slug; also the token scope that grants the route."
              required
              data-autofocus
              maxLength={63}
              placeholder="billing-api"
              {...form.getInputProps("name")}
            />
            <TeamSelect
              label="Team"
              description={editing ? "A route's team cannot change." : "The team that owns the route."}
              required
              only={editing ? [route!.teamId] : creatableTeams}
              placeholder="Pick a team"
              disabled={editing}
              value={v.teamId || undefined}
              onChange={(t) => form.setFieldValue("teamId", t ?? "")}
              error={form.errors.teamId}
            />
          </Row>
          <Row>
            <TextInput
              label="Path prefix"
              description="Matched on whole segments; the longest prefix wins."
              required
              maxLength={200}
              placeholder="/billing"
              {...form.getInputProps("pathPrefix")}
            />
            <TextInput
              label="Backend URL"
              description="http(s), without user info, query or fragment."
              required
              maxLength={2000}
              placeholder="https://billing.internal.example.com/v2"
              {...form.getInputProps("backendUrl")}
            />
          </Row>
          <Textarea label="Description" autosize minRows={1} maxRows={4} maxLength={1000} {...form.getInputProps("description")} />
          <TagsInput
            label="Tags"
            description="Tokens can be granted every route with a tag (scope tag:<tag>). Lowercase letters, digits, '.', '_' and '-'."
            placeholder={v.tags.length ? undefined : "Type a tag, press Enter"}
            data={(tags.data ?? []).map((t) => t.tag)}
            clearable
            {...form.getInputProps("tags")}
          />

          <Section title="Access" />
          <Checkbox.Group label="Methods" description="Nothing checked allows every method." {...form.getInputProps("methods")}>
            <Group gap="md" mt={6}>
              {METHODS.map((m) => (
                <Checkbox key={m} value={m} label={m} size="xs" classNames={{ label: "kg-mono" }} />
              ))}
            </Group>
          </Checkbox.Group>
          <MultiSelect
            label="Allowed teams"
            description="Teams whose tokens may be granted this route. Empty: every team."
            placeholder={v.allowedTeamIds.length ? undefined : "Every team"}
            data={teamChoices}
            searchable
            clearable
            hidePickedOptions
            nothingFoundMessage="No team matches"
            {...form.getInputProps("allowedTeamIds")}
          />
          <Row>
            <TagsInput
              label="CORS origins"
              description="* alone, or origins like https://app.example.com. Empty: off."
              placeholder={v.corsOrigins.length ? undefined : "No CORS handling"}
              maxTags={20}
              clearable
              {...form.getInputProps("corsOrigins")}
            />
            <NumberInput
              label="Rate limit"
              description="Per token on this route. Empty or 0: no limit."
              placeholder="No limit"
              min={0}
              max={1_000_000}
              allowDecimal={false}
              allowNegative={false}
              thousandSeparator=","
              rightSection={<Text size="xs" c="dimmed" pr={28}>/min</Text>}
              rightSectionWidth={60}
              {...form.getInputProps("rateLimit")}
            />
          </Row>

          <Section title="Edge" />
          <Row>
            <NumberInput
              label="Backend timeout"
              description={`Milliseconds, 1-${MAX_TIMEOUT_MS.toLocaleString("en")}. Empty: ${DEFAULT_TIMEOUT_MS.toLocaleString("en")}.`}
              placeholder={String(DEFAULT_TIMEOUT_MS)}
              min={1}
              max={MAX_TIMEOUT_MS}
              allowDecimal={false}
              allowNegative={false}
              thousandSeparator=","
              {...form.getInputProps("timeoutMs")}
            />
            <Switch
              mt={28}
              label="Strip the path prefix"
              description={
                v.stripPrefix
                  ? `${prefixExample(v.pathPrefix)}/x reaches the backend as /x.`
                  : `${prefixExample(v.pathPrefix)}/x reaches the backend as ${prefixExample(v.pathPrefix)}/x.`
              }
              {...form.getInputProps("stripPrefix", { type: "checkbox" })}
            />
          </Row>

          <Section title="Backend auth" />
          <div>
            <Input.Label id="route-auth-label">Credential the gateway adds</Input.Label>
            <Input.Description mb={6}>Sent to the backend with every forwarded request; clients never see it.</Input.Description>
            <SegmentedControl
              aria-labelledby="route-auth-label"
              size="xs"
              data={AUTH_KINDS}
              value={v.authKind}
              onChange={(k) => {
                form.setFieldValue("authKind", k as AuthKind);
                form.setFieldValue("secret", "");
                form.clearFieldError("secret");
              }}
            />
            {form.errors.authKind && (
              <Text size="xs" c="red" mt={4}>
                {form.errors.authKind}
              </Text>
            )}
          </div>
          {v.authKind === "bearer" && <PasswordInput label="Token" {...secretProps} />}
          {v.authKind === "apiKey" && (
            <Row>
              <TextInput label="Header" required maxLength={100} placeholder="X-API-Key" {...form.getInputProps("headerName")} />
              <PasswordInput label="Key" {...secretProps} />
            </Row>
          )}
          {v.authKind === "basic" && (
            <Row>
              <TextInput label="Username" required maxLength={200} autoComplete="off" {...form.getInputProps("username")} />
              <PasswordInput label="Password" {...secretProps} />
            </Row>
          )}
          {editing && v.authKind === "none" && authKindOf(route!.backendAuth?.type) !== "none" && (
            <Text size="xs" c="orange">
              Saving removes the stored credential.
            </Text>
          )}

          <Group justify="flex-end" mt="sm">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={save.isPending}>
              {editing ? "Save" : "Create route"}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function prefixExample(p: string): string {
  const t = p.trim().replace(/\/+$/, "");
  return t || "";
}

/** Two fields side by side (static CSS: no responsive style props under the CSP). */
function Row({ children }: { children: ReactNode }) {
  return (
    <Group grow align="flex-start" gap="md" wrap="nowrap">
      {children}
    </Group>
  );
}

function Section({ title }: { title: string }) {
  return <Divider mt="xs" label={<Text size="xs" fw={600} tt="uppercase" c="dimmed">{title}</Text>} labelPosition="left" />;
}
