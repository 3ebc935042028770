#!/usr/bin/env python3
"""Writes the small seed corpora in fuzz/seeds/ from the test vectors (gateway/core/vectors).

Run from the repository root: python3 fuzz/make_seeds.py. The seeds are committed; the
corpora libFuzzer grows from them (fuzz/corpus/, fuzz/artifacts/) are not. docs/fuzzing.md.
"""
import hashlib, json, os, glob

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
seeds = os.path.join(root, "fuzz", "seeds")

def write(target, data):
    d = os.path.join(seeds, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

vectors = {os.path.basename(p): json.load(open(p)) for p in glob.glob(os.path.join(root, "gateway/core/vectors/*.json"))}

# h1_differential: every decide case as an HTTP/1.1 request head, plus framing variants.
for name, v in sorted(vectors.items()):
    for c in v.get("decide", []):
        r = c["request"]
        target = r["path"] + ("?" + r["query"] if r.get("query") is not None else "")
        lines = [f'{r["method"]} {target} HTTP/1.1', "Host: gw.example"]
        lines += [f"X-API-Key: {k}" for k in r.get("api_key", [])]
        lines += [f"Authorization: {a}" for a in r.get("authorization", [])]
        if r.get("origin") is not None:
            lines.append(f'Origin: {r["origin"]}')
        if r.get("preflight_method") is not None:
            lines.append(f'Access-Control-Request-Method: {r["preflight_method"]}')
        head = "\r\n".join(lines) + "\r\n\r\n"
        write("h1_differential", head.encode("utf-8", "surrogateescape"))
key = vectors["decide.json"]["fixture"]["tokens"][0]["key"]
extra = [
    f"POST /api/x/v1/items HTTP/1.1\r\nHost: gw.example\r\nX-API-Key: {key}\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    f"GET /api/x/v1 HTTP/1.1\r\nHost: gw.example\r\nX-API-Key: {key}\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\nCookie: a=1\r\nX-Forwarded-For: 6.6.6.6\r\nX-Backend-Key: caller\r\nAccept: */*\r\nAccept: text/plain\r\n\r\n",
    f"GET /api/x/v1 HTTP/1.1\r\nX-API-Key: {key}\r\n\r\n",
    f"GET /api/x/v1 HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-API-Key: {key}\r\n\r\n",
    f"GET http://gw.example/api/x/v1 HTTP/1.1\r\nHost: gw.example\r\nX-API-Key: {key}\r\n\r\n",
    f"GET /api/x/v1 HTTP/1.0\r\nX-API-Key: {key}\r\n\r\n",
    f"POST /api/x/v1 HTTP/1.1\r\nHost: gw.example\r\nX-API-Key: {key}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    f"GET /api/x/v1 HTTP/1.1\nHost: gw.example\nX-API-Key: {key}\n\n",
    f"GET /api/x/v1?api_key={key}&limit=5 HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer {key}\r\nUser-Agent: fuzz\r\n\r\n",
]
for e in extra:
    write("h1_differential", e.encode())

# kv_decoders: the fixtures' records and every compile case's table, and a revision.
for name, v in sorted(vectors.items()):
    f = v.get("fixture")
    if f:
        write("kv_decoders", json.dumps(f["routes"], separators=(",", ":")).encode())
        for t in f["tokens"]:
            write("kv_decoders", json.dumps(t["record"], separators=(",", ":")).encode())
    for c in v.get("compile", []):
        write("kv_decoders", json.dumps(c["routes"], separators=(",", ":")).encode())
write("kv_decoders", b'{"v":1,"revision":42,"at":1767225600000}')
write("kv_decoders", hashlib.sha256(b"x").hexdigest().encode())
