import { describe, expect, it } from "vitest";
import { bytes, latency, latencyMs, msLabel, rateTone, statusClassOf, statusColor } from "./format";

describe("latency", () => {
  it.each([
    [undefined, "—"],
    [0, "0 µs"],
    [420, "420 µs"],
    [1_000, "1 ms"],
    [1_640, "1.6 ms"],
    [53_600, "54 ms"],
    [999_400, "999 ms"],
    [1_250_000, "1.25 s"],
    [2_000_000, "2 s"],
    [1_500_000, "1.5 s"],
  ] as const)("%s µs -> %s", (us, text) => {
    expect(latency(us)).toBe(text);
  });
  it("takes bigints and says when there is no data", () => {
    expect(latency(9_000n)).toBe("9 ms");
    expect(latency(9_000n, false)).toBe("—");
  });
  it("chart values in ms", () => {
    expect(latencyMs(1_640n)).toBe(1.64);
    expect(latencyMs(undefined)).toBe(0);
    expect(msLabel(1.64)).toBe("1.6 ms");
  });
});

describe("bytes", () => {
  it("uses binary units", () => {
    expect(bytes(0)).toBe("0 B");
    expect(bytes(1023)).toBe("1023 B");
    expect(bytes(10_035)).toBe("9.8 KiB");
    expect(bytes(5n * 1024n * 1024n)).toBe("5 MiB");
    expect(bytes(300 * 1024 * 1024)).toBe("300 MiB");
  });
});

describe("statuses", () => {
  it("classes and colours", () => {
    expect(statusClassOf(204)).toBe("2xx");
    expect(statusClassOf(429)).toBe("4xx");
    expect(statusClassOf(99)).toBeUndefined();
    expect(statusColor(503)).toBe("red");
    expect(statusColor("4xx")).toBe("orange");
    expect(statusColor(0)).toBe("gray");
  });
  it("rate tones", () => {
    expect(rateTone(1, 0)).toBeUndefined();
    expect(rateTone(0.995, 10)).toBe("kg-good");
    expect(rateTone(0.96, 10n)).toBe("kg-warn");
    expect(rateTone(0.5, 10)).toBe("kg-bad");
  });
});
