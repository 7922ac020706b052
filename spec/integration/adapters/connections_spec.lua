-- connections adapter (contract §4.5) against DynamoDB Local: defaults (options {}, nulls inside
-- options dropped, enabled_clients []), the GSI1 name index and its `name:` fast path (following
-- renames), list, update, remove, validation before any request, hostile ids.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local T0 = math.floor(core.now()) * 1000

local function iso(ms) return util.iso(ms) end
local function raw_item(t, id) return fx.raw_get(schema.keys.connection(t, id)) end

describe("connections adapter", function()
    local connections

    setup(function() connections = fx.adapters().connections end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create", function()
        it("generates an id, applies defaults and returns the record as get does", function()
            local t = fx.tenant()
            local c = connections.create(t, { name = "Username-Password-Authentication", strategy = "auth2" })
            assert.equal(21, #c.id)
            assert.same({}, c.options)
            assert.is_false(core.is_array(c.options))
            assert.same({}, c.enabled_clients)
            assert.is_true(core.is_array(c.enabled_clients))
            assert.is_nil(c.is_system)
            assert.equal(iso(T0), c.created_at)
            assert.equal(iso(T0), c.updated_at)
            for _, k in ipairs({ "PK", "SK", "GSI1PK", "GSI1SK", "entityType", "tenant_id" }) do
                assert.is_nil(c[k], k)
            end
            assert.same(c, connections.get(t, c.id))
            local it = raw_item(t, c.id)
            assert.equal("CONNECTION", it.entityType)
            assert.equal("{}", it.options)
            assert.equal("[]", it.enabled_clients)
            assert.equal(t, it.tenant_id)
            local idx = schema.keys.connection_name_index(t, "Username-Password-Authentication")
            assert.equal(idx.GSI1PK, it.GSI1PK)
            assert.equal("CONNECTION", it.GSI1SK)
        end)

        it("stores every field, drops nulls inside options and a false is_system", function()
            local t = fx.tenant()
            local c = connections.create(t, {
                id = "con1", name = "google", display_name = "Google", strategy = "google-oauth2",
                options = { client_id = "gid", client_secret = core.null, scope = core.array({ "email" }),
                    nested = { keep = 1, drop = core.null } },
                enabled_clients = { "c1" }, response_type = "code", response_mode = "query",
                is_domain_connection = false, show_as_button = true, metadata = { a = "b" }, is_system = false,
            })
            assert.equal("con1", c.id)
            assert.same({ client_id = "gid", scope = { "email" }, nested = { keep = 1 } }, c.options)
            assert.is_true(core.is_array(c.options.scope))
            assert.same({ "c1" }, c.enabled_clients)
            assert.equal("Google", c.display_name)
            assert.equal("code", c.response_type)
            assert.equal("query", c.response_mode)
            assert.is_false(c.is_domain_connection)
            assert.is_true(c.show_as_button)
            assert.same({ a = "b" }, c.metadata)
            assert.is_nil(c.is_system)
            assert.is_nil(raw_item(t, "con1").is_system)
            local sys = connections.create(t, { name = "sys", strategy = "auth2", is_system = true,
                options = core.null })
            assert.is_true(sys.is_system)
            assert.same({}, sys.options)
        end)

        it("honours importMetadata", function()
            local t = fx.tenant()
            local c = connections.create(t, { id = "x", name = "n", strategy = "s" },
                { importMetadata = { id = "imp", created_at = "2020-02-02T02:02:02Z" } })
            assert.equal("imp", c.id)
            assert.equal("2020-02-02T02:02:02.000Z", c.created_at)
            assert.equal("2020-02-02T02:02:02.000Z", c.updated_at)
        end)

        it("refuses an existing id with 409; names need not be unique", function()
            local t = fx.tenant()
            connections.create(t, { id = "c1", name = "same", strategy = "auth2" })
            fx.raises(409, "Conflict", connections.create, t, { id = "c1", name = "other", strategy = "auth2" })
            assert.equal("same", connections.get(t, "c1").name)
            connections.create(t, { id = "c2", name = "same", strategy = "auth2" })
            assert.same({ "c1", "c2" }, fx.ids(connections.list(t, { q = "name:same" }).connections))
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            fx.rejects(connections.create, t, { strategy = "auth2" })
            fx.rejects(connections.create, t, { name = "n" })
            fx.rejects(connections.create, t, { name = "", strategy = "auth2" })
            fx.rejects(connections.create, t, { name = "n", strategy = "s", id = 3 })
            fx.rejects(connections.create, t, { name = "n", strategy = "s", options = "x" })
            fx.rejects(connections.create, t, { name = "n", strategy = "s", enabled_clients = true })
            fx.rejects(connections.create, nil, { name = "n", strategy = "s" })
        end)
    end)

    describe("get", function()
        it("returns nil when missing or in another tenant; colon calls work", function()
            local t = fx.tenant()
            connections.create(t, { id = "c1", name = "n", strategy = "s" })
            assert.is_nil(connections.get(t, "c2"))
            assert.is_nil(connections.get(fx.tenant(), "c1"))
            assert.equal("c1", connections:get(t, "c1").id)
            fx.rejects(connections.get, t, nil)
        end)
    end)

    describe("list", function()
        local t
        setup(function()
            t = fx.tenant()
            for i = 1, 10 do
                connections.create(t, { id = string.format("c%02d", i), name = i <= 2 and "google" or "db-" .. i,
                    display_name = i == 5 and "Five Display" or nil,
                    strategy = i <= 2 and "google-oauth2" or "auth2", is_system = i == 10 })
            end
        end)

        it("pages in offset mode with a real total", function()
            local p = connections.list(t, { page = 2, per_page = 4, include_totals = true })
            assert.same({ "c09", "c10" }, fx.ids(p.connections))
            assert.equal(8, p.start)
            assert.equal(10, p.length) -- the total, with include_totals (contract §9.3 #4)
            assert.equal(10, p.total)
            assert.equal(10, connections.list(t).length)
        end)

        it("walks every connection exactly once in keyset mode", function()
            local walked = fx.keyset_walk(function(o) return connections.list(t, o) end, "connections", "id", 3)
            assert.equal(10, #walked)
        end)

        it("filters with q, using the name index for name:", function()
            local r = connections.list(t, { q = "name:google", include_totals = true })
            assert.same({ "c01", "c02" }, fx.ids(r.connections))
            assert.equal(2, r.total)
            assert.same({ "c02" }, fx.ids(connections.list(t, { q = "name:google id:c02" }).connections))
            assert.equal(8, connections.list(t, { q = "strategy:auth2" }).length)
            assert.same({ "c10" }, fx.ids(connections.list(t, { q = "is_system:true" }).connections))
            assert.equal(9, connections.list(t, { q = "-is_system:true" }).length)
            assert.same({ "c05" }, fx.ids(connections.list(t, { q = "five" }).connections))
            assert.same({ "c01", "c02" }, fx.ids(connections.list(t, { q = "oauth2" }).connections))
            -- "db-10" < "db-3" < "db-4" < ... < "google" (string order)
            assert.same({ "c10", "c03", "c04" },
                fx.ids(connections.list(t, { sort = { sort_by = "name", sort_order = "asc" }, per_page = 3 }).connections))
        end)

        it("refuses an unknown q field before sending anything", function()
            fx.rejects(connections.list, t, { q = "options:x" })
            fx.rejects(connections.list, t, { q = "name:(x)" })
        end)
    end)

    describe("update", function()
        it("patches fields, follows a rename in the name index, returns false when missing", function()
            local t = fx.tenant()
            connections.create(t, { id = "c1", name = "old", strategy = "auth2", options = { a = 1 },
                enabled_clients = { "x" }, is_system = true })
            fx.advance(4)
            assert.is_true(connections.update(t, "c1", { name = "new", options = { b = 2, c = core.null },
                id = "zz", created_at = "2000-01-01" }))
            local c = connections.get(t, "c1")
            assert.equal("new", c.name)
            assert.same({ b = 2 }, c.options)
            assert.equal(iso(T0), c.created_at)
            assert.equal(iso(T0 + 4000), c.updated_at)
            assert.equal(0, connections.list(t, { q = "name:old" }).length)
            assert.same({ "c1" }, fx.ids(connections.list(t, { q = "name:new" }).connections))
            assert.equal(schema.keys.connection_name_index(t, "new").GSI1PK, raw_item(t, "c1").GSI1PK)
            assert.is_true(connections.update(t, "c1", { options = core.null, enabled_clients = core.null,
                is_system = false }))
            c = connections.get(t, "c1")
            assert.same({}, c.options)
            assert.same({}, c.enabled_clients)
            assert.is_true(core.is_array(c.enabled_clients))
            assert.is_nil(c.is_system)
            assert.is_false(connections.update(t, "missing", { name = "x" }))
            assert.is_false(connections.update(fx.tenant(), "c1", { name = "x" }))
            fx.rejects(connections.update, t, "c1", { name = "" })
            fx.rejects(connections.update, t, "c1", { name = core.null })
            fx.rejects(connections.update, t, "c1", { strategy = core.null })
            fx.rejects(connections.update, t, "c1", { options = 5 })
            fx.rejects(connections.update, t, "c1", nil)
        end)
    end)

    describe("remove", function()
        it("deletes once and drops it from the name index", function()
            local t = fx.tenant()
            connections.create(t, { id = "c1", name = "n", strategy = "s" })
            assert.is_false(connections.remove(fx.tenant(), "c1"))
            assert.is_true(connections.remove(t, "c1"))
            assert.is_nil(connections.get(t, "c1"))
            assert.equal(0, connections.list(t, { q = "name:n" }).length)
            assert.is_false(connections.remove(t, "c1"))
            fx.rejects(connections.remove, t, nil)
        end)
    end)

    describe("hostile ids", function()
        it("keeps tenants, names and ids with # % | and unicode apart", function()
            local base = fx.tenant()
            local evil = base .. "#CONNECTION_NAME#x"
            -- unescaped, (base, name "x#CONNECTION_NAME#y") and (evil, name "y") would share GSI1
            connections.create(base, { id = "b1", name = "x#CONNECTION_NAME#y", strategy = "s" })
            connections.create(evil, { id = "e1", name = "y", strategy = "s" })
            assert.same({ "b1" }, fx.ids(connections.list(base, { q = 'name:"x#CONNECTION_NAME#y"' }).connections))
            assert.same({ "e1" }, fx.ids(connections.list(evil, { q = "name:y" }).connections))
            assert.equal(0, connections.list(base, { q = "name:y" }).length)
            local odd = { "a#CONNECTION#b", "a%23CONNECTION%23b", "p|q", "çønñ ✓", "%", "#" }
            for _, id in ipairs(odd) do connections.create(evil, { id = id, name = id, strategy = "s" }) end
            for _, id in ipairs(odd) do
                assert.equal(id, connections.get(evil, id).id)
                assert.is_nil(connections.get(base, id))
            end
            assert.same({ "a%23CONNECTION%23b" },
                fx.ids(connections.list(evil, { q = 'name:"a%23CONNECTION%23b"' }).connections))
            assert.same({ "b1" }, fx.ids(connections.list(base).connections))
            assert.is_true(connections.remove(evil, "a#CONNECTION#b"))
            assert.is_not_nil(connections.get(evil, "a%23CONNECTION%23b"))
        end)
    end)
end)
