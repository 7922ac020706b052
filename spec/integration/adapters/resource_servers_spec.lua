-- resourceServers (contract §5.5) against DynamoDB Local: create/get/list/update/remove, defaults,
-- verificationKey stored as verification_key, the identifier guard (409, moves, stale guards, races
-- across processes), options merged on update, substring q on name and identifier, the tenant
-- cascade and hostile ids.
local fx = require "support.adapters"
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local T0 = math.floor(core.now()) * 1000
local keys = schema.keys

local function guard_of(t, identifier) return fx.raw_get(keys.resource_server_guard(t, identifier)) end
local function raw(t, id) return fx.raw_get(keys.resource_server(t, id)) end

-- Every resource server of the tenant has exactly its guard, and no guard is without its owner.
local function assert_guards_true(t)
    local servers, guards = {}, 0
    for _, it in ipairs(fx.raw_partition(keys.tenant_partition(t))) do
        if it.entityType == "RESOURCE_SERVER" then servers[it.id] = it end
        if it.entityType == "RESOURCE_SERVER_IDENTIFIER" then guards = guards + 1 end
    end
    local n = 0
    for id, rs in pairs(servers) do
        n = n + 1
        local g = guard_of(t, rs.identifier)
        assert.is_table(g, "no guard for " .. id)
        assert.equal(id, g.resource_server_id)
        assert.equal(t, g.tenant_id)
    end
    assert.equal(n, guards, "guards without a resource server")
end

local count = fx.count

