/**
 * Create a team (the caller becomes its ADMIN) or edit one (its slug cannot change), with a
 * live preview of the card. The slug is suggested from the name until it is typed by hand.
 */
import { useEffect, useRef, useState } from "react";
import { Button, ColorInput, Group, Modal, Stack, Text, TextInput, Textarea, type ColorInputProps } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Code } from "@connectrpc/connect";
import type { Team } from "../../gen/keygate/v1/team_pb";
import { teamsApi } from "../../api/transport";
import { meQuery } from "../../auth/session";
import { FormFailureAlert } from "../../components/form/FormFailureAlert";
import { applyServerError, type FormFailure } from "../../components/form/serverErrors";
import { notifySuccess } from "../../components/misc/notify";
import { ICON_MAX, TEAM_COLORS, iconLength, isTeamColor, slugFromName, slugProblem } from "./team";
import { TeamCard } from "./TeamCard";
import classes from "./Teams.module.css";

interface Values {
  id: string;
  name: string;
  description: string;
  color: string;
  icon: string;
}

const ICONS = ["🛠", "💳", "📈", "🔐", "📦", "🚀", "🧪", "🤖", "📊", "🌐"];

export function TeamFormModal({
  opened,
  onClose,
  team,
  onSaved,
}: {
  opened: boolean;
  onClose: () => void;
  /** Set to edit this team; absent to create one. */
  team?: Team | undefined;
  onSaved?: (t: Team, created: boolean) => void;
}) {
  const qc = useQueryClient();
  const editing = !!team;
  const [failure, setFailure] = useState<FormFailure | null>(null);
  // The slug follows the name until the user types one.
  const slugTouched = useRef(false);
  const form = useForm<Values>({
    initialValues: initial(team),
    validate: {
      id: (v) => (editing ? null : slugProblem(v)),
      name: (v) => (v.trim() ? null : "Give the team a name"),
      color: (v) => (isTeamColor(v) ? null : "#rrggbb, or empty"),
      icon: (v) => (iconLength(v) <= ICON_MAX ? null : `At most ${ICON_MAX} characters`),
    },
  });

  useEffect(() => {
    if (opened) {
      slugTouched.current = false;
      form.setInitialValues(initial(team));
      form.reset();
      setFailure(null);
    }
  }, [opened, team?.id]);

  const save = useMutation({
    mutationFn: async (v: Values): Promise<{ team: Team | undefined; created: boolean; unchanged?: boolean }> => {
      const name = v.name.trim();
      const description = v.description.trim();
      const color = v.color.toLowerCase();
      if (!team) {
        const r = await teamsApi.createTeam({ id: v.id, name, description, color, icon: v.icon.trim() });
        return { team: r.team, created: true };
      }
      const patch = {
        name: name !== team.name ? name : undefined,
        description: description !== team.description ? description : undefined,
        color: color !== team.color ? color : undefined,
        icon: v.icon.trim() !== team.icon ? v.icon.trim() : undefined,
      };
      if (Object.values(patch).every((x) => x === undefined)) return { team, created: false, unchanged: true };
      const r = await teamsApi.updateTeam({ id: team.id, ...patch });
      return { team: r.team, created: false };
    },
    onMutate: () => setFailure(null),
    onSuccess: (res) => {
      void qc.invalidateQueries({ queryKey: ["teams"] });
      // The creator becomes ADMIN of the new team: the caller's roles changed.
      if (res.created) void qc.invalidateQueries({ queryKey: meQuery.queryKey });
      onClose();
      notifySuccess(res.unchanged ? "Nothing changed" : res.created ? `Team "${res.team?.name}" created; you are its admin` : "Team saved");
      if (res.team) onSaved?.(res.team, res.created);
    },
    onError: (err) => {
      const f = applyServerError(form, err);
      // A taken slug is answered ALREADY_EXISTS without a field: show it at the slug.
      if (!team && f.code === Code.AlreadyExists && Object.keys(f.fields).length === 0) {
        form.setFieldError("id", f.message);
        setFailure(null);
      } else setFailure(f);
    },
  });

  const v = form.values;
  const idProblem = !editing && v.id ? slugProblem(v.id) : null;

  return (
    <Modal opened={opened} onClose={onClose} title={editing ? `Edit team "${team!.name || team!.id}"` : "Create team"} size={880}>
      <form onSubmit={form.onSubmit((vals) => save.mutate(vals))} noValidate>
        <div className={classes.formLayout}>
          <Stack gap="sm">
            <FormFailureAlert failure={failure} />
            <TextInput
              label="Name"
              required
              data-autofocus
              maxLength={100}
              placeholder="Payments"
              {...form.getInputProps("name")}
              onChange={(e) => {
                const name = e.currentTarget.value;
                form.setFieldValue("name", name);
                if (!editing && !slugTouched.current) form.setFieldValue("id", slugFromName(name));
              }}
            />
            <TextInput
              label="Slug"
              required={!editing}
              disabled={editing}
              maxLength={40}
              placeholder="payments"
              description={
                editing
                  ? "The team's id cannot change: tokens, routes and roles refer to it."
                  : "The team's permanent id: 2-40 lowercase letters, digits and -, starting with a letter."
              }
              classNames={{ input: "kg-mono" }}
              {...form.getInputProps("id")}
              error={form.errors.id ?? (idProblem && slugTouched.current ? idProblem : undefined)}
              onChange={(e) => {
                slugTouched.current = true;
                form.setFieldValue("id", e.currentTarget.value.toLowerCase());
              }}
            />
            <Textarea label="Description" autosize minRows={2} maxRows={5} maxLength={1000} {...form.getInputProps("description")} />
            <Group grow align="flex-start" wrap="nowrap">
              <ColourInput {...form.getInputProps("color")} />
              <TextInput
                label="Icon"
                description={`An emoji or up to ${ICON_MAX} characters.`}
                placeholder="None"
                {...form.getInputProps("icon")}
              />
            </Group>
            <div>
              <Text size="xs" c="dimmed" mb={4} id="team-icon-picks">
                Quick icons
              </Text>
              <Group gap={4} role="group" aria-labelledby="team-icon-picks">
                {ICONS.map((i) => (
                  <Button
                    key={i}
                    variant={v.icon === i ? "light" : "default"}
                    size="compact-sm"
                    px={6}
                    aria-label={`Use icon ${i}`}
                    aria-pressed={v.icon === i}
                    onClick={() => form.setFieldValue("icon", v.icon === i ? "" : i)}
                  >
                    {i}
                  </Button>
                ))}
              </Group>
            </div>
          </Stack>
          <div className={classes.preview}>
            <Text size="xs" fw={600} c="dimmed" tt="uppercase" mb={6}>
              Preview
            </Text>
            <TeamCard
              team={{
                id: v.id,
                name: v.name.trim(),
                description: v.description.trim(),
                color: isTeamColor(v.color) ? v.color : "",
                icon: v.icon.trim(),
                memberCount: team?.memberCount ?? 1,
                tokenCount: team?.tokenCount ?? 0,
                routeCount: team?.routeCount ?? 0,
              }}
            />
            {!editing && (
              <Text size="xs" c="dimmed" mt={8}>
                You become the team&apos;s admin.
              </Text>
            )}
          </div>
        </div>
        <Group justify="flex-end" mt="lg">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" loading={save.isPending}>
            {editing ? "Save" : "Create team"}
          </Button>
        </Group>
      </form>
    </Modal>
  );
}

