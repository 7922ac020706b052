-- Test-only endpoints for the configuration cache checks of scripts/openresty-test (driven by
-- spec/openresty/cache_driver.py; routed in servers.conf, never part of the example). They run in
-- whichever nginx worker took the connection, use that worker's own client, cache and adapters
-- (authhero_example.state()), and say which worker they are.
--
--   GET  /_t/cache/stats          {worker, requests (the worker's DynamoDB requests), cache (stats or null)}
--   POST /_t/cache/rename?name=   tenants.update(friendly_name) through the worker's adapters
--   POST /_t/cache/mutate         reads the tenant, the default client, its connections and the
--                                 branding, and changes the records it got (top level and nested),
--                                 as a careless handler would
-- luacheck: globals ngx
local cjson = require "cjson.safe"
local example = require "authhero_example"

local _M = {}

local function reply(status, doc)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["X-Worker"] = tostring(ngx.worker.id())
    doc.worker = ngx.worker.id()
    ngx.say(cjson.encode(doc))
end

local function guarded(fn)
    local ok, err = pcall(fn)
    if not ok then reply(500, { error = tostring(err) }) end
end

local function stats_of(s)
    return { requests = s.client.stats.requests, cache = s.cache and s.cache.stats or cjson.null }
end

function _M.stats()
    guarded(function() reply(200, stats_of(example.state())) end)
end

function _M.rename()
    guarded(function()
        local s = example.state()
        local name = ngx.req.get_uri_args().name
        if type(name) ~= "string" or name == "" then return reply(400, { error = "name= please" }) end
        s.adapters.tenants.update(s.tenant, { friendly_name = name })
        reply(200, { friendly_name = name })
    end)
end

function _M.mutate()
    guarded(function()
        local s = example.state()
        local A = s.adapters
        local before = s.client.stats.requests
        local tenant = A.tenants.get(s.tenant)
        tenant.friendly_name = "changed by a handler"
        local client = A.clients.getByClientId(s.client_id)
        client.name = "changed by a handler"
        client.callbacks[1] = "https://evil.example/callback"
        local connections = A.clientConnections.listByClient(s.tenant, s.client_id)
        connections[1].name = "changed by a handler"
        connections[#connections + 1] = { name = "added by a handler" }
        local branding = A.branding.get(s.tenant)
        branding.colors.primary = "#ff0000"
        branding.logo_url = nil
        local prompt = A.promptSettings.get(s.tenant)
        prompt.identifier_first = not prompt.identifier_first
        -- requests made by these reads: 0 when all of them were cache hits
        reply(200, { requests = s.client.stats.requests - before })
    end)
end

return _M
