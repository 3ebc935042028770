/**
 * The one place that turns a failed call into what the UI shows: a message, the field
 * violations of a `google.rpc.BadRequest` (field -> message, for forms to show at the field),
 * the `google.rpc.ErrorInfo` reason, and the request id when the server sent `x-request-id`.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "../gen/google/rpc/error_details_pb";

export interface UiError {
  code: Code | undefined;
  /** One line for a notification or an error box. */
  message: string;
  /** Server field path (e.g. `name`, `scopes[1]`) -> message. Empty when none were sent. */
  fields: Record<string, string>;
  /** `google.rpc.ErrorInfo.reason` (a code from `contracts`), when sent. */
  reason: string | undefined;
  requestId: string | undefined;
}

const CODE_TEXT: Partial<Record<Code, string>> = {
  [Code.Unauthenticated]: "Your session has ended. Sign in again.",
  [Code.PermissionDenied]: "You are not allowed to do this.",
  [Code.NotFound]: "Not found.",
  [Code.AlreadyExists]: "It already exists.",
  [Code.ResourceExhausted]: "Too many requests. Wait a moment and try again.",
  [Code.Unavailable]: "The control plane cannot be reached.",
  [Code.DeadlineExceeded]: "The control plane took too long to answer.",
  [Code.Internal]: "The control plane failed. Try again; if it keeps failing, check its log.",
  [Code.Unknown]: "Unexpected error.",
};

/** `scopes[2]` / `scopes.2` / `request.scopes` -> `scopes`: the form field a violation names. */
export function formFieldOf(field: string): string {
  const withoutIndex = field.replace(/\[\d+\]/g, "").replace(/\.\d+(?=\.|$)/g, "");
  return withoutIndex.replace(/^request\./, "");
}

export function toUiError(err: unknown): UiError {
  if (!(err instanceof ConnectError)) {
    const message = err instanceof Error ? err.message : String(err);
    return { code: undefined, message, fields: {}, reason: undefined, requestId: undefined };
  }
  const fields: Record<string, string> = {};
  for (const detail of safeFind(() => err.findDetails(BadRequestSchema))) {
    for (const v of detail.fieldViolations) {
      const key = formFieldOf(v.field);
      fields[key] = fields[key] ? `${fields[key]}; ${v.description}` : v.description;
    }
  }
  const reason = safeFind(() => err.findDetails(ErrorInfoSchema))[0]?.reason || undefined;
  const raw = err.rawMessage.trim();
  const message = raw || CODE_TEXT[err.code] || `Error ${Code[err.code]}`;
  const requestId = err.metadata.get("x-request-id") ?? undefined;
  return { code: err.code, message, fields, reason, requestId };
}

function safeFind<T>(f: () => T[]): T[] {
  try {
    return f();
  } catch {
    return [];
  }
}

export function isCode(err: unknown, code: Code): boolean {
  return err instanceof ConnectError && err.code === code;
}

export const isUnauthenticated = (err: unknown) => isCode(err, Code.Unauthenticated);
