/** Shared list queries used by pickers and filters on several pages. */
import { queryOptions } from "@tanstack/react-query";
import { routesApi, teamsApi } from "./transport";

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
