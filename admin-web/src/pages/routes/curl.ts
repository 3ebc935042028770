/**
 * What a route looks like from outside: its gateway URL and a ready-to-paste cURL command
 * (pure). The token is left to the shell (`$KEYGATE_TOKEN`), so the command can be shared.
 */
import { joinUrl } from "../../lib/snippets";

export const TOKEN_ENV = "KEYGATE_TOKEN";

/** The gateway URL a client calls for this route: the prefix, with a trailing `/`. */
export function routeUrl(gatewayBase: string, pathPrefix: string): string {
  const path = pathPrefix.replace(/\/+$/, "");
  return joinUrl(gatewayBase, path ? `${path}/` : "/");
}

/** The method a first call should use: GET when allowed (or no list), else the first allowed. */
export function exampleMethod(methods: readonly string[]): string {
  if (methods.length === 0 || methods.includes("GET")) return "GET";
  return [...methods].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b))[0]!;
}

const ORDER = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
const WITH_BODY = new Set(["POST", "PUT", "PATCH"]);

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * `curl` for the route, e.g.
 *
 *     curl -sS 'https://gw.example.com/billing/' \
 *       -H "X-API-Key: $KEYGATE_TOKEN"
 *
 * A route that refuses GET gets its first allowed method (`-I` for HEAD) and, for
 * POST/PUT/PATCH, a JSON body placeholder.
 */
export function routeCurl(gatewayBase: string, route: { pathPrefix: string; methods: readonly string[] }, header: string): string {
  const method = exampleMethod(route.methods);
  const parts = [`curl -sS${method === "HEAD" ? " -I" : method === "GET" ? "" : ` -X ${method}`} ${shellQuote(routeUrl(gatewayBase, route.pathPrefix))}`];
  parts.push(`-H "${header}: $${TOKEN_ENV}"`);
  if (WITH_BODY.has(method)) {
    parts.push(`-H 'Content-Type: application/json'`);
    parts.push(`-d '{}'`);
  }
  return parts.join(" \\\n  ");
}
