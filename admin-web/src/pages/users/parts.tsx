/** Small pieces shared by the users and invitations tables and the user drawer. */
import { Badge, Group, Text, Tooltip } from "@mantine/core";
import type { TeamRole } from "../../gen/keygate/v1/common_pb";
import type { Team } from "../../gen/keygate/v1/team_pb";
import type { User } from "../../gen/keygate/v1/user_pb";
import { ROLE_LABEL } from "../../auth/permissions";

/** "Platform · Developer" badges, highest role first; `max` shown, the rest in a tooltip. */
export function RoleBadges({ roles, teams, max = 3 }: { roles: TeamRole[]; teams: Map<string, Team>; max?: number }) {
  if (roles.length === 0) {
    return (
      <Text span size="sm" c="dimmed">
        No team
      </Text>
    );
  }
  const sorted = [...roles].sort((a, b) => b.role - a.role || a.teamId.localeCompare(b.teamId));
  const label = (r: TeamRole) => `${teams.get(r.teamId)?.name || r.teamId} · ${ROLE_LABEL[r.role]}`;
  const shown = sorted.slice(0, max);
  const rest = sorted.slice(max);
  return (
    <Group gap={4} wrap="nowrap">
      {shown.map((r) => (
        <Badge key={r.teamId} variant="default" className="kg-fit">
          {label(r)}
        </Badge>
      ))}
      {rest.length > 0 && (
        <Tooltip label={rest.map(label).join(", ")}>
          <Badge variant="default" className="kg-fit">
            +{rest.length}
          </Badge>
        </Tooltip>
      )}
    </Group>
  );
}

export function UserStatusBadges({ user }: { user: User }) {
  return (
    <Group gap={4} wrap="nowrap">
      {user.disabled ? (
        <Badge color="red" className="kg-fit">
          Disabled
        </Badge>
      ) : (
        <Text span size="sm" c="dimmed">
          Active
        </Text>
      )}
      {user.systemAdmin && (
        <Badge color="indigo" className="kg-fit">
          System admin
        </Badge>
      )}
    </Group>
  );
}

export function userLabel(u: { displayName: string; email: string }): string {
  return u.displayName || u.email;
}
