/** Create a token, or edit one (team is immutable; expiry can be kept or reset from now). */
import { useEffect, useState } from "react";
import { Button, Group, Modal, NumberInput, SegmentedControl, Stack, Text, TextInput, Textarea } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { create } from "@bufbuild/protobuf";
import type { CreateTokenResponse, Token } from "../../gen/keygate/v1/token_pb";
import { StringListSchema } from "../../gen/keygate/v1/common_pb";
import { tokensApi } from "../../api/transport";
import { ScopePicker } from "../../components/domain/ScopePicker";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { FormFailureAlert } from "../../components/form/FormFailureAlert";
import { applyServerError, type FormFailure } from "../../components/form/serverErrors";
import { notifySuccess } from "../../components/misc/notify";
import { absoluteTime, tsToDate } from "../../lib/format";
import { EXPIRY_PRESETS, toWireExpiry, validateCustomDays, type ExpiryMode } from "./expiry";

const FIELD_MAP = {
  team_id: "teamId",
  expires_in_days: "customDays",
  never_expires: "expiryMode",
  expiry: "expiryMode",
  rate_limit_per_minute: "rateLimit",
};

interface Values {
  name: string;
  teamId: string;
  description: string;
  scopes: string[];
  expiryMode: ExpiryMode;
  customDays: number | string;
  rateLimit: number | string;
}

export function TokenFormModal({
  opened,
  onClose,
  token,
  creatableTeams,
  defaultTeam,
  onCreated,
}: {
  opened: boolean;
  onClose: () => void;
  /** Set to edit this token; absent to create one. */
  token?: Token | undefined;
  creatableTeams: string[];
  defaultTeam?: string | undefined;
  onCreated: (r: CreateTokenResponse) => void;
}) {
  const qc = useQueryClient();
  const editing = !!token;
  const [failure, setFailure] = useState<FormFailure | null>(null);
  const form = useForm<Values>({
    initialValues: initial(token, defaultTeam, creatableTeams),
    validate: {
      name: (v) => (v.trim() ? null : "Give the token a name"),
      teamId: (v) => (v ? null : "Pick the owning team"),
      scopes: (v) => (v.length ? null : "Pick at least one scope"),
      customDays: (v, all) => validateCustomDays(all.expiryMode, v),
      rateLimit: (v) => (v === "" || (Number.isInteger(Number(v)) && Number(v) >= 0 && Number(v) <= 1_000_000) ? null : "0 to 1,000,000"),
    },
  });

  useEffect(() => {
    if (opened) {
      form.setInitialValues(initial(token, defaultTeam, creatableTeams));
      form.reset();
      setFailure(null);
    }
  }, [opened, token?.id]);

  const save = useMutation({
    mutationFn: async (v: Values) => {
      const rate = v.rateLimit === "" ? 0 : Number(v.rateLimit);
      const expiry = toWireExpiry(v.expiryMode, v.customDays);
      if (!token) {
        return tokensApi.createToken({
          name: v.name.trim(),
          teamId: v.teamId,
          description: v.description.trim(),
          scopes: v.scopes,
          expiry,
          rateLimitPerMinute: rate,
        });
      }
      const sameScopes = v.scopes.length === token.scopes.length && v.scopes.every((s, i) => s === token.scopes[i]);
      await tokensApi.updateToken({
        id: token.id,
        name: v.name.trim() !== token.name ? v.name.trim() : undefined,
        description: v.description.trim() !== token.description ? v.description.trim() : undefined,
        scopes: sameScopes ? undefined : create(StringListSchema, { values: v.scopes }),
        expiry,
        rateLimitPerMinute: rate !== token.rateLimitPerMinute ? rate : undefined,
      });
      return undefined;
    },
    onMutate: () => setFailure(null),
    onSuccess: (res) => {
      void qc.invalidateQueries({ queryKey: ["tokens"] });
      void qc.invalidateQueries({ queryKey: ["dashboard"] });
      onClose();
      if (res) onCreated(res);
      else notifySuccess("Token saved");
    },
    onError: (err) => setFailure(applyServerError(form, err, FIELD_MAP)),
  });

  const exp = tsToDate(token?.expiresAt);
  const expiryOptions = editing
    ? [{ value: "keep", label: "Keep" }, ...EXPIRY_PRESETS.map((p) => ({ ...p }))]
    : EXPIRY_PRESETS.map((p) => ({ ...p }));

  return (
    <Modal opened={opened} onClose={onClose} title={editing ? `Edit token "${token!.name}"` : "Create token"} size="lg">
      <form onSubmit={form.onSubmit((v) => save.mutate(v))} noValidate>
        <Stack gap="sm">
          <FormFailureAlert failure={failure} />
          <TextInput label="Name" required data-autofocus maxLength={100} placeholder="e.g. n8n invoices workflow" {...form.getInputProps("name")} />
          <TeamSelect
            label="Team"
            description={editing ? "A token's team cannot change." : "The team that owns the token."}
            required
            only={editing ? [token!.teamId] : creatableTeams}
            disabled={editing}
            value={form.values.teamId || undefined}
            onChange={(v) => form.setFieldValue("teamId", v ?? "")}
            error={form.errors.teamId}
          />
          <Textarea label="Description" autosize minRows={2} maxRows={5} maxLength={1000} {...form.getInputProps("description")} />
          <ScopePicker value={form.values.scopes} onChange={(v) => form.setFieldValue("scopes", v)} error={form.errors.scopes} />
          <div>
            <Text size="sm" fw={500} mb={4} id="expiry-label">
              Expires
            </Text>
            <SegmentedControl
              aria-labelledby="expiry-label"
              size="xs"
              data={expiryOptions}
              value={form.values.expiryMode}
              onChange={(v) => form.setFieldValue("expiryMode", v as ExpiryMode)}
            />
            {form.values.expiryMode === "custom" && (
              <NumberInput mt={6} w={200} label="Days from now" min={1} max={3650} allowDecimal={false} {...form.getInputProps("customDays")} />
            )}
            <Text size="xs" c={form.errors.expiryMode ? "red" : "dimmed"} mt={4}>
              {form.errors.expiryMode ??
                (form.values.expiryMode === "keep"
                  ? exp
                    ? `Keeps its expiry: ${absoluteTime(exp)}.`
                    : "Keeps never expiring."
                  : form.values.expiryMode === "never"
                    ? "The token works until it is revoked."
                    : editing
                      ? "The new expiry counts from now."
                      : null)}
            </Text>
          </div>
          <NumberInput
            label="Rate limit"
            description="Requests per minute over all routes; empty or 0: no per-token limit."
            placeholder="No limit"
            min={0}
            max={1_000_000}
            allowDecimal={false}
            thousandSeparator=","
            w={340}
            {...form.getInputProps("rateLimit")}
          />
          <Group justify="flex-end" mt="sm">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={save.isPending}>
              {editing ? "Save" : "Create token"}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function initial(token: Token | undefined, defaultTeam: string | undefined, creatable: string[]): Values {
  if (token) {
    return {
      name: token.name,
      teamId: token.teamId,
      description: token.description,
      scopes: [...token.scopes],
      expiryMode: "keep",
      customDays: 30,
      rateLimit: token.rateLimitPerMinute || "",
    };
  }
  const team = defaultTeam && creatable.includes(defaultTeam) ? defaultTeam : creatable.length === 1 ? creatable[0]! : "";
  return { name: "", teamId: team, description: "", scopes: [], expiryMode: "90", customDays: 30, rateLimit: "" };
}
