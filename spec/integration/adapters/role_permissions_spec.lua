-- rolePermissions (contract §4.11) against DynamoDB Local: idempotent assign, remove of absent pairs,
-- ordering, offset pages and escaped (identifier, name) pairs.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"

local function perm(rs, name) return { resource_server_identifier = rs, permission_name = name } end

local function names(list)
    local out = {}
    for i, p in ipairs(list) do out[i] = p.resource_server_identifier .. " " .. p.permission_name end
    return out
end

describe("rolePermissions", function()
    local a, rp, t

    setup(function()
        a = fx.adapters()
        rp = a.rolePermissions
        t = fx.tenant()
    end)

    it("assigns, lists and keeps created_at on a repeated assign", function()
        fx.set_now(1700000000000)
        assert.is_true(rp.assign(t, "r1", { perm("https://api", "read:users"), perm("https://api", "write:users") }))
        local first = rp.list(t, "r1")
        assert.is_true(core.is_array(first))
        assert.same({ "https://api read:users", "https://api write:users" }, names(first))
        assert.equal("r1", first[1].role_id)
        assert.equal("2023-11-14T22:13:20.000Z", first[1].created_at)
        assert.equal("https://api", first[1].resource_server_name)
        for _, k in ipairs({ "PK", "SK", "entityType", "tenant_id" }) do assert.is_nil(first[1][k]) end

        fx.set_now(1800000000000)
        -- idempotent; a role_id inside the items is ignored; duplicates inside one call are fine
        local p = perm("https://api", "read:users")
        p.role_id = "other-role"
        assert.is_true(rp:assign(t, "r1", { p, perm("https://api", "read:users"), perm("https://api", "delete:users") }))
        fx.reset_clock()
        local again = rp.list(t, "r1")
        assert.same({ "https://api delete:users", "https://api read:users", "https://api write:users" }, names(again))
        assert.equal("2023-11-14T22:13:20.000Z", again[2].created_at)
        assert.equal("2027-01-15T08:00:00.000Z", again[1].created_at)
        assert.same({}, rp.list(t, "other-role"))
        assert.is_true(rp.assign(t, "r1", {}))
        assert.equal(3, #rp.list(t, "r1"))

        local item = fx.raw_partition(schema.keys.role_partition(t, "r1"))[1]
        assert.equal("ROLE_PERMISSION", item.entityType)
        assert.equal(t, item.tenant_id)
    end)

    it("remove deletes the listed pairs and is true even when they are absent", function()
        rp.assign(t, "r2", { perm("api", "a"), perm("api", "b"), perm("api", "c") })
        assert.is_true(rp.remove(t, "r2", { perm("api", "b"), perm("api", "zzz") }))
        assert.same({ "api a", "api c" }, names(rp.list(t, "r2")))
        assert.is_true(rp.remove(t, "r2", { perm("nothing", "here") }))
        assert.is_true(rp.remove(t, "never-a-role", { perm("api", "a") }))
        assert.is_true(rp.remove(t, "r2", {}))
        assert.is_true(rp.remove(t, "r2", { perm("api", "a"), perm("api", "c") }))
        assert.same({}, rp.list(t, "r2"))
        assert.same({}, fx.raw_partition(schema.keys.role_partition(t, "r2")))
    end)

    it("400 before any request on invalid input", function()
        fx.rejects(rp.assign, t, "r", nil)
        fx.rejects(rp.assign, t, "r", { "x" })
        fx.rejects(rp.assign, t, "r", { { permission_name = "p" } })
        fx.rejects(rp.assign, t, "r", { perm("api", "") })
        fx.rejects(rp.assign, t, "r", { perm("api", "ok"), perm("api", 5) }) -- nothing written either
        fx.rejects(rp.assign, t, nil, { perm("api", "p") })
        fx.rejects(rp.assign, nil, "r", { perm("api", "p") })
        fx.rejects(rp.remove, t, "r", { perm(nil, "p") })
        fx.rejects(rp.remove, t, "", { perm("api", "p") })
        fx.rejects(rp.list, t, nil)
        fx.rejects(rp.list, t, "r", { page = -1 })
        fx.rejects(rp.list, t, "r", { per_page = 2.5 })
        fx.rejects(rp.list, t, "r", { q = "permission_name:x" })
        assert.same({}, rp.list(t, "r"))
    end)

    it("orders by identifier then name and pages by offset", function()
        local lt = fx.tenant()
        local input = {}
        -- identifiers whose escaped sort keys would not sort like the raw values
        for _, rs in ipairs({ "b", "a b", "a", "a#", "a%" }) do
            for _, n in ipairs({ "z", "m", "a" }) do input[#input + 1] = perm(rs, n) end
        end
        rp.assign(lt, "r", input)
        local all = rp.list(lt, "r", { per_page = 1000 })
        assert.equal(15, #all)
        for i = 2, #all do
            local x, y = all[i - 1], all[i]
            local ok = x.resource_server_identifier < y.resource_server_identifier
                or (x.resource_server_identifier == y.resource_server_identifier and x.permission_name < y.permission_name)
            assert.is_true(ok, names({ x, y })[1] .. " / " .. names({ x, y })[2])
        end
        assert.same({ "a a", "a m", "a z", "a b a" }, names(rp.list(lt, "r", { per_page = 4 })))
        assert.same({ "a b m", "a b z", "a# a", "a# m" }, names(rp.list(lt, "r", { page = 1, per_page = 4 })))
        assert.same({ "a# z", "a% a", "a% m", "a% z" }, names(rp.list(lt, "r", { page = 2, per_page = 4 })))
        assert.same({ "b a", "b m", "b z" }, names(rp.list(lt, "r", { page = 3, per_page = 4 })))
        assert.same({}, rp.list(lt, "r", { page = 9, per_page = 4 }))
        assert.equal(15, #rp.list(lt, "r")) -- default 50
    end)

    it("escapes each part: identifiers with '#' never collide with another pair", function()
        local lt = fx.tenant()
        -- unescaped, both would be PERMISSION#https://api#v2#read
        rp.assign(lt, "r", { perm("https://api#v2", "read"), perm("https://api", "v2#read") })
        local got = rp.list(lt, "r")
        assert.same({ "https://api v2#read", "https://api#v2 read" }, names(got))
        assert.is_true(rp.remove(lt, "r", { perm("https://api", "v2#read") }))
        assert.same({ "https://api#v2 read" }, names(rp.list(lt, "r")))
        local k = schema.keys.role_permission(lt, "r", "https://api#v2", "read")
        assert.equal("PERMISSION#https://api%23v2#read", k.SK)
        assert.equal(1, #fx.raw_partition(k.PK))
    end)

    it("keeps hostile role ids and tenants apart", function()
        local base = fx.tenant()
        rp.assign(base, "r", { perm("api", "p") })
        -- unescaped, tenant "{base}#ROLE#r" with role "x" and role "r#ROLE#x" of tenant base would both
        -- be the partition TENANT#{base}#ROLE#r#ROLE#x
        rp.assign(base .. "#ROLE#r", "x", { perm("api", "evil") })
        rp.assign(base, "r#ROLE#x", { perm("api", "other") })
        rp.assign(base, "r%23x", { perm("api", "pct") })
        assert.same({ "api p" }, names(rp.list(base, "r")))
        assert.same({ "api evil" }, names(rp.list(base .. "#ROLE#r", "x")))
        assert.same({ "api other" }, names(rp.list(base, "r#ROLE#x")))
        assert.same({ "api pct" }, names(rp.list(base, "r%23x")))
        rp.assign(base, "ŕ|%", { perm("äpi", "p|q") })
        assert.same({ "äpi p|q" }, names(rp.list(base, "ŕ|%")))
    end)
end)
