/**
 * The one TanStack Query client. An UNAUTHENTICATED answer to any query or mutation sends the
 * user to the sign-in page (except where the call itself is the sign-in: those mutations set
 * `meta: { authFlow: true }`).
 */
import { MutationCache, QueryCache, QueryClient } from "@tanstack/react-query";
import { Code } from "@connectrpc/connect";
import { isCode, isUnauthenticated } from "./errors";

declare module "@tanstack/react-query" {
  interface Register {
    mutationMeta: { authFlow?: boolean };
  }
}

const NO_RETRY = [
  Code.Unauthenticated,
  Code.PermissionDenied,
  Code.NotFound,
  Code.InvalidArgument,
  Code.FailedPrecondition,
  Code.AlreadyExists,
];

export function createQueryClient(onUnauthenticated: () => void): QueryClient {
  return new QueryClient({
    queryCache: new QueryCache({
      onError: (err) => {
        if (isUnauthenticated(err)) onUnauthenticated();
      },
    }),
    mutationCache: new MutationCache({
      onError: (err, _vars, _ctx, mutation) => {
        if (isUnauthenticated(err) && !mutation.meta?.authFlow) onUnauthenticated();
      },
    }),
    defaultOptions: {
      queries: {
        staleTime: 15_000,
        refetchOnWindowFocus: true,
        retry: (failures, err) => failures < 2 && !NO_RETRY.some((c) => isCode(err, c)),
      },
      mutations: { retry: false },
    },
  });
}
