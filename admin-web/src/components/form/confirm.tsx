/** Confirm dialogs (Mantine modals: focus-trapped, Esc closes, Enter on the focused button). */
import type { ReactNode } from "react";
import { Text } from "@mantine/core";
import { modals } from "@mantine/modals";

export function confirmAction(o: {
  title: string;
  body: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  onConfirm: () => void;
}) {
  modals.openConfirmModal({
    title: o.title,
    children: typeof o.body === "string" ? <Text size="sm">{o.body}</Text> : o.body,
    labels: { confirm: o.confirmLabel, cancel: "Cancel" },
    confirmProps: { color: o.danger ? "red" : undefined, "data-autofocus": true },
    onConfirm: o.onConfirm,
  });
}
