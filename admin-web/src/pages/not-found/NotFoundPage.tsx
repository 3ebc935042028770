import { Button } from "@mantine/core";
import { Link } from "@tanstack/react-router";
import { IconMapOff } from "@tabler/icons-react";
import { EmptyState } from "../../components/states/EmptyState";

export function NotFoundPage() {
  return (
    <div className="kg-card" style={{ marginTop: 24 }}>
      <EmptyState
        icon={IconMapOff}
        title="Page not found"
        description="There is no page at this address. It may have moved, or the link is mistyped."
        action={
          <Button component={Link} to="/" variant="default" size="xs">
            Go to the dashboard
          </Button>
        }
      />
    </div>
  );
}
