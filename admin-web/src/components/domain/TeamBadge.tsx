import { Badge } from "@mantine/core";
import type { Team } from "../../gen/keygate/v1/team_pb";

/** A team's slug with its icon and colour, when known. */
export function TeamBadge({ teamId, team }: { teamId: string; team?: Team | undefined }) {
  return (
    <Badge variant="dot" color={team?.color || "gray"} className="kg-nowrap kg-fit">
      {team?.icon ? `${team.icon} ` : ""}
      {team?.name || teamId}
    </Badge>
  );
}
