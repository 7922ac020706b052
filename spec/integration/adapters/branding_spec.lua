-- branding (contract §5.8) against DynamoDB Local: set merges in one UpdateItem (created_at kept,
-- null removes), get returns exactly what AuthHero's brandingSchema allows, validation before any
-- request, hostile tenant ids, and the tenant cascade.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"
local util = require "authhero.aws.util"

local T0 = math.floor(core.now()) * 1000

local function raw(t) return fx.raw_get(schema.keys.branding(t)) end

local FULL = {
    colors = { primary = "#0A0A0A", page_background = { type = "linear-gradient", start = "#FFFFFF", ["end"] = "#000000",
        angle_deg = 35 } },
    logo_url = "https://example.com/logo.png",
    favicon_url = "https://example.com/favicon.ico",
    powered_by_logo_url = "https://example.com/powered.png",
    font = { url = "https://example.com/font.woff2" },
    dark_mode = "auto",
}

describe("branding", function()
    local a, branding

    setup(function()
        a = fx.adapters()
        branding = a.branding
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    it("get is nil before the first set", function()
        assert.is_nil(branding.get(fx.tenant()))
    end)

    it("stores every field and reads back exactly AuthHero's shape", function()
        local t = fx.tenant()
        assert.is_nil(branding.set(t, FULL))
        local got = branding.get(t)
        assert.same(FULL, got)
        assert.same(got, branding:get(t))
        for _, k in ipairs({ "PK", "SK", "entityType", "tenant_id", "created_at", "updated_at" }) do
            assert.is_nil(got[k], k)
        end
        local it = raw(t)
        assert.equal("BRANDING", it.entityType)
        assert.equal("BRANDING", it.SK)
        assert.equal("TENANT#" .. t, it.PK)
        assert.equal(t, it.tenant_id)
        assert.equal('{"url":"https://example.com/font.woff2"}', it.font)
        assert.is_string(it.colors)
        assert.same(FULL.colors, core.json_decode(it.colors))
        assert.equal("auto", it.dark_mode)
        assert.equal(util.iso(T0), it.created_at)
        assert.equal(util.iso(T0), it.updated_at)
    end)

    it("page_background may be a plain colour", function()
        local t = fx.tenant()
        branding.set(t, { colors = { primary = "#111111", page_background = "#222222" } })
        assert.same({ colors = { primary = "#111111", page_background = "#222222" } }, branding.get(t))
    end)

    it("set merges with one request: given fields overwrite, absent stay, created_at is kept", function()
        local t = fx.tenant()
        branding.set(t, { logo_url = "https://a/1.png", colors = { primary = "#000001", page_background = "#FFFFFF" } })
        fx.advance(60)
        local before = fx.requests()
        branding.set(t, { dark_mode = "dark", colors = { primary = "#000002" } })
        assert.equal(1, fx.requests() - before) -- one UpdateItem, no read first
        assert.same({ logo_url = "https://a/1.png", colors = { primary = "#000002" }, dark_mode = "dark" },
            branding.get(t))
        local it = raw(t)
        assert.equal(util.iso(T0), it.created_at)
        assert.equal(util.iso(T0 + 60000), it.updated_at)

        -- null removes a field; unknown fields and bookkeeping names are not stored
        branding.set(t, { dark_mode = core.null, favicon_url = "https://a/f.ico", foo = "bar", PK = "x",
            tenant_id = "other", created_at = "2000-01-01T00:00:00.000Z" })
        assert.same({ logo_url = "https://a/1.png", colors = { primary = "#000002" }, favicon_url = "https://a/f.ico" },
            branding.get(t))
        it = raw(t)
        assert.is_nil(it.foo)
        assert.is_nil(it.dark_mode)
        assert.equal(t, it.tenant_id)
        assert.equal(util.iso(T0), it.created_at)
        assert.equal("TENANT#" .. t, it.PK)
    end)

    it("an empty set creates an empty branding", function()
        local t = fx.tenant()
        branding.set(t, {})
        assert.same({}, branding.get(t))
        assert.equal(util.iso(T0), raw(t).created_at)
    end)

    it("400 before any request on invalid input", function()
        local t = fx.tenant()
        fx.rejects(branding.set, t, nil)
        fx.rejects(branding.set, t, "x")
        fx.rejects(branding.set, nil, {})
        fx.rejects(branding.set, "", {})
        fx.rejects(branding.set, t, { colors = "red" })
        fx.rejects(branding.set, t, { colors = {} })
        fx.rejects(branding.set, t, { colors = { primary = 1 } })
        fx.rejects(branding.set, t, { colors = { primary = "#fff", page_background = 5 } })
        fx.rejects(branding.set, t, { colors = { primary = "#fff", page_background = { angle_deg = "10" } } })
        fx.rejects(branding.set, t, { colors = { primary = "#fff", page_background = { start = 1 } } })
        fx.rejects(branding.set, t, { font = {} })
        fx.rejects(branding.set, t, { font = "https://x" })
        fx.rejects(branding.set, t, { dark_mode = "dim" })
        fx.rejects(branding.set, t, { logo_url = 5 })
        fx.rejects(branding.set, t, { favicon_url = true })
        fx.rejects(branding.set, t, { powered_by_logo_url = {} })
        fx.rejects(branding.set, t, { logo_url = string.rep("x", 410 * 1024) })
        fx.rejects(branding.get, nil)
        fx.rejects(branding.get, "")
        assert.is_nil(branding.get(t))
    end)

    it("keeps hostile tenant ids apart", function()
        local base = fx.tenant()
        local evil = { base .. "#BRANDING", base .. "%23x", base .. "#" }
        branding.set(base, { logo_url = "base" })
        for i, t in ipairs(evil) do branding.set(t, { logo_url = "evil" .. i }) end
        assert.same({ logo_url = "base" }, branding.get(base))
        for i, t in ipairs(evil) do assert.same({ logo_url = "evil" .. i }, branding.get(t)) end
        assert.equal("TENANT#" .. base .. "%23BRANDING", raw(evil[1]).PK)
        assert.equal(1, #fx.raw_partition(schema.keys.tenant_partition(base)))
    end)

    it("goes with its tenant", function()
        local t = fx.tenant()
        a.tenants.create({ id = t, friendly_name = "Branded" })
        branding.set(t, FULL)
        assert.is_true(a.tenants.remove(t))
        assert.is_nil(branding.get(t))
        assert.same({}, fx.raw_partition(schema.keys.tenant_partition(t)))
    end)
end)
