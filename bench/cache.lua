-- Cache benchmark (issue 13): the CPU cost of a configuration-cache hit through the adapters, per
-- entity, next to two baselines measured in the same run: a miss (the same read sent to DynamoDB
-- Local) and core.copy of the same record (the floor: every hit returns a copy). Then memory over
-- BENCH_CACHE_READS cached reads (default 1,000,000) over BENCH_CACHE_KEYS distinct keys (100,000)
-- with max_entries = BENCH_CACHE_MAX (10,000): RSS and the Lua heap before and after.
--
--   lua5.4 bench/cache.lua      (from the repository root; starts DynamoDB Local itself, or uses
--   luajit bench/cache.lua       $DYNAMODB_ENDPOINT)
-- Environment: BENCH_N hits per measurement (200000), BENCH_ROUNDS (3, best of), BENCH_MISSES (300).
local flavour = rawget(_G, "jit") and "jit" or "5.4"
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;bench/?.lua;" .. package.path
package.cpath = (os.getenv("BENCH_CPATH") or ("build/" .. flavour .. "/?.so")) .. ";" .. package.cpath
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local ddb = require "support.ddb_local"

local N = tonumber(os.getenv("BENCH_N")) or 200000
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS")) or 3
local MISSES = tonumber(os.getenv("BENCH_MISSES")) or 300
local READS = tonumber(os.getenv("BENCH_CACHE_READS")) or 1000000
local KEYS = tonumber(os.getenv("BENCH_CACHE_KEYS")) or 100000
local MAX = tonumber(os.getenv("BENCH_CACHE_MAX")) or 10000

local client = aws.client.new({
    region = "us-east-1",
    endpoint = ddb.endpoint(),
    credentials = { accessKeyId = "fakeMyKeyId", secretAccessKey = "fakeSecretAccessKey" },
})
local TABLE = "bench_cache_" .. os.time()
aws.schema.create_table(client, { tableName = TABLE })
local plain = aws.create_adapters(client, { tableName = TABLE })
local cache = aws.cache.new({ ttl = 3600 })
local cached = aws.create_adapters(client, { tableName = TABLE, cache = cache })

-- The configuration AuthHero reads on every request, shaped as its seed and management API write it.
local T = "bench-tenant"
plain.tenants.create({ id = T, friendly_name = "Bench tenant", audience = "https://bench.example.com/api",
    support_url = "https://bench.example.com/support", sender_email = "login@bench.example.com",
    sender_name = "Bench", session_lifetime = 168, idle_session_lifetime = 72 })
local A = core.array
plain.clients.create(T, {
    client_id = "bench-client", name = "Bench SPA", description = "The login page's client",
    app_type = "spa", is_first_party = true, oidc_conformant = true, global = false,
    client_secret = "secret-secret-secret-secret-secret",
    callbacks = A { "https://app.bench.example.com/callback", "http://localhost:3000/callback" },
    allowed_logout_urls = A { "https://app.bench.example.com" }, web_origins = A { "https://app.bench.example.com" },
    allowed_origins = A { "https://app.bench.example.com" }, client_aliases = A {},
    grant_types = A { "authorization_code", "refresh_token" },
    jwt_configuration = { alg = "RS256", lifetime_in_seconds = 36000, secret_encoded = false },
    refresh_token = { rotation_type = "non-rotating", expiration_type = "non-expiring", leeway = 0,
        token_lifetime = 2592000, infinite_token_lifetime = true, idle_token_lifetime = 1296000,
        infinite_idle_token_lifetime = true },
    token_endpoint_auth_method = "client_secret_basic", client_metadata = {}, addons = {},
    sso = false, sso_disabled = true, cross_origin_authentication = false, custom_login_page_on = false,
    organization_usage = "deny", organization_require_behavior = "no_prompt",
})
for i = 1, 3 do
    plain.connections.create(T, { id = "con" .. i, name = "connection-" .. i,
        strategy = i == 1 and "Username-Password-Authentication" or "google-oauth2",
        options = { brute_force_protection = true, passwordPolicy = "good", disable_signup = false } })
end
plain.clientConnections.updateByClient(T, "bench-client", A { "con1", "con2", "con3" })
plain.branding.set(T, { colors = { primary = "#0A0A0A", page_background = "#FFFFFF" },
    logo_url = "https://bench.example.com/logo.png", font = { url = "https://bench.example.com/font.woff2" } })

