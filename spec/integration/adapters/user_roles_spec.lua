-- userRoles (contract §5.6) against DynamoDB Local: the exact scope rule (nil every scope, "" global,
-- "<id>" one organization), idempotent create, remove in one scope, role records through
-- BatchGetItem, listUsers (offset totals and keyset cursors), expiry, hostile ids, cascades, races.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"

local keys = schema.keys
local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

-- the raw item of one assignment
local function raw(t, u, r, o)
    return fx.raw_get(keys.user_role({ tenant_id = t, user_id = u, role_id = r, organization_id = o or "" }))
end

-- every item of an index partition (GSI1 or GSI2)
local function raw_index(index, pk)
    local out = {}
    for page in fx.client():paginate("Query", { TableName = fx.table_name(), IndexName = index,
        KeyConditionExpression = "#p = :p", ExpressionAttributeNames = { ["#p"] = index .. "PK" },
        ExpressionAttributeValues = { [":p"] = pk } }) do
        for _, it in ipairs(page.Items) do out[#out + 1] = it end
    end
    return out
end

-- every userIds page of a keyset walk; fails on a repeated id or an endless walk
local function walk(list_users, take)
    local ids, seen, from, pages = {}, {}, nil, 0
    repeat
        local p = list_users({ take = take, from = from })
        pages = pages + 1
        assert(pages <= 100, "no end")
        assert.equal(0, p.start)
        assert.equal(take, p.limit)
        assert.equal(#p.userIds, p.length)
        for _, id in ipairs(p.userIds) do
            assert.is_nil(seen[id], "returned twice: " .. id)
            seen[id] = true
            ids[#ids + 1] = id
        end
        if p.next then assert.equal(take, #p.userIds) end
        from = p.next
    until from == nil
    return ids, pages
end

describe("userRoles", function()
    local a, ur, t

    setup(function()
        a = fx.adapters()
        ur = a.userRoles
        t = fx.tenant("ur")
        a.roles.create(t, { id = "admin", name = "Admin", description = "Administrators", metadata = { k = "v" } })
        a.roles.create(t, { id = "reader", name = "Reader", is_system = true })
        a.roles.create(t, { id = "writer", name = "Writer" })
    end)

    after_each(function() fx.reset_clock() end)

    it("creates global and organization assignments with the documented items", function()
        fx.set_now(1767225600000)
        assert.is_true(ur.create(t, "u1", "admin"))
        assert.is_true(ur.create(t, "u1", "reader", ""))
        assert.is_true(ur:create(t, "u1", "admin", "org1"))

        local g = raw(t, "u1", "admin")
        assert.equal(core.key("TENANT", t, "USER", "u1"), g.PK)
        assert.equal("USER_ROLE#admin", g.SK)
        assert.equal("USER_ROLE", g.entityType)
        assert.equal("", g.organization_id)
        assert.equal(t, g.tenant_id)
        assert.equal("u1", g.user_id)
        assert.equal("admin", g.role_id)
        assert.equal("2026-01-01T00:00:00.000Z", g.created_at)
        assert.equal(core.key("TENANT", t, "USER", "u1"), g.GSI1PK)
        assert.equal("USER_ROLE##admin", g.GSI1SK)
        assert.equal(core.key("TENANT", t, "ROLE_USERS", "admin"), g.GSI2PK)
        assert.equal("USER#u1#", g.GSI2SK)

        local o = raw(t, "u1", "admin", "org1")
        assert.equal(core.key("TENANT", t, "ORG", "org1", "USER", "u1"), o.PK)
        assert.equal("USER_ROLE#admin", o.SK)
        assert.equal("org1", o.organization_id)
        assert.equal("USER_ROLE#org1#admin", o.GSI1SK)
        assert.equal("USER#u1#org1", o.GSI2SK)
    end)

    it("lists role records in exactly the asked scope", function()
        ur.create(t, "u2", "admin")
        ur.create(t, "u2", "writer", "org1")
        ur.create(t, "u2", "admin", "org1")
        ur.create(t, "u2", "reader", "org2")

        local all = ur.list(t, "u2")
        assert.is_true(core.is_array(all))
        -- by organization_id ("" first) then role id; a role in two scopes appears twice
        assert.same({ "admin", "admin", "writer", "reader" }, fx.ids(all))
        assert.same(a.roles.get(t, "admin"), all[1])
        assert.same(a.roles.get(t, "admin"), all[2])
        assert.are_not.equal(all[1], all[2]) -- separate tables
        assert.equal("Administrators", all[1].description)
        assert.same({ k = "v" }, all[1].metadata)
        assert.is_nil(all[1].is_system)
        assert.is_true(all[4].is_system)
        for _, k in ipairs({ "PK", "SK", "entityType", "tenant_id", "role_id", "organization_id", "user_id" }) do
            assert.is_nil(all[1][k])
        end
        assert.matches(ISO, all[1].created_at)

        assert.same({ "admin" }, fx.ids(ur.list(t, "u2", nil, "")))
        assert.same({ "admin", "writer" }, fx.ids(ur.list(t, "u2", nil, "org1")))
        assert.same({ "reader" }, fx.ids(ur.list(t, "u2", {}, "org2")))
        assert.same({}, ur.list(t, "u2", nil, "org3"))
        assert.is_true(core.is_array(ur.list(t, "u2", nil, "org3")))
        assert.same({}, ur.list(t, "nobody"))
        assert.same({}, ur.list(t, "nobody", nil, ""))
        -- a user holding only organization roles has no global ones (AuthHero #1198)
        ur.create(t, "org-only", "admin", "org1")
        assert.same({}, ur.list(t, "org-only", nil, ""))
        assert.same({ "admin" }, fx.ids(ur.list(t, "org-only")))
    end)

    it("listAssignments gives every assignment with its scope (what an export keeps)", function()
        ur.create(t, "u9", "writer", "org1", { importMetadata = { created_at = "2024-01-02T03:04:05Z" } })
        ur.create(t, "u9", "admin")
        ur.create(t, "u9", "gone-role", "org2") -- kept: an assignment, whether or not its role exists
        local got = ur.listAssignments(t, "u9")
        assert.is_true(core.is_array(got))
        assert.equal(3, #got)
        assert.same({ user_id = "u9", role_id = "admin", organization_id = "" },
            { user_id = got[1].user_id, role_id = got[1].role_id, organization_id = got[1].organization_id })
        assert.same({ user_id = "u9", role_id = "writer", organization_id = "org1", created_at = "2024-01-02T03:04:05.000Z" },
            got[2])
        assert.equal("gone-role", got[3].role_id)
        assert.same({}, ur.listAssignments(t, "nobody"))
        fx.rejects(ur.listAssignments, t, nil)
    end)

    it("skips roles that no longer exist", function()
        local tt = fx.tenant("ur")
        a.roles.create(tt, { id = "keep", name = "keep" })
        ur.create(tt, "u", "keep")
        ur.create(tt, "u", "ghost") -- never a role
        ur.create(tt, "u", "ghost", "o")
        assert.same({ "keep" }, fx.ids(ur.list(tt, "u")))
        assert.same({}, ur.list(tt, "u", nil, "o"))
        assert.is_table(raw(tt, "u", "ghost", "o")) -- the assignment itself stays
    end)

    it("is idempotent: a repeated create keeps the first created_at; importMetadata sets it", function()
        local tt = fx.tenant("ur")
        fx.set_now(1700000000000)
        assert.is_true(ur.create(tt, "u", "r"))
        fx.set_now(1800000000000)
        assert.is_true(ur.create(tt, "u", "r"))
        assert.is_true(ur.create(tt, "u", "r", ""))
        assert.equal("2023-11-14T22:13:20.000Z", raw(tt, "u", "r").created_at)
        assert.equal("2023-11-14T22:13:20.000Z", raw(tt, "u", "r").updated_at)
        assert.equal(1, #fx.raw_partition(keys.user_partition(tt, "u")))
        assert.is_true(ur.create(tt, "u", "r", "o", { importMetadata = { id = "ignored",
            created_at = "2022-02-02T02:02:02+01:00" } }))
        assert.equal("2022-02-02T01:02:02.000Z", raw(tt, "u", "r", "o").created_at)
        assert.equal("2027-01-15T08:00:00.000Z", (function()
            ur.create(tt, "u", "r", "o2")
            return raw(tt, "u", "r", "o2").created_at
        end)())
    end)

    it("removes in exactly one scope; nil means global", function()
        local tt = fx.tenant("ur")
        for _, o in ipairs({ "", "o1", "o2" }) do ur.create(tt, "u", "r", o) end
        assert.is_true(ur.remove(tt, "u", "r", "o1"))
        assert.is_nil(raw(tt, "u", "r", "o1"))
        assert.is_table(raw(tt, "u", "r"))
        assert.is_table(raw(tt, "u", "r", "o2"))
        assert.is_false(ur.remove(tt, "u", "r", "o1"))
        -- nil: the global assignment only (AuthHero's SQL adapters), never every scope
        assert.is_true(ur:remove(tt, "u", "r"))
        assert.is_nil(raw(tt, "u", "r"))
        assert.is_table(raw(tt, "u", "r", "o2"))
        assert.is_false(ur.remove(tt, "u", "r"))
        assert.is_false(ur.remove(tt, "u", "r", ""))
        assert.is_true(ur.remove(tt, "u", "r", "o2"))
        assert.is_false(ur.remove(tt, "u", "never"))
        assert.same({}, raw_index("GSI1", keys.user_index_partition(tt, "u")))
        assert.same({}, raw_index("GSI2", keys.user_role_role_index({ tenant_id = tt, role_id = "r", user_id = "",
            organization_id = "" }).GSI2PK))
    end)

    it("400 before any request on invalid input", function()
        fx.rejects(ur.create, nil, "u", "r")
        fx.rejects(ur.create, t, "", "r")
        fx.rejects(ur.create, t, "u", nil)
        fx.rejects(ur.create, t, "u", 5)
        fx.rejects(ur.create, t, "u", "r", 7)
        fx.rejects(ur.create, t, "u", "r", "o", "options")
        fx.rejects(ur.create, t, "u", "r", "o", { importMetadata = { created_at = "yesterday" } })
        fx.rejects(ur.remove, t, nil, "r")
        fx.rejects(ur.remove, t, "u", "")
        fx.rejects(ur.remove, t, "u", "r", {})
        fx.rejects(ur.list, "", "u")
        fx.rejects(ur.list, t, nil)
        fx.rejects(ur.list, t, "u", "params")
        fx.rejects(ur.list, t, "u", { q = "role_id:x" })
        fx.rejects(ur.list, t, "u", nil, 1)
        fx.rejects(ur.listUsers, t, nil)
        fx.rejects(ur.listUsers, nil, "r")
        fx.rejects(ur.listUsers, t, "r", { page = -1 })
        fx.rejects(ur.listUsers, t, "r", { per_page = 2.5 })
        fx.rejects(ur.listUsers, t, "r", { take = "10" })
        fx.rejects(ur.listUsers, t, "r", { from = 5 })
        fx.rejects(ur.listUsers, t, "r", { q = "user_id:u" })
        -- keys past DynamoDB's limits: a 400 naming the field on create, nothing found elsewhere
        local long = string.rep("x", 1100)
        local e = fx.rejects(ur.create, t, "u", long)
        assert.matches("role_id is too long", e.message)
        e = fx.rejects(ur.create, t, string.rep("u", 2100), "r")
        assert.matches("user_id is too long", e.message)
        local before = fx.requests()
        assert.is_false(ur.remove(t, "u", long))
        assert.same({}, ur.list(t, string.rep("u", 2100), nil, ""))
        assert.same({}, ur.listUsers(t, string.rep("r", 2100)).userIds)
        assert.equal(before, fx.requests())
        -- blank q is no filter
        assert.same({}, ur.list(t, "u", { q = "  " }))
    end)

    it("treats expired items as absent", function()
        local tt = fx.tenant("ur")
        a.roles.create(tt, { id = "r", name = "r" })
        fx.set_now(1767225600000)
        local now_s = 1767225600
        local item = keys.user_role({ tenant_id = tt, user_id = "u", role_id = "r", organization_id = "" })
        for k, v in pairs(schema.index_attrs(schema.entity("userRoles"), { tenant_id = tt, user_id = "u",
            role_id = "r", organization_id = "" })) do item[k] = v end
        item.entityType, item.tenant_id, item.user_id, item.role_id, item.organization_id = "USER_ROLE", tt, "u", "r", ""
        item.created_at, item.ttl = "2020-01-01T00:00:00.000Z", now_s + 60
        fx.raw_put(item)
        assert.same({ "r" }, fx.ids(ur.list(tt, "u")))
        assert.same({ "r" }, fx.ids(ur.list(tt, "u", nil, "")))
        assert.same({ "u" }, ur.listUsers(tt, "r").userIds)
        fx.advance(60) -- ttl == now: expired
        assert.same({}, ur.list(tt, "u"))
        assert.same({}, ur.list(tt, "u", nil, ""))
        assert.same({}, ur.listUsers(tt, "r").userIds)
        assert.equal(0, ur.listUsers(tt, "r").length)
        assert.same({}, ur.listUsers(tt, "r", { take = 5 }).userIds)
        assert.is_false(ur.remove(tt, "u", "r"))
        -- a create over an expired item writes a fresh one
        fx.raw_put(item)
        assert.is_true(ur.create(tt, "u", "r"))
        local fresh = raw(tt, "u", "r")
        assert.is_nil(fresh.ttl)
        assert.equal("2026-01-01T00:01:00.000Z", fresh.created_at)
        assert.same({ "r" }, fx.ids(ur.list(tt, "u")))
    end)

    describe("listUsers", function()
        local lt
        local users = { "auth2|e", "auth2|a", "auth2|c", "auth2|b", "auth2|d", "auth2|g", "auth2|f" }

        setup(function()
            lt = fx.tenant("ur")
            for i, u in ipairs(users) do
                ur.create(lt, u, "role")
                if i % 2 == 0 then ur.create(lt, u, "role", "org-" .. i) end -- the same user in two scopes
                if i % 3 == 0 then ur.create(lt, u, "role", "org-x") end
            end
            ur.create(lt, "auth2|other", "other-role")
            ur.create(fx.tenant("ur"), "auth2|z", "role")
        end)

        it("offset pages of distinct users, ascending; length is the number of users", function()
            local p = ur.listUsers(lt, "role")
            assert.same({ "auth2|a", "auth2|b", "auth2|c", "auth2|d", "auth2|e", "auth2|f", "auth2|g" }, p.userIds)
            assert.is_true(core.is_array(p.userIds))
            assert.equal(0, p.start)
            assert.equal(50, p.limit)
            assert.equal(7, p.length)
            assert.is_nil(p.next)
            p = ur:listUsers(lt, "role", { page = 1, per_page = 3 })
            assert.same({ "auth2|d", "auth2|e", "auth2|f" }, p.userIds)
            assert.equal(3, p.start)
            assert.equal(3, p.limit)
            assert.equal(7, p.length)
            p = ur.listUsers(lt, "role", { page = 2, per_page = 3, include_totals = true })
            assert.same({ "auth2|g" }, p.userIds)
            assert.equal(7, p.length)
            p = ur.listUsers(lt, "role", { page = 5, per_page = 3 })
            assert.same({}, p.userIds)
            assert.equal(7, p.length)
            assert.same({ "auth2|other" }, ur.listUsers(lt, "other-role").userIds)
            p = ur.listUsers(lt, "no-one")
            assert.same({}, p.userIds)
            assert.equal(0, p.length)
            assert.equal(1, ur.listUsers(lt, "role", { per_page = 0 }).limit)
        end)

        it("keyset pages with cursors; next is absent on the last page", function()
            for _, take in ipairs({ 1, 2, 3, 7, 50 }) do
                local ids, pages = walk(function(o) return ur.listUsers(lt, "role", o) end, take)
                assert.same({ "auth2|a", "auth2|b", "auth2|c", "auth2|d", "auth2|e", "auth2|f", "auth2|g" }, ids)
                assert.equal(math.ceil(7 / take), pages)
            end
            local p = ur.listUsers(lt, "role", { take = 2 })
            assert.same({ "auth2|a", "auth2|b" }, p.userIds)
            assert.is_string(p.next)
            local p2 = ur.listUsers(lt, "role", { take = 2, from = p.next })
            assert.same({ "auth2|c", "auth2|d" }, p2.userIds)
            -- a cursor is bound to its role and tenant; garbage restarts the listing
            for _, bad in ipairs({ "garbage", "", "eyJ1IjoxfQ", p.next .. "x" }) do
                assert.same({ "auth2|a", "auth2|b" }, ur.listUsers(lt, "role", { take = 2, from = bad }).userIds)
            end
            assert.same({ "auth2|other" }, ur.listUsers(lt, "other-role", { take = 2, from = p.next }).userIds)
            -- from alone is keyset mode with the default size
            local d = ur.listUsers(lt, "role", { from = p.next })
            assert.equal(50, d.limit)
            assert.same({ "auth2|c", "auth2|d", "auth2|e", "auth2|f", "auth2|g" }, d.userIds)
            assert.is_nil(d.next)
        end)
    end)

    it("keeps hostile ids in their own scope, user and tenant", function()
        local h = fx.tenant("ur")
        for _, r in ipairs({ "r", "b#r", "r%23", "ŕ#%" }) do a.roles.create(h, { id = r, name = "n-" .. r }) end
        -- unescaped, org "o#x" + role "r" and org "o" + role "x#r" share GSI1SK USER_ROLE#o#x#r
        a.roles.create(h, { id = "x#r", name = "x#r" })
        ur.create(h, "u", "r", "o#x")
        ur.create(h, "u", "x#r", "o")
        assert.same({ "r" }, fx.ids(ur.list(h, "u", nil, "o#x")))
        assert.same({ "x#r" }, fx.ids(ur.list(h, "u", nil, "o")))
        assert.same({}, ur.list(h, "u", nil, "o%23x"))
        assert.same({ "x#r", "r" }, fx.ids(ur.list(h, "u")))
        -- unescaped, tenant "{h}#ORG#o" + user "u" (global) is org "o" + user "u" of tenant h
        local evil = h .. "#ORG#o"
        a.roles.create(evil, { id = "x#r", name = "evil" })
        ur.create(evil, "u", "x#r")
        assert.same({ "x#r" }, fx.ids(ur.list(h, "u", nil, "o")))
        assert.equal("x#r", ur.list(h, "u", nil, "o")[1].name)
        assert.equal("evil", ur.list(evil, "u")[1].name)
        assert.is_true(ur.remove(evil, "u", "x#r"))
        assert.same({ "x#r" }, fx.ids(ur.list(h, "u", nil, "o")))
        -- unescaped, user "a#b" (global) and user "a" in org "b" share GSI2SK USER#a#b#
        ur.create(h, "a#b", "r")
        ur.create(h, "a", "r", "b")
        ur.create(h, "a%23b", "r")
        ur.create(h, "u", "r")
        assert.same({ "a", "a#b", "a%23b", "u" }, ur.listUsers(h, "r").userIds)
        assert.equal(4, ur.listUsers(h, "r").length)
        local ids = walk(function(o) return ur.listUsers(h, "r", o) end, 1)
        table.sort(ids)
        assert.same({ "a", "a#b", "a%23b", "u" }, ids)
        assert.same({}, ur.list(h, "a", nil, ""))
        assert.same({ "r" }, fx.ids(ur.list(h, "a", nil, "b")))
        assert.same({ "r" }, fx.ids(ur.list(h, "a#b", nil, "")))
        assert.same({}, ur.list(h, "a#b", nil, "b"))
        assert.is_false(ur.remove(h, "a", "r"))
        assert.is_true(ur.remove(h, "a#b", "r"))
        assert.same({ "r" }, fx.ids(ur.list(h, "a", nil, "b")))
        -- '%' and non-ASCII ids round-trip
        ur.create(h, "ü%", "ŕ#%", "ö#%")
        ur.create(h, "ü%", "r%23", "")
        assert.same({ "ŕ#%" }, fx.ids(ur.list(h, "ü%", nil, "ö#%")))
        assert.same({ "r%23" }, fx.ids(ur.list(h, "ü%", nil, "")))
        assert.same({ "ü%" }, ur.listUsers(h, "ŕ#%").userIds)
    end)

    describe("cascades", function()
        local ct

        before_each(function()
            ct = fx.tenant("ur")
            a.tenants.create({ id = ct, friendly_name = "Cascade" })
            for _, r in ipairs({ "r1", "r2" }) do a.roles.create(ct, { id = r, name = r }) end
            for _, u in ipairs({ "auth2|gone", "auth2|keep" }) do
                a.users.create(ct, { user_id = u, connection = "Username-Password-Authentication", provider = "auth2" })
                for _, o in ipairs({ "", "o1", "o2" }) do
                    ur.create(ct, u, "r1", o)
                    ur.create(ct, u, "r2", o)
                end
            end
        end)

        it("users.remove takes the user's assignments in every scope and leaves others'", function()
            assert.is_true(a.users.remove(ct, "auth2|gone"))
            for _, o in ipairs({ "", "o1", "o2" }) do
                assert.is_nil(raw(ct, "auth2|gone", "r1", o))
                assert.is_nil(raw(ct, "auth2|gone", "r2", o))
            end
            assert.same({}, raw_index("GSI1", keys.user_index_partition(ct, "auth2|gone")))
            assert.same({}, ur.list(ct, "auth2|gone"))
            assert.equal(6, #ur.list(ct, "auth2|keep"))
            assert.same({ "auth2|keep" }, ur.listUsers(ct, "r1").userIds)
        end)

        it("roles.remove takes every assignment of the role in every scope", function()
            assert.is_true(a.roles.remove(ct, "r1"))
            for _, u in ipairs({ "auth2|gone", "auth2|keep" }) do
                for _, o in ipairs({ "", "o1", "o2" }) do
                    assert.is_nil(raw(ct, u, "r1", o))
                    assert.is_table(raw(ct, u, "r2", o))
                end
                assert.same({ "r2", "r2", "r2" }, fx.ids(ur.list(ct, u)))
            end
            assert.same({}, ur.listUsers(ct, "r1").userIds)
            assert.equal(2, ur.listUsers(ct, "r2").length)
        end)

        it("tenants.remove leaves nothing", function()
            assert.is_true(a.tenants.remove(ct))
            for _, u in ipairs({ "auth2|gone", "auth2|keep" }) do
                for _, o in ipairs({ "", "o1", "o2" }) do
                    assert.same({}, fx.raw_partition(keys.user_role({ tenant_id = ct, organization_id = o,
                        user_id = u, role_id = "" }).PK))
                end
                assert.same({}, raw_index("GSI1", keys.user_index_partition(ct, u)))
            end
            for _, r in ipairs({ "r1", "r2" }) do
                assert.same({}, raw_index("GSI2", keys.user_role_role_index({ tenant_id = ct, role_id = r,
                    user_id = "", organization_id = "" }).GSI2PK))
            end
        end)
    end)

    describe("races", function()
        it("concurrent creates of one assignment: all succeed, one item", function()
            local rt = fx.tenant("ur")
            local out = fx.race(6, string.format([[function(adapters, i)
                return adapters.userRoles.create(%q, "u", "r", "o", { importMetadata = {
                    created_at = string.format("2024-01-01T00:00:%%02dZ", i) } })
            end]], rt))
            assert.same({ "true", "true", "true", "true", "true", "true" }, out)
            local items = fx.raw_partition(keys.user_role({ tenant_id = rt, organization_id = "o", user_id = "u",
                role_id = "" }).PK)
            assert.equal(1, #items)
            assert.matches("^2024%-01%-01T00:00:0[1-6]%.000Z$", items[1].created_at)
            assert.equal(1, #raw_index("GSI2", items[1].GSI2PK))
        end)

        it("concurrent removes of one assignment: exactly one reports it", function()
            local rt = fx.tenant("ur")
            ur.create(rt, "u", "r", "o")
            local out = fx.race(6, string.format([[function(adapters)
                return adapters.userRoles.remove(%q, "u", "r", "o")
            end]], rt))
            table.sort(out)
            assert.same({ "false", "false", "false", "false", "false", "true" }, out)
            assert.is_nil(raw(rt, "u", "r", "o"))
        end)

        it("concurrent creates in different scopes and by different users all land", function()
            local rt = fx.tenant("ur")
            a.roles.create(rt, { id = "r", name = "r" })
            local out = fx.race(6, string.format([[function(adapters, i)
                local scope = i %% 2 == 0 and "" or ("o" .. i)
                return adapters.userRoles.create(%q, "u" .. (i %% 3), "r", scope)
            end]], rt))
            assert.same({ "true", "true", "true", "true", "true", "true" }, out)
            assert.same({ "u0", "u1", "u2" }, ur.listUsers(rt, "r").userIds)
            assert.same({ "r", "r" }, fx.ids(ur.list(rt, "u1"))) -- i = 4 ("") and i = 1 ("o1")
            assert.same({ "r" }, fx.ids(ur.list(rt, "u1", nil, "o1")))
        end)
    end)
end)
