/**
 * Token scopes: `*` (every route), a route name, or `tag:<tag>`. The choices come from
 * ListRoutes and ListRouteTags; a scope that names no existing route or tag is kept and
 * flagged, never silently dropped.
 */
import { MultiSelect, Select, Text, type ComboboxItem, type ComboboxItemGroup } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { allRoutesQuery, routeTagsQuery } from "../../api/lists";

export function useScopeChoices(extra: string[] = []): { groups: ComboboxItemGroup<ComboboxItem>[]; unknown: string[] } {
  const routes = useQuery(allRoutesQuery);
  const tags = useQuery(routeTagsQuery);
  const routeItems = (routes.data ?? []).map((r) => ({ value: r.name, label: `${r.name}  ${r.pathPrefix}` }));
  const tagItems = (tags.data ?? []).map((t) => ({ value: `tag:${t.tag}`, label: `tag:${t.tag} (${t.routeCount} route${t.routeCount === 1 ? "" : "s"})` }));
  const known = new Set(["*", ...routeItems.map((i) => i.value), ...tagItems.map((i) => i.value)]);
  const loaded = routes.isSuccess && tags.isSuccess;
  const unknown = loaded ? extra.filter((s) => !known.has(s)) : [];
  const groups: ComboboxItemGroup<ComboboxItem>[] = [
    { group: "Everything", items: [{ value: "*", label: "* (every route)" }] },
    { group: "Routes", items: routeItems },
    { group: "Tags", items: tagItems },
  ];
  if (unknown.length) groups.push({ group: "Unknown (no such route or tag)", items: unknown.map((s) => ({ value: s, label: s })) });
  return { groups: groups.filter((g) => g.items.length > 0), unknown };
}

export function ScopePicker({
  value,
  onChange,
  error,
  label = "Scopes",
}: {
  value: string[];
  onChange: (v: string[]) => void;
  error?: React.ReactNode;
  label?: string;
}) {
  const { groups, unknown } = useScopeChoices(value);
  return (
    <MultiSelect
      label={label}
      description="Which routes the token may call: every route (*), single routes, or every route carrying a tag."
      placeholder={value.length ? undefined : "Pick routes or tags"}
      data={groups}
      value={value}
      onChange={onChange}
      searchable
      clearable
      hidePickedOptions
      maxDropdownHeight={280}
      nothingFoundMessage="No route or tag matches"
      error={
        error ??
        (unknown.length > 0 ? (
          <Text span size="xs" c="orange">
            Not an existing route or tag: {unknown.join(", ")}
          </Text>
        ) : undefined)
      }
      required
    />
  );
}

/** One scope, for the list filter. */
export function ScopeFilter({ value, onChange }: { value: string | undefined; onChange: (v: string | undefined) => void }) {
  const { groups } = useScopeChoices(value ? [value] : []);
  return (
    <Select
      aria-label="Scope"
      placeholder="Any scope"
      data={groups}
      value={value ?? null}
      onChange={(v) => onChange(v ?? undefined)}
      searchable
      clearable
      w={150}
      size="xs"
      comboboxProps={{ width: 280, position: "bottom-start" }}
    />
  );
}
