/**
 * The gateway's public URL, for ready-to-paste cURL and n8n snippets.
 *
 * FALLBACK (one place): the control plane will return it from GetServerInfo. Until that RPC
 * exists, assume the gateway runs on this host at port 8080 (the `./scripts/run.sh` default).
 */
export function gatewayBaseUrl(serverInfoUrl?: string): { url: string; assumed: boolean } {
  if (serverInfoUrl) return { url: serverInfoUrl.replace(/\/+$/, ""), assumed: false };
  return { url: `${window.location.protocol}//${window.location.hostname}:8080`, assumed: true };
}

/** The header the gateway reads the token from. */
export const TOKEN_HEADER = "X-API-Key";
