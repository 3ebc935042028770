import { Alert, List, Text } from "@mantine/core";
import { IconAlertCircle } from "@tabler/icons-react";
import type { FormFailure } from "./serverErrors";
import { RequestId } from "../states/ErrorState";

/** The form-level part of a failed submit (the field parts are shown at their fields). */
export function FormFailureAlert({ failure }: { failure: FormFailure | null }) {
  if (!failure) return null;
  const rest = Object.entries(failure.unmatched);
  const onlyFields = Object.keys(failure.fields).length > 0 && rest.length === 0;
  return (
    <Alert color="red" variant="light" icon={<IconAlertCircle size={18} />} role="alert" p="sm">
      <Text size="sm">{onlyFields ? "Check the highlighted fields." : failure.message}</Text>
      {rest.length > 0 && (
        <List size="sm" mt={4}>
          {rest.map(([f, m]) => (
            <List.Item key={f}>
              <span className="kg-mono">{f}</span>: {m}
            </List.Item>
          ))}
        </List>
      )}
      {failure.requestId && <RequestId id={failure.requestId} />}
    </Alert>
  );
}
