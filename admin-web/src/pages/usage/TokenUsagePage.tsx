/** One token's usage (GetTokenUsage): series, status codes, latency, routes used, first and
 * last use, recent raw events. Linked as `/usage/tokens/$tokenId` (rankings, events, tokens). */
import { Group, Text } from "@mantine/core";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { Link, getRouteApi } from "@tanstack/react-router";
import { AnchorLink, ButtonLink } from "./links";
import { IconArrowLeft, IconBroadcast, IconKey } from "@tabler/icons-react";
import { tokensApi, usageApi } from "../../api/transport";
import { PageHeader } from "../../components/misc/PageHeader";
import { TeamBadge } from "../../components/domain/TeamBadge";
import { TokenStatusBadge } from "../../components/domain/TokenStatusBadge";
import { dateToTs } from "../../lib/format";
import { compact } from "../../lib/search";
import { TIER_LABEL } from "./format";
import { RangePicker } from "./RangePicker";
import { DetailView, type DetailData } from "./DetailView";
import { resolveRange, stepLabel } from "./range";

const route = getRouteApi("/app/usage/tokens/$tokenId");

export function TokenUsagePage() {
  const { tokenId } = route.useParams();
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const rangeSearch = { range: search.range, from: search.from, to: search.to };

  const token = useQuery({
    queryKey: ["tokens", "get", tokenId],
    queryFn: ({ signal }) => tokensApi.getToken({ id: tokenId }, { signal }),
    retry: false,
    staleTime: 60_000,
  });
  const q = useQuery({
    queryKey: ["usage", "token", tokenId, rangeSearch],
    queryFn: async ({ signal }): Promise<DetailData> => {
      const range = resolveRange(rangeSearch, new Date());
      const r = await usageApi.getTokenUsage(
        { tokenId, startTime: dateToTs(range.start), endTime: dateToTs(range.end), stepSeconds: range.stepSeconds },
        { signal },
      );
      return { range, answer: r, breakdown: r.routes };
    },
    placeholderData: keepPreviousData,
    refetchInterval: search.range === "custom" ? false : 30_000,
  });
  const t = token.data?.token;
  const d = q.data;

  return (
    <>
      <AnchorLink to="/usage" search={rangeSearch} size="xs" c="dimmed">
        <Group gap={4} component="span">
          <IconArrowLeft size={12} /> Usage
        </Group>
      </AnchorLink>
      <PageHeader
        title={t ? t.name : "Token usage"}
        description={
          <Group gap={8} component="span">
            {t && <TeamBadge teamId={t.teamId} />}
            {t && <TokenStatusBadge token={t} />}
            <Text span size="sm" c="dimmed" className="kg-mono">
              {t?.preview || tokenId}
            </Text>
            {d && (
              <Text span size="sm" c="dimmed">
                · {d.range.label} · {stepLabel(d.answer.stepSeconds || d.range.stepSeconds)} steps · {TIER_LABEL[d.answer.tier]} tier
              </Text>
            )}
          </Group>
        }
        actions={
          <>
            <RangePicker value={rangeSearch} onChange={(r) => void navigate({ search: compact({ range: r.range, from: r.from, to: r.to }), replace: true })} />
            <ButtonLink size="xs" variant="default" to="/usage/tail" search={{ token: tokenId }} leftSection={<IconBroadcast size={14} />}>
              Live tail
            </ButtonLink>
            <ButtonLink size="xs" variant="default" to="/tokens" search={{ open: tokenId }} leftSection={<IconKey size={14} />}>
              Token
            </ButtonLink>
          </>
        }
      />
      <DetailView
        q={q}
        breakdownTitle="Routes used"
        breakdownKey="Route"
        renderKey={(b) =>
          b.key ? (
            <Link to="/usage/routes/$route" params={{ route: b.key }} search={rangeSearch} className="kg-link kg-mono">
              {b.key}
            </Link>
          ) : (
            <Text span size="sm" c="dimmed" fs="italic">
              no route matched
            </Text>
          )
        }
        events={{ key: `token:${tokenId}`, tokenId, teamId: "", route: "", status: 0 }}
        eventsHide={["token"]}
      />
    </>
  );
}
