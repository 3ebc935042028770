-- bench/gateway/requests.lua: the wrk script of bench/gateway.sh.
--
--   wrk -t T -c C -d D --latency -s requests.lua URL -- KEYS_FILE PATHS_FILE T
--
-- Line i of KEYS_FILE (an API key) goes with line i of PATHS_FILE (a path that key may call).
-- Every request is a GET of one pair with the key in X-API-Key; pairs are sent round-robin.
--
-- wrk gives each thread its own Lua state, so nothing set in the main state reaches the
-- threads except through thread:set(). setup() (main state) numbers the threads; init()
-- (each thread's state) reads both files itself and builds every request string once, so
-- request() only returns a pre-built string. Threads start at different offsets.
--
-- done() prints one line starting with KGWRK that bench/gateway.sh parses (latencies in
-- microseconds; non2xx is wrk's "Non-2xx or 3xx responses", i.e. statuses above 399).

local next_tid = 0

function setup(thread)
    thread:set("tid", next_tid)
    next_tid = next_tid + 1
end

local function read_lines(path)
    local out = {}
    local f = assert(io.open(path, "r"))
    for line in f:lines() do
        if line ~= "" then
            out[#out + 1] = line
        end
    end
    f:close()
    return out
end

local reqs = {}
local n = 0
local i = 0

function init(args)
    local keys = read_lines(args[1])
    local paths = read_lines(args[2])
    local threads = tonumber(args[3] or "1")
    assert(#keys > 0 and #keys == #paths, "keys and paths files must have the same, non-zero, number of lines")
    for j = 1, #keys do
        reqs[j] = wrk.format("GET", paths[j], { ["X-API-Key"] = keys[j] })
    end
    n = #reqs
    i = math.floor(n * (tid or 0) / threads) % n
end

function request()
    i = i % n + 1
    return reqs[i]
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "KGWRK requests=%d duration_us=%d p50_us=%d p75_us=%d p90_us=%d p99_us=%d max_us=%d "
            .. "non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
        summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(75), latency:percentile(90),
        latency:percentile(99), latency.max,
        e.status, e.connect, e.read, e.write, e.timeout))
end
