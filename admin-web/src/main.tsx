/**
 * Entry. CSP-safe: Mantine runs without injected <style> elements (its theme variables come
 * from a stylesheet generated at build time: virtual:mantine-theme.css) and the colour scheme
 * is set before paint by /theme-init.js, an external script.
 */
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { MantineProvider, localStorageColorSchemeManager } from "@mantine/core";
import { ModalsProvider } from "@mantine/modals";
import { Notifications } from "@mantine/notifications";
import { QueryClientProvider } from "@tanstack/react-query";
import { RouterProvider } from "@tanstack/react-router";
import "@mantine/core/styles.css";
import "@mantine/notifications/styles.css";
import "@mantine/spotlight/styles.css";
import "virtual:mantine-theme.css";
import "./styles/global.css";
import { theme } from "./theme";
import { createQueryClient } from "./api/query";
import { createAppRouter } from "./router";
import { safeNext } from "./lib/search";

const PUBLIC_PATHS = ["/sign-in", "/setup", "/accept-invitation"];

const queryClient = createQueryClient(() => {
  // An UNAUTHENTICATED answer anywhere: the session ended. Go to sign-in, then come back.
  const { pathname, search, hash } = window.location;
  if (PUBLIC_PATHS.includes(pathname)) return;
  queryClient.clear();
  void router.navigate({ to: "/sign-in", search: { next: safeNext(pathname + search + hash) }, replace: true });
});
const router = createAppRouter(queryClient);

// Start the first page's work (its loaders: GetCurrentUser and the page's queries; its lazy
// chunk) now, before React's first render of the providers: the router's own load on mount
// then finds them in flight. A preload is what hovering a link does; it never navigates.
// (`href` is a documented NavigateOptions field its types only allow beside `to`.)
const here = { href: window.location.pathname + window.location.search + window.location.hash };
void router.preloadRoute(here as unknown as Parameters<typeof router.preloadRoute>[0]).catch(() => undefined);

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <MantineProvider
      theme={theme}
      defaultColorScheme="auto"
      colorSchemeManager={localStorageColorSchemeManager()}
      withCssVariables={false}
      withGlobalClasses={false}
    >
      <QueryClientProvider client={queryClient}>
        <ModalsProvider>
          <Notifications position="bottom-right" limit={4} />
          <RouterProvider router={router} />
        </ModalsProvider>
      </QueryClientProvider>
    </MantineProvider>
  </StrictMode>,
);
