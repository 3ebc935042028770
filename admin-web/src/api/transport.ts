/**
 * The one grpc-web transport and the typed clients of every Keygate service.
 *
 * Same-origin: the control plane serves this UI and the API on one port, so the base URL is the
 * page's own origin and the browser sends the HttpOnly session cookie by itself
 * (`credentials: "same-origin"`). Nothing here reads or stores a credential.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";
import { AuthService } from "../gen/keygate/v1/auth_pb";
import { TokenService } from "../gen/keygate/v1/token_pb";
import { RouteService } from "../gen/keygate/v1/route_pb";
import { TeamService } from "../gen/keygate/v1/team_pb";
import { UserService } from "../gen/keygate/v1/user_pb";
import { InvitationService } from "../gen/keygate/v1/invitation_pb";
import { ServiceAccountService } from "../gen/keygate/v1/service_account_pb";
import { AuditService } from "../gen/keygate/v1/audit_pb";
import { UsageService } from "../gen/keygate/v1/usage_pb";
import { SyncService } from "../gen/keygate/v1/sync_pb";
import { AlertService } from "../gen/keygate/v1/alert_pb";
import { DashboardService } from "../gen/keygate/v1/dashboard_pb";
import { SystemService } from "../gen/keygate/v1/system_pb";

export const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  fetch: (input, init) => globalThis.fetch(input, { ...init, credentials: "same-origin" }),
  defaultTimeoutMs: 30_000,
});

const client = <S extends DescService>(service: S): Client<S> => createClient(service, transport);

// One client per service; pure, so a bundle carries only the services its pages use.
export const authApi = /*@__PURE__*/ client(AuthService);
export const tokensApi = /*@__PURE__*/ client(TokenService);
export const routesApi = /*@__PURE__*/ client(RouteService);
export const teamsApi = /*@__PURE__*/ client(TeamService);
export const usersApi = /*@__PURE__*/ client(UserService);
export const invitationsApi = /*@__PURE__*/ client(InvitationService);
export const serviceAccountsApi = /*@__PURE__*/ client(ServiceAccountService);
export const auditApi = /*@__PURE__*/ client(AuditService);
export const usageApi = /*@__PURE__*/ client(UsageService);
export const syncApi = /*@__PURE__*/ client(SyncService);
export const alertsApi = /*@__PURE__*/ client(AlertService);
export const dashboardApi = /*@__PURE__*/ client(DashboardService);
export const systemApi = /*@__PURE__*/ client(SystemService);
