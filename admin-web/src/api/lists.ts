/** Shared list queries used by pickers and filters on several pages. */
import { queryOptions } from "@tanstack/react-query";
import { routesApi, systemApi, teamsApi } from "./transport";

/** Every team the caller can see (pickers, filters). */
export const allTeamsQuery = queryOptions({
  queryKey: ["teams", "all"],
  queryFn: ({ signal }) => teamsApi.listTeams({ pageSize: 500 }, { signal }),
  staleTime: 60_000,
  select: (r) => r.teams,
});

/** Every route (the catalogue is readable by every signed-in caller). */
export const allRoutesQuery = queryOptions({
  queryKey: ["routes", "all"],
  queryFn: ({ signal }) => routesApi.listRoutes({ pageSize: 500 }, { signal }),
  staleTime: 60_000,
  select: (r) => r.routes,
});

export const routeTagsQuery = queryOptions({
  queryKey: ["routes", "tags"],
  queryFn: ({ signal }) => routesApi.listRouteTags({}, { signal }),
  staleTime: 60_000,
  select: (r) => r.tags,
});

/** Facts about this control plane (version, gateway public URL, token prefix, whether usage
 * is collected): GetServerInfo, public and stable, asked once per session. */
export const serverInfoQuery = queryOptions({
  queryKey: ["system", "server-info"],
  queryFn: ({ signal }) => systemApi.getServerInfo({}, { signal }),
  staleTime: 10 * 60_000,
  retry: false,
});
