import { describe, expect, it } from "vitest";
import { curlSnippet, exampleRoute, joinUrl, n8nSnippet } from "./snippets";

const routes = [
  { name: "echo", pathPrefix: "/echo", tags: ["test"] },
  { name: "crm", pathPrefix: "/crm/v1", tags: ["sales"] },
];

describe("snippets", () => {
  it("picks the route a token can call", () => {
    expect(exampleRoute(["crm"], routes)?.name).toBe("crm");
    expect(exampleRoute(["tag:sales"], routes)?.name).toBe("crm");
    expect(exampleRoute(["*"], routes)?.name).toBe("echo");
    expect(exampleRoute(["gone"], routes)).toBeUndefined();
  });

  it("joins URLs", () => {
    expect(joinUrl("http://h:8080/", "/echo/")).toBe("http://h:8080/echo/");
  });

  it("quotes for the shell", () => {
    expect(curlSnippet("http://h:8080/echo/", "X-API-Key", "kg_a'b")).toBe(
      "curl -sS 'http://h:8080/echo/' \\\n  -H 'X-API-Key: kg_a'\\''b'",
    );
  });

  it("builds an n8n HTTP Request node", () => {
    const w = JSON.parse(n8nSnippet("http://h:8080/echo/", "X-API-Key", "kg_x", "demo"));
    expect(w.nodes[0].type).toBe("n8n-nodes-base.httpRequest");
    expect(w.nodes[0].parameters.url).toBe("http://h:8080/echo/");
    expect(w.nodes[0].parameters.headerParameters.parameters[0]).toEqual({ name: "X-API-Key", value: "kg_x" });
  });
});