function initial(team: Team | undefined): Values {
  return team
    ? { id: team.id, name: team.name, description: team.description, color: team.color, icon: team.icon }
    : { id: "", name: "", description: "", color: "", icon: "" };
}

/**
 * The team colour with its swatch picker. In a Modal, Mantine's ColorInput lets Escape close
 * the whole dialog while its picker is open; here the picker's open state is ours (it
 * overrides the popover's), Escape closes only the picker, and the input carries
 * `data-mantine-stop-propagation` while it is open so the Modal ignores that key.
 */
function ColourInput(props: ColorInputProps) {
  const [open, setOpen] = useState(false);
  return (
    <ColorInput
      label="Colour"
      placeholder="None"
      format="hex"
      swatches={TEAM_COLORS}
      swatchesPerRow={6}
      withEyeDropper={false}
      {...props}
      popoverProps={{ opened: open }}
      data-mantine-stop-propagation={open ? "true" : undefined}
      onFocus={(e) => {
        props.onFocus?.(e);
        setOpen(true);
      }}
      onClick={(e) => {
        props.onClick?.(e);
        setOpen(true);
      }}
      onBlur={(e) => {
        props.onBlur?.(e);
        setOpen(false);
      }}
      onKeyDown={(e) => {
        props.onKeyDown?.(e);
        if (e.key === "Escape" && open) setOpen(false);
      }}
    />
  );
}
