/**
 * The route tree. Every page is a lazy (code-split) component from `src/pages/<name>/`;
 * search params are validated here (filters live in the URL, so links are deep links).
 * Everything under the pathless `app` route needs a signed-in caller: its loader loads
 * GetCurrentUser and sends an UNAUTHENTICATED caller to /sign-in?next=<where they were>.
 */
import {
  Outlet,
  createRootRouteWithContext,
  createRoute,
  createRouter,
  lazyRouteComponent,
  redirect,
} from "@tanstack/react-router";
import type { FetchQueryOptions, QueryClient } from "@tanstack/react-query";
import { meQuery } from "./auth/session";
import { isUnauthenticated } from "./api/errors";
import { compact, safeNext, str } from "./lib/search";
import { validateTokensSearch } from "./pages/tokens/search";
import { tokensListQuery } from "./pages/tokens/queries";
import { dashboardQuery, dashboardUsageQuery, topUsageQuery } from "./pages/dashboard/queries";
import { allTeamsQuery } from "./api/lists";
import { validateRoutesSearch } from "./pages/routes/search";
import { validateTeamsSearch } from "./pages/teams/search";
import { validateUsersSearch } from "./pages/users/search";
import { validateServiceAccountsSearch } from "./pages/service-accounts/search";
import { validateAuditSearch } from "./pages/audit/search";
import { validateDetailSearch, validateTailSearch, validateUsageSearch } from "./pages/usage/search";
import { AppShell } from "./components/shell/AppShell";
import { LoadingState } from "./components/states/LoadingState";
import { ErrorState } from "./components/states/ErrorState";
import { NotFoundPage } from "./pages/not-found/NotFoundPage";

export interface RouterContext {
  queryClient: QueryClient;
}

const rootRoute = createRootRouteWithContext<RouterContext>()({
  component: Outlet,
  notFoundComponent: NotFoundPage,
});

/** Starts a page's first queries from its route loader, so they run while the page's code is
 * still loading (and on hover, with `defaultPreload: "intent"`). Never awaited and never
 * throws: the page's own `useQuery` takes the answer over, error included. Cached data is
 * left alone (the page refetches what is stale). */
function prefetch(queryClient: QueryClient, ...queries: FetchQueryOptions<any, any, any, any>[]) {
  for (const q of queries) void queryClient.ensureQueryData(q).catch(() => undefined);
}

// ---- signed out

const signInRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "sign-in",
  validateSearch: (s: Record<string, unknown>): { next?: string } => compact({ next: safeNext(s.next) }),
  component: lazyRouteComponent(() => import("./pages/sign-in/SignInPage"), "SignInPage"),
});

const setupRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "setup",
  validateSearch: (s: Record<string, unknown>): { code?: string } => compact({ code: str(s.code, 200) }),
  component: lazyRouteComponent(() => import("./pages/setup/SetupPage"), "SetupPage"),
});

const acceptInvitationRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "accept-invitation",
  validateSearch: (s: Record<string, unknown>): { code?: string } => compact({ code: str(s.code, 200) }),
  component: lazyRouteComponent(() => import("./pages/accept-invitation/AcceptInvitationPage"), "AcceptInvitationPage"),
});

// ---- signed in

const appRoute = createRoute({
  getParentRoute: () => rootRoute,
  id: "app",
  // A loader, not beforeLoad: loaders of a route and its children run in parallel, so the
  // page's chunk and first queries load while GetCurrentUser is answered. The page renders
  // only once this resolves; UNAUTHENTICATED goes to sign-in.
  loader: async ({ context, location }) => {
    try {
      await context.queryClient.ensureQueryData(meQuery);
    } catch (e) {
      if (isUnauthenticated(e)) {
        throw redirect({ to: "/sign-in", search: compact({ next: safeNext(location.href) }) });
      }
      throw e;
    }
  },
  component: AppShell,
  notFoundComponent: NotFoundPage,
});

const page = <P extends string>(path: P, importer: () => Promise<Record<string, unknown>>, name: string) =>
  createRoute({
    getParentRoute: () => appRoute,
    path,
    component: lazyRouteComponent(importer as () => Promise<Record<string, () => React.JSX.Element>>, name),
  });

const dashboardRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/",
  validateSearch: (s: Record<string, unknown>): { team?: string } => compact({ team: str(s.team, 40) }),
  loaderDeps: ({ search }) => ({ team: search.team ?? "" }),
  loader: ({ context, deps }) =>
    prefetch(context.queryClient, dashboardQuery(deps.team), dashboardUsageQuery(deps.team), topUsageQuery(deps.team, "tokens")),
  component: lazyRouteComponent(() => import("./pages/dashboard/DashboardPage"), "DashboardPage"),
});

const tokensRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "tokens",
  validateSearch: validateTokensSearch,
  // Only what the list depends on (not `open`, the drawer).
  loaderDeps: ({ search: { open: _open, page: _page, ...list } }) => list,
  loader: ({ context, deps }) => prefetch(context.queryClient, tokensListQuery(deps), allTeamsQuery),
  component: lazyRouteComponent(() => import("./pages/tokens/TokensPage"), "TokensPage"),
});

const routesRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "routes",
  validateSearch: validateRoutesSearch,
  component: lazyRouteComponent(() => import("./pages/routes/RoutesPage"), "RoutesPage"),
});

const teamsRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "teams",
  validateSearch: validateTeamsSearch,
  component: lazyRouteComponent(() => import("./pages/teams/TeamsPage"), "TeamsPage"),
});

const usersRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "users",
  validateSearch: validateUsersSearch,
  component: lazyRouteComponent(() => import("./pages/users/UsersPage"), "UsersPage"),
});

const serviceAccountsRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "service-accounts",
  validateSearch: validateServiceAccountsSearch,
  component: lazyRouteComponent(() => import("./pages/service-accounts/ServiceAccountsPage"), "ServiceAccountsPage"),
});

const auditRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "audit",
  validateSearch: validateAuditSearch,
  component: lazyRouteComponent(() => import("./pages/audit/AuditPage"), "AuditPage"),
});
const usageRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "usage",
  validateSearch: validateUsageSearch,
  component: lazyRouteComponent(() => import("./pages/usage/UsagePage"), "UsagePage"),
});

const usageTailRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "usage/tail",
  validateSearch: validateTailSearch,
  component: lazyRouteComponent(() => import("./pages/usage/TailPage"), "TailPage"),
});

const usageTokenRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "usage/tokens/$tokenId",
  validateSearch: validateDetailSearch,
  component: lazyRouteComponent(() => import("./pages/usage/TokenUsagePage"), "TokenUsagePage"),
});

const usageRouteDetailRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "usage/routes/$route",
  validateSearch: validateDetailSearch,
  component: lazyRouteComponent(() => import("./pages/usage/RouteUsagePage"), "RouteUsagePage"),
});

const systemRoute = page("system", () => import("./pages/system/SystemPage"), "SystemPage");
const changePasswordRoute = page("account/password", () => import("./pages/account/ChangePasswordPage"), "ChangePasswordPage");
const sessionsRoute = page("account/sessions", () => import("./pages/account/SessionsPage"), "SessionsPage");

const routeTree = rootRoute.addChildren([
  signInRoute,
  setupRoute,
  acceptInvitationRoute,
  appRoute.addChildren([
    dashboardRoute,
    tokensRoute,
    routesRoute,
    teamsRoute,
    usersRoute,
    serviceAccountsRoute,
    auditRoute,
    usageRoute,
    usageTailRoute,
    usageTokenRoute,
    usageRouteDetailRoute,
    systemRoute,
    changePasswordRoute,
    sessionsRoute,
  ]),
]);

export function createAppRouter(queryClient: QueryClient) {
  return createRouter({
    routeTree,
    context: { queryClient },
    defaultPreload: "intent",
    // Loaders read through TanStack Query, which has its own freshness.
    defaultPreloadStaleTime: 0,
    defaultPendingComponent: () => <LoadingState />,
    defaultErrorComponent: ({ error, reset }) => <ErrorState error={error} retry={reset} title="This page failed" />,
    defaultNotFoundComponent: NotFoundPage,
    scrollRestoration: true,
  });
}

export type AppRouter = ReturnType<typeof createAppRouter>;

declare module "@tanstack/react-router" {
  interface Register {
    router: AppRouter;
  }
}
