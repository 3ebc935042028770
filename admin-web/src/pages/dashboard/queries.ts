/** The dashboard's queries, shared by the page and its route loader (which starts them while
 * the page's code, charts included, is still loading). */
import { queryOptions } from "@tanstack/react-query";
import { TopDimension } from "../../gen/keygate/v1/usage_pb";
import { dashboardApi, usageApi } from "../../api/transport";
import { dateToTs } from "../../lib/format";

export const EXPIRING_DAYS = 7;
export const UNUSED_DAYS = 30;
const HOUR = 3600_000;

export function dashboardQuery(teamId: string) {
  return queryOptions({
    queryKey: ["dashboard", teamId],
    queryFn: ({ signal }) =>
      dashboardApi.getDashboard({ teamId, expiringWithinDays: EXPIRING_DAYS, unusedForDays: UNUSED_DAYS, listLimit: 6 }, { signal }),
    refetchInterval: 60_000,
  });
}

/** The last 24 hours of traffic, hour by hour. */
export function dashboardUsageQuery(teamId: string) {
  return queryOptions({
    queryKey: ["dashboard", teamId, "usage24h"],
    queryFn: ({ signal }) => {
      const end = new Date();
      const start = new Date(end.getTime() - 24 * HOUR);
      return usageApi.getUsageSummary({ query: { teamId, startTime: dateToTs(start), endTime: dateToTs(end) }, stepSeconds: 3600 }, { signal });
    },
    refetchInterval: 60_000,
  });
}

export type TopBy = "tokens" | "routes";

/** The week's top tokens or routes by calls. */
export function topUsageQuery(teamId: string, by: TopBy) {
  return queryOptions({
    queryKey: ["dashboard", teamId, "top", by],
    queryFn: ({ signal }) => {
      const end = new Date();
      const start = new Date(end.getTime() - 7 * 24 * HOUR);
      return usageApi.listTopUsage(
        { query: { teamId, startTime: dateToTs(start), endTime: dateToTs(end) }, by: by === "tokens" ? TopDimension.TOKEN : TopDimension.ROUTE, limit: 6 },
        { signal },
      );
    },
    refetchInterval: 120_000,
  });
}
