/**
 * Server validation -> form: every `google.rpc.BadRequest` field violation is shown at the
 * form field it names; violations with no matching field stay in the form-level message.
 */
import type { UseFormReturnType } from "@mantine/form";
import { toUiError, type UiError } from "../../api/errors";

/** `team_id` -> `teamId`, `backend_auth.bearer.token` -> `backendAuth.bearer.token`. */
export function camelField(field: string): string {
  return field.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export interface FormFailure extends UiError {
  /** Violations not shown at a field. */
  unmatched: Record<string, string>;
}

/** Puts the field errors on `form` and returns what is left for the form-level message. */
export function applyServerError<V extends object>(
  form: UseFormReturnType<V, any, any>,
  err: unknown,
  fieldMap: Record<string, string> = {},
): FormFailure {
  const ui = toUiError(err);
  const values = form.getValues() as Record<string, unknown>;
  const errors: Record<string, string> = {};
  const unmatched: Record<string, string> = {};
  for (const [field, msg] of Object.entries(ui.fields)) {
    const key = fieldMap[field] ?? camelField(field);
    if (key in values || key.split(".")[0]! in values) errors[key] = msg;
    else unmatched[field] = msg;
  }
  form.setErrors(errors);
  return { ...ui, unmatched };
}
