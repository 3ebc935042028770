import type { ReactNode } from "react";
import { Stack, Text, ThemeIcon, Title } from "@mantine/core";
import { IconInbox, type Icon } from "@tabler/icons-react";

/** An honest empty state: what is missing, why, and the next step. */
export function EmptyState({
  title,
  description,
  action,
  icon: IconCmp = IconInbox,
  compact = false,
}: {
  title: string;
  description?: ReactNode;
  action?: ReactNode;
  icon?: Icon;
  compact?: boolean;
}) {
  return (
    <Stack align="center" gap={6} py={compact ? 24 : 56} px="md" ta="center">
      <ThemeIcon variant="light" color="gray" size={compact ? 36 : 44} radius="xl">
        <IconCmp size={compact ? 18 : 22} stroke={1.5} />
      </ThemeIcon>
      <Title order={3} fz={compact ? "sm" : "md"} mt={4}>
        {title}
      </Title>
      {description && (
        <Text size="sm" c="dimmed" maw={440}>
          {description}
        </Text>
      )}
      {action && <div style={{ marginTop: 8 }}>{action}</div>}
    </Stack>
  );
}
