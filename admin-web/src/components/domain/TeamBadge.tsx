import type { Team } from "../../gen/keygate/v1/team_pb";
import { Pill } from "../misc/Pill";

/** A team's name with its icon and colour, when known. */
export function TeamBadge({ teamId, team }: { teamId: string; team?: Team | undefined }) {
  return (
    <Pill variant="dot" color={team?.color || "gray"}>
      {team?.icon ? `${team.icon} ` : ""}
      {team?.name || teamId}
    </Pill>
  );
}
