import { describe, expect, it } from "vitest";
import { describeUserAgent } from "./userAgent";

describe("describeUserAgent", () => {
  it.each([
    ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36", "Chrome on Linux"],
    ["Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Gecko/20100101 Firefox/127.0", "Firefox on macOS"],
    ["Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/126 Safari/537.36 Edg/126", "Edge on Windows"],
    ["keygate-cli/0.1.0", "Keygate CLI"],
    ["tonic/0.14", "gRPC client"],
    ["", "Unknown client"],
  ])("%s", (ua, want) => expect(describeUserAgent(ua)).toBe(want));
});
