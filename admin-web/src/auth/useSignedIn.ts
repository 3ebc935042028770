/**
 * After SignIn / CompleteSetup / AcceptInvitation: the server has set the session cookie;
 * load the caller with it and go on. If GetCurrentUser still answers UNAUTHENTICATED, the
 * cookie was not accepted: say so instead of looping back to the sign-in page.
 */
import { useQueryClient } from "@tanstack/react-query";
import { useNavigate } from "@tanstack/react-router";
import { ConnectError, Code } from "@connectrpc/connect";
import { meQuery } from "./session";
import { isUnauthenticated } from "../api/errors";

export function useAfterSignIn() {
  const qc = useQueryClient();
  const navigate = useNavigate();
  return async (next: string | undefined) => {
    qc.clear();
    try {
      await qc.fetchQuery({ ...meQuery, staleTime: 0, retry: false });
    } catch (e) {
      if (isUnauthenticated(e)) {
        throw new ConnectError(
          "Signed in, but this browser's session was not accepted: the control plane did not set or accept the session cookie.",
          Code.FailedPrecondition,
        );
      }
      throw e;
    }
    await navigate({ href: next ?? "/", replace: true });
  };
}
