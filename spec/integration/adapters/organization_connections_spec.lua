-- organizationConnections (contract §6) against DynamoDB Local: create (defaults, 409 on an
-- existing pair), get, list with the connection {name, strategy} embedded through one BatchGetItem
-- for the whole list, update returning the record (nil when missing), remove, validation before any
-- request, and the cascades from organizations, connections (through GSI2, by the kind's prefix)
-- and tenants.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local T0 = math.floor(core.now()) * 1000
local keys = schema.keys
local null = core.null

local function raw(t, o, c) return fx.raw_get(keys.organization_connection(t, o, c)) end

-- "Operation[:index][:prefix]" for each request fn sends (prefix: the begins_with value of a Query)
local function ops(fn)
    return fx.ops(fn, function(op, p)
        local s = op .. (p.IndexName and (":" .. p.IndexName) or "")
        local ph = p.KeyConditionExpression and p.KeyConditionExpression:match("begins_with%([^,]+,%s*(:v%d+)%)")
        if ph then s = s .. ":" .. p.ExpressionAttributeValues[ph] end
        return s
    end)
end

describe("organizationConnections", function()
    local a, oc

    setup(function()
        a = fx.adapters()
        oc = a.organizationConnections
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create", function()
        it("stores the pair with the defaults and GSI2, and embeds the connection's name and strategy", function()
            local t = fx.tenant()
            a.connections.create(t, { id = "con1", name = "Username-Password-Authentication", strategy = "auth0",
                options = { requires_username = true } })
            local r = oc.create(t, "org1", { connection_id = "con1" })
            assert.same({ connection_id = "con1", organization_id = "org1", assign_membership_on_login = false,
                show_as_button = true, is_signup_enabled = true,
                connection = { name = "Username-Password-Authentication", strategy = "auth0" },
                created_at = util.iso(T0), updated_at = util.iso(T0) }, r)
            assert.same(r, oc.get(t, "org1", "con1"))
            assert.same(r, oc:get(t, "org1", "con1"))
            local it = raw(t, "org1", "con1")
            assert.equal("ORGANIZATION_CONNECTION", it.entityType)
            assert.equal(core.key("TENANT", t, "ORG", "org1"), it.PK)
            assert.equal(core.key("ORG_CONNECTION", "con1"), it.SK)
            assert.equal(core.key("TENANT", t, "CONNECTION", "con1"), it.GSI2PK)
            assert.equal(core.key("ORG_CONNECTION", "org1"), it.GSI2SK)
            assert.equal(t, it.tenant_id)
            assert.is_nil(it.connection) -- embedded on read, never stored
        end)

        it("keeps given flags, ignores a given connection, takes importMetadata's timestamps", function()
            local t = fx.tenant()
            local r = oc.create(t, "org1", { connection_id = "nowhere", assign_membership_on_login = true,
                show_as_button = false, is_signup_enabled = false, connection = { name = "forged", strategy = "x" } },
                { importMetadata = { created_at = "2023-03-03T03:03:03Z", updated_at = "2023-04-04T04:04:04Z" } })
            assert.is_true(r.assign_membership_on_login)
            assert.is_false(r.show_as_button)
            assert.is_false(r.is_signup_enabled)
            assert.is_nil(r.connection) -- no such connection: nothing to embed
            assert.equal("2023-03-03T03:03:03.000Z", r.created_at)
            assert.equal("2023-04-04T04:04:04.000Z", r.updated_at)
            assert.same(r, oc.get(t, "org1", "nowhere"))
        end)

        it("409 on an existing pair, which stays as it was; the same connection in another org is fine", function()
            local t = fx.tenant()
            local first = oc.create(t, "org1", { connection_id = "c", show_as_button = false })
            local e = fx.raises(409, "Conflict", oc.create, t, "org1", { connection_id = "c", show_as_button = true })
            assert.matches("already enabled", e.message)
            assert.same(first, oc.get(t, "org1", "c"))
            assert.equal("c", oc.create(t, "org2", { connection_id = "c" }).connection_id)
            assert.equal("c", oc.create(fx.tenant(), "org1", { connection_id = "c" }).connection_id)
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            fx.rejects(oc.create, t, "org1", {})
            fx.rejects(oc.create, t, "org1", { connection_id = "" })
            fx.rejects(oc.create, t, "org1", { connection_id = 5 })
            fx.rejects(oc.create, t, "org1", { connection_id = "c", show_as_button = "yes" })
            fx.rejects(oc.create, t, "org1", { connection_id = "c", assign_membership_on_login = 1 })
            fx.rejects(oc.create, t, "org1", { connection_id = "c", is_signup_enabled = "false" })
            fx.rejects(oc.create, t, "org1", { connection_id = string.rep("c", 1020) })
            fx.rejects(oc.create, t, nil, { connection_id = "c" })
            fx.rejects(oc.create, nil, "org1", { connection_id = "c" })
            fx.rejects(oc.create, t, "org1", nil)
            fx.rejects(oc.get, t, "org1", nil)
            fx.rejects(oc.get, t, nil, "c")
            fx.rejects(oc.list, t, nil)
            fx.rejects(oc.update, t, "org1", "c", nil)
            fx.rejects(oc.update, t, "org1", "c", { show_as_button = "no" })
            fx.rejects(oc.remove, t, "org1", nil)
            assert.same({}, fx.raw_partition(keys.organization_partition(t, "org1")))
        end)
    end)

    describe("get", function()
        it("reads the pair and its connection in one BatchGetItem; nil when missing or another tenant's", function()
            local t = fx.tenant()
            a.connections.create(t, { id = "g1", name = "google", strategy = "google-oauth2" })
            oc.create(t, "org1", { connection_id = "g1" })
            local r, sent = ops(function() return oc.get(t, "org1", "g1") end)
            assert.same({ "BatchGetItem" }, sent)
            assert.same({ name = "google", strategy = "google-oauth2" }, r.connection)
            assert.is_nil(oc.get(t, "org1", "nope"))
            assert.is_nil(oc.get(t, "org2", "g1"))
            assert.is_nil(oc.get(fx.tenant(), "org1", "g1"))
            local _, none = ops(function() return oc.get(t, "org1", string.rep("x", 2100)) end)
            assert.same({}, none)
            -- an item of another kind at that key is not a record
            local k = keys.organization_connection(t, "org1", "odd")
            fx.raw_put({ PK = k.PK, SK = k.SK, entityType = "SOMETHING_ELSE", tenant_id = t, connection_id = "odd" })
            assert.is_nil(oc.get(t, "org1", "odd"))
        end)
    end)

    describe("list", function()
        it("returns the organization's connections with one Query and one BatchGetItem for the whole list", function()
            local t = fx.tenant()
            for i = 1, 6 do
                a.connections.create(t, { id = "c" .. i, name = "conn-" .. i, strategy = "s" .. i })
            end
            for i = 1, 6 do oc.create(t, "org1", { connection_id = "c" .. i, show_as_button = i % 2 == 0 }) end
            oc.create(t, "org1", { connection_id = "deleted-connection" })
            oc.create(t, "org2", { connection_id = "c1" })
            a.userOrganizations.create(t, { user_id = "auth2|m", organization_id = "org1" }) -- same partition
            oc.create(fx.tenant(), "org1", { connection_id = "c1" })
            local got, sent = ops(function() return oc.list(t, "org1") end)
            assert.same({ "Query:ORG_CONNECTION#", "BatchGetItem" }, sent)
            assert.equal(7, #got)
            assert.is_true(core.is_array(got))
            for i = 1, 6 do
                assert.equal("c" .. i, got[i].connection_id)
                assert.same({ name = "conn-" .. i, strategy = "s" .. i }, got[i].connection)
                assert.equal(i % 2 == 0, got[i].show_as_button)
                assert.same(got[i], oc.get(t, "org1", "c" .. i))
            end
            assert.equal("deleted-connection", got[7].connection_id)
            assert.is_nil(got[7].connection)
            local empty, one = ops(function() return oc.list(t, "org-without") end)
            assert.same({}, empty)
            assert.is_true(core.is_array(empty))
            assert.same({ "Query:ORG_CONNECTION#" }, one)
        end)

        it("fills the defaults into items written without them", function()
            local t = fx.tenant()
            local k = keys.organization_connection(t, "o", "bare")
            fx.raw_put({ PK = k.PK, SK = k.SK, entityType = "ORGANIZATION_CONNECTION", tenant_id = t,
                organization_id = "o", connection_id = "bare" })
            assert.same({ { organization_id = "o", connection_id = "bare", assign_membership_on_login = false,
                show_as_button = true, is_signup_enabled = true } }, oc.list(t, "o"))
        end)
    end)

    describe("update", function()
        it("returns the updated record with its connection, nil when there is none", function()
            local t = fx.tenant()
            a.connections.create(t, { id = "u1", name = "email", strategy = "email" })
            local r = oc.create(t, "org1", { connection_id = "u1" })
            fx.set_now(T0 + 7000)
            local got = oc.update(t, "org1", "u1", { assign_membership_on_login = true, show_as_button = false,
                connection_id = "hijack", organization_id = "hijack" })
            assert.is_true(got.assign_membership_on_login)
            assert.is_false(got.show_as_button)
            assert.is_true(got.is_signup_enabled)
            assert.equal("u1", got.connection_id)
            assert.equal("org1", got.organization_id)
            assert.same({ name = "email", strategy = "email" }, got.connection)
            assert.equal(r.created_at, got.created_at)
            assert.equal(util.iso(T0 + 7000), got.updated_at)
            assert.same(got, oc.get(t, "org1", "u1"))
            assert.is_nil(oc.get(t, "org1", "hijack"))
            local reset = oc.update(t, "org1", "u1", { assign_membership_on_login = null, show_as_button = null })
            assert.is_false(reset.assign_membership_on_login)
            assert.is_true(reset.show_as_button)
            assert.is_nil(oc.update(t, "org1", "missing", { show_as_button = false }))
            assert.is_nil(oc.get(t, "org1", "missing")) -- not created by the update
            assert.is_nil(oc.update(fx.tenant(), "org1", "u1", { show_as_button = false }))
        end)
    end)

    describe("remove", function()
        it("deletes the pair; false when there is none", function()
            local t = fx.tenant()
            oc.create(t, "org1", { connection_id = "r1" })
            assert.is_false(oc.remove(t, "org2", "r1"))
            assert.is_true(oc.remove(t, "org1", "r1"))
            assert.is_nil(oc.get(t, "org1", "r1"))
            assert.is_false(oc.remove(t, "org1", "r1"))
        end)
    end)

    describe("cascades", function()
        it("organizations.remove takes the organization's connections, not other organizations'", function()
            local t = fx.tenant()
            local org = a.organizations.create(t, { id = "doomed", name = "doomed" })
            a.organizations.create(t, { id = "kept", name = "kept" })
            oc.create(t, org.id, { connection_id = "c1" })
            oc.create(t, org.id, { connection_id = "c2" })
            local keep = oc.create(t, "kept", { connection_id = "c1" })
            assert.is_true(a.organizations.remove(t, org.id))
            assert.same({}, oc.list(t, org.id))
            assert.same({}, fx.raw_partition(keys.organization_partition(t, org.id)))
            assert.same({ keep }, oc.list(t, "kept"))
        end)

        it("connections.remove takes the connection's organization and client connections (GSI1/GSI2 by prefix)", function()
            local t = fx.tenant()
            a.connections.create(t, { id = "gone", name = "gone", strategy = "auth0" })
            a.connections.create(t, { id = "stays", name = "stays", strategy = "auth0" })
            oc.create(t, "o1", { connection_id = "gone" })
            oc.create(t, "o2", { connection_id = "gone" })
            oc.create(t, "o1", { connection_id = "stays" })
            a.clientConnections.updateByClient(t, "app", { "gone", "stays" })
            local other = fx.tenant()
            oc.create(other, "o1", { connection_id = "gone" })
            local ok, sent = ops(function() return a.connections.remove(t, "gone") end)
            assert.is_true(ok)
            for _, s in ipairs(sent) do
                assert.is_nil(s:match("^Scan"), s)
                if s:match("^Query:GSI2") then assert.equal("Query:GSI2:ORG_CONNECTION#", s) end
                if s:match("^Query:GSI1") then assert.equal("Query:GSI1:CLIENT_CONNECTION#", s) end
            end
            assert.equal(1, fx.count(sent, "Query:GSI2:ORG_CONNECTION#"))
            assert.is_nil(oc.get(t, "o1", "gone"))
            assert.is_nil(oc.get(t, "o2", "gone"))
            assert.equal("stays", oc.get(t, "o1", "stays").connection_id)
            assert.same({ "stays" }, fx.ids(a.clientConnections.listByClient(t, "app")))
            assert.equal("gone", oc.get(other, "o1", "gone").connection_id)
        end)

        it("tenants.remove takes them through the tenant's organizations", function()
            local t = fx.tenant()
            a.tenants.create({ id = t, friendly_name = "Doomed" })
            a.organizations.create(t, { id = "o1", name = "o1" })
            oc.create(t, "o1", { connection_id = "c1" })
            assert.is_true(a.tenants.remove(t))
            assert.same({}, fx.raw_partition(keys.organization_partition(t, "o1")))
        end)
    end)

    it("keeps hostile ids apart (escaped keys)", function()
        local t = fx.tenant()
        oc.create(t, "o#ORG_CONNECTION#x", { connection_id = "c%" })
        oc.create(t, "o", { connection_id = "x#ORG_CONNECTION#c%" })
        assert.same({ "c%" }, fx.ids(oc.list(t, "o#ORG_CONNECTION#x"), "connection_id"))
        assert.same({ "x#ORG_CONNECTION#c%" }, fx.ids(oc.list(t, "o"), "connection_id"))
        assert.is_true(oc.remove(t, "o#ORG_CONNECTION#x", "c%"))
        assert.equal(1, #oc.list(t, "o"))
    end)
end)
