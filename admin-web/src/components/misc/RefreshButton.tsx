import { ActionIcon, Tooltip } from "@mantine/core";
import { IconRefresh } from "@tabler/icons-react";

/** The page header's "Refresh" icon button: reloads the page's data and spins while it loads. */
export function RefreshButton({ onClick, loading }: { onClick: () => void; loading: boolean }) {
  return (
    <Tooltip label="Refresh">
      <ActionIcon variant="default" size="lg" onClick={onClick} loading={loading} aria-label="Refresh">
        <IconRefresh size={16} />
      </ActionIcon>
    </Tooltip>
  );
}
