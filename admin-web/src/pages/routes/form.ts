/**
 * The route form's values and the CreateRoute / UpdateRoute requests built from them (pure).
 *
 * Backend secrets are write-only: the form starts with an empty secret; on edit, an empty
 * secret keeps the stored one as long as the credential type stays the same (the server's
 * rule, see `UpdateRouteRequest.backend_auth`). Update requests carry only what changed.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  BackendAuthType,
  type BackendAuthSchema,
  type CreateRouteRequestSchema,
  type Route,
  type UpdateRouteRequestSchema,
} from "../../gen/keygate/v1/route_pb";

/** HTTP methods a route can allow (contracts `METHODS`). */
export const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const MAX_TIMEOUT_MS = 300_000;

export type AuthKind = "none" | "bearer" | "apiKey" | "basic";

export const AUTH_KINDS: { value: AuthKind; label: string }[] = [
  { value: "none", label: "None" },
  { value: "bearer", label: "Bearer token" },
  { value: "apiKey", label: "API key header" },
  { value: "basic", label: "Basic auth" },
];

export interface RouteFormValues {
  name: string;
  teamId: string;
  pathPrefix: string;
  backendUrl: string;
  description: string;
  tags: string[];
  methods: string[];
  allowedTeamIds: string[];
  corsOrigins: string[];
  /** Requests per minute per token; "" or 0: no limit. */
  rateLimit: number | string;
  stripPrefix: boolean;
  /** Milliseconds; "": the server default. */
  timeoutMs: number | string;
  authKind: AuthKind;
  headerName: string;
  username: string;
  /** Bearer token, API key value or basic password. Never filled from the server. */
  secret: string;
}

export function authKindOf(t: BackendAuthType | undefined): AuthKind {
  switch (t) {
    case BackendAuthType.BEARER:
      return "bearer";
    case BackendAuthType.API_KEY:
      return "apiKey";
    case BackendAuthType.BASIC:
      return "basic";
    default:
      return "none";
  }
}

export const AUTH_LABEL: Record<AuthKind, string> = {
  none: "None",
  bearer: "Bearer token",
  apiKey: "API key",
  basic: "Basic auth",
};

export function initialValues(route: Route | undefined, defaultTeam = ""): RouteFormValues {
  if (!route) {
    return {
      name: "",
      teamId: defaultTeam,
      pathPrefix: "/",
      backendUrl: "",
      description: "",
      tags: [],
      methods: [],
      allowedTeamIds: [],
      corsOrigins: [],
      rateLimit: "",
      stripPrefix: false,
      timeoutMs: "",
      authKind: "none",
      headerName: "X-API-Key",
      username: "",
      secret: "",
    };
  }
  const a = route.backendAuth;
  const kind = authKindOf(a?.type);
  return {
    name: route.name,
    teamId: route.teamId,
    pathPrefix: route.pathPrefix,
    backendUrl: route.backendUrl,
    description: route.description,
    tags: [...route.tags],
    methods: [...route.methods],
    allowedTeamIds: [...route.allowedTeamIds],
    corsOrigins: [...route.corsOrigins],
    rateLimit: route.rateLimitPerMinute || "",
    stripPrefix: route.stripPrefix,
    timeoutMs: route.timeoutMs || "",
    authKind: kind,
    headerName: kind === "apiKey" ? a?.headerName ?? "" : "X-API-Key",
    username: kind === "basic" ? a?.username ?? "" : "",
    secret: "",
  };
}

/**
 * What the secret field means now: `none` (no credential), `required` (create, or a new
 * credential type), or `keep` (edit, same type, a secret is stored: empty keeps it).
 */
export function secretMode(route: Route | undefined, kind: AuthKind): "none" | "required" | "keep" {
  if (kind === "none") return "none";
  if (!route) return "required";
  const stored = route.backendAuth;
  return authKindOf(stored?.type) === kind && stored?.secretSet ? "keep" : "required";
}

type AuthInit = MessageInitShape<typeof BackendAuthSchema>;

export function toWireAuth(v: Pick<RouteFormValues, "authKind" | "headerName" | "username" | "secret">): AuthInit {
  switch (v.authKind) {
    case "bearer":
      return { kind: { case: "bearer", value: { token: v.secret } } };
    case "apiKey":
      return { kind: { case: "apiKey", value: { headerName: v.headerName.trim(), value: v.secret } } };
    case "basic":
      return { kind: { case: "basic", value: { username: v.username, password: v.secret } } };
    default:
      return { kind: { case: "none", value: {} } };
  }
}

