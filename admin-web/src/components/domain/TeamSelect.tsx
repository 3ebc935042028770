import { Select, type SelectProps } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { allTeamsQuery } from "../../api/lists";

/** Pick a team; `only` limits the choices (e.g. teams where the caller may create). */
export function TeamSelect({
  value,
  onChange,
  only,
  ...rest
}: { value: string | undefined; onChange: (v: string | undefined) => void; only?: string[] } & Omit<SelectProps, "value" | "onChange" | "data">) {
  const teams = useQuery(allTeamsQuery);
  const ids = new Set(only ?? []);
  const data = (teams.data ?? [])
    .filter((t) => !only || ids.has(t.id))
    .map((t) => ({ value: t.id, label: t.name && t.name !== t.id ? `${t.name} (${t.id})` : t.id }));
  // Teams the caller holds a role in but cannot list (should not happen) still show by id.
  for (const id of only ?? []) if (!data.some((d) => d.value === id)) data.push({ value: id, label: id });
  return (
    <Select
      data={data}
      value={value ?? null}
      onChange={(v) => onChange(v ?? undefined)}
      searchable
      nothingFoundMessage="No team matches"
      disabled={teams.isPending && !only}
      {...rest}
    />
  );
}
