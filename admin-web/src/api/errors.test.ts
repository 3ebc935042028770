import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { BadRequestSchema, ErrorInfoSchema } from "../gen/google/rpc/error_details_pb";
import { formFieldOf, toUiError } from "./errors";

describe("formFieldOf", () => {
  it.each([
    ["name", "name"],
    ["scopes[1]", "scopes"],
    ["scopes.0", "scopes"],
    ["request.team_id", "team_id"],
    ["backend_auth.bearer.token", "backend_auth.bearer.token"],
  ])("%s -> %s", (input, want) => expect(formFieldOf(input)).toBe(want));
});

describe("toUiError", () => {
  it("collects every field violation and the reason", () => {
    const err = new ConnectError(
      "invalid request",
      Code.InvalidArgument,
      { "x-request-id": "req-123" },
      [
        {
          desc: BadRequestSchema,
          value: create(BadRequestSchema, {
            fieldViolations: [
              { field: "name", description: "must not be empty" },
              { field: "scopes[0]", description: "unknown route \"x\"" },
              { field: "scopes[1]", description: "unknown tag" },
            ],
          }),
        },
        { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: "INVALID_ARGUMENT", domain: "keygate" }) },
      ],
    );
    // Details only become readable after a round trip through the wire format.
    const wire = ConnectError.from(err);
    const ui = toUiError(wire);
    expect(ui.code).toBe(Code.InvalidArgument);
    expect(ui.message).toBe("invalid request");
    expect(ui.requestId).toBe("req-123");
    expect(ui.fields).toEqual({ name: "must not be empty", scopes: 'unknown route "x"; unknown tag' });
    expect(ui.reason).toBe("INVALID_ARGUMENT");
  });

  it("falls back to a sentence per code", () => {
    const ui = toUiError(new ConnectError("", Code.PermissionDenied));
    expect(ui.message).toBe("You are not allowed to do this.");
    expect(ui.fields).toEqual({});
  });

  it("handles non-Connect errors", () => {
    expect(toUiError(new Error("boom")).message).toBe("boom");
  });
});
