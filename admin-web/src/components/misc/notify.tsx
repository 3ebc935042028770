/** Toasts for finished actions and failed ones (with the request id when the server sent it). */
import { notifications } from "@mantine/notifications";
import { toUiError } from "../../api/errors";

export function notifySuccess(message: string) {
  notifications.show({ color: "teal", message, autoClose: 3000 });
}

export function notifyError(err: unknown, title = "Failed") {
  const e = toUiError(err);
  notifications.show({
    color: "red",
    title,
    message: e.requestId ? `${e.message} (request ${e.requestId})` : e.message,
    autoClose: 8000,
  });
}
