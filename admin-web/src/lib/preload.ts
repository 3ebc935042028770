/** Page code loaded ahead of need. */
import type { AppRouter } from "../router";

/**
 * Loads the code of these pages (full paths, e.g. "/tokens") while the browser is idle, one
 * per idle period, so a first visit from the sidebar does not wait for its chunk. Code only:
 * no loader runs, nothing is fetched from the control plane. Returns a cancel function.
 */
export function preloadPagesWhenIdle(router: AppRouter, paths: readonly string[]): () => void {
  const byPath = router.routesByPath as Record<string, Parameters<AppRouter["loadRouteChunk"]>[0] | undefined>;
  const queue = paths.map((p) => byPath[p]).filter((r) => r !== undefined);
  const idle = (cb: () => void) =>
    typeof window.requestIdleCallback === "function"
      ? window.requestIdleCallback(cb, { timeout: 3000 })
      : window.setTimeout(cb, 200);
  const cancelIdle = (h: number) =>
    typeof window.cancelIdleCallback === "function" ? window.cancelIdleCallback(h) : window.clearTimeout(h);
  let handle = 0;
  let stopped = false;
  const next = () => {
    const route = queue.shift();
    if (stopped || !route) return;
    void Promise.resolve(router.loadRouteChunk(route))
      .catch(() => undefined)
      .then(() => {
        if (!stopped) handle = idle(next);
      });
  };
  handle = idle(next);
  return () => {
    stopped = true;
    cancelIdle(handle);
  };
}
