import type { ReactNode } from "react";
import { Button, Group, type GroupProps } from "@mantine/core";
import { IconX } from "@tabler/icons-react";

/**
 * The row of filters above a list: a search landmark named `label`, its controls, and a
 * "Clear" button while `onClear` is given (pass it only while a filter is set).
 */
export function FilterBar({ label, onClear, align, children }: { label: string; onClear?: () => void; align?: GroupProps["align"]; children: ReactNode }) {
  return (
    <Group gap="xs" mb="sm" wrap="wrap" role="search" aria-label={label} align={align}>
      {children}
      {onClear && (
        <Button size="xs" variant="subtle" color="gray" leftSection={<IconX size={14} />} onClick={onClear}>
          Clear
        </Button>
      )}
    </Group>
  );
}
