-- What authhero.aws.safe costs per call: each safe call against the same call on the real object in
-- the same run, the difference being the wrapper (one pcall, a closure call, for the client a
-- metatable lookup). Three pairs: a function that does nothing (the bare wrapper), client:call
-- ("GetItem") and adapters.tenants.get, both over an in-process transport answering a canned reply
-- (signing, encoding and decoding happen, no network). CPU time, best of BENCH_ROUNDS (3), BENCH_N
-- calls per measurement (200000).
-- Run from any folder: lua5.4 bench/safe.lua   (under luajit it loads build/jit; BENCH_CPATH overrides)
local script = arg and arg[0] or "bench/safe.lua"
local dir = script:match("^(.*)/[^/]*$") or "."
local flavour = rawget(_G, "jit") and "jit" or "5.4"
package.path = dir .. "/../lua/?.lua;" .. dir .. "/../lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("BENCH_CPATH") or (dir .. "/../build/" .. flavour .. "/?.so")) .. ";" .. package.cpath
local aws = require "authhero.aws"
local safe = require "authhero.aws.safe"

local N = tonumber(os.getenv("BENCH_N")) or 200000
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS")) or 3

-- CPU seconds per call of f, best of ROUNDS (after a warm-up of N/10 calls).
local function per_call(f)
    f(math.floor(N / 10))
    local best = math.huge
    for _ = 1, ROUNDS do
        collectgarbage("collect")
        local t0 = os.clock()
        f(N)
        best = math.min(best, (os.clock() - t0) / N)
    end
    return best
end

local function report(name, raw_f, safe_f)
    local r, s = per_call(raw_f), per_call(safe_f)
    local pct = r > 1e-9 and string.format(" (%+.1f%%)", (s - r) / r * 100) or ""
    print(string.format("%-34s real %8.3f us  safe %8.3f us  overhead %6.3f us%s", name, r * 1e6, s * 1e6,
        (s - r) * 1e6, pct))
end

print(string.format("%s%s, %d calls per measurement, best of %d", _VERSION,
    rawget(_G, "jit") and (" / " .. jit.version) or "", N, ROUNDS))

local function nothing(x) return x end
local safe_nothing = safe.wrap(nothing)
report("a function that does nothing", function(n)
    for i = 1, n do nothing(i) end
end, function(n)
    for i = 1, n do safe_nothing(i) end
end)

-- The canned GetItem reply of a tenant; the transport hands it back without I/O.
local BODY = '{"Item":{"PK":{"S":"TENANT#acme"},"SK":{"S":"TENANT"},"entityType":{"S":"TENANT"},'
    .. '"id":{"S":"acme"},"friendly_name":{"S":"Acme"},"audience":{"S":"https://acme.example"},'
    .. '"created_at":{"S":"2026-01-01T00:00:00.000Z"},"updated_at":{"S":"2026-01-01T00:00:00.000Z"}}}'
local transport = {
    request = function() return { status = 200, body = BODY, headers = {} } end,
    close = function() end,
}
local client = aws.client.new({ region = "us-east-1", endpoint = "http://127.0.0.1:1", transport = transport,
    credentials = { accessKeyId = "AKID", secretAccessKey = "secret" } })
local sclient = assert(safe.client.new({ region = "us-east-1", endpoint = "http://127.0.0.1:1",
    transport = transport, credentials = { accessKeyId = "AKID", secretAccessKey = "secret" } }))
local GET = { TableName = "authhero", Key = { PK = "TENANT#acme", SK = "TENANT" } }
assert(client:call("GetItem", GET).Item.id == "acme" and sclient:call("GetItem", GET).Item.id == "acme")
report('client:call("GetItem")', function(n)
    for _ = 1, n do client:call("GetItem", GET) end
end, function(n)
    for _ = 1, n do sclient:call("GetItem", GET) end
end)

local adapters = aws.create_adapters(client, { tableName = "authhero" })
local sadapters = assert(safe.create_adapters(sclient, { tableName = "authhero" }))
assert(adapters.tenants.get("acme").friendly_name == "Acme" and sadapters.tenants.get("acme").friendly_name == "Acme")
report("adapters.tenants.get", function(n)
    local get = adapters.tenants.get
    for _ = 1, n do get("acme") end
end, function(n)
    local get = sadapters.tenants.get
    for _ = 1, n do get("acme") end
end)
