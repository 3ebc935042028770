import { Alert, Button, Group, Text } from "@mantine/core";
import { IconAlertTriangle } from "@tabler/icons-react";
import { toUiError } from "../../api/errors";

/** A failed load: the server's message, the request id when known, and a retry. */
export function ErrorState({ error, retry, title = "Could not load this" }: { error: unknown; retry?: () => void; title?: string }) {
  const e = toUiError(error);
  return (
    <Alert color="red" variant="light" icon={<IconAlertTriangle size={18} />} title={title} my="md" role="alert">
      <Text size="sm">{e.message}</Text>
      {e.requestId && <RequestId id={e.requestId} />}
      {retry && (
        <Group mt="sm">
          <Button size="xs" variant="default" onClick={retry}>
            Try again
          </Button>
        </Group>
      )}
    </Alert>
  );
}

export function RequestId({ id }: { id: string }) {
  return (
    <Text size="xs" c="dimmed" mt={4}>
      Request id <span className="kg-mono">{id}</span>
    </Text>
  );
}
