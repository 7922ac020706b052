-- The entity registry compiled (schema.lua): key templates and their builders, the sparse rule,
-- optional groups, keys parsed back into fields, cascade edges, and the checks that refuse a
-- registry with mistakes.
local schema = require "authhero.aws.schema"
local core = require "authhero.aws.core"

local T = "TENANT#{tenant_id}"

-- a minimal registry around one entity definition (plus tenants, the usual parent)
local function reg(def, more)
    local entities = {
        { name = "tenants", entity_type = "TENANT", scope = "global", key = { name = "tenant", pk = "TENANT#{id}", sk = "TENANT" } },
        def,
    }
    for _, d in ipairs(more or {}) do entities[#entities + 1] = d end
    return { entities = entities }
end

local function compile_error(r)
    local ok, err = pcall(schema.compile, r)
    assert.is_false(ok, "expected the registry to be refused")
    return tostring(err)
end

describe("schema: key templates", function()
    local keys = schema.keys

    it("builds positional and named keys with every value escaped", function()
        assert.same({ PK = "TENANT#a%23ORG%23b", SK = "USER#auth0|x%25" }, keys.user("a#ORG#b", "auth0|x%"))
        assert.same(keys.user("t", "u"), keys.user({ tenant_id = "t", user_id = "u" }))
        assert.same({ GSI1PK = "TENANT#t#EMAIL#ada@example.com", GSI1SK = "USER" }, keys.user_email_index("t", "Ada@Example.COM"))
        assert.equal("TENANT#t#USER#u", keys.user_partition("t", "u"))
        assert.same({ GSI1PK = "TENANT#t#USER#u", GSI1SK = "SESSION#" }, keys.session_user_index("t", "u", ""))
    end)

    it("a missing key field is a programming error", function()
        assert.has_error(function() keys.user("t", nil) end)
        assert.has_error(function() keys.user({ tenant_id = "t" }) end)
    end)

    it("optional groups, empty-allowed fields and modifiers", function()
        assert.same({ PK = "TENANT#t#USER#u", SK = "USER_ROLE#r" }, keys.user_role("t", "", "u", "r"))
        assert.same({ PK = "TENANT#t#ORG#o%23x#USER#u", SK = "USER_ROLE#r" }, keys.user_role("t", "o#x", "u", "r"))
        local ix = schema.key_attrs(schema.templates.user_role_user_index,
            { tenant_id = "t", user_id = "u", organization_id = "", role_id = "r" })
        assert.same({ GSI1PK = "TENANT#t#USER#u", GSI1SK = "USER_ROLE##r" }, ix)
        assert.same({ PK = "TENANT#t#CLIENT#c", SK = "CLIENT_CONNECTION#00042#con" }, keys.client_connection("t", "c", 42, "con"))
        assert.same({ GSI1PK = "TENANT#t#LOG#2026-03-04", GSI1SK = "2026-03-04T05:06:07.000Z#l1" },
            keys.log_day_index("t", "2026-03-04T05:06:07.000Z", "l1"))
    end)

    it("sparse rule: an index key is written only when all of its fields have a value", function()
        local E = schema.entity("users")
        local set, absent = schema.index_attrs(E, { tenant_id = "t", user_id = "u", email = "a@b.c", linked_to = "" })
        assert.same({ GSI1PK = "TENANT#t#EMAIL#a@b.c", GSI1SK = "USER" }, set)
        assert.same({ "GSI2PK", "GSI2SK" }, absent)
        set = schema.index_attrs(E, { tenant_id = "t", user_id = "u", email = core.null })
        assert.same({}, set)
    end)

    it("keys parse back into their fields", function()
        local k = keys.user_email_guard("t#1", "a%b@c", "auth0")
        assert.same({ tenant_id = "t#1", email = "a%b@c", provider = "auth0" },
            schema.fields_of_key(schema.templates.user_email_guard, k))
        assert.is_nil(schema.fields_of_key(schema.templates.user_email_guard, keys.user_username_guard("t", "a", "p")))
        assert.is_nil(schema.fields_of_key(schema.templates.user, { PK = "TENANT#t", SK = "USER#a#b" }))
    end)

    it("sort-key prefixes of each template, ending in # before a placeholder", function()
        assert.equal("USER#", schema.prefix.user)
        assert.equal("ORG#", schema.prefix.organization)
        assert.equal("MEMBER_ID#", schema.prefix.member_id_pointer)
        assert.equal("TENANT", schema.prefix.tenant)
    end)

    it("TTL from the first present source field, logs with their retention", function()
        assert.equal(1767225600, schema.ttl(schema.entity("sessions"),
            { idle_expires_at = "2026-01-01T00:00:00.000Z" }))
        assert.equal(1767225600, schema.ttl(schema.entity("sessions"),
            { expires_at = "2026-01-01T00:00:00.000Z", idle_expires_at = "2027-01-01T00:00:00.000Z" }))
        assert.is_nil(schema.ttl(schema.entity("sessions"), {}))
        assert.equal(1767225600 + 30 * 86400, schema.ttl(schema.entity("logs"), { date = "2026-01-01T00:00:00.000Z" }))
        assert.equal(1767225600 + 7 * 86400, schema.ttl(schema.entity("logs"), { date = "2026-01-01T00:00:00.000Z" }, 7))
        assert.is_nil(schema.ttl(schema.entity("users"), { expires_at = "2026-01-01T00:00:00.000Z" }))
    end)
end)

describe("schema: the registry", function()
    it("every entity and helper type is known by its entityType", function()
        assert.equal("users", schema.by_type.USER.entity.name)
        assert.equal("users", schema.by_type.USER_GUARD.entity.name)
        assert.is_not_nil(schema.by_type.USER_GUARD.helper)
        assert.equal("clients", schema.by_type.CLIENT_ID_POINTER.entity.name)
        assert.has_error(function() schema.entity("nope") end, "unknown entity nope")
    end)

    it("parents become cascade edges on the parent", function()
        local function edges(name)
            local out = {}
            for _, e in ipairs(schema.entity(name).children) do out[#out + 1] = e.child.name .. "/" .. e.via end
            table.sort(out)
            return out
        end
        local u = edges("users")
        for _, want in ipairs({ "passwords/item", "sessions/GSI1", "userOrganizations/GSI1", "refreshTokens/GSI1",
            "userRoles/GSI1", "userPermissions/GSI1" }) do
            assert.truthy(table.concat(u, " "):find(want, 1, true), want)
        end
        assert.same({ "rolePermissions/item", "userRoles/GSI2" }, edges("roles"))
        assert.same({ "clientConnections/item", "clientGrants/GSI1", "clientRegistrationTokens/GSI2" }, edges("clients"))
        assert.same({ "clientConnections/GSI1", "organizationConnections/GSI2" }, edges("connections"))
        assert.same({ "invites/GSI1", "organizationConnections/item", "userOrganizations/item" }, edges("organizations"))
        assert.truthy(table.concat(u, " "):find("authenticationMethods/GSI1", 1, true))
    end)

    it("refuses a tenant-scoped key outside the tenant's partition", function()
        assert.matches("starts with TENANT#{tenant_id}", compile_error(reg({ name = "x", entity_type = "X", scope = "tenant",
            key = { name = "x", pk = "X#{tenant_id}", sk = "X#{id}" } })))
    end)

    it("refuses two entities with one entityType, or one template name twice", function()
        assert.matches("used twice", compile_error(reg({ name = "x", entity_type = "TENANT", scope = "global",
            key = { name = "x", pk = "X", sk = "X#{id}" } })))
        assert.matches("template name tenant used twice", compile_error(reg({ name = "x", entity_type = "X",
            scope = "global", key = { name = "tenant", pk = "X", sk = "X#{id}" } })))
    end)

    it("refuses prefixes a range read would confuse", function()
        assert.matches("also matches", compile_error(reg(
            { name = "a", entity_type = "A", scope = "tenant", key = { name = "a", pk = T, sk = "ROLE#{id}" } },
            { { name = "b", entity_type = "B", scope = "tenant", key = { name = "b", pk = T, sk = "ROLE#X#{id}" } } })))
        -- ROLE# and ROLE_NAME# are fine: '#' ends the shorter prefix
        assert.is_table(schema.compile(reg(
            { name = "a", entity_type = "A", scope = "tenant", key = { name = "a", pk = T, sk = "ROLE#{id}" } },
            { { name = "b", entity_type = "B", scope = "tenant", key = { name = "b", pk = T, sk = "ROLE_NAME#{id}" } } })))
    end)

    it("refuses JSON fields in keys, reserved names, unknown parents and bad templates", function()
        assert.matches("stored as JSON", compile_error(reg({ name = "x", entity_type = "X", scope = "tenant",
            key = { name = "x", pk = T, sk = "X#{meta}" }, json = { meta = "object" } })))
        assert.matches("reserved", compile_error(reg({ name = "x", entity_type = "X", scope = "tenant",
            key = { name = "x", pk = T, sk = "X#{id}" }, json = { ttl = "object" } })))
        assert.matches("unknown parent", compile_error(reg({ name = "x", entity_type = "X", scope = "tenant",
            key = { name = "x", pk = T, sk = "X#{id}" }, parents = { { "nobody" } } })))
        assert.matches("no GSI1 key", compile_error(reg({ name = "x", entity_type = "X", scope = "tenant",
            key = { name = "x", pk = T, sk = "X#{id}" }, parents = { { "tenants", via = "GSI1" } } })))
        assert.matches("unknown modifier", compile_error(reg({ name = "x", entity_type = "X", scope = "tenant",
            key = { name = "x", pk = T, sk = "X#{id:upper}" } })))
        assert.matches("unbalanced", compile_error(reg({ name = "x", entity_type = "X", scope = "tenant",
            key = { name = "x", pk = T .. "[#A#{a}", sk = "X#{id}" } })))
    end)
end)
