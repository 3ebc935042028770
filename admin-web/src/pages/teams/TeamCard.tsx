/** A team's card (the list, and the live preview in the form) and its avatar. */
import type { ReactNode } from "react";
import { Badge, Group, Text, UnstyledButton } from "@mantine/core";
import { IconKey, IconRoute, IconUsers } from "@tabler/icons-react";
import { Role } from "../../gen/keygate/v1/common_pb";
import { ROLE_LABEL } from "../../auth/permissions";
import { count } from "../../lib/format";
import { initials, isTeamColor, textOn } from "./team";
import classes from "./Teams.module.css";

export interface TeamLike {
  id: string;
  name: string;
  description: string;
  color: string;
  icon: string;
  memberCount: number;
  tokenCount: number;
  routeCount: number;
}

export function TeamAvatar({ team, size = "md" }: { team: Pick<TeamLike, "id" | "name" | "color" | "icon">; size?: "md" | "lg" }) {
  const color = team.color && isTeamColor(team.color) ? team.color : undefined;
  return (
    <span
      className={classes.avatar}
      data-size={size}
      data-initials={!team.icon || undefined}
      style={color ? { background: color, color: textOn(color) } : undefined}
      aria-hidden
    >
      {team.icon || initials(team.name, team.id)}
    </span>
  );
}

export function TeamCard({
  team,
  role,
  onOpen,
  extra,
}: {
  team: TeamLike;
  /** The caller's role in the team, when it has one. */
  role?: Role | undefined;
  /** Makes the whole card a button opening the team. */
  onOpen?: () => void;
  /** Controls shown in the footer (above the stretched button). */
  extra?: ReactNode;
}) {
  const title = team.name || team.id || "Team name";
  return (
    <article className={`kg-card ${classes.card}`} data-interactive={!!onOpen} aria-label={onOpen ? undefined : `Preview of ${title}`}>
      <Group gap="sm" wrap="nowrap" align="flex-start">
        <TeamAvatar team={team} />
        <div style={{ minWidth: 0, flex: 1 }}>
          {onOpen ? (
            <UnstyledButton onClick={onOpen} className={`${classes.stretch} kg-truncate`} fw={600} fz="sm" display="block" maw="100%">
              {title}
            </UnstyledButton>
          ) : (
            <Text fw={600} size="sm" className="kg-truncate">
              {title}
            </Text>
          )}
          <Text size="xs" c="dimmed" className="kg-mono kg-truncate">
            {team.id || "team-id"}
          </Text>
        </div>
        {role !== undefined && role !== Role.UNSPECIFIED && (
          <Badge variant="light" color={role === Role.ADMIN ? "indigo" : "gray"} className="kg-fit">
            {ROLE_LABEL[role]}
          </Badge>
        )}
        {team.memberCount === 0 && (
          <Badge variant="light" color="orange" className="kg-fit">
            No members
          </Badge>
        )}
      </Group>
      <Text size="sm" c={team.description ? undefined : "dimmed"} className={classes.description}>
        {team.description || "No description."}
      </Text>
      <div className={classes.stats}>
        <Stat icon={<IconUsers size={14} aria-hidden />} n={team.memberCount} one="member" many="members" />
        <Stat icon={<IconKey size={14} aria-hidden />} n={team.tokenCount} one="token" many="tokens" />
        <Stat icon={<IconRoute size={14} aria-hidden />} n={team.routeCount} one="route" many="routes" />
        {extra && <div className={classes.above} style={{ marginLeft: "auto" }}>{extra}</div>}
      </div>
    </article>
  );
}

function Stat({ icon, n, one, many }: { icon: ReactNode; n: number; one: string; many: string }) {
  return (
    <span className={classes.stat}>
      {icon}
      <strong>{count(n)}</strong> {n === 1 ? one : many}
    </span>
  );
}
