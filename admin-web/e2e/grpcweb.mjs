// A hand-framed grpc-web unary call made from inside a page (so it carries exactly what the
// browser would: the session cookie, the page's Origin). Used to check that the server, not
// only the UI, refuses what a caller may not do. Request messages here are single-string-field
// protobufs built by `stringFields`.

/** Protobuf bytes of a message whose fields `n -> string` are all strings (wire type 2). */
export function stringFields(fields) {
  const out = [];
  for (const [n, value] of Object.entries(fields)) {
    const bytes = [...new TextEncoder().encode(value)];
    out.push((Number(n) << 3) | 2);
    let len = bytes.length;
    while (len > 0x7f) {
      out.push((len & 0x7f) | 0x80);
      len >>>= 7;
    }
    out.push(len, ...bytes);
  }
  return out;
}

/**
 * Calls `/<service>/<method>` from `page` with the message bytes `body`; resolves with
 * `{ status, message }` (grpc-status as a number, from the headers or the trailer frame).
 * `headers` replaces the grpc-web headers (to test what a forged request gets).
 */
export function callFromPage(page, service, method, body, headers) {
  return page.evaluate(
    async ({ service, method, body, headers }) => {
      const msg = new Uint8Array(body);
      const frame = new Uint8Array(5 + msg.length);
      new DataView(frame.buffer).setUint32(1, msg.length);
      frame.set(msg, 5);
      const res = await fetch(`/${service}/${method}`, {
        method: "POST",
        headers: headers ?? { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
        body: frame,
      });
      let status = res.headers.get("grpc-status");
      let message = res.headers.get("grpc-message") ?? "";
      const buf = new Uint8Array(await res.arrayBuffer());
      for (let i = 0; i + 5 <= buf.length; ) {
        const flag = buf[i];
        const len = new DataView(buf.buffer, buf.byteOffset + i + 1, 4).getUint32(0);
        if (flag & 0x80) {
          const text = new TextDecoder().decode(buf.subarray(i + 5, i + 5 + len));
          for (const line of text.split("\r\n")) {
            const [k, ...v] = line.split(":");
            if (k.trim().toLowerCase() === "grpc-status") status = v.join(":").trim();
            if (k.trim().toLowerCase() === "grpc-message") message = decodeURIComponent(v.join(":").trim());
          }
        }
        i += 5 + len;
      }
      return { http: res.status, status: status === null ? null : Number(status), message };
    },
    { service, method, body, headers },
  );
}
