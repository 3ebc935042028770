/**
 * A secret shown exactly once (a management key, an invitation code or link): each value with
 * a copy button, a warning that it cannot be read again, and an explicit "I have copied it"
 * to close (Esc and clicks outside do not close it). Token plaintexts have their own dialog
 * with usage snippets (pages/tokens/PlaintextModal).
 */
import type { ReactNode } from "react";
import { Alert, Button, Code, Group, Modal, Stack, Text } from "@mantine/core";
import { IconAlertTriangle } from "@tabler/icons-react";
import { CopyTextButton } from "./Copy";

export interface ShownOnceValue {
  label: string;
  value: string;
  /** Names the copy button ("Copy key"). */
  copyLabel: string;
  testId?: string;
}

export function ShownOnceModal({
  opened,
  onClose,
  title,
  warning,
  values,
  children,
}: {
  opened: boolean;
  onClose: () => void;
  title: string;
  /** Why it must be copied now. */
  warning: ReactNode;
  values: ShownOnceValue[];
  /** Extra notes below the values. */
  children?: ReactNode;
}) {
  return (
    <Modal opened={opened} onClose={onClose} title={title} size="lg" closeOnClickOutside={false} closeOnEscape={false} withCloseButton={false}>
      <Stack gap="md">
        <Alert color="yellow" variant="light" icon={<IconAlertTriangle size={18} />} p="sm">
          {warning}
        </Alert>
        {values.map((v) => (
          <div key={v.label}>
            <Text size="sm" fw={500} mb={4}>
              {v.label}
            </Text>
            <Group gap="xs" wrap="nowrap" align="center">
              <Code block className="kg-snippet" style={{ flex: 1 }} data-testid={v.testId}>
                {v.value}
              </Code>
              <CopyTextButton value={v.value} label={v.copyLabel} />
            </Group>
          </div>
        ))}
        {children}
        <Group justify="flex-end">
          <Button onClick={onClose} data-autofocus>
            I have copied it
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
