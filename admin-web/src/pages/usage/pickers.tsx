/** Filter pickers of the usage pages: token (searched on the server), route, gateway, status. */
import { useState } from "react";
import { Select, type SelectProps } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { tokensApi, usageApi } from "../../api/transport";
import { allRoutesQuery } from "../../api/lists";
import { STATUS_FILTERS, STATUS_FILTER_LABEL, type StatusFilter } from "./search";

type Common = Omit<SelectProps, "value" | "onChange" | "data">;

/** A token by name: the first 20 matches of what is typed (tokens may be many). */
export function TokenSelect({ value, onChange, ...rest }: { value: string | undefined; onChange: (v: string | undefined) => void } & Common) {
  const [search, setSearch] = useState("");
  const [q] = useDebouncedValue(search, 250);
  const list = useQuery({
    queryKey: ["tokens", "pick", q],
    queryFn: ({ signal }) => tokensApi.listTokens({ query: q, pageSize: 20 }, { signal }),
    placeholderData: keepPreviousData,
    staleTime: 30_000,
  });
  const current = useQuery({
    queryKey: ["tokens", "get", value],
    queryFn: ({ signal }) => tokensApi.getToken({ id: value! }, { signal }),
    enabled: !!value,
    staleTime: 60_000,
    retry: false,
  });
  const data = (list.data?.tokens ?? []).map((t) => ({ value: t.id, label: `${t.name} · ${t.teamId}` }));
  if (value && !data.some((d) => d.value === value)) {
    const t = current.data?.token;
    data.unshift({ value, label: t ? `${t.name} · ${t.teamId}` : value });
  }
  return (
    <Select
      data={data}
      value={value ?? null}
      onChange={(v) => onChange(v ?? undefined)}
      searchable
      searchValue={search}
      onSearchChange={setSearch}
      filter={({ options }) => options}
      nothingFoundMessage={list.isFetching ? "Searching…" : "No token matches"}
      clearable
      {...rest}
    />
  );
}

export function RouteSelect({ value, onChange, ...rest }: { value: string | undefined; onChange: (v: string | undefined) => void } & Common) {
  const routes = useQuery(allRoutesQuery);
  const data = (routes.data ?? []).map((r) => ({ value: r.name, label: r.name }));
  if (value && !data.some((d) => d.value === value)) data.unshift({ value, label: value });
  return (
    <Select
      data={data}
      value={value ?? null}
      onChange={(v) => onChange(v ?? undefined)}
      searchable
      clearable
      nothingFoundMessage="No route matches"
      {...rest}
    />
  );
}

/** Gateways that have reported (system admins only: hidden for callers the server refuses). */
export function useGateways(enabled: boolean) {
  return useQuery({
    queryKey: ["usage", "gateways"],
    queryFn: ({ signal }) => usageApi.listGateways({}, { signal }),
    enabled,
    staleTime: 30_000,
    retry: false,
  });
}

export function GatewaySelect({ value, onChange, names, ...rest }: { value: string | undefined; onChange: (v: string | undefined) => void; names: string[] } & Common) {
  const data = names.map((n) => ({ value: n, label: n }));
  if (value && !names.includes(value)) data.unshift({ value, label: value });
  return <Select data={data} value={value ?? null} onChange={(v) => onChange(v ?? undefined)} clearable searchable nothingFoundMessage="No gateway" {...rest} />;
}

export function StatusSelect({ value, onChange, ...rest }: { value: StatusFilter | undefined; onChange: (v: StatusFilter | undefined) => void } & Common) {
  return (
    <Select
      data={STATUS_FILTERS.map((s) => ({ value: s, label: STATUS_FILTER_LABEL[s] }))}
      value={value ?? null}
      onChange={(v) => onChange((v as StatusFilter | null) ?? undefined)}
      clearable
      {...rest}
    />
  );
}
