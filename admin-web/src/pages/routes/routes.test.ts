import { describe, expect, it } from "vitest";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { BackendAuthInfoSchema, BackendAuthType, RouteSchema, RouteSortField, type Route } from "../../gen/keygate/v1/route_pb";
import { cleanSearch, effectiveSort, filterKey, hasFilters, toListRoutesRequest, validateRoutesSearch } from "./search";
import { exampleMethod, routeCurl, routeUrl } from "./curl";
import { initialValues, secretMode, toCreateRequest, toUpdateRequest } from "./form";

function route(over: Omit<MessageInitShape<typeof RouteSchema>, "$typeName"> = {}): Route {
  return create(RouteSchema, {
    id: "rte_1",
    name: "billing",
    teamId: "payments",
    pathPrefix: "/billing",
    backendUrl: "https://billing.example.com",
    tags: ["finance"],
    methods: ["GET", "POST"],
    timeoutMs: 30000,
    backendAuth: create(BackendAuthInfoSchema, { type: BackendAuthType.BEARER, secretSet: true }),
    ...over,
  });
}

describe("validateRoutesSearch", () => {
  it("keeps valid values and drops the rest", () => {
    expect(validateRoutesSearch({ q: " pay ", tag: "finance", sort: "path", desc: "1", size: "25", bogus: 1, page: "0" })).toEqual({
      q: "pay",
      tag: "finance",
      sort: "path",
      desc: true,
      size: 25,
    });
    expect(validateRoutesSearch({ sort: "nope", size: 9999 })).toEqual({});
  });
});

describe("toListRoutesRequest", () => {
  it("defaults to by name, ascending, 50 a page", () => {
    const r = toListRoutesRequest({});
    expect(r.sortBy).toBe(RouteSortField.NAME);
    expect(r.descending).toBe(false);
    expect(r.pageSize).toBe(50);
    expect(effectiveSort({})).toEqual({ key: "name", desc: false });
  });
  it("passes filters, sort and cursor", () => {
    const r = toListRoutesRequest({ q: "x", team: "t", tag: "g", sort: "updated", desc: true, size: 100, cursor: "c" });
    expect([r.query, r.teamId, r.tag, r.sortBy, r.descending, r.pageSize, r.pageToken]).toEqual(["x", "t", "g", RouteSortField.UPDATED_AT, true, 100, "c"]);
  });
  it("filter key ignores paging and the open drawer", () => {
    expect(filterKey({ q: "a", page: 3, cursor: "c", open: "r" })).toBe(filterKey({ q: "a" }));
    expect(hasFilters({ sort: "name" })).toBe(false);
    expect(hasFilters({ tag: "x" })).toBe(true);
    expect(cleanSearch({ q: "", tag: undefined, team: "t" })).toEqual({ team: "t" });
  });
});

describe("curl", () => {
  it("builds the gateway URL of a prefix", () => {
    expect(routeUrl("https://gw.example.com/", "/billing")).toBe("https://gw.example.com/billing/");
    expect(routeUrl("https://gw.example.com", "/")).toBe("https://gw.example.com/");
  });
  it("prefers GET, else the first allowed method", () => {
    expect(exampleMethod([])).toBe("GET");
    expect(exampleMethod(["POST", "GET"])).toBe("GET");
    expect(exampleMethod(["DELETE", "PUT"])).toBe("PUT");
  });
  it("reads the token from the shell and quotes the URL", () => {
    expect(routeCurl("http://h:8080", { pathPrefix: "/a'b", methods: [] }, "X-API-Key")).toBe(
      `curl -sS 'http://h:8080/a'\\''b/' \\\n  -H "X-API-Key: $KEYGATE_TOKEN"`,
    );
    expect(routeCurl("http://h", { pathPrefix: "/in", methods: ["POST"] }, "X-API-Key")).toBe(
      `curl -sS -X POST 'http://h/in/' \\\n  -H "X-API-Key: $KEYGATE_TOKEN" \\\n  -H 'Content-Type: application/json' \\\n  -d '{}'`,
    );
    expect(routeCurl("http://h", { pathPrefix: "/p", methods: ["HEAD"] }, "X-API-Key")).toMatch(/^curl -sS -I /);
  });
});

describe("route form", () => {
  it("never fills a secret from the server", () => {
    const v = initialValues(route());
    expect(v.secret).toBe("");
    expect(v.authKind).toBe("bearer");
  });
  it("secret: required on create and on a type change, optional when stored", () => {
    expect(secretMode(undefined, "bearer")).toBe("required");
    expect(secretMode(undefined, "none")).toBe("none");
    expect(secretMode(route(), "bearer")).toBe("keep");
    expect(secretMode(route(), "basic")).toBe("required");
  });
  it("create omits a 'none' credential and trims", () => {
    const v = { ...initialValues(undefined, "payments"), name: " billing ", pathPrefix: "/billing", backendUrl: "https://b", corsOrigins: [" https://a.example ", ""] };
    const r = toCreateRequest(v);
    expect(r.backendAuth).toBeUndefined();
    expect(r.name).toBe("billing");
    expect(r.corsOrigins).toEqual(["https://a.example"]);
    expect(r.timeoutMs).toBe(0);
    expect(r.rateLimitPerMinute).toBe(0);
    expect(toCreateRequest({ ...v, authKind: "apiKey", headerName: "X-Key", secret: "s" }).backendAuth).toEqual({
      kind: { case: "apiKey", value: { headerName: "X-Key", value: "s" } },
    });
  });
  it("update sends only what changed", () => {
    const r = route();
    expect(toUpdateRequest(r, initialValues(r))).toBeUndefined();
    expect(toUpdateRequest(r, { ...initialValues(r), methods: ["POST", "GET"] })).toBeUndefined();
    expect(toUpdateRequest(r, { ...initialValues(r), tags: ["finance", "public"], rateLimit: 60 })).toEqual({
      id: "rte_1",
      tags: { values: ["finance", "public"] },
      rateLimitPerMinute: 60,
    });
    // Clearing the lists sends empty lists (opens to every team, turns CORS off).
    const withLists = route({ allowedTeamIds: ["a"], corsOrigins: ["*"] });
    expect(toUpdateRequest(withLists, { ...initialValues(withLists), allowedTeamIds: [], corsOrigins: [] })).toEqual({
      id: "rte_1",
      allowedTeamIds: { values: [] },
      corsOrigins: { values: [] },
    });
  });
  it("update keeps the stored secret unless one is typed or the type changes", () => {
    const r = route();
    expect(toUpdateRequest(r, { ...initialValues(r), secret: "new" })?.backendAuth).toEqual({ kind: { case: "bearer", value: { token: "new" } } });
    expect(toUpdateRequest(r, { ...initialValues(r), authKind: "none" })?.backendAuth).toEqual({ kind: { case: "none", value: {} } });
    const key = route({ backendAuth: create(BackendAuthInfoSchema, { type: BackendAuthType.API_KEY, headerName: "X-Key", secretSet: true }) });
    expect(toUpdateRequest(key, { ...initialValues(key), headerName: "X-Other" })?.backendAuth).toEqual({
      kind: { case: "apiKey", value: { headerName: "X-Other", value: "" } },
    });
  });
  it("an emptied timeout means the default", () => {
    const r = route({ timeoutMs: 5000 });
    expect(toUpdateRequest(r, { ...initialValues(r), timeoutMs: "" })).toEqual({ id: "rte_1", timeoutMs: 30000 });
  });
});
