import type { ReactNode } from "react";
import { Button } from "@mantine/core";
import { IconPlus, type Icon } from "@tabler/icons-react";

/**
 * The primary button that starts creating something ("Create token", "Invite"), with a
 * leading icon (a plus unless given): full size in a page header, `size="xs"` in an empty state.
 */
export function CreateButton({ children, onClick, size, icon: IconCmp = IconPlus }: { children: ReactNode; onClick: () => void; size?: "xs"; icon?: Icon }) {
  return (
    <Button size={size} leftSection={<IconCmp size={size === "xs" ? 14 : 16} />} onClick={onClick}>
      {children}
    </Button>
  );
}
