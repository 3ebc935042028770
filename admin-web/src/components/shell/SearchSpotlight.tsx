/**
 * Ctrl-K: jump to a page, or search tokens, routes, teams and users through their List RPCs'
 * query filters. Results link to the list page filtered to the hit (deep links).
 */
import { useState } from "react";
import { Badge, Group, Text } from "@mantine/core";
import { Spotlight } from "@mantine/spotlight";
import { useDebouncedValue } from "@mantine/hooks";
import { useQuery } from "@tanstack/react-query";
import { useNavigate } from "@tanstack/react-router";
import { IconKey, IconRoute, IconSearch, IconUser, IconUsersGroup } from "@tabler/icons-react";
import { routesApi, teamsApi, tokensApi, usersApi } from "../../api/transport";
import { NAV } from "../../nav";
import { useMe } from "../../auth/session";
import { canListUsers } from "../../auth/permissions";

const LIMIT = 5;

export function SearchSpotlight() {
  const [query, setQuery] = useState("");
  const [debounced] = useDebouncedValue(query.trim(), 200);
  const navigate = useNavigate();
  const me = useMe();
  const enabled = debounced.length >= 2;

  const tokens = useQuery({
    queryKey: ["spotlight", "tokens", debounced],
    queryFn: ({ signal }) => tokensApi.listTokens({ query: debounced, pageSize: LIMIT }, { signal }),
    enabled,
  });
  const routes = useQuery({
    queryKey: ["spotlight", "routes", debounced],
    queryFn: ({ signal }) => routesApi.listRoutes({ query: debounced, pageSize: LIMIT }, { signal }),
    enabled,
  });
  const teams = useQuery({
    queryKey: ["spotlight", "teams", debounced],
    queryFn: ({ signal }) => teamsApi.listTeams({ query: debounced, pageSize: LIMIT }, { signal }),
    enabled,
  });
  const users = useQuery({
    queryKey: ["spotlight", "users", debounced],
    queryFn: ({ signal }) => usersApi.listUsers({ query: debounced, pageSize: LIMIT }, { signal }),
    enabled: enabled && canListUsers(me),
  });

  const q = query.trim().toLowerCase();
  const pages = NAV.flatMap((g) => g.items).filter(
    (i) => (i.visible?.(me) ?? true) && (!q || i.label.toLowerCase().includes(q) || i.keywords?.some((k) => k.includes(q))),
  );
  const loading = enabled && [tokens, routes, teams].some((r) => r.isFetching);
  const hits =
    (tokens.data?.tokens.length ?? 0) +
    (routes.data?.routes.length ?? 0) +
    (teams.data?.teams.length ?? 0) +
    (users.data?.users.length ?? 0);

  return (
    <Spotlight.Root query={query} onQueryChange={setQuery} shortcut={["mod + K", "/"]} scrollable maxHeight={480} lockScroll={false} title="Search" classNames={{ header: "kg-visually-hidden" }}>
      <Spotlight.Search placeholder="Search tokens, routes, teams, users, pages…" leftSection={<IconSearch size={18} stroke={1.5} />} aria-label="Search" />
      <Spotlight.ActionsList>
        {pages.length > 0 && (
          <Spotlight.ActionsGroup label="Pages">
            {pages.map((p) => (
              <Spotlight.Action key={p.to} label={p.label} leftSection={<p.icon size={18} stroke={1.5} />} onClick={() => navigate({ to: p.to })} />
            ))}
          </Spotlight.ActionsGroup>
        )}
        {enabled && (tokens.data?.tokens.length ?? 0) > 0 && (
          <Spotlight.ActionsGroup label="Tokens">
            {tokens.data!.tokens.map((t) => (
              <Spotlight.Action
                key={t.id}
                leftSection={<IconKey size={18} stroke={1.5} />}
                onClick={() => navigate({ to: "/tokens", search: { q: t.name, open: t.id } })}
              >
                <Hit title={t.name} sub={`${t.preview} · ${t.teamId}`} />
              </Spotlight.Action>
            ))}
          </Spotlight.ActionsGroup>
        )}
        {enabled && (routes.data?.routes.length ?? 0) > 0 && (
          <Spotlight.ActionsGroup label="Routes">
            {routes.data!.routes.map((r) => (
              <Spotlight.Action key={r.id} leftSection={<IconRoute size={18} stroke={1.5} />} onClick={() => navigate({ to: "/routes", search: { q: r.name } })}>
                <Hit title={r.name} sub={`${r.pathPrefix} → ${r.backendUrl}`} />
              </Spotlight.Action>
            ))}
          </Spotlight.ActionsGroup>
        )}
        {enabled && (teams.data?.teams.length ?? 0) > 0 && (
          <Spotlight.ActionsGroup label="Teams">
            {teams.data!.teams.map((t) => (
              <Spotlight.Action key={t.id} leftSection={<IconUsersGroup size={18} stroke={1.5} />} onClick={() => navigate({ to: "/teams", search: { q: t.id } })}>
                <Hit title={t.name} sub={t.id} />
              </Spotlight.Action>
            ))}
          </Spotlight.ActionsGroup>
        )}
        {enabled && (users.data?.users.length ?? 0) > 0 && (
          <Spotlight.ActionsGroup label="Users">
            {users.data!.users.map((u) => (
              <Spotlight.Action key={u.id} leftSection={<IconUser size={18} stroke={1.5} />} onClick={() => navigate({ to: "/users", search: { q: u.email } })}>
                <Hit title={u.displayName || u.email} sub={u.email} badge={u.disabled ? "disabled" : undefined} />
              </Spotlight.Action>
            ))}
          </Spotlight.ActionsGroup>
        )}
        {pages.length === 0 && hits === 0 && (
          <Spotlight.Empty>{!enabled ? "Type at least 2 characters" : loading ? "Searching…" : "Nothing found"}</Spotlight.Empty>
        )}
      </Spotlight.ActionsList>
    </Spotlight.Root>
  );
}

function Hit({ title, sub, badge }: { title: string; sub: string; badge?: string | undefined }) {
  return (
    <Group wrap="nowrap" gap="xs" style={{ flex: 1, minWidth: 0 }}>
      <div style={{ minWidth: 0, flex: 1 }}>
        <Text size="sm" className="kg-truncate">
          {title}
        </Text>
        <Text size="xs" c="dimmed" className="kg-truncate kg-mono">
          {sub}
        </Text>
      </div>
      {badge && <Badge color="gray">{badge}</Badge>}
    </Group>
  );
}
