/**
 * Teams: cards with member, token and route counts; search in the URL; create and edit with
 * a live preview; members by role, claim and delete in the team's drawer (`?open=<id>`).
 */
import { useState } from "react";
import { Button, Group, Skeleton } from "@mantine/core";
import { keepPreviousData, useInfiniteQuery, useMutation, useQueryClient } from "@tanstack/react-query";
import { getRouteApi } from "@tanstack/react-router";
import { IconSearch, IconUsersGroup } from "@tabler/icons-react";
import type { Team } from "../../gen/keygate/v1/team_pb";
import { teamsApi } from "../../api/transport";
import { meQuery, useMe } from "../../auth/session";
import { canClaimTeam, canCreateTeam, roleIn } from "../../auth/permissions";
import { RefreshButton } from "../../components/misc/RefreshButton";
import { CreateButton } from "../../components/misc/CreateButton";
import { PageHeader } from "../../components/misc/PageHeader";
import { FilterBar } from "../../components/list/FilterBar";
import { SearchBox } from "../../components/list/SearchBox";
import { EmptyState } from "../../components/states/EmptyState";
import { ErrorState } from "../../components/states/ErrorState";
import { confirmAction } from "../../components/form/confirm";
import { notifyError, notifySuccess } from "../../components/misc/notify";
import { count } from "../../lib/format";
import { compact } from "../../lib/search";
import type { TeamsSearch } from "./search";
import { TeamCard } from "./TeamCard";
import { TeamFormModal } from "./TeamFormModal";
import { TeamDrawer } from "./TeamDrawer";
import { DeleteTeamModal } from "./DeleteTeamModal";
import classes from "./Teams.module.css";

const api = getRouteApi("/app/teams");
const PAGE = 60;

type Dialog = { kind: "create" } | { kind: "edit"; team: Team } | { kind: "delete"; team: Team } | null;

export function TeamsPage() {
  const search = api.useSearch();
  const navigate = api.useNavigate();
  const me = useMe();
  const qc = useQueryClient();
  const [dialog, setDialog] = useState<Dialog>(null);

  const list = useInfiniteQuery({
    queryKey: ["teams", "cards", search.q ?? ""],
    queryFn: ({ signal, pageParam }) => teamsApi.listTeams({ query: search.q ?? "", pageSize: PAGE, pageToken: pageParam }, { signal }),
    initialPageParam: "",
    getNextPageParam: (last) => last.nextPageToken || undefined,
    placeholderData: keepPreviousData,
  });
  const teams = list.data?.pages.flatMap((p) => p.teams);

  const setSearch = (patch: Partial<TeamsSearch>, replace = false) =>
    void navigate({ search: (prev) => compact({ ...prev, ...patch }), replace });
  const setOpen = (id: string | undefined) => setSearch({ open: id });

  const claim = useMutation({
    mutationFn: (t: Team) => teamsApi.claimTeam({ teamId: t.id }),
    onSuccess: (_, t) => {
      void qc.invalidateQueries({ queryKey: ["teams"] });
      void qc.invalidateQueries({ queryKey: meQuery.queryKey });
      notifySuccess(`You are now admin of "${t.name || t.id}"`);
    },
    onError: (e, t) => notifyError(e, `Could not claim "${t.name || t.id}"`),
  });
  const askClaim = (t: Team) =>
    confirmAction({
      title: `Claim "${t.name || t.id}"?`,
      body: "The team has no members. Claiming makes you its admin: you can then add members and manage its tokens and routes.",
      confirmLabel: "Claim team",
      onConfirm: () => claim.mutate(t),
    });

  const creatable = canCreateTeam(me);
  const filtered = !!search.q;

  let body;
  if (list.error && !teams) {
    body = <ErrorState error={list.error} retry={() => void list.refetch()} title="Could not load the teams" />;
  } else if (!teams) {
    body = (
      <div className={classes.grid} role="status" aria-label="Loading">
        {Array.from({ length: 6 }, (_, i) => (
          <Skeleton key={i} height={148} radius="md" />
        ))}
      </div>
    );
  } else if (teams.length === 0) {
    body = (
      <div className="kg-card">
        {filtered ? (
          <EmptyState icon={IconSearch} title="No team matches" description="Search looks at the slug, the name and the description." compact />
        ) : (
          <EmptyState
            icon={IconUsersGroup}
            title="No teams yet"
            description={
              creatable
                ? "Teams own tokens and routes, and give people roles. Create the first one."
                : "Teams appear here once an admin creates them."
            }
            action={
              creatable && (
                <CreateButton size="xs" onClick={() => setDialog({ kind: "create" })}>Create team</CreateButton>
              )
            }
          />
        )}
      </div>
    );
  } else {
    body = (
      <>
        <div className={classes.grid}>
          {teams.map((t) => (
            <TeamCard
              key={t.id}
              team={t}
              role={roleIn(me, t.id)}
              onOpen={() => setOpen(t.id)}
              extra={
                canClaimTeam(me, t) && (
                  <Button size="compact-xs" variant="light" onClick={() => askClaim(t)} aria-label={`Claim ${t.name || t.id}`}>
                    Claim
                  </Button>
                )
              }
            />
          ))}
        </div>
        <Group justify="space-between" mt="sm">
          <span className="kg-muted" style={{ fontSize: 13 }} aria-live="polite">
            {count(teams.length)} {teams.length === 1 ? "team" : "teams"}
            {list.hasNextPage ? " shown" : ""}
            {filtered ? " matching the search" : ""}
          </span>
          {list.hasNextPage && (
            <Button size="xs" variant="default" onClick={() => void list.fetchNextPage()} loading={list.isFetchingNextPage}>
              Load more
            </Button>
          )}
        </Group>
      </>
    );
  }

  return (
    <>
      <PageHeader
        title="Teams"
        description="Teams own tokens and routes; people hold a role in each."
        actions={
          <>
            <RefreshButton onClick={() => void list.refetch()} loading={list.isFetching} />
            {creatable && (
              <CreateButton onClick={() => setDialog({ kind: "create" })}>Create team</CreateButton>
            )}
          </>
        }
      />
      <FilterBar label="Filter teams">
        <SearchBox w={260} aria-label="Search teams" placeholder="Search slug, name or description" value={search.q} onSearch={(q) => setSearch({ q }, true)} />
      </FilterBar>
      {list.error && teams && <ErrorState error={list.error} retry={() => void list.refetch()} title="Could not refresh the teams" />}
      {body}

      <TeamFormModal
        opened={dialog?.kind === "create" || dialog?.kind === "edit"}
        team={dialog?.kind === "edit" ? dialog.team : undefined}
        onClose={() => setDialog(null)}
        onSaved={(t, created) => created && setOpen(t.id)}
      />
      <DeleteTeamModal
        team={dialog?.kind === "delete" ? dialog.team : undefined}
        onClose={() => setDialog(null)}
        onDeleted={(t) => search.open === t.id && setOpen(undefined)}
      />
      <TeamDrawer
        id={search.open}
        onClose={() => setOpen(undefined)}
        onEdit={(t) => setDialog({ kind: "edit", team: t })}
        onDelete={(t) => setDialog({ kind: "delete", team: t })}
        onClaim={askClaim}
      />
    </>
  );
}