describe("resourceServers", function()
    local a, rss

    setup(function()
        a = fx.adapters()
        rss = a.resourceServers
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create", function()
        it("applies the defaults and returns the record as get does", function()
            local t = fx.tenant()
            local r = rss.create(t, { name = "API", identifier = "https://api.example.com/" })
            assert.equal(21, #r.id)
            assert.same({ id = r.id, name = "API", identifier = "https://api.example.com/", token_lifetime = 86400,
                token_lifetime_for_web = 7200, scopes = {}, options = {}, allow_offline_access = false,
                skip_consent_for_verifiable_first_party_clients = false, created_at = util.iso(T0),
                updated_at = util.iso(T0) }, r)
            assert.is_true(core.is_array(r.scopes))
            assert.is_false(core.is_array(r.options))
            assert.same(r, rss.get(t, r.id))
            assert.same(r, rss:get(t, r.id))
            local it = raw(t, r.id)
            assert.equal("RESOURCE_SERVER", it.entityType)
            assert.equal(t, it.tenant_id)
            assert.equal("[]", it.scopes)
            assert.equal("{}", it.options)
            assert.is_nil(it.is_system)
            local g = guard_of(t, "https://api.example.com/")
            assert.equal("RESOURCE_SERVER_IDENTIFIER", g.entityType)
            assert.equal(r.id, g.resource_server_id)
            assert.equal(t, g.tenant_id)
        end)

        it("stores every field; verificationKey as verification_key; is_system only when true", function()
            local t = fx.tenant()
            local r = rss.create(t, { id = "api_1", name = "Full", identifier = "urn:full",
                scopes = { { value = "read:x", description = "Read" }, { value = "write:x" } }, signing_alg = "RS256",
                signing_secret = "s3cret", token_lifetime = 3600, token_lifetime_for_web = 600,
                skip_consent_for_verifiable_first_party_clients = true, allow_offline_access = true,
                verificationKey = "PEM", options = { token_dialect = "access_token_authz", enforce_policies = true,
                    mtls = { bound_access_tokens = false } }, is_system = true, metadata = { team = "core" } })
            assert.equal("api_1", r.id)
            assert.same({ { value = "read:x", description = "Read" }, { value = "write:x" } }, r.scopes)
            assert.equal("PEM", r.verificationKey)
            assert.is_nil(r.verification_key)
            assert.equal(3600, r.token_lifetime)
            assert.equal(600, r.token_lifetime_for_web)
            assert.is_true(r.allow_offline_access)
            assert.is_true(r.skip_consent_for_verifiable_first_party_clients)
            assert.same({ token_dialect = "access_token_authz", enforce_policies = true,
                mtls = { bound_access_tokens = false } }, r.options)
            assert.is_true(r.is_system)
            assert.same({ team = "core" }, r.metadata)
            assert.same(r, rss.get(t, "api_1"))
            local it = raw(t, "api_1")
            assert.equal("PEM", it.verification_key)
            assert.is_nil(it.verificationKey)
            assert.equal('{"team":"core"}', it.metadata)
            assert.equal(true, it.is_system)
            local ns = rss.create(t, { name = "n", identifier = "urn:ns", is_system = false })
            assert.is_nil(ns.is_system)
            assert.is_nil(raw(t, ns.id).is_system)
        end)

        it("takes importMetadata's id and timestamps", function()
            local t = fx.tenant()
            local r = rss.create(t, { id = "mine", name = "n", identifier = "urn:imp" },
                { importMetadata = { id = "api_imp", created_at = "2021-01-01T00:00:00Z", updated_at = "2021-06-01T00:00:00Z" } })
            assert.equal("api_imp", r.id)
            assert.equal("2021-01-01T00:00:00.000Z", r.created_at)
            assert.equal("2021-06-01T00:00:00.000Z", r.updated_at)
            assert.is_nil(rss.get(t, "mine"))
        end)

        it("409 for a taken id or identifier; identifiers are unique per tenant only", function()
            local t = fx.tenant()
            rss.create(t, { id = "rs1", name = "one", identifier = "urn:one" })
            fx.raises(409, "Conflict", rss.create, t, { id = "rs1", name = "x", identifier = "urn:fresh" })
            assert.is_nil(guard_of(t, "urn:fresh"))
            local e = fx.raises(409, "Conflict", rss.create, t, { id = "rs2", name = "two", identifier = "urn:one" })
            assert.matches("identifier", e.message)
            assert.is_nil(rss.get(t, "rs2"))
            assert.equal("one", rss.get(t, "rs1").name)
            assert.equal("rs1", guard_of(t, "urn:one").resource_server_id)
            -- identifiers are case-sensitive and per tenant
            rss.create(t, { id = "rs3", name = "three", identifier = "URN:ONE" })
            rss.create(fx.tenant(), { id = "rs1", name = "one", identifier = "urn:one" })
            assert_guards_true(t)
        end)

        it("takes over a guard whose resource server is gone or has another identifier", function()
            local t = fx.tenant()
            local gk = keys.resource_server_guard(t, "urn:stale")
            fx.raw_put({ PK = gk.PK, SK = gk.SK, entityType = "RESOURCE_SERVER_IDENTIFIER", tenant_id = t,
                resource_server_id = "gone", identifier = "urn:stale" })
            assert.equal("new", rss.create(t, { id = "new", name = "n", identifier = "urn:stale" }).id)
            rss.create(t, { id = "other", name = "o", identifier = "urn:other" })
            local g2 = keys.resource_server_guard(t, "urn:stale-2")
            fx.raw_put({ PK = g2.PK, SK = g2.SK, entityType = "RESOURCE_SERVER_IDENTIFIER", tenant_id = t,
                resource_server_id = "other", identifier = "urn:stale-2" })
            assert.equal("new2", rss.create(t, { id = "new2", name = "n", identifier = "urn:stale-2" }).id)
            assert_guards_true(t)
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            local function rs(extra)
                local r = { name = "n", identifier = "urn:v" }
                for k, v in pairs(extra) do r[k] = v end
                return r
            end
            fx.rejects(rss.create, t, nil)
            fx.rejects(rss.create, t, { identifier = "urn:v" })
            fx.rejects(rss.create, t, { name = "n" })
            fx.rejects(rss.create, t, rs({ name = "" }))
            fx.rejects(rss.create, t, rs({ identifier = core.null }))
            fx.rejects(rss.create, t, rs({ scopes = "read" }))
            fx.rejects(rss.create, t, rs({ scopes = { "read" } }))
            fx.rejects(rss.create, t, rs({ scopes = { { description = "no value" } } }))
            fx.rejects(rss.create, t, rs({ scopes = { { value = "v", description = 1 } } }))
            fx.rejects(rss.create, t, rs({ token_lifetime = "1h" }))
            fx.rejects(rss.create, t, rs({ token_lifetime_for_web = 0 / 0 }))
            fx.rejects(rss.create, t, rs({ allow_offline_access = "yes" }))
            fx.rejects(rss.create, t, rs({ is_system = 1 }))
            fx.rejects(rss.create, t, rs({ verificationKey = {} }))
            fx.rejects(rss.create, t, rs({ signing_alg = 256 }))
            fx.rejects(rss.create, t, rs({ options = "strict" }))
            fx.rejects(rss.create, t, rs({ options = { token_dialect = "jwt" } }))
            fx.rejects(rss.create, t, rs({ options = { enforce_policies = "true" } }))
            fx.rejects(rss.create, t, rs({ options = { mtls = true } }))
            fx.rejects(rss.create, t, rs({ metadata = { 1, 2 } }))
            fx.rejects(rss.create, t, rs({ identifier = string.rep("u", 1000) }))
            fx.rejects(rss.create, nil, rs({}))
            fx.rejects(rss.get, t, nil)
            fx.rejects(rss.update, t, "x", nil)
            fx.rejects(rss.update, t, "x", { name = core.null })
            fx.rejects(rss.update, t, "x", { identifier = "" })
            fx.rejects(rss.update, t, "x", { identifier = string.rep("u", 1000) })
            fx.rejects(rss.update, t, "x", { options = { skip_userinfo = 1 } })
            fx.rejects(rss.remove, t, "")
            fx.rejects(rss.list, t, { q = "scopes:read" })
            fx.rejects(rss.list, t, { q = "signing_secret:x" })
            assert.same({}, fx.raw_partition(keys.tenant_partition(t)))
        end)
    end)

    describe("get", function()
        it("returns nil for a missing id and for another tenant's; fills defaults of bare items", function()
            local t = fx.tenant()
            local r = rss.create(t, { name = "n", identifier = "urn:g" })
            assert.is_nil(rss.get(t, "nope"))
            assert.is_nil(rss.get(fx.tenant(), r.id))
            assert.is_nil(rss.get(t, string.rep("x", 1100)))
            local k = keys.resource_server(t, "bare")
            fx.raw_put({ PK = k.PK, SK = k.SK, entityType = "RESOURCE_SERVER", tenant_id = t, id = "bare", name = "b",
                identifier = "urn:bare", verification_key = "K", is_system = false, options = { enforce_policies = true } })
            assert.same({ id = "bare", name = "b", identifier = "urn:bare", verificationKey = "K", token_lifetime = 86400,
                token_lifetime_for_web = 7200, scopes = {}, options = { enforce_policies = true },
                allow_offline_access = false, skip_consent_for_verifiable_first_party_clients = false }, rss.get(t, "bare"))
        end)
    end)

    describe("update", function()
        it("patches fields, resets nulls to defaults, maps verificationKey, keeps id and created_at", function()
            local t = fx.tenant()
            local r = rss.create(t, { name = "n", identifier = "urn:u", token_lifetime = 60, verificationKey = "old",
                metadata = { a = 1 } })
            fx.advance(4)
            assert.is_true(rss.update(t, r.id, { name = "renamed", token_lifetime = core.null, verificationKey = "new",
                is_system = true, metadata = core.null, scopes = { { value = "s" } }, id = "x",
                created_at = "2000-01-01T00:00:00Z", tenant_id = "evil" }))
            local got = rss.get(t, r.id)
            assert.equal("renamed", got.name)
            assert.equal(86400, got.token_lifetime)
            assert.equal("new", got.verificationKey)
            assert.is_true(got.is_system)
            assert.is_nil(got.metadata)
            assert.same({ { value = "s" } }, got.scopes)
            assert.equal(r.created_at, got.created_at)
            assert.equal(util.iso(T0 + 4000), got.updated_at)
            local it = raw(t, r.id)
            assert.equal("new", it.verification_key)
            assert.is_nil(it.verificationKey)
            assert.equal(t, it.tenant_id)
            assert.is_true(rss.update(t, r.id, { is_system = false, verificationKey = core.null, scopes = core.null }))
            got = rss.get(t, r.id)
            assert.is_nil(got.is_system)
            assert.is_nil(got.verificationKey)
            assert.same({}, got.scopes)
            assert.is_nil(raw(t, r.id).is_system)
        end)

        it("merges options into the stored ones (AuthHero's SQL adapters do)", function()
            local t = fx.tenant()
            local r = rss.create(t, { name = "n", identifier = "urn:o", allow_offline_access = false,
                options = { enforce_policies = true, allow_skipping_userinfo = true, persist_client_authorization = false,
                    mtls = { bound_access_tokens = true } } })
            assert.is_true(rss.update(t, r.id, { options = { enforce_policies = false } }))
            assert.same({ enforce_policies = false, allow_skipping_userinfo = true, persist_client_authorization = false,
                mtls = { bound_access_tokens = true } }, rss.get(t, r.id).options)
            assert.is_true(rss.update(t, r.id, { allow_offline_access = true }))
            local got = rss.get(t, r.id)
            assert.is_true(got.allow_offline_access)
            assert.is_false(got.options.enforce_policies)
            -- null inside options removes that member; nested objects merge
            assert.is_true(rss.update(t, r.id, { options = { allow_skipping_userinfo = core.null,
                token_dialect = "access_token", mtls = { other = true } } }))
            assert.same({ enforce_policies = false, persist_client_authorization = false, token_dialect = "access_token",
                mtls = { bound_access_tokens = true, other = true } }, rss.get(t, r.id).options)
            -- {} changes nothing, null resets to {}
            assert.is_true(rss.update(t, r.id, { options = {} }))
            assert.equal("access_token", rss.get(t, r.id).options.token_dialect)
            assert.is_true(rss.update(t, r.id, { options = core.null }))
            assert.same({}, rss.get(t, r.id).options)
            assert.equal("{}", raw(t, r.id).options)
            assert.is_false(rss.update(t, "missing", { options = { enforce_policies = true } }))
        end)

        it("moves the guard when the identifier changes; a taken identifier is 409", function()
            local t = fx.tenant()
            rss.create(t, { id = "m1", name = "m1", identifier = "urn:a" })
            rss.create(t, { id = "m2", name = "m2", identifier = "urn:taken" })
            assert.is_true(rss.update(t, "m1", { identifier = "urn:b", options = { enforce_policies = true } }))
            assert.is_nil(guard_of(t, "urn:a"))
            assert.equal("m1", guard_of(t, "urn:b").resource_server_id)
            local m1 = rss.get(t, "m1")
            assert.equal("urn:b", m1.identifier)
            assert.is_true(m1.options.enforce_policies)
            rss.create(t, { id = "m3", name = "m3", identifier = "urn:a" }) -- the old one is free again
            fx.raises(409, "Conflict", rss.update, t, "m1", { identifier = "urn:taken", name = "nope" })
            m1 = rss.get(t, "m1")
            assert.equal("urn:b", m1.identifier)
            assert.equal("m1", m1.name)
            assert.equal("m2", guard_of(t, "urn:taken").resource_server_id)
            assert.is_true(rss.update(t, "m1", { identifier = "urn:b", name = "same identifier" }))
            assert.equal("same identifier", rss.get(t, "m1").name)
            assert.is_false(rss.update(t, "missing", { identifier = "urn:z" }))
            assert.is_nil(guard_of(t, "urn:z"))
            assert.is_false(rss.update(t, "missing", { name = "z" }))
            assert_guards_true(t)
        end)
    end)

    describe("list", function()
        local lt
        setup(function()
            lt = fx.tenant()
            local rows = {
                { "rs1", "Orders API", "https://orders.example.com/" }, { "rs2", "Billing", "urn:billing" },
                { "rs3", "Management API", "https://mgmt.example.com/api/v2/", true },
                { "rs4", "orders admin", "urn:orders-admin" }, { "rs5", "Z", "urn:z" },
            }
            for i, r in ipairs(rows) do
                fx.set_now(T0 + i * 1000)
                rss.create(lt, { id = r[1], name = r[2], identifier = r[3], is_system = r[4] })
            end
            rss.create(fx.tenant(), { id = "rs1", name = "Orders API", identifier = "https://orders.example.com/" })
            fx.reset_clock()
        end)

        it("matches name: and identifier: as substrings, is_system with its default, free text", function()
            local function ids(q) return fx.ids(rss.list(lt, { q = q }).resource_servers) end
            assert.same({ "rs1", "rs3" }, ids("name:API"))
            assert.same({ "rs1" }, ids('name:"Orders API"'))
            assert.same({ "rs1" }, ids("name:Orders"))
            assert.same({ "rs2", "rs3", "rs4", "rs5" }, ids("-name:Orders"))
            assert.same({ "rs1", "rs3" }, ids("identifier:example.com"))
            assert.same({ "rs1" }, ids('identifier:"https://orders.example.com/"'))
            assert.same({ "rs4" }, ids("identifier:orders-admin"))
            assert.same({ "rs3" }, ids("is_system:true"))
            assert.same({ "rs1", "rs2", "rs4", "rs5" }, ids("is_system:false"))
            assert.same({ "rs1", "rs4" }, ids("orders"))
            assert.same({ "rs2" }, ids("id:rs2"))
            assert.same({}, ids('id:""'))
            assert.same({ "rs5" }, ids("name:Z identifier:urn"))
            assert.same({ "rs2", "rs5" }, ids("identifier:billing OR name:Z"))
        end)

        it("answers id: with one GetItem", function()
            local ops = {}
            local client = fx.client()
            local spy = setmetatable({ call = function(_, op, req)
                ops[#ops + 1] = op
                return client:call(op, req)
            end }, { __index = client })
            local spied = aws.create_adapters(spy, { tableName = fx.table_name(), now = fx.now_ms }).resourceServers
            assert.same({ "rs4" }, fx.ids(spied.list(lt, { q = "id:rs4" }).resource_servers))
            assert.same({ "GetItem" }, ops)
        end)

        it("pages with totals, walks by cursor, sorts", function()
            local p = rss.list(lt, { page = 1, per_page = 2, include_totals = true })
            assert.same({ "rs3", "rs4" }, fx.ids(p.resource_servers))
            assert.equal(2, p.start)
            assert.equal(2, p.limit)
            assert.equal(5, p.total)
            assert.equal(5, p.length)
            assert.equal(2, rss.list(lt, { per_page = 2 }).length)
            local walked, pages = fx.keyset_walk(function(o) return rss.list(lt, o) end, "resource_servers", "id", 2)
            assert.same({ "rs1", "rs2", "rs3", "rs4", "rs5" }, walked)
            assert.equal(3, pages)
            local s = rss.list(lt, { sort = { sort_by = "identifier", sort_order = "asc" } })
            assert.same({ "rs3", "rs1", "rs2", "rs4", "rs5" }, fx.ids(s.resource_servers))
            local d = rss.list(lt, { sort = { sort_by = "created_at", sort_order = "desc" }, per_page = 2 })
            assert.same({ "rs5", "rs4" }, fx.ids(d.resource_servers))
            assert.equal(5, #rss.list(lt).resource_servers)
        end)
    end)

    describe("remove", function()
        it("deletes the resource server and its guard once", function()
            local t = fx.tenant()
            rss.create(t, { id = "r1", name = "n", identifier = "urn:r" })
            rss.create(t, { id = "r2", name = "n", identifier = "urn:keep" })
            assert.is_true(rss.remove(t, "r1"))
            assert.is_nil(rss.get(t, "r1"))
            assert.is_nil(guard_of(t, "urn:r"))
            assert.is_false(rss.remove(t, "r1"))
            assert.is_false(rss.remove(fx.tenant(), "r2"))
            assert.is_table(rss.get(t, "r2"))
            rss.create(t, { id = "r3", name = "n", identifier = "urn:r" })
            assert_guards_true(t)
        end)

        it("goes with its tenant", function()
            local t = fx.tenant()
            a.tenants.create({ id = t, friendly_name = "Gone" })
            rss.create(t, { id = "r1", name = "n", identifier = "urn:1" })
            rss.create(t, { id = "r2", name = "n", identifier = "urn:2" })
            assert.is_true(a.tenants.remove(t))
            assert.same({}, fx.raw_partition(keys.tenant_partition(t)))
        end)
    end)

    it("keeps hostile tenants, ids and identifiers apart", function()
        local base = fx.tenant()
        local evil = base .. "#RESOURCE_SERVER#x"
        rss.create(base, { id = "x", name = "base", identifier = "urn:x" })
        rss.create(evil, { id = "y", name = "evil", identifier = "urn:x" })
        assert.same({ "x" }, fx.ids(rss.list(base).resource_servers))
        assert.same({ "y" }, fx.ids(rss.list(evil).resource_servers))
        assert.is_nil(rss.get(base, "y"))
        -- unescaped, these identifiers' guards would collide with the ids' keys of another shape
        local odd = { "urn#1", "urn%231", "urn%", "#" }
        for i, v in ipairs(odd) do rss.create(base, { id = v, name = "n" .. i, identifier = v }) end
        for i, v in ipairs(odd) do
            assert.equal("n" .. i, rss.get(base, v).name)
            assert.equal(v, guard_of(base, v).resource_server_id)
        end
        fx.raises(409, "Conflict", rss.create, base, { name = "dup", identifier = "urn#1" })
        assert.is_true(rss.remove(base, "urn#1"))
        assert.is_table(rss.get(base, "urn%231"))
        assert.is_true(rss.update(base, "urn%", { identifier = "urn#1" }))
        assert_guards_true(base)
        assert_guards_true(evil)
    end)

    describe("races across processes", function()
        it("N creates of one identifier: exactly one wins, the rest are 409", function()
            local t = fx.tenant()
            local out = fx.race(6, string.format([[function(a, i)
                return a.resourceServers.create(%q, { id = "r" .. i, name = "n", identifier = "urn:race" }).id
            end]], t))
            local winners = {}
            for i, o in ipairs(out) do if o == "r" .. i then winners[#winners + 1] = o end end
            assert.equal(1, #winners, table.concat(out, ", "))
            assert.equal(5, count(out, "error: Conflict"), table.concat(out, ", "))
            assert.same(winners, fx.ids(rss.list(t).resource_servers))
            assert.equal(winners[1], guard_of(t, "urn:race").resource_server_id)
            assert_guards_true(t)
        end)

        it("N updates of different resource servers to one identifier: exactly one wins", function()
            local t = fx.tenant()
            for i = 1, 6 do rss.create(t, { id = "u" .. i, name = "n", identifier = "urn:" .. i }) end
            local out = fx.race(6, string.format([[function(a, i)
                return tostring(a.resourceServers.update(%q, "u" .. i, { identifier = "urn:same" }))
            end]], t))
            assert.equal(1, count(out, "true"), table.concat(out, ", "))
            assert.equal(5, count(out, "error: Conflict"), table.concat(out, ", "))
            local holders = fx.ids(rss.list(t, { q = 'identifier:"urn:same"' }).resource_servers)
            assert.equal(1, #holders)
            assert.equal(holders[1], guard_of(t, "urn:same").resource_server_id)
            assert_guards_true(t)
        end)

        it("N concurrent option merges of one resource server lose none", function()
            local t = fx.tenant()
            rss.create(t, { id = "opt", name = "n", identifier = "urn:opt", options = {} })
            local out = fx.race(4, string.format([=[function(a, i)
                local o = { "enforce_policies", "allow_skipping_userinfo", "skip_userinfo", "persist_client_authorization" }
                return tostring(a.resourceServers.update(%q, "opt", { options = { [o[i]] = true } }))
            end]=], t))
            assert.same({ "true", "true", "true", "true" }, out)
            assert.same({ enforce_policies = true, allow_skipping_userinfo = true, skip_userinfo = true,
                persist_client_authorization = true }, rss.get(t, "opt").options)
        end)
    end)
end)
