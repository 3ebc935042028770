/** The analytics requests built from the usage pages' URL state (pure; unit-tested). */
import { create } from "@bufbuild/protobuf";
import { StatusClass, TopDimension, TopOrder, UsageQuerySchema, type UsageQuery } from "../../gen/keygate/v1/usage_pb";
import { dateToTs } from "../../lib/format";
import type { ResolvedRange } from "./range";
import type { StatusFilter, TopBy, TopOrderName, UsageFilters } from "./search";

const CLASS: Record<StatusFilter, StatusClass> = {
  "1xx": StatusClass.STATUS_CLASS_1XX,
  "2xx": StatusClass.STATUS_CLASS_2XX,
  "3xx": StatusClass.STATUS_CLASS_3XX,
  "4xx": StatusClass.STATUS_CLASS_4XX,
  "5xx": StatusClass.STATUS_CLASS_5XX,
  errors: StatusClass.STATUS_CLASS_ERRORS,
};

/** The analytics query of the filters over a range; `status` overrides the filter's class. */
export function toUsageQuery(f: UsageFilters, r: Pick<ResolvedRange, "start" | "end">, status?: StatusFilter): UsageQuery {
  const cls = status ?? f.status;
  return create(UsageQuerySchema, {
    teamId: f.team ?? "",
    route: f.route ?? "",
    tokenId: f.token ?? "",
    gateway: f.gateway ?? "",
    statusClass: cls ? CLASS[cls] : StatusClass.STATUS_CLASS_UNSPECIFIED,
    startTime: dateToTs(r.start),
    endTime: dateToTs(r.end),
  });
}

/** The status classes the traffic chart stacks for a status filter (each is one summary call). */
export function classesFor(status: StatusFilter | undefined): ("2xx" | "3xx" | "4xx" | "5xx")[] {
  switch (status) {
    case undefined:
      return ["2xx", "3xx", "4xx", "5xx"];
    case "errors":
      return ["4xx", "5xx"];
    case "1xx":
      return [];
    default:
      return [status];
  }
}

export const TOP_DIMENSION: Record<TopBy, TopDimension> = {
  token: TopDimension.TOKEN,
  route: TopDimension.ROUTE,
  team: TopDimension.TEAM,
  error: TopDimension.ERROR_CODE,
  ip: TopDimension.CLIENT_IP,
};

export const TOP_ORDER: Record<TopOrderName, TopOrder> = { calls: TopOrder.CALLS, errors: TopOrder.ERRORS };

