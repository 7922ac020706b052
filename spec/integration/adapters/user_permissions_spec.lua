-- userPermissions (contract §5.7) against DynamoDB Local: the exact scope rule (nil every scope,
-- "" global, "<id>" one organization), idempotent create, remove in one scope, the
-- UserPermissionWithDetails shape, expiry, hostile ids, cascades and races.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"

local keys = schema.keys

local function perm(rs, name, extra)
    local p = { resource_server_identifier = rs, permission_name = name }
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
end

-- "org rs name" per record ("-" for a global row)
local function names(list)
    local out = {}
    for i, p in ipairs(list) do
        out[i] = (p.organization_id or "-") .. " " .. p.resource_server_identifier .. " " .. p.permission_name
    end
    return out
end

local function key(t, u, rs, name, o)
    return keys.user_permission({ tenant_id = t, user_id = u, organization_id = o or "",
        resource_server_identifier = rs, permission_name = name })
end

local function raw(t, u, rs, name, o) return fx.raw_get(key(t, u, rs, name, o)) end

local function raw_gsi1(pk)
    local out = {}
    for page in fx.client():paginate("Query", { TableName = fx.table_name(), IndexName = "GSI1",
        KeyConditionExpression = "GSI1PK = :p", ExpressionAttributeValues = { [":p"] = pk } }) do
        for _, it in ipairs(page.Items) do out[#out + 1] = it end
    end
    return out
end

describe("userPermissions", function()
    local a, up, t

    setup(function()
        a = fx.adapters()
        up = a.userPermissions
        t = fx.tenant("up")
    end)

    after_each(function() fx.reset_clock() end)

    it("creates global and organization grants with the documented items", function()
        fx.set_now(1767225600000)
        assert.is_true(up.create(t, "u1", perm("https://api", "read:users", { user_id = "someone-else" })))
        assert.is_true(up:create(t, "u1", perm("https://api", "read:users"), "org1"))

        local g = raw(t, "u1", "https://api", "read:users")
        assert.equal(core.key("TENANT", t, "USER", "u1"), g.PK)
        assert.equal("USER_PERMISSION#https://api#read:users", g.SK)
        assert.equal("USER_PERMISSION", g.entityType)
        assert.equal("u1", g.user_id) -- the argument wins over the record's user_id
        assert.equal("", g.organization_id)
        assert.equal(t, g.tenant_id)
        assert.equal("https://api", g.resource_server_identifier)
        assert.equal("read:users", g.permission_name)
        assert.equal("2026-01-01T00:00:00.000Z", g.created_at)
        assert.equal(core.key("TENANT", t, "USER", "u1"), g.GSI1PK)
        assert.equal("USER_PERMISSION##https://api#read:users", g.GSI1SK)
        assert.is_nil(g.GSI2PK)

        local o = raw(t, "u1", "https://api", "read:users", "org1")
        assert.equal(core.key("TENANT", t, "ORG", "org1", "USER", "u1"), o.PK)
        assert.equal("org1", o.organization_id)
        assert.equal("USER_PERMISSION#org1#https://api#read:users", o.GSI1SK)
    end)

    it("takes the scope from the argument, else from the permission, else global", function()
        local tt = fx.tenant("up")
        up.create(tt, "u", perm("api", "a", { organization_id = "from-record" }))
        up.create(tt, "u", perm("api", "b", { organization_id = "from-record" }), "from-arg")
        up.create(tt, "u", perm("api", "c", { organization_id = "from-record" }), "")
        up.create(tt, "u", perm("api", "d"))
        assert.same({ "- api c", "- api d", "from-arg api b", "from-record api a" }, names(up.list(tt, "u")))
    end)

    it("lists UserPermissionWithDetails records in exactly the asked scope", function()
        local tt = fx.tenant("up")
        fx.set_now(1700000000000)
        up.create(tt, "u", perm("https://b", "write"))
        up.create(tt, "u", perm("https://a", "read"))
        up.create(tt, "u", perm("https://a", "read"), "org1")
        up.create(tt, "u", perm("https://a", "admin"), "org2")
        up.create(tt, "other", perm("https://a", "read"))

        local all = up.list(tt, "u")
        assert.is_true(core.is_array(all))
        assert.same({ "- https://a read", "- https://b write", "org1 https://a read", "org2 https://a admin" },
            names(all))
        assert.same({ user_id = "u", resource_server_identifier = "https://a", resource_server_name = "https://a",
            permission_name = "read", created_at = "2023-11-14T22:13:20.000Z" }, all[1])
        assert.same({ user_id = "u", resource_server_identifier = "https://a", resource_server_name = "https://a",
            permission_name = "read", created_at = "2023-11-14T22:13:20.000Z", organization_id = "org1" }, all[3])

        assert.same({ "- https://a read", "- https://b write" }, names(up.list(tt, "u", nil, "")))
        assert.same({ "org1 https://a read" }, names(up.list(tt, "u", {}, "org1")))
        assert.same({ "org2 https://a admin" }, names(up.list(tt, "u", nil, "org2")))
        assert.same({}, up.list(tt, "u", nil, "org3"))
        assert.is_true(core.is_array(up.list(tt, "u", nil, "org3")))
        assert.same({}, up.list(tt, "nobody"))
        -- an organization-only grant never shows up as a global one (AuthHero #1198)
        up.create(tt, "org-only", perm("https://a", "admin:organizations"), "org1")
        assert.same({}, up.list(tt, "org-only", nil, ""))
        assert.same({ "org1 https://a admin:organizations" }, names(up.list(tt, "org-only")))
    end)

    it("is idempotent: a repeated create keeps created_at; importMetadata sets it", function()
        local tt = fx.tenant("up")
        fx.set_now(1700000000000)
        assert.is_true(up.create(tt, "u", perm("api", "p")))
        fx.set_now(1800000000000)
        assert.is_true(up.create(tt, "u", perm("api", "p")))
        assert.is_true(up.create(tt, "u", perm("api", "p"), ""))
        assert.equal(1, #up.list(tt, "u"))
        assert.equal("2023-11-14T22:13:20.000Z", up.list(tt, "u")[1].created_at)
        assert.is_true(up.create(tt, "u", perm("api", "p"), "o", { importMetadata = {
            created_at = "2022-02-02T02:02:02+01:00" } }))
        assert.equal("2022-02-02T01:02:02.000Z", up.list(tt, "u", nil, "o")[1].created_at)
        up.create(tt, "u", perm("api", "q"))
        assert.equal("2027-01-15T08:00:00.000Z", raw(tt, "u", "api", "q").created_at)
    end)

    it("removes in exactly one scope; nil means global", function()
        local tt = fx.tenant("up")
        for _, o in ipairs({ "", "o1", "o2" }) do up.create(tt, "u", perm("api", "p"), o) end
        up.create(tt, "u", perm("api", "keep"))
        assert.is_true(up.remove(tt, "u", perm("api", "p"), "o1"))
        assert.is_nil(raw(tt, "u", "api", "p", "o1"))
        assert.is_false(up.remove(tt, "u", perm("api", "p"), "o1"))
        assert.is_true(up:remove(tt, "u", perm("api", "p")))
        assert.same({ "- api keep", "o2 api p" }, names(up.list(tt, "u")))
        assert.is_false(up.remove(tt, "u", perm("api", "p")))
        assert.is_false(up.remove(tt, "u", perm("api", "p"), ""))
        assert.is_false(up.remove(tt, "u", perm("api", "never"), "o2"))
        assert.is_true(up.remove(tt, "u", perm("api", "p"), "o2"))
        assert.same({ "- api keep" }, names(up.list(tt, "u")))
        assert.equal(1, #raw_gsi1(keys.user_index_partition(tt, "u")))
    end)

    it("400 before any request on invalid input", function()
        fx.rejects(up.create, nil, "u", perm("api", "p"))
        fx.rejects(up.create, t, "", perm("api", "p"))
        fx.rejects(up.create, t, "u", nil)
        fx.rejects(up.create, t, "u", "api:p")
        fx.rejects(up.create, t, "u", perm("api", ""))
        fx.rejects(up.create, t, "u", perm(nil, "p"))
        fx.rejects(up.create, t, "u", perm("api", 5))
        fx.rejects(up.create, t, "u", perm("api", "p"), 3)
        fx.rejects(up.create, t, "u", perm("api", "p", { organization_id = 3 }))
        fx.rejects(up.create, t, "u", perm("api", "p"), "o", "options")
        fx.rejects(up.create, t, "u", perm("api", "p"), "o", { importMetadata = { created_at = "soon" } })
        fx.rejects(up.remove, t, "u", nil)
        fx.rejects(up.remove, t, "u", perm("api", nil))
        fx.rejects(up.remove, t, nil, perm("api", "p"))
        fx.rejects(up.remove, t, "u", perm("api", "p"), true)
        fx.rejects(up.list, t, nil)
        fx.rejects(up.list, nil, "u")
        fx.rejects(up.list, t, "u", 5)
        fx.rejects(up.list, t, "u", { q = "permission_name:p" })
        fx.rejects(up.list, t, "u", nil, {})
        local e = fx.rejects(up.create, t, "u", perm(string.rep("i", 1100), "p"))
        assert.matches("resource_server_identifier is too long", e.message)
        e = fx.rejects(up.create, t, "u", perm("api", string.rep("p", 1100)))
        assert.matches("permission_name is too long", e.message)
        local before = fx.requests()
        assert.is_false(up.remove(t, "u", perm("api", string.rep("p", 1100))))
        assert.same({}, up.list(t, string.rep("u", 2100)))
        assert.equal(before, fx.requests())
        assert.same({}, up.list(t, "u", { q = "" }))
    end)

    it("treats expired items as absent", function()
        local tt = fx.tenant("up")
        fx.set_now(1767225600000)
        local rec = { tenant_id = tt, user_id = "u", organization_id = "o", resource_server_identifier = "api",
            permission_name = "p" }
        local item = schema.key_attrs(schema.entity("userPermissions").item, rec)
        for k, v in pairs(schema.index_attrs(schema.entity("userPermissions"), rec)) do item[k] = v end
        for k, v in pairs(rec) do item[k] = v end
        item.entityType, item.created_at, item.ttl = "USER_PERMISSION", "2020-01-01T00:00:00.000Z", 1767225600 + 30
        fx.raw_put(item)
        assert.same({ "o api p" }, names(up.list(tt, "u")))
        assert.same({ "o api p" }, names(up.list(tt, "u", nil, "o")))
        fx.advance(30)
        assert.same({}, up.list(tt, "u"))
        assert.same({}, up.list(tt, "u", nil, "o"))
        assert.is_false(up.remove(tt, "u", perm("api", "p"), "o"))
        assert.is_true(up.create(tt, "u", perm("api", "p"), "o"))
        assert.is_nil(raw(tt, "u", "api", "p", "o").ttl)
        assert.same({ "2026-01-01T00:00:30.000Z" }, fx.ids(up.list(tt, "u"), "created_at"))
    end)

    it("keeps hostile ids in their own scope, user and tenant", function()
        local h = fx.tenant("up")
        -- unescaped, both pairs would be the sort key USER_PERMISSION#https://api#v2#read
        up.create(h, "u", perm("https://api#v2", "read"))
        up.create(h, "u", perm("https://api", "v2#read"))
        assert.same({ "- https://api v2#read", "- https://api#v2 read" }, names(up.list(h, "u", nil, "")))
        assert.is_true(up.remove(h, "u", perm("https://api", "v2#read")))
        assert.same({ "- https://api#v2 read" }, names(up.list(h, "u")))
        -- unescaped, org "o#api" + (x, p) and org "o" + (api#x, p) share GSI1SK USER_PERMISSION#o#api#x#p
        up.create(h, "v", perm("x", "p"), "o#api")
        up.create(h, "v", perm("api#x", "p"), "o")
        assert.same({ "o#api x p" }, names(up.list(h, "v", nil, "o#api")))
        assert.same({ "o api#x p" }, names(up.list(h, "v", nil, "o")))
        assert.same({}, up.list(h, "v", nil, "o%23api"))
        assert.same({ "o api#x p", "o#api x p" }, names(up.list(h, "v")))
        -- unescaped, tenant "{h}#ORG#o" + user "v" (global) is org "o" + user "v" of tenant h
        local evil = h .. "#ORG#o"
        up.create(evil, "v", perm("api#x", "p"))
        assert.same({ "o api#x p" }, names(up.list(h, "v", nil, "o")))
        assert.is_true(up.remove(evil, "v", perm("api#x", "p")))
        assert.same({ "o api#x p" }, names(up.list(h, "v", nil, "o")))
        -- unescaped, user "w#ORG#o" would be user "w" in org "o"... as a global row of another user
        up.create(h, "w#ORG#o", perm("api", "p"))
        assert.same({}, up.list(h, "w", nil, "o"))
        assert.same({}, up.list(h, "w"))
        -- '%' and non-ASCII round-trip
        up.create(h, "ü%", perm("äpi%23", "p|q#%"), "ö%")
        assert.same({ "ö% äpi%23 p|q#%" }, names(up.list(h, "ü%")))
        assert.same({}, up.list(h, "ü%", nil, "ö#"))
        assert.is_true(up.remove(h, "ü%", perm("äpi%23", "p|q#%"), "ö%"))
        assert.same({}, up.list(h, "ü%"))
    end)

    describe("cascades", function()
        local ct

        before_each(function()
            ct = fx.tenant("up")
            a.tenants.create({ id = ct, friendly_name = "Cascade" })
            for _, u in ipairs({ "auth2|gone", "auth2|keep" }) do
                a.users.create(ct, { user_id = u, connection = "Username-Password-Authentication", provider = "auth2" })
                for _, o in ipairs({ "", "o1", "o2" }) do
                    up.create(ct, u, perm("api", "read"), o)
                    up.create(ct, u, perm("api", "write"), o)
                end
                a.userRoles.create(ct, u, "r", "o1")
            end
        end)

        it("users.remove takes the user's grants in every scope and leaves others'", function()
            assert.is_true(a.users.remove(ct, "auth2|gone"))
            for _, o in ipairs({ "", "o1", "o2" }) do
                assert.is_nil(raw(ct, "auth2|gone", "api", "read", o))
                assert.is_nil(raw(ct, "auth2|gone", "api", "write", o))
                assert.same({}, fx.raw_partition(key(ct, "auth2|gone", "", "", o).PK))
            end
            assert.same({}, raw_gsi1(keys.user_index_partition(ct, "auth2|gone")))
            assert.same({}, up.list(ct, "auth2|gone"))
            assert.equal(6, #up.list(ct, "auth2|keep"))
            assert.equal(7, #raw_gsi1(keys.user_index_partition(ct, "auth2|keep")))
        end)

        it("tenants.remove leaves nothing", function()
            assert.is_true(a.tenants.remove(ct))
            for _, u in ipairs({ "auth2|gone", "auth2|keep" }) do
                for _, o in ipairs({ "", "o1", "o2" }) do
                    assert.same({}, fx.raw_partition(key(ct, u, "", "", o).PK))
                end
                assert.same({}, raw_gsi1(keys.user_index_partition(ct, u)))
            end
        end)
    end)

    describe("races", function()
        it("concurrent creates of one grant: all succeed, one item", function()
            local rt = fx.tenant("up")
            local out = fx.race(6, string.format([[function(adapters, i)
                return adapters.userPermissions.create(%q, "u", { resource_server_identifier = "api",
                    permission_name = "p" }, "o", { importMetadata = {
                    created_at = string.format("2024-01-01T00:00:%%02dZ", i) } })
            end]], rt))
            assert.same({ "true", "true", "true", "true", "true", "true" }, out)
            local items = fx.raw_partition(key(rt, "u", "", "", "o").PK)
            assert.equal(1, #items)
            assert.matches("^2024%-01%-01T00:00:0[1-6]%.000Z$", items[1].created_at)
        end)

        it("concurrent removes of one grant: exactly one reports it", function()
            local rt = fx.tenant("up")
            up.create(rt, "u", perm("api", "p"))
            local out = fx.race(6, string.format([[function(adapters)
                return adapters.userPermissions.remove(%q, "u", { resource_server_identifier = "api",
                    permission_name = "p" })
            end]], rt))
            table.sort(out)
            assert.same({ "false", "false", "false", "false", "false", "true" }, out)
            assert.same({}, up.list(rt, "u"))
        end)
    end)
end)
