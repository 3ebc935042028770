/** One route's usage (GetRouteUsage): series, status codes, latency, tokens that called it,
 * first and last use, recent raw events. Linked as `/usage/routes/$route` (a route name). */
import { Group, Text } from "@mantine/core";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { Link, getRouteApi } from "@tanstack/react-router";
import { AnchorLink, ButtonLink } from "./links";
import { IconArrowLeft, IconBroadcast, IconRoute } from "@tabler/icons-react";
import { routesApi, usageApi } from "../../api/transport";
import { PageHeader } from "../../components/misc/PageHeader";
import { TeamBadge } from "../../components/domain/TeamBadge";
import { TeamSelect } from "../../components/domain/TeamSelect";
import { dateToTs } from "../../lib/format";
import { compact } from "../../lib/search";
import { TIER_LABEL } from "./format";
import { RangePicker } from "./RangePicker";
import { DetailView, type DetailData } from "./DetailView";
import { resolveRange, stepLabel } from "./range";

const route = getRouteApi("/app/usage/routes/$route");

export function RouteUsagePage() {
  const { route: name } = route.useParams();
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const rangeSearch = { range: search.range, from: search.from, to: search.to };
  const team = search.team;

  const info = useQuery({
    queryKey: ["routes", "get", name],
    queryFn: ({ signal }) => routesApi.getRoute({ id: name }, { signal }),
    retry: false,
    staleTime: 60_000,
  });
  const q = useQuery({
    queryKey: ["usage", "route", name, team, rangeSearch],
    queryFn: async ({ signal }): Promise<DetailData> => {
      const range = resolveRange(rangeSearch, new Date());
      const r = await usageApi.getRouteUsage(
        { route: name, teamId: team ?? "", startTime: dateToTs(range.start), endTime: dateToTs(range.end), stepSeconds: range.stepSeconds },
        { signal },
      );
      return { range, answer: r, breakdown: r.tokens };
    },
    placeholderData: keepPreviousData,
    refetchInterval: search.range === "custom" ? false : 30_000,
  });
  const r = info.data?.route;
  const d = q.data;

  return (
    <>
      <AnchorLink to="/usage" search={rangeSearch} size="xs" c="dimmed">
        <Group gap={4} component="span">
          <IconArrowLeft size={12} /> Usage
        </Group>
      </AnchorLink>
      <PageHeader
        title={name}
        description={
          <Group gap={8} component="span">
            {r && <TeamBadge teamId={r.teamId} />}
            {r && (
              <Text span size="sm" c="dimmed" className="kg-mono">
                {r.pathPrefix}
              </Text>
            )}
            {d && (
              <Text span size="sm" c="dimmed">
                · {d.range.label} · {stepLabel(d.answer.stepSeconds || d.range.stepSeconds)} steps · {TIER_LABEL[d.answer.tier]} tier
              </Text>
            )}
          </Group>
        }
        actions={
          <>
            <TeamSelect
              size="xs"
              w={160}
              aria-label="Calls of team"
              placeholder="All teams' calls"
              clearable
              value={team}
              onChange={(v) => void navigate({ search: (prev) => compact({ ...prev, team: v }), replace: true })}
            />
            <RangePicker value={rangeSearch} onChange={(x) => void navigate({ search: compact({ range: x.range, from: x.from, to: x.to, team }), replace: true })} />
            <ButtonLink size="xs" variant="default" to="/usage/tail" search={{ route: name }} leftSection={<IconBroadcast size={14} />}>
              Live tail
            </ButtonLink>
            <ButtonLink size="xs" variant="default" to="/routes" search={r ? { open: r.id } : { q: name }} leftSection={<IconRoute size={14} />}>
              Route
            </ButtonLink>
          </>
        }
      />
      <DetailView
        q={q}
        breakdownTitle="Tokens that called it"
        breakdownKey="Token"
        renderKey={(b) =>
          b.key ? (
            <Link to="/usage/tokens/$tokenId" params={{ tokenId: b.key }} search={rangeSearch} className="kg-link" title={b.key}>
              {b.label || b.key}
            </Link>
          ) : (
            <Text span size="sm" c="dimmed" fs="italic">
              no (valid) key
            </Text>
          )
        }
        events={{ key: `route:${name}:${team ?? ""}`, route: name, teamId: team ?? "", tokenId: "", status: 0 }}
        eventsHide={["route"]}
      />
    </>
  );
}
