-- roles (contract §4.10) against DynamoDB Local: the name guard, rename, the cascading remove,
-- listing and hostile ids.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"

local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

describe("roles", function()
    local a, roles, t

    setup(function()
        a = fx.adapters()
        roles = a.roles
        t = fx.tenant()
    end)

    it("creates with the caller's id or a generated one and reads back", function()
        local r = roles.create(t, { name = "admin", description = "Admins", metadata = { x = { 1, 2 } } })
        assert.equal(21, #r.id)
        assert.equal("admin", r.name)
        assert.equal("Admins", r.description)
        assert.same({ 1, 2 }, r.metadata.x)
        assert.is_nil(r.is_system)
        assert.matches(ISO, r.created_at)
        for _, k in ipairs({ "PK", "SK", "entityType", "tenant_id" }) do assert.is_nil(r[k]) end
        assert.same(r, roles.get(t, r.id))
        assert.same(r, roles:get(t, r.id))
        assert.is_string(fx.raw_get(schema.keys.role(t, r.id)).metadata)
        assert.equal(r.id, fx.raw_get(schema.keys.role_name_guard(t, "admin")).role_id)

        local mine = roles.create(t, { id = "rol_mine", name = "mine", is_system = true })
        assert.equal("rol_mine", mine.id)
        assert.is_true(mine.is_system)
        local notsys = roles.create(t, { id = "rol_ns", name = "not-system", is_system = false })
        assert.is_nil(notsys.is_system)
        assert.is_nil(fx.raw_get(schema.keys.role(t, "rol_ns")).is_system)

        assert.is_nil(roles.get(t, "admin")) -- by id only
        assert.is_nil(roles.get(t, "nope"))

        local imp = roles.create(t, { id = "x", name = "imported" }, { importMetadata = { id = "rol_imp",
            created_at = "2022-02-02T02:02:02+01:00" } })
        assert.equal("rol_imp", imp.id)
        assert.equal("2022-02-02T01:02:02.000Z", imp.created_at)
    end)

    it("409 when the id or the name is taken", function()
        roles.create(t, { id = "dup", name = "dup-name" })
        fx.raises(409, "Conflict", roles.create, t, { id = "dup", name = "fresh-name" })
        assert.is_nil(fx.raw_get(schema.keys.role_name_guard(t, "fresh-name")))
        local e = fx.raises(409, "Conflict", roles.create, t, { id = "dup2", name = "dup-name" })
        assert.matches("name", e.message)
        assert.is_nil(roles.get(t, "dup2"))
    end)

    it("400 before any request on invalid input", function()
        fx.rejects(roles.create, t, nil)
        fx.rejects(roles.create, t, {})
        fx.rejects(roles.create, t, { name = "" })
        fx.rejects(roles.create, t, { name = string.rep("x", 51) })
        fx.rejects(roles.create, t, { name = "ok", description = 1 })
        fx.rejects(roles.create, t, { name = "ok", is_system = "yes" })
        fx.rejects(roles.create, t, { name = "ok", metadata = 3 })
        fx.rejects(roles.create, nil, { name = "ok" })
        fx.rejects(roles.get, t, nil)
        fx.rejects(roles.update, t, "x", nil)
        fx.rejects(roles.update, t, "x", { name = core.null })
        fx.rejects(roles.update, t, "x", { name = string.rep("y", 51) })
        fx.rejects(roles.remove, t, "")
        fx.rejects(roles.list, t, { q = "permission:x" })
        -- 50 characters (not bytes) is fine
        assert.equal(string.rep("é", 50), roles.create(t, { name = string.rep("é", 50) }).name)
    end)

    it("updates; a rename moves the guard, a taken name is 409; false when absent", function()
        local r = roles.create(t, { id = "up", name = "up-old", description = "d" })
        fx.advance(2)
        assert.is_true(roles.update(t, "up", { name = "up-new", description = core.null, is_system = true,
            created_at = "1999-01-01T00:00:00Z" }))
        fx.reset_clock()
        local got = roles.get(t, "up")
        assert.equal("up-new", got.name)
        assert.is_nil(got.description)
        assert.is_true(got.is_system)
        assert.equal(r.created_at, got.created_at)
        assert.is_true(got.updated_at > r.updated_at)
        assert.is_nil(fx.raw_get(schema.keys.role_name_guard(t, "up-old")))
        assert.equal("up", fx.raw_get(schema.keys.role_name_guard(t, "up-new")).role_id)
        -- the old name is free again
        roles.create(t, { id = "up2", name = "up-old" })
        fx.raises(409, "Conflict", roles.update, t, "up", { name = "up-old" })
        assert.equal("up-new", roles.get(t, "up").name)
        assert.is_true(roles.update(t, "up", { is_system = false }))
        assert.is_nil(roles.get(t, "up").is_system)
        assert.is_true(roles.update(t, "up", { name = "up-new", description = "same name" }))
        assert.is_false(roles.update(t, "missing", { description = "x" }))
        assert.is_false(roles.update(t, "missing", { name = "missing-name" }))
    end)

    it("remove deletes the guard, the permissions and the user-role assignments", function()
        local tt = fx.tenant()
        roles.create(tt, { id = "rm", name = "rm-name" })
        roles.create(tt, { id = "keep", name = "keep-name" })
        a.rolePermissions.assign(tt, "rm", { { resource_server_identifier = "api", permission_name = "read" },
            { resource_server_identifier = "api", permission_name = "write" } })
        a.rolePermissions.assign(tt, "keep", { { resource_server_identifier = "api", permission_name = "read" } })
        local upk = core.key("TENANT", tt, "USER", "u1")
        fx.raw_put({ PK = upk, SK = "USER_ROLE#rm", entityType = "USER_ROLE", tenant_id = tt, user_id = "u1",
            role_id = "rm", organization_id = "", GSI2PK = core.key("TENANT", tt, "ROLE_USERS", "rm"),
            GSI2SK = core.key("USER", "u1", "") })
        fx.raw_put({ PK = upk, SK = "USER_ROLE#keep", entityType = "USER_ROLE", tenant_id = tt, user_id = "u1",
            role_id = "keep", organization_id = "", GSI2PK = core.key("TENANT", tt, "ROLE_USERS", "keep"),
            GSI2SK = core.key("USER", "u1", "") })

        assert.is_true(roles.remove(tt, "rm"))
        assert.is_nil(roles.get(tt, "rm"))
        assert.is_nil(fx.raw_get(schema.keys.role_name_guard(tt, "rm-name")))
        assert.same({}, fx.raw_partition(schema.keys.role_partition(tt, "rm")))
        assert.is_nil(fx.raw_get({ PK = upk, SK = "USER_ROLE#rm" }))
        assert.is_table(fx.raw_get({ PK = upk, SK = "USER_ROLE#keep" }))
        assert.equal(1, #a.rolePermissions.list(tt, "keep"))
        assert.is_false(roles.remove(tt, "rm"))
        assert.is_false(roles.remove(tt, "never"))
        assert.equal("rm", roles.create(tt, { id = "rm", name = "rm-name" }).id)
        assert.same({}, a.rolePermissions.list(tt, "rm"))
    end)

    describe("list", function()
        local lt
        setup(function()
            lt = fx.tenant()
            local names = { "writer", "admin", "reader", "auditor", "owner" }
            for i, n in ipairs(names) do
                roles.create(lt, { id = "r" .. i, name = n, description = "role " .. n, is_system = i == 3 or nil })
            end
            roles.create(fx.tenant(), { id = "r1", name = "writer" })
        end)

        it("offset pages with totals, keyset walk", function()
            local p = roles.list(lt, { page = 1, per_page = 2, include_totals = true })
            assert.same({ "r3", "r4" }, fx.ids(p.roles))
            assert.equal(2, p.start)
            assert.equal(5, p.total)
            assert.equal(5, #fx.keyset_walk(function(o) return roles.list(lt, o) end, "roles", "id", 2))
        end)

        it("filters with q and sorts", function()
            assert.same({ "r3" }, fx.ids(roles.list(lt, { q = "is_system:true" }).roles))
            assert.same({ "r1", "r2", "r4", "r5" }, fx.ids(roles.list(lt, { q = "is_system:false" }).roles))
            assert.same({ "r2" }, fx.ids(roles.list(lt, { q = "name:admin" }).roles))
            assert.same({ "r4" }, fx.ids(roles.list(lt, { q = "id:r4" }).roles))
            assert.same({ "r1", "r5" }, fx.ids(roles.list(lt, { q = "w" }).roles)) -- free text on name
            assert.same({ "r3" }, fx.ids(roles.list(lt, { q = 'description:"role reader"' }).roles))
            local s = roles.list(lt, { sort = { sort_by = "name", sort_order = "asc" } })
            assert.same({ "r2", "r4", "r5", "r3", "r1" }, fx.ids(s.roles))
            fx.raises(400, "ValidationError", roles.list, lt, { q = "tenant_id:x" })
        end)
    end)

    it("keeps hostile ids and tenants apart", function()
        local base = fx.tenant()
        local evil = base .. "#ROLE#victim"
        roles.create(base, { id = "victim", name = "victim" })
        a.rolePermissions.assign(base, "victim", { { resource_server_identifier = "api", permission_name = "p" } })
        roles.create(evil, { id = "x", name = "x" })
        assert.same({ "victim" }, fx.ids(roles.list(base).roles))
        assert.same({ "x" }, fx.ids(roles.list(evil).roles))
        assert.is_true(roles.remove(evil, "x"))
        assert.equal(1, #a.rolePermissions.list(base, "victim"))
        -- unescaped, base's permission partition of "victim" would be the evil tenant's partition
        roles.create(evil, { id = "y", name = "y" })
        assert.is_true(roles.remove(base, "victim"))
        assert.equal("y", roles.get(evil, "y").id)

        local h = fx.tenant()
        local weird = { "r#1", "r%231", "r|1", "ŕ#%" }
        for _, id in ipairs(weird) do roles.create(h, { id = id, name = "n-" .. id }) end
        for _, id in ipairs(weird) do assert.equal("n-" .. id, roles.get(h, id).name) end
        fx.raises(409, "Conflict", roles.create, h, { id = "other", name = "n-r#1" })
        assert.is_true(roles.remove(h, "r#1"))
        assert.is_table(roles.get(h, "r%231"))
        assert.equal(3, roles.list(h, { include_totals = true }).total)
    end)
end)
