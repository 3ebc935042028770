import { Badge } from "@mantine/core";
import type { Team } from "../../gen/keygate/v1/team_pb";

/** A team's slug with its icon and colour, when known. */
export function TeamBadge({ teamId, team }: { teamId: string; team?: Team | undefined }) {
  return (
    <Badge variant="light" color={team?.color || "gray"} leftSection={team?.icon || undefined} className="kg-nowrap">
      {team?.name || teamId}
    </Badge>
  );
}