const num = (v: number | string): number => (v === "" ? 0 : Number(v));

/** Trimmed, without empty entries. */
const list = (xs: string[]): string[] => xs.map((x) => x.trim()).filter(Boolean);

export function toCreateRequest(v: RouteFormValues): MessageInitShape<typeof CreateRouteRequestSchema> {
  return {
    name: v.name.trim(),
    teamId: v.teamId,
    pathPrefix: v.pathPrefix.trim(),
    backendUrl: v.backendUrl.trim(),
    description: v.description.trim(),
    tags: list(v.tags),
    methods: v.methods,
    stripPrefix: v.stripPrefix,
    timeoutMs: num(v.timeoutMs),
    backendAuth: v.authKind === "none" ? undefined : toWireAuth(v),
    allowedTeamIds: v.allowedTeamIds,
    corsOrigins: list(v.corsOrigins),
    rateLimitPerMinute: num(v.rateLimit),
  };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}

/** Changed fields only; `undefined` when nothing changed. */
export function toUpdateRequest(route: Route, v: RouteFormValues): MessageInitShape<typeof UpdateRouteRequestSchema> | undefined {
  const req: MessageInitShape<typeof UpdateRouteRequestSchema> = { id: route.id };
  let changed = false;
  const set = <K extends keyof typeof req>(k: K, value: (typeof req)[K]) => {
    req[k] = value;
    changed = true;
  };
  const name = v.name.trim();
  if (name !== route.name) set("name", name);
  const path = v.pathPrefix.trim();
  if (path !== route.pathPrefix) set("pathPrefix", path);
  const url = v.backendUrl.trim();
  if (url !== route.backendUrl) set("backendUrl", url);
  const desc = v.description.trim();
  if (desc !== route.description) set("description", desc);
  const tags = list(v.tags);
  if (!sameSet(tags, route.tags)) set("tags", { values: tags });
  if (!sameSet(v.methods, route.methods)) set("methods", { values: v.methods });
  if (v.stripPrefix !== route.stripPrefix) set("stripPrefix", v.stripPrefix);
  const timeout = v.timeoutMs === "" ? DEFAULT_TIMEOUT_MS : Number(v.timeoutMs);
  if (timeout !== route.timeoutMs) set("timeoutMs", timeout);
  if (!sameSet(v.allowedTeamIds, route.allowedTeamIds)) set("allowedTeamIds", { values: v.allowedTeamIds });
  const cors = list(v.corsOrigins);
  if (!sameSet(cors, route.corsOrigins)) set("corsOrigins", { values: cors });
  const rate = num(v.rateLimit);
  if (rate !== route.rateLimitPerMinute) set("rateLimitPerMinute", rate);
  if (authChanged(route, v)) set("backendAuth", toWireAuth(v));
  return changed ? req : undefined;
}

function authChanged(route: Route, v: RouteFormValues): boolean {
  const stored = route.backendAuth;
  const kind = authKindOf(stored?.type);
  if (kind !== v.authKind) return true;
  if (v.authKind === "none") return false;
  if (v.secret !== "") return true;
  if (v.authKind === "apiKey" && v.headerName.trim() !== (stored?.headerName ?? "")) return true;
  if (v.authKind === "basic" && v.username !== (stored?.username ?? "")) return true;
  return false;
}

/** Server field (after `formFieldOf`) -> form field. */
export const FIELD_MAP: Record<string, string> = {
  team_id: "teamId",
  path_prefix: "pathPrefix",
  backend_url: "backendUrl",
  allowed_team_ids: "allowedTeamIds",
  cors_origins: "corsOrigins",
  rate_limit_per_minute: "rateLimit",
  strip_prefix: "stripPrefix",
  timeout_ms: "timeoutMs",
  backend_auth: "authKind",
  "backend_auth.bearer.token": "secret",
  "backend_auth.api_key.value": "secret",
  "backend_auth.api_key.header_name": "headerName",
  "backend_auth.basic.username": "username",
  "backend_auth.basic.password": "secret",
};
