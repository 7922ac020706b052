-- promptSettings (contract §6) against DynamoDB Local: get is never nil (AuthHero's defaults fill
-- what is not stored), set merges in one UpdateItem, validation before any request, hostile tenant
-- ids, and the tenant cascade.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"
local util = require "authhero.aws.util"

local T0 = math.floor(core.now()) * 1000

local DEFAULTS = {
    universal_login_experience = "new", identifier_first = false, password_first = false,
    webauthn_platform_first_factor = false, show_last_used_connection = false,
}

local function with(over)
    local r = {}
    for k, v in pairs(DEFAULTS) do r[k] = v end
    for k, v in pairs(over) do r[k] = v end
    return r
end

local function raw(t) return fx.raw_get(schema.keys.prompt_settings(t)) end

describe("promptSettings", function()
    local a, ps

    setup(function()
        a = fx.adapters()
        ps = a.promptSettings
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    it("get returns the defaults when nothing is stored, and writes nothing", function()
        local t = fx.tenant()
        assert.same(DEFAULTS, ps.get(t))
        assert.same(DEFAULTS, ps:get(t))
        assert.is_nil(raw(t))
    end)

    it("set stores the given fields; get fills the rest with defaults", function()
        local t = fx.tenant()
        assert.is_nil(ps.set(t, { identifier_first = true, universal_login_experience = "classic" }))
        assert.same(with({ identifier_first = true, universal_login_experience = "classic" }), ps.get(t))
        local it = raw(t)
        assert.equal("PROMPT_SETTING", it.entityType)
        assert.equal("PROMPT_SETTINGS", it.SK)
        assert.equal("TENANT#" .. t, it.PK)
        assert.equal(t, it.tenant_id)
        assert.is_true(it.identifier_first)
        assert.equal("classic", it.universal_login_experience)
        assert.is_nil(it.password_first) -- only what was given is stored
        assert.equal(util.iso(T0), it.created_at)
        assert.equal(util.iso(T0), it.updated_at)
    end)

    it("set merges with one request; created_at is kept; null resets a field to its default", function()
        local t = fx.tenant()
        ps.set(t, { identifier_first = true, password_first = true })
        fx.advance(30)
        local before = fx.requests()
        ps.set(t, { password_first = false, webauthn_platform_first_factor = true, show_last_used_connection = true })
        assert.equal(1, fx.requests() - before)
        assert.same(with({ identifier_first = true, webauthn_platform_first_factor = true,
            show_last_used_connection = true }), ps.get(t))
        assert.equal(util.iso(T0), raw(t).created_at)
        assert.equal(util.iso(T0 + 30000), raw(t).updated_at)

        ps.set(t, { identifier_first = core.null, universal_login_experience = "classic" })
        assert.same(with({ universal_login_experience = "classic", webauthn_platform_first_factor = true,
            show_last_used_connection = true }), ps.get(t))
        assert.is_nil(raw(t).identifier_first)

        -- AuthHero's management API sends { ...existing, ...patch }
        local existing = ps.get(t)
        local merged = {}
        for k, v in pairs(existing) do merged[k] = v end
        merged.password_first = true
        ps.set(t, merged)
        assert.same(with({ universal_login_experience = "classic", webauthn_platform_first_factor = true,
            show_last_used_connection = true, password_first = true }), ps.get(t))
    end)

    it("ignores fields AuthHero's schema does not have", function()
        local t = fx.tenant()
        ps.set(t, { identifier_first = true, foo = "bar", tenant_id = "other", SK = "X", created_at = "2000-01-01" })
        assert.same(with({ identifier_first = true }), ps.get(t))
        local it = raw(t)
        assert.is_nil(it.foo)
        assert.equal(t, it.tenant_id)
        assert.equal(util.iso(T0), it.created_at)
    end)

    it("reads 0/1 written by other tools as booleans and bad stored values as defaults", function()
        local t = fx.tenant()
        local k = schema.keys.prompt_settings(t)
        fx.raw_put({ PK = k.PK, SK = k.SK, entityType = "PROMPT_SETTING", tenant_id = t, identifier_first = 1,
            password_first = 0, universal_login_experience = "weird", show_last_used_connection = "yes" })
        assert.same(with({ identifier_first = true }), ps.get(t))
    end)

    it("400 before any request on invalid input", function()
        local t = fx.tenant()
        fx.rejects(ps.set, t, nil)
        fx.rejects(ps.set, t, true)
        fx.rejects(ps.set, nil, {})
        fx.rejects(ps.set, "", { identifier_first = true })
        fx.rejects(ps.set, t, { identifier_first = "yes" })
        fx.rejects(ps.set, t, { password_first = 1 })
        fx.rejects(ps.set, t, { webauthn_platform_first_factor = {} })
        fx.rejects(ps.set, t, { show_last_used_connection = "false" })
        fx.rejects(ps.set, t, { universal_login_experience = "old" })
        fx.rejects(ps.set, t, { universal_login_experience = true })
        fx.rejects(ps.get, nil)
        fx.rejects(ps.get, "")
        assert.is_nil(raw(t))
    end)

    it("keeps hostile tenant ids apart", function()
        local base = fx.tenant()
        local evil = base .. "#PROMPT_SETTINGS"
        ps.set(base, { identifier_first = true })
        ps.set(evil, { password_first = true })
        ps.set(base .. "%23", { show_last_used_connection = true })
        assert.same(with({ identifier_first = true }), ps.get(base))
        assert.same(with({ password_first = true }), ps.get(evil))
        assert.same(with({ show_last_used_connection = true }), ps.get(base .. "%23"))
        assert.same(DEFAULTS, ps.get(base .. "#"))
        assert.equal(1, #fx.raw_partition(schema.keys.tenant_partition(base)))
    end)

    it("goes with its tenant", function()
        local t = fx.tenant()
        a.tenants.create({ id = t, friendly_name = "Prompted" })
        ps.set(t, { identifier_first = true })
        assert.is_true(a.tenants.remove(t))
        assert.is_nil(raw(t))
        assert.same(DEFAULTS, ps.get(t))
    end)
end)
