/**
 * Development proxy from the Vite server (dev and preview) to a local control plane, so the
 * UI is same-origin as it is when the control plane serves it.
 *
 * Session shim (development only, never part of the built UI): until the control plane sets
 * its own HttpOnly session cookie on SignIn/CompleteSetup/AcceptInvitation, this proxy does
 * it — it reads the session token from the grpc-web response, sets `kg_dev_session`
 * (HttpOnly, SameSite=Strict) and turns the cookie back into `authorization: Bearer` on the
 * way in. As soon as the upstream answers with a `set-cookie` of its own, the shim stays out
 * of the way. The browser code is the same either way: it never sees the token.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ProxyOptions } from "vite";

const COOKIE = "kg_dev_session";
const ISSUING = /\/keygate\.v1\.AuthService\/(SignIn|CompleteSetup|AcceptInvitation)$/;
const SIGN_OUT = /\/keygate\.v1\.AuthService\/SignOut$/;

function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return undefined;
}

/** Field 1 (string) of the first grpc-web data frame: `SignInResponse.session_token`. */
export function sessionTokenFromGrpcWeb(body: Buffer): string | undefined {
  if (body.length < 5 || (body[0]! & 0x80) !== 0) return undefined;
  const len = body.readUInt32BE(1);
  const msg = body.subarray(5, 5 + len);
  let i = 0;
  while (i < msg.length) {
    const tag = msg[i++]!;
    const wire = tag & 7;
    if (wire !== 2) return undefined;
    let n = 0;
    let shift = 0;
    for (;;) {
      const b = msg[i++]!;
      n |= (b & 0x7f) << shift;
      shift += 7;
      if ((b & 0x80) === 0) break;
    }
    if (tag >> 3 === 1) return msg.subarray(i, i + n).toString("utf8");
    i += n;
  }
  return undefined;
}

export function controlPlaneProxy(target: string): Record<string, ProxyOptions> {
  return {
    "^/(keygate\\.v1|grpc)\\.": {
      target,
      changeOrigin: false,
      selfHandleResponse: true,
      configure(proxy) {
        proxy.on("proxyReq", (proxyReq, req) => {
          const token = readCookie(req, COOKIE);
          if (token && !req.headers.authorization) proxyReq.setHeader("authorization", `Bearer ${token}`);
        });
        proxy.on("proxyRes", (proxyRes, req, res: ServerResponse) => {
          const url = req.url ?? "";
          const upstreamSetsCookie = proxyRes.headers["set-cookie"] !== undefined;
          const headers = { ...proxyRes.headers } as Record<string, string | string[]>;
          if (SIGN_OUT.test(url) && readCookie(req, COOKIE)) {
            headers["set-cookie"] = `${COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
          }
          if (!ISSUING.test(url) || upstreamSetsCookie) {
            res.writeHead(proxyRes.statusCode ?? 502, headers);
            // Send the headers now: a server stream (a live tail) may send no body for a while.
            res.flushHeaders();
            proxyRes.pipe(res);
            return;
          }
          const chunks: Buffer[] = [];
          proxyRes.on("data", (c: Buffer) => chunks.push(c));
          proxyRes.on("end", () => {
            const body = Buffer.concat(chunks);
            const token = sessionTokenFromGrpcWeb(body);
            if (token) {
              headers["set-cookie"] = `${COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`;
            }
            delete headers["content-length"];
            delete headers["transfer-encoding"];
            res.writeHead(proxyRes.statusCode ?? 502, headers);
            res.end(body);
          });
        });
      },
    },
  };
}
