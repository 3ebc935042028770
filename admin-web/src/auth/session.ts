/**
 * The signed-in caller. The session itself is an HttpOnly cookie the browser sends: this
 * module never sees it. "Signed in" means GetCurrentUser answers.
 */
import { queryOptions, useQueryClient, useSuspenseQuery } from "@tanstack/react-query";
import { authApi } from "../api/transport";
import type { Me } from "./permissions";

export const meQuery = queryOptions({
  queryKey: ["auth", "me"],
  queryFn: ({ signal }) => authApi.getCurrentUser({}, { signal }),
  staleTime: 60_000,
});

/** The caller; only inside the signed-in part of the app (its route loaded it first). */
export function useMe(): Me {
  return useSuspenseQuery(meQuery).data;
}

export function displayName(me: Me): string {
  return me.user?.displayName || me.user?.email || me.serviceAccountId || "Unknown";
}

export function useSignOut() {
  const qc = useQueryClient();
  return async () => {
    try {
      await authApi.signOut({});
    } catch {
      // Already signed out or unreachable: either way the local state goes.
    }
    qc.clear();
    window.location.assign("/sign-in");
  };
}