local CASES = {
    { "tenants.get", function(a) return a.tenants.get(T) end },
    { "branding.get", function(a) return a.branding.get(T) end },
    { "clients.getByClientId", function(a) return a.clients.getByClientId("bench-client") end },
    { "connections.get", function(a) return a.connections.get(T, "con1") end },
    { "clientConnections.listByClient (3)", function(a) return a.clientConnections.listByClient(T, "bench-client") end },
    { "connections.list (3)", function(a) return a.connections.list(T, { per_page = 50 }) end },
}

local clock = os.clock
local function best_of(n, fn)
    local best = math.huge
    for _ = 1, ROUNDS do
        local t0 = clock()
        for _ = 1, n do fn() end
        best = math.min(best, (clock() - t0) / n)
    end
    return best * 1e6 -- microseconds of CPU per call
end

local function wall_of(n, fn)
    local t0 = core.now()
    for _ = 1, n do fn() end
    return (core.now() - t0) / n * 1e6
end

print(string.format("cache benchmark (%s): %d hits per round, best of %d; %d misses", flavour == "jit" and "LuaJIT"
    or _VERSION, N, ROUNDS, MISSES))
print(string.format("%-36s %10s %10s %12s %12s", "read", "hit CPU", "copy CPU", "miss wall", "hit/miss"))
local worst = 0
for _, case in ipairs(CASES) do
    local name, read = case[1], case[2]
    local record = read(plain)
    read(cached) -- the entry
    local hit = best_of(N, function() return read(cached) end)
    local copy = best_of(N, function() return core.copy(record) end)
    local miss = wall_of(MISSES, function() return read(plain) end)
    worst = math.max(worst, hit)
    print(string.format("%-36s %8.2f us %8.2f us %10.1f us %12.4f", name, hit, copy, miss, hit / miss))
end
print(string.format("worst hit: %.2f us of CPU (target <= 2 us on Lua 5.4)", worst))

-- Memory: READS reads over KEYS keys with max_entries MAX, through cache:read with the client record
-- as the value (a loader that needs no DynamoDB, so a million reads take seconds).
local function rss_kb()
    local f = io.open("/proc/self/statm")
    if not f then return 0 end
    local _, rss = f:read("*l"):match("(%d+)%s+(%d+)")
    f:close()
    return tonumber(rss) * 4
end
local record = plain.clients.getByClientId("bench-client")
local mem = aws.cache.new({ ttl = 3600, max_entries = MAX })
local function load() return record end
local keys = {}
for i = 1, KEYS do keys[i] = "bench.key\2s" .. i end
local rnd = 12345
local function read_some(n)
    for _ = 1, n do
        rnd = (rnd * 16807) % 2147483647 -- Park-Miller: exact in doubles too (LuaJIT)
        local k = keys[rnd % KEYS + 1]
        mem:read(k, "t:" .. T, load)
    end
end
read_some(math.max(MAX * 4, math.floor(READS / 5))) -- warm: the cache full, the allocator at its working size
collectgarbage()
local rss0, heap0 = rss_kb(), collectgarbage("count")
local s0 = { hits = mem.stats.hits, misses = mem.stats.misses, evictions = mem.stats.evictions }
local marks = {}
local STEP = math.max(1, math.floor(READS / 5))
for done = STEP, READS, STEP do
    read_some(STEP)
    collectgarbage()
    marks[#marks + 1] = string.format("%dk: %d/%.0f", math.floor(done / 1000), rss_kb(), collectgarbage("count"))
end
local rss1, heap1 = rss_kb(), collectgarbage("count")
print(string.format("memory: %d reads over %d keys, max_entries %d (%d hits, %d misses, %d evicted)", READS, KEYS,
    MAX, mem.stats.hits - s0.hits, mem.stats.misses - s0.misses, mem.stats.evictions - s0.evictions))
print(string.format("  RSS %d KiB -> %d KiB (%+d KiB); Lua heap %.0f KiB -> %.0f KiB (%+.0f KiB)", rss0, rss1,
    rss1 - rss0, heap0, heap1, heap1 - heap0))
print("  RSS/heap KiB after reads " .. table.concat(marks, ", "))
print("  (the heap moves with the young half's fill: between half and all of max_entries records are held)")
client:call("DeleteTable", { TableName = TABLE })
ddb.stop()
