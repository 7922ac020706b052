-- The configuration read cache (cache.lua) over real adapters and DynamoDB Local: a hit sends no
-- request, a read after a write through the adapters is never stale (same entity, lists, another
-- adapter's reads of the tenant, global lookups, the tenant cascade), copies, nil answers, errors not
-- cached, ttl, max_entries, and what is never cached.
local fx = require "support.adapters"
local aws = require "authhero.aws"
local cache_mod = require "authhero.aws.cache"

local function requests() return fx.requests() end

-- fn() -> its result and how many DynamoDB requests it sent
local function counted(fn)
    local before = requests()
    local r = fn()
    return r, requests() - before
end

local function new_cache(opts)
    local clock = { t = 1000 }
    local o = { now = function() return clock.t end }
    for k, v in pairs(opts or {}) do o[k] = v end
    return cache_mod.new(o), clock
end

describe("configuration cache", function()
    local plain, cached, cache, clock, t

    before_each(function()
        cache, clock = new_cache()
        plain = fx.adapters()
        cached = fx.adapters({ cache = cache })
        t = fx.tenant()
        plain.tenants.create({ id = t, friendly_name = "Cache tenant" })
    end)

    it("answers a repeated read from memory: no request, the same record", function()
        local first, n1 = counted(function() return cached.tenants.get(t) end)
        assert.equal(1, n1)
        local again, n2 = counted(function() return cached.tenants.get(t) end)
        assert.equal(0, n2)
        assert.same(first, again)
        assert.equal(1, cache.stats.hits)
        assert.equal(1, cache.stats.misses)
    end)

    it("returns copies: changing a returned record changes neither the cache nor the next answer", function()
        local c = cached.clients.create(t, { client_id = "app1", name = "App", callbacks = { "https://a/cb" } })
        assert.equal("app1", c.client_id)
        local got = cached.clients.get(t, "app1")
        got.name = "mutated"
        got.callbacks[1] = "https://evil/cb"
        local again = cached.clients.get(t, "app1")
        assert.equal("App", again.name)
        assert.equal("https://a/cb", again.callbacks[1])
        assert.are_not.equal(got, again)
        local third = cached.clients.get(t, "app1")
        assert.are_not.equal(again, third)
    end)

    it("a write through the adapters is seen by the next read: same record, lists, other adapters' reads", function()
        cached.connections.create(t, { id = "con1", name = "db", strategy = "Username-Password-Authentication" })
        cached.clients.create(t, { client_id = "app2", name = "App" })
        cached.clientConnections.updateByClient(t, "app2", { "con1" })
        assert.equal("db", cached.connections.get(t, "con1").name)
        assert.equal(1, #cached.connections.list(t).connections)
        assert.equal("db", cached.clientConnections.listByClient(t, "app2")[1].name)
        local _, n = counted(function() return cached.clientConnections.listByClient(t, "app2") end)
        assert.equal(0, n)

        cached.connections.update(t, "con1", { name = "renamed" })
        assert.equal("renamed", cached.connections.get(t, "con1").name)
        assert.equal("renamed", cached.connections.list(t).connections[1].name)
        assert.equal("renamed", cached.clientConnections.listByClient(t, "app2")[1].name)

        cached.connections.remove(t, "con1")
        assert.is_nil(cached.connections.get(t, "con1"))
        assert.equal(0, #cached.connections.list(t).connections)
        assert.equal(0, #cached.clientConnections.listByClient(t, "app2"))
    end)

    it("caches a nil answer until a write creates the record", function()
        assert.is_nil(cached.branding.get(t))
        local _, n = counted(function() return cached.branding.get(t) end)
        assert.equal(0, n)
        cached.branding.set(t, { logo_url = "https://example.com/l.png" })
        assert.equal("https://example.com/l.png", cached.branding.get(t).logo_url)
    end)

    it("global lookups follow writes: getByClientId, getByDomain, keys, tenants.list", function()
        cached.clients.create(t, { client_id = "gapp-" .. t, name = "Global" })
        assert.equal("Global", cached.clients.getByClientId("gapp-" .. t).name)
        cached.clients.update(t, "gapp-" .. t, { name = "Renamed" })
        assert.equal("Renamed", cached.clients.getByClientId("gapp-" .. t).name)

        local domain = t:lower() .. ".example.com"
        assert.is_nil(cached.customDomains.getByDomain(domain))
        local d = cached.customDomains.create(t, { domain = domain, type = "auth0_managed_certs" })
        assert.equal(t, cached.customDomains.getByDomain(domain).tenant_id)
        cached.customDomains.remove(t, d.custom_domain_id)
        assert.is_nil(cached.customDomains.getByDomain(domain))

        local before = #cached.keys.list({ q = "type:jwt_signing" }).signingKeys
        cached.keys.create({ kid = "kid-" .. t, cert = "c", pkcs7 = "p", fingerprint = "f", thumbprint = "th",
            type = "jwt_signing" })
        assert.equal(before + 1, #cached.keys.list({ q = "type:jwt_signing" }).signingKeys)
    end)

    it("removing the tenant invalidates everything it owned, global lookups included", function()
        cached.clients.create(t, { client_id = "rm-" .. t, name = "Gone soon" })
        assert.is_table(cached.clients.getByClientId("rm-" .. t))
        assert.is_table(cached.clients.get(t, "rm-" .. t))
        assert.is_table(cached.tenants.get(t))
        cached.tenants.remove(t)
        assert.is_nil(cached.tenants.get(t))
        assert.is_nil(cached.clients.get(t, "rm-" .. t))
        assert.is_nil(cached.clients.getByClientId("rm-" .. t))
    end)

    it("a write in one tenant leaves another tenant's entries alone", function()
        local other = fx.tenant()
        plain.tenants.create({ id = other, friendly_name = "Other" })
        cached.tenants.get(other)
        cached.hooks.list(other, {})
        cached.hooks.create(t, { trigger_id = "post-user-registration", url = "https://h.example.com", enabled = true })
        local _, n = counted(function()
            cached.tenants.get(other)
            cached.hooks.list(other, {})
        end)
        assert.equal(0, n)
        assert.equal(1, #cached.hooks.list(t, {}).hooks)
    end)

    it("separate argument lists are separate entries; equal tables in any key order are one", function()
        cached.resourceServers.create(t, { identifier = "https://api.example.com", name = "API" })
        cached.resourceServers.list(t, { page = 0, per_page = 10, include_totals = true })
        local _, n = counted(function()
            return cached.resourceServers.list(t, { include_totals = true, per_page = 10, page = 0 })
        end)
        assert.equal(0, n)
        local _, n2 = counted(function() return cached.resourceServers.list(t, { per_page = 5 }) end)
        assert.equal(1, n2)
    end)

    it("colon calls are cached the same way", function()
        cached.tenants:get(t)
        local _, n = counted(function() return cached.tenants:get(t) end)
        assert.equal(0, n)
        local _, n2 = counted(function() return cached.tenants.get(t) end)
        assert.equal(0, n2)
    end)

    it("errors are not cached, and invalid arguments still fail before any request", function()
        fx.rejects(cached.clients.get, t, "")
        fx.rejects(cached.clients.get, t, "")
        assert.equal(0, cache.stats.hits)
        assert.has_error(function() cached.tenants.update(t, "not a table") end)
    end)

    it("entries live ttl seconds: a write by another process is seen once they run out", function()
        assert.equal("Cache tenant", cached.tenants.get(t).friendly_name)
        plain.tenants.update(t, { friendly_name = "Changed elsewhere" })
        assert.equal("Cache tenant", cached.tenants.get(t).friendly_name) -- within ttl: the bound
        clock.t = clock.t + cache.ttl + 1
        assert.equal("Changed elsewhere", cached.tenants.get(t).friendly_name)
    end)

    it("never caches users, sessions, login sessions, codes, passwords or logs", function()
        local u = cached.users.create(t, { user_id = "auth2|u1", email = "u1@example.com", connection = "db",
            provider = "auth2", email_verified = false, is_social = false })
        cached.users.get(t, u.user_id)
        local _, n = counted(function() return cached.users.get(t, u.user_id) end)
        assert.equal(1, n)
        for _, name in ipairs({ "users", "sessions", "loginSessions", "codes", "passwords", "logs", "refreshTokens",
            "authenticationMethods", "userRoles", "organizations" }) do
            assert.is_nil(cache_mod.CACHED[name], name)
            assert.equal(plain[name] ~= nil, cached[name] ~= nil, name)
        end
    end)

    it("a write that fails still invalidates (it may have acted), and raises as before", function()
        cached.clients.create(t, { client_id = "dup-" .. t, name = "First" })
        cached.clients.get(t, "dup-" .. t)
        local ok, err = pcall(cached.clients.create, t, { client_id = "dup-" .. t, name = "Second" })
        assert.is_false(ok)
        assert.equal(409, err.status)
        local got, n = counted(function() return cached.clients.get(t, "dup-" .. t) end)
        assert.equal(1, n)
        assert.equal("First", got.name)
    end)

    it("holds at most max_entries entries and keeps answering correctly", function()
        local small = new_cache({ max_entries = 4 })
        local a = fx.adapters({ cache = small })
        local ids = {}
        for i = 1, 6 do
            ids[i] = t .. "-c" .. i
            plain.clients.create(t, { client_id = ids[i], name = "c" .. i })
        end
        for _ = 1, 3 do
            for i = 1, 6 do assert.equal("c" .. i, a.clients.get(t, ids[i]).name) end
        end
        local n = 0
        for _ in pairs(small._young) do n = n + 1 end
        for _ in pairs(small._old) do n = n + 1 end
        assert.is_true(n <= 4)
        assert.is_true(small.stats.evictions > 0)
    end)

    it("create_adapters accepts cache = true or options, and rejects bad options before any request", function()
        local a = fx.adapters({ cache = true })
        a.tenants.get(t)
        local _, n = counted(function() return a.tenants.get(t) end)
        assert.equal(0, n)
        for _, bad in ipairs({ { ttl = 0 }, { ttl = "5" }, { max_entries = 1 }, { max_entries = 2.5 },
            { shared_dict = "nope" }, "yes" }) do
            local ok, err = pcall(fx.adapters, { cache = bad })
            assert.is_false(ok)
            assert.equal("ValidationError", err.code)
            assert.equal(400, err.status)
        end
        assert.is_true(aws.cache.is_cache(cache))
    end)

    it("flush() drops everything", function()
        cached.tenants.get(t)
        cache:flush()
        local _, n = counted(function() return cached.tenants.get(t) end)
        assert.equal(1, n)
    end)
end)
