/** Toasts for finished actions and failed ones (with the request id when the server sent it). */
import { notifications } from "@mantine/notifications";
import { toUiError } from "../../api/errors";

/** The toast's close button needs a name (axe: button-name). */
const CLOSE = { "aria-label": "Dismiss notification" };

export function notifySuccess(message: string) {
  notifications.show({ color: "teal", message, autoClose: 3000, closeButtonProps: CLOSE });
}

export function notifyError(err: unknown, title = "Failed") {
  const e = toUiError(err);
  notifications.show({
    color: "red",
    title,
    message: e.requestId ? `${e.message} (request ${e.requestId})` : e.message,
    autoClose: 8000,
    closeButtonProps: CLOSE,
  });
}
