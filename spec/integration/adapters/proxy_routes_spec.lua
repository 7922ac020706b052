-- proxyRoutes (contract §6) against DynamoDB Local: caller ids, defaults (match.path "/*",
-- handler options {}, priority 100), at least one handler, JSON round-trips, GSI1 by custom domain,
-- list order (priority, then created_at) and paging, updates in one request, the cascades (tenant:
-- yes; custom domain: no); and actions, actionVersions, actionExecutions: 501 for every method.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"
local util = require "authhero.aws.util"

local T0 = math.floor(core.now()) * 1000
local function iso(ms) return util.iso(ms) end

local function route(cd, over)
    local r = { custom_domain_id = cd, match = { path = "/api/*" }, handlers = { { type = "proxy",
        options = { target = "https://origin.example.com" } } } }
    for k, v in pairs(over or {}) do r[k] = v end
    return r
end

describe("proxyRoutes", function()
    local a, pr

    setup(function()
        a = fx.adapters()
        pr = a.proxyRoutes
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    it("create applies the defaults, stores match and handlers as JSON and the GSI1 key, returns tenant_id", function()
        local t = fx.tenant()
        local r = pr.create(t, { custom_domain_id = "cd1", match = { hosts = { "auth.example.com" } },
            handlers = { { type = "static" } }, junk = 1 })
        assert.equal(21, #r.id)
        assert.same({ id = r.id, tenant_id = t, custom_domain_id = "cd1", priority = 100,
            match = { hosts = { "auth.example.com" }, path = "/*" }, handlers = { { type = "static", options = {} } },
            created_at = iso(T0), updated_at = iso(T0) }, r)
        assert.same(r, pr.get(t, r.id))
        assert.same(r, pr:get(t, r.id))
        if math.type then assert.equal("integer", math.type(pr.get(t, r.id).priority)) end
        local it = fx.raw_get(schema.keys.proxy_route(t, r.id))
        assert.equal("PROXY_ROUTE", it.entityType)
        assert.equal("PROXY_ROUTE#" .. r.id, it.SK)
        assert.equal("TENANT#" .. t .. "#CUSTOM_DOMAIN#cd1", it.GSI1PK)
        assert.equal("PROXY_ROUTE#" .. r.id, it.GSI1SK)
        assert.equal("string", type(it.match))
        assert.equal("string", type(it.handlers))
        assert.equal(t, it.tenant_id)
        assert.is_nil(it.junk)
        local full = route("cd1", { id = "mine", priority = 5, match = { hosts = { "a" }, methods = { "GET", "POST" },
            path = "/x", headers = { ["x-a"] = "1" }, query = { q = "2" } } })
        local f = pr.create(t, full)
        assert.equal("mine", f.id)
        assert.same(full.match, pr.get(t, "mine").match)
        assert.same(full.handlers, pr.get(t, "mine").handlers)
        assert.equal(5, f.priority)
    end)

    it("the caller's id is honoured (importMetadata's first); 409 when taken", function()
        local t = fx.tenant()
        pr.create(t, route("cd1", { id = "r1" }))
        local err = fx.raises(409, "Conflict", pr.create, t, route("cd2", { id = "r1" }))
        assert.equal("Proxy route already exists", err.message)
        assert.equal("cd1", pr.get(t, "r1").custom_domain_id)
        assert.equal("r-imp", pr.create(t, route("cd1", { id = "r2" }), { importMetadata = { id = "r-imp" } }).id)
        assert.is_nil(pr.get(t, "r2"))
    end)

    it("list orders by priority, then created_at; pages; filters by custom domain through GSI1", function()
        local t = fx.tenant()
        pr.create(t, route("cdA", { id = "z-low", priority = 1 }))
        fx.advance(1)
        pr.create(t, route("cdB", { id = "a-late" }))
        fx.advance(1)
        pr.create(t, route("cdA", { id = "m-high", priority = 200 }))
        fx.set_now(T0 - 5000)
        pr.create(t, route("cdA", { id = "b-early" }))
        pr.create(fx.tenant(), route("cdA", { id = "other-tenant", priority = 0 }))
        a.forms.create(t, { name = "not a route" })
        local all = pr.list(t)
        assert.same({ "z-low", "b-early", "a-late", "m-high" }, fx.ids(all.proxy_routes))
        assert.equal(0, all.start)
        assert.equal(50, all.limit)
        assert.equal(4, all.length)
        assert.is_nil(all.total)
        local p = pr.list(t, { page = 1, per_page = 2 })
        assert.same({ "a-late", "m-high" }, fx.ids(p.proxy_routes))
        assert.equal(2, p.start)
        assert.equal(2, p.limit)
        assert.equal(2, p.length)
        local _, ops = fx.ops(function() return pr.list(t, { custom_domain_id = "cdA" }) end,
            function(op, req) return op .. ":" .. tostring(req.IndexName) end)
        assert.same({ "Query:GSI1" }, ops)
        assert.same({ "z-low", "b-early", "m-high" }, fx.ids(pr.list(t, { custom_domain_id = "cdA" }).proxy_routes))
        assert.same({ "a-late" }, fx.ids(pr.list(t, { custom_domain_id = "cdB" }).proxy_routes))
        assert.same({}, pr.list(t, { custom_domain_id = "cdC" }).proxy_routes)
        assert.same({ "z-low", "b-early", "a-late", "m-high" }, fx.ids(pr.list(t, { custom_domain_id = "" }).proxy_routes))
        assert.same({ "z-low", "b-early", "a-late", "m-high" },
            (fx.keyset_walk(function(o) return pr.list(t, o) end, "proxy_routes", "id", 3)))
        fx.raises(400, "ValidationError", pr.list, t, { q = "priority:1" })
    end)

    it("update changes priority, match and handlers with one conditional UpdateItem; false when missing", function()
        local t = fx.tenant()
        assert.is_false(pr.update(t, "nope", { priority = 1 }))
        assert.is_nil(fx.raw_get(schema.keys.proxy_route(t, "nope")))
        local r = pr.create(t, route("cd1", { priority = 10 }))
        fx.advance(9)
        local ok, ops = fx.ops(function()
            return pr.update(t, r.id, { priority = 3, match = { methods = { "GET" } }, custom_domain_id = "cd9" })
        end)
        assert.is_true(ok)
        assert.same({ "UpdateItem" }, ops)
        local g = pr.get(t, r.id)
        assert.equal(3, g.priority)
        assert.same({ methods = { "GET" }, path = "/*" }, g.match)
        assert.same(r.handlers, g.handlers)
        assert.equal("cd1", g.custom_domain_id)
        assert.equal(iso(T0 + 9000), g.updated_at)
        assert.equal(iso(T0), g.created_at)
        assert.is_true(pr:update(t, r.id, { handlers = { { type = "a" }, { type = "b", options = { x = 1 } } },
            priority = core.null }))
        g = pr.get(t, r.id)
        assert.same({ { type = "a", options = {} }, { type = "b", options = { x = 1 } } }, g.handlers)
        assert.equal(100, g.priority)
    end)

    it("rejects missing or bad fields (no handler, no match, no custom domain) before any request", function()
        local t = fx.tenant()
        fx.rejects(pr.create, t, route(nil))
        fx.rejects(pr.create, t, route("cd1", { handlers = {} }))
        fx.rejects(pr.create, t, route("cd1", { handlers = core.null }))
        fx.rejects(pr.create, t, route("cd1", { handlers = { { options = {} } } }))
        fx.rejects(pr.create, t, route("cd1", { handlers = { { type = "x", options = "o" } } }))
        fx.rejects(pr.create, t, route("cd1", { match = core.null }))
        fx.rejects(pr.create, t, route("cd1", { match = { path = 5 } }))
        fx.rejects(pr.create, t, route("cd1", { match = { hosts = "a" } }))
        fx.rejects(pr.create, t, route("cd1", { match = { headers = { a = 1 } } }))
        fx.rejects(pr.create, t, route("cd1", { priority = "1" }))
        fx.rejects(pr.create, t, route(string.rep("d", 2100)))
        fx.rejects(pr.update, t, "r", { handlers = {} })
        fx.rejects(pr.update, t, "r", { match = core.null })
        fx.rejects(pr.update, t, "r", { priority = true })
        fx.rejects(pr.list, t, { custom_domain_id = 5 })
        fx.rejects(pr.get, t, "")
    end)

    it("remove returns whether it existed; routes stay when their custom domain goes, and go with the tenant", function()
        local t = fx.tenant()
        a.tenants.create({ id = t, friendly_name = "T" })
        local cd = a.customDomains.create(t, { domain = t:gsub("[^%w]", "") .. ".example.com",
            type = "auth0_managed_certs" })
        local r1 = pr.create(t, route(cd.custom_domain_id))
        local r2 = pr.create(t, route(cd.custom_domain_id))
        assert.is_true(pr.remove(t, r1.id))
        assert.is_false(pr.remove(t, r1.id))
        assert.is_true(a.customDomains.remove(t, cd.custom_domain_id))
        assert.same({ r2.id }, fx.ids(pr.list(t, { custom_domain_id = cd.custom_domain_id }).proxy_routes))
        assert.is_true(a.tenants.remove(t))
        assert.is_nil(pr.get(t, r2.id))
        assert.same({}, pr.list(t, { custom_domain_id = cd.custom_domain_id }).proxy_routes)
    end)
end)

describe("actions, actionVersions, actionExecutions", function()
    local a
    setup(function() a = fx.adapters() end)

    it("every method AuthHero declares raises 501 NotImplemented without a request", function()
        local declared = {
            actions = { "create", "get", "update", "remove", "list" },
            actionVersions = { "create", "get", "list", "removeForAction" },
            actionExecutions = { "create", "get" },
        }
        for name, methods in pairs(declared) do
            local n = 0
            for _ in pairs(a[name]) do n = n + 1 end
            assert.equal(#methods, n, name)
            for _, m in ipairs(methods) do
                local before = fx.requests()
                local err = fx.raises(501, "NotImplemented", a[name][m], "t", { id = "x" })
                assert.truthy(err.message:find("not implemented", 1, true))
                assert.equal("NotImplemented (501): " .. err.message, tostring(err))
                fx.raises(501, "NotImplemented", function() return a[name][m](a[name], "t") end)
                assert.equal(before, fx.requests())
            end
        end
        -- cleanup is optional in AuthHero and absent here, so its retention job skips this backend
        assert.is_nil(a.actionExecutions.cleanup)
    end)
end)
