/** Ready-to-paste snippets that call the gateway with a token (pure). */

/** `*`, a route name, or `tag:<tag>`: the route a snippet should call first. */
export function exampleRoute(scopes: string[], routes: { name: string; pathPrefix: string; tags: string[] }[]) {
  for (const s of scopes) {
    const r = routes.find((r) => r.name === s);
    if (r) return r;
  }
  for (const s of scopes) {
    if (s.startsWith("tag:")) {
      const r = routes.find((r) => r.tags.includes(s.slice(4)));
      if (r) return r;
    }
  }
  if (scopes.includes("*")) return routes[0];
  return undefined;
}

export function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, "")}/${path.replace(/^\/+/, "")}`;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function curlSnippet(url: string, header: string, token: string): string {
  return `curl -sS ${shellQuote(url)} \\\n  -H ${shellQuote(`${header}: ${token}`)}`;
}

/** An n8n workflow fragment (one HTTP Request node); paste it onto the n8n canvas. */
export function n8nSnippet(url: string, header: string, token: string, name: string): string {
  const workflow = {
    nodes: [
      {
        parameters: {
          url,
          sendHeaders: true,
          headerParameters: { parameters: [{ name: header, value: token }] },
          options: {},
        },
        name: `Keygate: ${name}`,
        type: "n8n-nodes-base.httpRequest",
        typeVersion: 4.2,
        position: [0, 0],
      },
    ],
    connections: {},
  };
  return JSON.stringify(workflow, null, 2);
}
