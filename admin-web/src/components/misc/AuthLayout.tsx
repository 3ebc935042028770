/** Centered card for the signed-out pages (sign in, setup, accept invitation). */
import type { ReactNode } from "react";
import { Center, Group, Paper, Stack, Text, Title } from "@mantine/core";

export function AuthLayout({ title, subtitle, children, footer }: { title: string; subtitle?: ReactNode; children: ReactNode; footer?: ReactNode }) {
  return (
    <Center mih="100vh" p="md">
      <Stack w={380} gap="md">
        <Group gap={8} justify="center">
          <img src="/favicon.svg" alt="" width={28} height={28} />
          <Text fw={600} fz="lg">
            Keygate
          </Text>
        </Group>
        <Paper withBorder p="lg" radius="md" shadow="xs">
          <Title order={2} mb={4}>
            {title}
          </Title>
          {subtitle && (
            <Text size="sm" c="dimmed" mb="md">
              {subtitle}
            </Text>
          )}
          <main>{children}</main>
        </Paper>
        {footer && (
          <Text size="sm" c="dimmed" ta="center">
            {footer}
          </Text>
        )}
      </Stack>
    </Center>
  );
}
