/** "Chrome on Linux" from a User-Agent string; the raw string stays visible beside it. */
export function describeUserAgent(ua: string): string {
  if (!ua) return "Unknown client";
  const browser = /Edg\//.test(ua)
    ? "Edge"
    : /Firefox\//.test(ua)
      ? "Firefox"
      : /Chrom(e|ium)\//.test(ua)
        ? "Chrome"
        : /Safari\//.test(ua)
          ? "Safari"
          : /^keygate/i.test(ua)
            ? "Keygate CLI"
            : /grpc|tonic/i.test(ua)
              ? "gRPC client"
              : /curl/i.test(ua)
                ? "curl"
                : "Browser";
  const os = /Windows/.test(ua)
    ? "Windows"
    : /Mac OS X|Macintosh/.test(ua)
      ? "macOS"
      : /Android/.test(ua)
        ? "Android"
        : /iPhone|iPad/.test(ua)
          ? "iOS"
          : /Linux/.test(ua)
            ? "Linux"
            : "";
  return os ? `${browser} on ${os}` : browser;
}
