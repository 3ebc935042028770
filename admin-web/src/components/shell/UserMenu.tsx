/** The caller's name and role, change password, sessions, sign out. */
import { Avatar, Group, Menu, Text, UnstyledButton } from "@mantine/core";
import { IconChevronDown, IconDeviceLaptop, IconLock, IconLogout } from "@tabler/icons-react";
import { useNavigate } from "@tanstack/react-router";
import { displayName, useMe, useSignOut } from "../../auth/session";
import { ROLE_LABEL, highestRole } from "../../auth/permissions";

function initials(name: string): string {
  const parts = name.replace(/@.*/, "").split(/[\s._-]+/).filter(Boolean);
  return ((parts[0]?.[0] ?? "?") + (parts[1]?.[0] ?? "")).toUpperCase();
}

export function UserMenu() {
  const me = useMe();
  const navigate = useNavigate();
  const signOut = useSignOut();
  const name = displayName(me);
  const role = me.systemAdmin ? "System admin" : ROLE_LABEL[highestRole(me)];
  return (
    <Menu position="bottom-end" width={220}>
      <Menu.Target>
        <UnstyledButton title="Account menu" data-testid="user-menu">
          <Group gap={8} wrap="nowrap">
            <Avatar size={28} radius="xl" color="indigo">
              {initials(name)}
            </Avatar>
            <div>
              <Text size="sm" fw={500} lh={1.1}>
                {name}
              </Text>
              <Text size="xs" c="dimmed" lh={1.1}>
                {role}
              </Text>
            </div>
            <IconChevronDown size={14} aria-hidden />
          </Group>
        </UnstyledButton>
      </Menu.Target>
      <Menu.Dropdown>
        {me.user && <Menu.Label>{me.user.email}</Menu.Label>}
        <Menu.Item leftSection={<IconLock size={16} />} onClick={() => navigate({ to: "/account/password" })}>
          Change password
        </Menu.Item>
        <Menu.Item leftSection={<IconDeviceLaptop size={16} />} onClick={() => navigate({ to: "/account/sessions" })}>
          My sessions
        </Menu.Item>
        <Menu.Divider />
        <Menu.Item leftSection={<IconLogout size={16} />} color="red" onClick={() => void signOut()}>
          Sign out
        </Menu.Item>
      </Menu.Dropdown>
    </Menu>
  );
}
