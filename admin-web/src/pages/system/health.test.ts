import { describe, expect, it } from "vitest";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FollowerStatusSchema } from "../../gen/keygate/v1/sync_pb";
import { GatewaySchema } from "../../gen/keygate/v1/usage_pb";
import { DatabaseStatusSchema } from "../../gen/keygate/v1/system_pb";
import { dateToTs } from "../../lib/format";
import { assessDatabase, assessFollower, assessGateway, duration, worst } from "./health";

const now = new Date("2026-12-07T12:00:00Z");
const ago = (s: number) => dateToTs(new Date(now.getTime() - s * 1000));

describe("assessFollower", () => {
  const f = (p: MessageInitShape<typeof FollowerStatusSchema>) => create(FollowerStatusSchema, { follower: "kv-sync/local", reportedAt: ago(5), ...p });
  it("fine when reporting and close to the head", () => {
    expect(assessFollower(f({ lagRevisions: 3n }), now)).toEqual({ level: "ok", reason: "" });
  });
  it("an error is failing", () => {
    expect(assessFollower(f({ lastError: "kv write failed" }), now)).toEqual({ level: "bad", reason: "kv write failed" });
  });
  it("silence turns from attention to failing", () => {
    expect(assessFollower(f({ reportedAt: ago(120) }), now)).toEqual({ level: "warn", reason: "no report for 2 min" });
    expect(assessFollower(f({ reportedAt: ago(900) }), now)).toEqual({ level: "bad", reason: "no report for 15 min" });
    expect(assessFollower(f({ reportedAt: undefined }), now).reason).toBe("never reported");
  });
  it("lag and resync need attention", () => {
    expect(assessFollower(f({ lagRevisions: 500n }), now)).toEqual({ level: "warn", reason: "500 revisions behind" });
    expect(assessFollower(f({ resyncRequested: true }), now).reason).toBe("resync requested");
  });
});

describe("assessGateway", () => {
  const g = (p: MessageInitShape<typeof GatewaySchema>) => create(GatewaySchema, { name: "gateway", lastSeenAt: ago(10), ...p });
  it("fine when reporting without drops", () => {
    expect(assessGateway(g({}), now).level).toBe("ok");
  });
  it("dropped counts fail, dropped events need attention", () => {
    expect(assessGateway(g({ rollupsDroppedLastHour: 7n }), now).level).toBe("bad");
    expect(assessGateway(g({ eventsDroppedLastHour: 2n }), now)).toEqual({ level: "warn", reason: "2 raw events dropped in the last hour" });
  });
  it("a quiet gateway may be idle", () => {
    expect(assessGateway(g({ lastSeenAt: ago(3600) }), now)).toEqual({ level: "idle", reason: "quiet for 60 min (idle, or down)" });
  });
});

describe("helpers", () => {
  it("worst level", () => {
    expect(worst([])).toBe("ok");
    expect(worst(["ok", "idle"])).toBe("idle");
    expect(worst(["idle", "warn", "ok"])).toBe("warn");
    expect(worst(["bad", "warn"])).toBe("bad");
  });
  it("durations", () => {
    expect(duration(5)).toBe("5 s");
    expect(duration(600)).toBe("10 min");
    expect(duration(7200)).toBe("2 h");
    expect(duration(5 * 86400)).toBe("5 days");
  });
});

describe("assessDatabase", () => {
  it("reachable and quick is fine; slow needs attention; down fails with its error", () => {
    expect(assessDatabase(create(DatabaseStatusSchema, { reachable: true, pingMicros: 300n }))).toEqual({ level: "ok", reason: "" });
    expect(assessDatabase(create(DatabaseStatusSchema, { reachable: true, pingMicros: 120_000n }))).toEqual({ level: "warn", reason: "slow: ping 120 ms" });
    expect(assessDatabase(create(DatabaseStatusSchema, { reachable: false, error: "connection refused" }))).toEqual({ level: "bad", reason: "connection refused" });
    expect(assessDatabase(create(DatabaseStatusSchema, { reachable: false })).reason).toBe("does not answer");
  });
});
