-- clientConnections (contract §6) against DynamoDB Local: the client's ordered list (items, GSI1 and
-- the version item), listByClient with one BatchGetItem, replace in one transaction or in fenced
-- steps, append/remove, validation before any request, hostile ids, the cascades of clients,
-- connections and tenants, and races of several processes on one client's list.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"

local keys = schema.keys

local function cc_ids(list) return fx.ids(list, "id") end

-- the client's items in sort-key order: { "order:connection_id", ... }
local function stored(t, client_id)
    local out = {}
    for _, it in ipairs(fx.raw_partition(keys.client_partition(t, client_id))) do
        if it.entityType == "CLIENT_CONNECTION" then out[#out + 1] = it.order .. ":" .. it.connection_id end
    end
    return out
end

local function list_item(t, client_id)
    return fx.raw_get({ PK = keys.client_partition(t, client_id), SK = "CLIENT_CONNECTION_LIST" })
end

describe("clientConnections", function()
    local a, cc, t

    setup(function()
        a = fx.adapters()
        cc = a.clientConnections
        t = fx.tenant()
        for i = 1, 5 do a.connections.create(t, { id = "c" .. i, name = "conn-" .. i, strategy = "auth2" }) end
        a.connections.create(t, { id = "sys", name = "system", strategy = "auth2", is_system = true,
            options = { x = { 1 } } })
        a.clients.create(t, { client_id = "app", name = "App" })
        a.clients.create(t, { client_id = "web", name = "Web" })
    end)

    it("an unknown client has no connections", function()
        local l = cc.listByClient(t, "nobody")
        assert.same({}, l)
        assert.is_true(core.is_array(l))
        assert.same({}, cc.listByConnection(t, "c1"))
        assert.is_true(core.is_array(cc.listByConnection(t, "c1")))
    end)

    it("updateByClient stores the order; listByClient returns connections.get's records in it", function()
        local before = fx.requests()
        assert.is_true(cc.updateByClient(t, "app", { "c3", "sys", "c1" }))
        assert.equal(2, fx.requests() - before) -- one Query, one TransactWriteItems
        before = fx.requests()
        local l = cc.listByClient(t, "app")
        assert.equal(2, fx.requests() - before) -- one Query, one BatchGetItem
        assert.same({ "c3", "sys", "c1" }, cc_ids(l))
        for _, r in ipairs(l) do assert.same(a.connections.get(t, r.id), r) end
        assert.is_true(l[2].is_system)
        assert.same({ x = { 1 } }, l[2].options)
        assert.is_nil(l[1].is_system)
        assert.same(cc_ids(l), cc_ids(cc:listByClient(t, "app")))

        local it = fx.raw_get(keys.client_connection(t, "app", 1, "sys"))
        assert.equal("TENANT#" .. t .. "#CLIENT#app", it.PK)
        assert.equal("CLIENT_CONNECTION#00001#sys", it.SK)
        assert.equal("TENANT#" .. t .. "#CONNECTION#sys", it.GSI1PK)
        assert.equal("CLIENT_CONNECTION#app", it.GSI1SK)
        assert.equal("CLIENT_CONNECTION", it.entityType)
        assert.equal(t, it.tenant_id)
        assert.equal("app", it.client_id)
        assert.equal("sys", it.connection_id)
        assert.equal(1, it.order)
        assert.same({ "0:c3", "1:sys", "2:c1" }, stored(t, "app"))
        assert.equal(1, list_item(t, "app").version)
        assert.same({ "app" }, cc.listByConnection(t, "sys"))
    end)

    it("replaces the list: old places go, kept places stay, duplicates count once", function()
        cc.updateByClient(t, "web", { "c1", "c2", "c3" })
        local kept = fx.raw_get(keys.client_connection(t, "web", 0, "c1"))
        assert.is_true(cc.updateByClient(t, "web", { "c1", "c3", "c4", "c3", "c1" }))
        assert.same({ "0:c1", "1:c3", "2:c4" }, stored(t, "web"))
        assert.same({ "c1", "c3", "c4" }, cc_ids(cc.listByClient(t, "web")))
        assert.same(kept, fx.raw_get(keys.client_connection(t, "web", 0, "c1"))) -- untouched
        assert.same({}, cc.listByConnection(t, "c2"))
        assert.same({ "web" }, cc.listByConnection(t, "c4"))
        assert.equal(2, list_item(t, "web").version)
        -- the same list again writes nothing
        local before = fx.requests()
        assert.is_true(cc.updateByClient(t, "web", { "c1", "c3", "c4" }))
        assert.equal(1, fx.requests() - before)
        assert.equal(2, list_item(t, "web").version)
        assert.is_true(cc.updateByClient(t, "web", {}))
        assert.same({}, stored(t, "web"))
        assert.same({}, cc.listByClient(t, "web"))
    end)

    it("skips connections that no longer exist, keeping the order of the rest", function()
        local tt = fx.tenant()
        for _, id in ipairs({ "x1", "x2", "x3" }) do a.connections.create(tt, { id = id, name = id, strategy = "auth2" }) end
        cc.updateByClient(tt, "app", { "x3", "ghost", "x1", "x2" })
        assert.same({ "x3", "x1", "x2" }, cc_ids(cc.listByClient(tt, "app")))
        assert.same({ "app" }, cc.listByConnection(tt, "ghost"))
        fx.raw_delete(keys.connection(tt, "x1")) -- gone without the cascade
        assert.same({ "x3", "x2" }, cc_ids(cc.listByClient(tt, "app")))
        -- a connection item of another tenant under this tenant's key is not taken
        local k = keys.connection(tt, "x9")
        fx.raw_put({ PK = k.PK, SK = k.SK, entityType = "CONNECTION", id = "x9", name = "x9", strategy = "auth2",
            tenant_id = "someone-else" })
        cc.addClientToConnection(tt, "x9", "app")
        assert.same({ "x3", "x2" }, cc_ids(cc.listByClient(tt, "app")))
    end)

    it("lists and orders more than one transaction holds, in fenced steps", function()
        local tt = fx.tenant()
        local ids, rev = {}, {}
        for i = 1, 150 do
            ids[i] = string.format("k%03d", i)
            rev[151 - i] = ids[i]
        end
        for i = 1, 120 do a.connections.create(tt, { id = ids[i], name = ids[i], strategy = "auth2" }) end
        assert.is_true(cc.updateByClient(tt, "big", ids))
        local s = stored(tt, "big")
        assert.equal(150, #s)
        assert.equal("0:k001", s[1])
        assert.equal("149:k150", s[150])
        assert.equal(2, list_item(tt, "big").version) -- 150 writes: two steps
        local l = cc.listByClient(tt, "big")
        assert.equal(120, #l)
        assert.equal("k001", l[1].id)
        assert.equal("k120", l[120].id)
        assert.is_true(cc.updateByClient(tt, "big", rev))
        s = stored(tt, "big")
        assert.equal(150, #s)
        assert.equal("0:k150", s[1])
        assert.equal("149:k001", s[150])
        l = cc.listByClient(tt, "big")
        assert.equal(120, #l)
        assert.equal("k120", l[1].id)
        assert.equal("k001", l[120].id)
        assert.same({ "big" }, cc.listByConnection(tt, "k150"))
    end)

    it("addClientToConnection appends after the highest order; present is true with no write", function()
        local tt = fx.tenant()
        assert.is_true(cc.addClientToConnection(tt, "c1", "app"))
        assert.is_true(cc.addClientToConnection(tt, "c2", "app"))
        assert.is_true(cc.addClientToConnection(tt, "c3", "app"))
        assert.same({ "0:c1", "1:c2", "2:c3" }, stored(tt, "app"))
        local before = fx.requests()
        assert.is_true(cc.addClientToConnection(tt, "c2", "app"))
        assert.equal(1, fx.requests() - before) -- the read only
        assert.same({ "0:c1", "1:c2", "2:c3" }, stored(tt, "app"))
        assert.is_true(cc.removeClientFromConnection(tt, "c2", "app"))
        assert.is_true(cc.addClientToConnection(tt, "c4", "app"))
        assert.same({ "0:c1", "2:c3", "3:c4" }, stored(tt, "app"))
        assert.is_true(cc:addClientToConnection(tt, "c2", "app"))
        assert.same({ "0:c1", "2:c3", "3:c4", "4:c2" }, stored(tt, "app"))
        assert.same({ "app" }, cc.listByConnection(tt, "c2"))
        assert.equal(5, list_item(tt, "app").version)
    end)

    it("renumbers the list when the five-digit orders are used up", function()
        local tt = fx.tenant()
        cc.addClientToConnection(tt, "c1", "app")
        local k = keys.client_connection(tt, "app", 99999, "c2")
        local ix = keys.client_connection_connection_index(tt, "c2", "app")
        fx.raw_put({ PK = k.PK, SK = k.SK, GSI1PK = ix.GSI1PK, GSI1SK = ix.GSI1SK, entityType = "CLIENT_CONNECTION",
            tenant_id = tt, client_id = "app", connection_id = "c2", order = 99999 })
        assert.is_true(cc.addClientToConnection(tt, "c3", "app"))
        assert.same({ "0:c1", "1:c2", "2:c3" }, stored(tt, "app"))
        assert.same({ "app" }, cc.listByConnection(tt, "c2"))
    end)

    it("removeClientFromConnection: true once, then false", function()
        local tt = fx.tenant()
        cc.updateByClient(tt, "app", { "c1", "c2" })
        cc.updateByClient(tt, "web", { "c2" })
        assert.same({ "app", "web" }, cc.listByConnection(tt, "c2"))
        assert.is_true(cc.removeClientFromConnection(tt, "c2", "app"))
        assert.same({ "0:c1" }, stored(tt, "app"))
        assert.same({ "web" }, cc.listByConnection(tt, "c2"))
        assert.is_false(cc.removeClientFromConnection(tt, "c2", "app"))
        assert.is_false(cc.removeClientFromConnection(tt, "c9", "app"))
        assert.is_false(cc.removeClientFromConnection(tt, "c1", "nobody"))
        assert.same({ "0:c2" }, stored(tt, "web"))
    end)

    it("400 before any request on invalid input", function()
        fx.rejects(cc.listByClient, t, nil)
        fx.rejects(cc.listByClient, nil, "app")
        fx.rejects(cc.listByConnection, t, "")
        fx.rejects(cc.updateByClient, t, "app", nil)
        fx.rejects(cc.updateByClient, t, "app", "c1")
        fx.rejects(cc.updateByClient, t, "app", { "c1", 2 })
        fx.rejects(cc.updateByClient, t, "app", { "c1", "" })
        fx.rejects(cc.updateByClient, t, "", { "c1" })
        fx.rejects(cc.updateByClient, nil, "app", {})
        fx.rejects(cc.updateByClient, t, "app", { string.rep("c", 1100) })
        fx.rejects(cc.updateByClient, t, string.rep("a", 2100), {})
        fx.rejects(cc.addClientToConnection, t, nil, "app")
        fx.rejects(cc.addClientToConnection, t, "c1", "")
        fx.rejects(cc.addClientToConnection, t, string.rep("c", 1100), "app")
        fx.rejects(cc.removeClientFromConnection, t, "c1", nil)
        fx.rejects(cc.removeClientFromConnection, nil, "c1", "app")
        -- ids too long for a key are simply not there
        local before = fx.requests()
        assert.same({}, cc.listByClient(t, string.rep("a", 2100)))
        assert.same({}, cc.listByConnection(t, string.rep("c", 2100)))
        assert.is_false(cc.removeClientFromConnection(t, string.rep("c", 1100), "app"))
        assert.equal(before, fx.requests())
    end)

    it("keeps hostile ids and tenants apart", function()
        local base = fx.tenant()
        local conns = { "c#1", "c%231", "c", "c#CLIENT#x" }
        for _, id in ipairs(conns) do a.connections.create(base, { id = id, name = id, strategy = "auth2" }) end
        cc.updateByClient(base, "app#CLIENT#web", { "c#1", "c%231" })
        cc.updateByClient(base, "app", { "c", "c#CLIENT#x" })
        assert.same({ "c#1", "c%231" }, cc_ids(cc.listByClient(base, "app#CLIENT#web")))
        assert.same({ "c", "c#CLIENT#x" }, cc_ids(cc.listByClient(base, "app")))
        assert.same({ "app#CLIENT#web" }, cc.listByConnection(base, "c#1"))
        assert.same({ "app#CLIENT#web" }, cc.listByConnection(base, "c%231"))
        assert.same({ "app" }, cc.listByConnection(base, "c"))
        assert.equal("CLIENT_CONNECTION#00000#c%231", fx.raw_get(keys.client_connection(base, "app#CLIENT#web", 0, "c#1")).SK)
        assert.is_true(cc.removeClientFromConnection(base, "c#1", "app#CLIENT#web"))
        assert.same({ "c%231" }, cc_ids(cc.listByClient(base, "app#CLIENT#web")))

        -- another tenant whose id would alias base's partitions without escaping
        local evil = base .. "#CLIENT#app"
        cc.updateByClient(evil, "x", { "c" })
        assert.same({ "app" }, cc.listByConnection(base, "c"))
        assert.same({ "c", "c#CLIENT#x" }, cc_ids(cc.listByClient(base, "app")))
        -- an index item claiming base's partition but written for another tenant is dropped
        local ix = keys.client_connection_connection_index(base, "c", "intruder")
        fx.raw_put({ PK = "ELSEWHERE", SK = "CLIENT_CONNECTION#00000#c", GSI1PK = ix.GSI1PK, GSI1SK = ix.GSI1SK,
            entityType = "CLIENT_CONNECTION", tenant_id = "other", client_id = "intruder", connection_id = "c", order = 0 })
        assert.same({ "app" }, cc.listByConnection(base, "c"))
    end)

    describe("cascades", function()
        it("clients.remove takes the client's list along", function()
            local tt = fx.tenant()
            for _, id in ipairs({ "c1", "c2" }) do a.connections.create(tt, { id = id, name = id, strategy = "auth2" }) end
            a.clients.create(tt, { client_id = "gone", name = "Gone" }) -- client ids are unique across tenants
            a.clients.create(tt, { client_id = "stays", name = "Stays" })
            cc.updateByClient(tt, "gone", { "c1", "c2" })
            cc.updateByClient(tt, "stays", { "c2" })
            assert.is_true(a.clients.remove(tt, "gone"))
            assert.same({}, fx.raw_partition(keys.client_partition(tt, "gone"))) -- the version item too
            assert.same({}, cc.listByClient(tt, "gone"))
            assert.same({}, cc.listByConnection(tt, "c1"))
            assert.same({ "stays" }, cc.listByConnection(tt, "c2"))
            assert.same({ "c2" }, cc_ids(cc.listByClient(tt, "stays")))
        end)

        it("connections.remove takes the connection out of every client's list", function()
            local tt = fx.tenant()
            for _, id in ipairs({ "c1", "c2", "c3" }) do a.connections.create(tt, { id = id, name = id, strategy = "auth2" }) end
            cc.updateByClient(tt, "app", { "c1", "c2", "c3" })
            cc.updateByClient(tt, "web", { "c2", "c1" })
            assert.is_true(a.connections.remove(tt, "c2"))
            assert.same({ "0:c1", "2:c3" }, stored(tt, "app"))
            assert.same({ "1:c1" }, stored(tt, "web"))
            assert.same({}, cc.listByConnection(tt, "c2"))
            assert.same({ "c1", "c3" }, cc_ids(cc.listByClient(tt, "app")))
            assert.is_true(cc.addClientToConnection(tt, "c2", "web"))
            assert.same({ "1:c1", "2:c2" }, stored(tt, "web"))
        end)

        it("tenants.remove takes every list of the tenant along", function()
            local tt = fx.tenant()
            a.tenants.create({ id = tt, friendly_name = "Gone" })
            a.connections.create(tt, { id = "c1", name = "c1", strategy = "auth2" })
            local app = tt .. "-app" -- client ids are unique across tenants
            a.clients.create(tt, { client_id = app, name = "App" })
            cc.updateByClient(tt, app, { "c1" })
            assert.same({ app }, cc.listByConnection(tt, "c1"))
            assert.is_true(a.tenants.remove(tt))
            assert.same({}, fx.raw_partition(keys.client_partition(tt, app)))
            assert.same({}, cc.listByConnection(tt, "c1"))
            assert.is_nil(a.connections.get(tt, "c1"))
        end)
    end)

    describe("races", function()
        it("processes appending to one client at once list each connection exactly once", function()
            local tt = fx.tenant()
            local all = { "c1", "c2", "c3", "p1", "p2", "p3", "p4", "p5", "p6" }
            for _, id in ipairs(all) do a.connections.create(tt, { id = id, name = id, strategy = "auth2" }) end
            local out = fx.race(6, string.format([[function(a, i)
                local ok = true
                for _, c in ipairs({ "c1", "c2", "c3" }) do
                    ok = a.clientConnections.addClientToConnection(%q, c, "app") and ok
                end
                ok = a.clientConnections.addClientToConnection(%q, "p" .. i, "app") and ok
                return tostring(ok)
            end]], tt, tt))
            assert.same({ "true", "true", "true", "true", "true", "true" }, out)
            local got = cc_ids(cc.listByClient(tt, "app"))
            assert.equal(9, #got)
            local seen = {}
            for _, id in ipairs(got) do
                assert.is_nil(seen[id], "listed twice: " .. id)
                seen[id] = true
            end
            for _, id in ipairs(all) do assert.is_true(seen[id], id) end
            -- orders are distinct and the list is the sort-key order
            local s, orders = stored(tt, "app"), {}
            assert.equal(9, #s)
            for _, e in ipairs(s) do
                local o = e:match("^(%d+):")
                assert.is_nil(orders[o], "order used twice: " .. o)
                orders[o] = true
            end
            for _, id in ipairs(all) do assert.same({ "app" }, cc.listByConnection(tt, id)) end
        end)

        it("concurrent replacements and appends leave one writer's whole list, each connection once", function()
            local tt = fx.tenant()
            local lists = { { "c1", "c2", "c3" }, { "c3", "c2" }, { "c4", "c1", "c5", "c2" } }
            for i = 1, 5 do a.connections.create(tt, { id = "c" .. i, name = "c" .. i, strategy = "auth2" }) end
            local out = fx.race(5, string.format([[function(a, i)
                local lists = { { "c1", "c2", "c3" }, { "c3", "c2" }, { "c4", "c1", "c5", "c2" } }
                if i <= 3 then return tostring(a.clientConnections.updateByClient(%q, "app", lists[i])) end
                return tostring(a.clientConnections.addClientToConnection(%q, "c2", "app"))
            end]], tt, tt))
            assert.same({ "true", "true", "true", "true", "true" }, out)
            local s = stored(tt, "app")
            local ids, seen = {}, {}
            for i, e in ipairs(s) do
                local o, id = e:match("^(%d+):(.*)$")
                assert.is_nil(seen[id], "listed twice: " .. id)
                seen[id] = true
                ids[i] = id
                assert.equal(i - 1, tonumber(o)) -- a whole replacement, not a mix
            end
            -- every list holds c2, so the append changes nothing after any of them
            local match = false
            for _, l in ipairs(lists) do
                if table.concat(l, ",") == table.concat(ids, ",") then match = true end
            end
            assert.is_true(match, table.concat(ids, ","))
            assert.same(ids, cc_ids(cc.listByClient(tt, "app")))
        end)
    end)
end)
