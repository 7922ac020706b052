-- tenants (contract §4.1) against DynamoDB Local.
local fx = require "support.adapters"
local aws = require "authhero.aws"

describe("tenants adapter", function()
    local adapters

    setup(function()
        adapters = fx.adapters()
    end)

    it("creates, reads back and refuses a duplicate", function()
        local id = fx.tenant()
        local t = adapters.tenants.create({ id = id, friendly_name = "Acme", audience = "https://acme",
            flags = { x = true }, enabled_locales = {}, is_control_plane = true })
        assert.equals(id, t.id)
        assert.equals("Acme", t.friendly_name)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", t.created_at)
        assert.is_nil(t.is_control_plane)
        assert.is_nil(t.PK)
        local got = adapters.tenants.get(id)
        assert.same({ x = true }, got.flags)
        assert.same({}, got.enabled_locales)
        assert.is_true(require("authhero.aws.core").is_array(got.enabled_locales))
        local err = fx.raises(409, "Conflict", adapters.tenants.create, { id = id, friendly_name = "Other" })
        assert.equals("Tenant already exists", err.message)
        assert.equals("Acme", adapters.tenants.get(id).friendly_name)
    end)

    it("generates an id, honours importMetadata, and accepts a colon call", function()
        local t = adapters.tenants:create({ friendly_name = "Gen" })
        assert.equals(21, #t.id)
        assert.matches("^[%w_%-]+$", t.id)
        local id = fx.tenant()
        local imported = adapters.tenants.create({ id = "ignored", friendly_name = "Imp" },
            { importMetadata = { id = id, created_at = "2024-01-02T03:04:05Z" } })
        assert.equals(id, imported.id)
        assert.equals("2024-01-02T03:04:05.000Z", imported.created_at)
        assert.is_nil(adapters.tenants.get("ignored"))
    end)

    it("validates before sending anything", function()
        local before = fx.requests()
        fx.raises(400, "ValidationError", adapters.tenants.create, { id = "x" })
        fx.raises(400, "ValidationError", adapters.tenants.create, { friendly_name = "" })
        fx.raises(400, "ValidationError", adapters.tenants.get, nil)
        fx.raises(400, "ValidationError", adapters.tenants.update, "x", nil)
        assert.equals(before, fx.requests())
    end)

    it("updates (false when missing) and removes attributes set to null", function()
        local id = fx.tenant()
        adapters.tenants.create({ id = id, friendly_name = "Before", support_email = "s@x.com" })
        assert.is_true(adapters.tenants.update(id, { friendly_name = "After", support_email = aws.null,
            id = "hijack", created_at = "2000-01-01T00:00:00.000Z" }))
        local t = adapters.tenants.get(id)
        assert.equals("After", t.friendly_name)
        assert.is_nil(t.support_email)
        assert.are_not.equal("2000-01-01T00:00:00.000Z", t.created_at)
        assert.is_nil(adapters.tenants.get("hijack"))
        assert.is_false(adapters.tenants.update(fx.tenant(), { friendly_name = "nobody" }))
    end)

    it("lists with totals, q and a full keyset walk", function()
        local mine = {}
        local tag = "L" .. math.random(1e9)
        for i = 1, 7 do
            local id = fx.tenant("list")
            mine[id] = true
            adapters.tenants.create({ id = id, friendly_name = tag .. " tenant " .. i, deployment_type = i % 2 == 0 and "even" or "odd" })
        end
        local r = adapters.tenants.list({ q = "friendly_name:\"" .. tag .. " tenant 3\"" })
        assert.equals(1, #r.tenants)
        assert.is_nil(r.totals)
        r = adapters.tenants.list({ q = tag .. " deployment_type:even", include_totals = true, per_page = 2 })
        assert.equals(3, r.totals.total)
        assert.equals(2, #r.tenants)
        -- keyset walk over everything: each of mine exactly once
        local seen = {}
        for _, tid in ipairs(fx.keyset_walk(adapters.tenants.list, "tenants", "id", 3)) do seen[tid] = true end
        for id in pairs(mine) do assert.is_true(seen[id], "missing " .. id) end
        fx.raises(400, "ValidationError", adapters.tenants.list, { q = "nosuchfield:1" })
        -- a foreign or broken cursor restarts the listing instead of failing
        local restarted = adapters.tenants.list({ take = 2, from = "not-a-cursor" })
        assert.is_true(#restarted.tenants >= 1)
    end)

    it("keeps hostile ids in their own partition", function()
        local a = fx.tenant("a")
        local hostile = a .. "#ORG#x"
        adapters.tenants.create({ id = a, friendly_name = "A" })
        adapters.tenants.create({ id = hostile, friendly_name = "H" })
        adapters.tenants.create({ id = a .. "%23", friendly_name = "P" })
        assert.equals("A", adapters.tenants.get(a).friendly_name)
        assert.equals("H", adapters.tenants.get(hostile).friendly_name)
        assert.equals("P", adapters.tenants.get(a .. "%23").friendly_name)
        assert.is_true(adapters.tenants.remove(hostile))
        assert.equals("A", adapters.tenants.get(a).friendly_name)
        assert.equals("P", adapters.tenants.get(a .. "%23").friendly_name)
    end)

    it("remove cascades over the tenant's partition and reports whether it existed", function()
        local id = fx.tenant()
        adapters.tenants.create({ id = id, friendly_name = "Doomed" })
        local c = fx.client()
        c:call("PutItem", { TableName = fx.table_name(), Item = { PK = aws.schema.keys.tenant_partition(id),
            SK = "ROLE#r1", entityType = "ROLE", id = "r1" } })
        c:call("PutItem", { TableName = fx.table_name(), Item = { PK = aws.schema.keys.role_partition(id, "r1"),
            SK = "PERMISSION#api#read", entityType = "ROLE_PERMISSION" } })
        assert.is_true(adapters.tenants.remove(id))
        assert.is_nil(adapters.tenants.get(id))
        assert.same({}, fx.raw_partition(aws.schema.keys.tenant_partition(id)))
        assert.same({}, fx.raw_partition(aws.schema.keys.role_partition(id, "r1")))
        assert.is_false(adapters.tenants.remove(id))
    end)
end)
