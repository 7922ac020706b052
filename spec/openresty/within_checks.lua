-- The per-request deadline (aws.within) inside a real nginx worker, for scripts/openresty-test
-- (routed in servers.conf, never part of the example). DynamoDB Local sits behind the test server's
-- /_t/slow-ddb/, which holds every request 1 s before passing it on, so a read takes about 1 s.
--
--   GET /_t/within?test_port=&table=&tenant=[&ms=N][&cache=ROUND]
--     tenants.get(tenant) through this worker's adapters over the slow endpoint, inside
--     aws.within(N, ...) when ms is given, else unbounded; with cache=ROUND, through a cache made for
--     that round (so two requests of one round share it: the second joins the first's read).
--     -> 200 {ok, found, code, reason, within, message, elapsed_ms, started, finished, worker, pid}
-- The shell side sends two such requests at once and compares them (scripts/openresty-test).
-- luacheck: globals ngx
local cjson = require "cjson.safe"
local aws = require "authhero.aws"

local _M = {}

-- per worker: the client and adapters over the slow endpoint, and a cache per round
local slow, caches = nil, {}

local function adapters_for(a)
    if not slow then
        local client = aws.client.new({
            endpoint = "http://127.0.0.1:" .. a.test_port .. "/_t/slow-ddb/",
            sleep = ngx.sleep,
            timeout_ms = 5000,
        })
        slow = { client = client, plain = aws.create_adapters(client, { tableName = a.table }) }
    end
    if not a.cache then return slow.plain end
    local c = caches[a.cache]
    if not c then
        c = aws.create_adapters(slow.client, { tableName = a.table, cache = aws.cache.new({ ttl = 60 }) })
        caches[a.cache] = c
    end
    return c
end

local function now()
    ngx.update_time()
    return ngx.now()
end

function _M.run()
    local a = ngx.req.get_uri_args()
    local out = { worker = ngx.worker.id(), pid = ngx.worker.pid() }
    local ok, res = pcall(function()
        local adapters = adapters_for(a)
        local ms = tonumber(a.ms)
        out.started = now()
        if ms then return aws.within(ms, adapters.tenants.get, a.tenant) end
        return adapters.tenants.get(a.tenant)
    end)
    out.finished = now()
    out.elapsed_ms = out.started and math.floor((out.finished - out.started) * 1000 + 0.5)
    out.ok = ok
    if ok then
        out.found = res ~= nil and res.id == a.tenant
    else
        local e = type(res) == "table" and res or { message = tostring(res) }
        out.code, out.reason, out.within, out.message = e.code, e.reason, e.within, tostring(e.message)
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.header["X-Worker"] = tostring(ngx.worker.id())
    ngx.say(cjson.encode(out))
end

return _M
