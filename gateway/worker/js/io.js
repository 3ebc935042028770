// gateway/worker/js/io.js — two runtime calls the Worker makes on every request, done in one
// crossing each instead of dozens (each call from wasm into the runtime costs more than the
// gateway's rules do; see bench/README.md "Cloudflare Worker"). IO only: no gateway rule lives
// here. Imported by src/io.rs through wasm-bindgen.

// Every header of `headers` as one string: `name\nvalue\n` per entry, in the runtime's order
// (names lower-case; repeated headers joined by ", " except set-cookie, as the runtime lists
// them). A header value cannot hold a line feed, so the split is exact.
export function headersText(headers) {
  let text = "";
  for (const [name, value] of headers) text += name + "\n" + value + "\n";
  return text;
}

// fetch(url) with redirects returned as they are, resolving to the Response once its head
// arrives, or to `undefined` when no head came within `ms` (the fetch is then aborted). Once
// the head is in, the timer is cleared: a long body goes on.
export function fetchHead(url, method, headers, body, ms) {
  const controller = new AbortController();
  const init = { method, headers, redirect: "manual", signal: controller.signal };
  if (body) init.body = body;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      controller.abort();
      resolve(undefined);
    }, ms);
    fetch(url, init).then(
      (response) => {
        clearTimeout(timer);
        resolve(response);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
