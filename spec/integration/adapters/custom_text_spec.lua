-- customText and universalLoginTemplates (contract §6) against DynamoDB Local: set replaces in one
-- request without a read (created_at kept, or an import's), get/delete/list, listEntries for the
-- export, validation before any request, hostile ids, and the tenant cascade.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"
local util = require "authhero.aws.util"

local T0 = math.floor(core.now()) * 1000
local function iso(ms) return util.iso(ms) end

describe("customText", function()
    local a, ct

    setup(function()
        a = fx.adapters()
        ct = a.customText
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    it("set stores the text as JSON; get returns it; nothing is stored for other prompts or languages", function()
        local t = fx.tenant()
        local text = { login = { title = "Welcome", buttonText = "Go" }, ["email-otp-challenge"] = { buttonText = "Continue" } }
        assert.is_nil(ct.get(t, "login", "en"))
        assert.is_nil(ct.set(t, "login", "en", text))
        assert.same(text, ct.get(t, "login", "en"))
        assert.same(text, ct:get(t, "login", "en"))
        assert.is_nil(ct.get(t, "login", "de"))
        assert.is_nil(ct.get(t, "signup", "en"))
        local it = fx.raw_get(schema.keys.custom_text(t, "login", "en"))
        assert.equal("CUSTOM_TEXT", it.entityType)
        assert.equal("TENANT#" .. t, it.PK)
        assert.equal("CUSTOM_TEXT#login#en", it.SK)
        assert.equal(t, it.tenant_id)
        assert.equal("login", it.prompt)
        assert.equal("en", it.language)
        assert.equal("string", type(it.custom_text))
        assert.same(text, core.json_decode(it.custom_text))
        assert.equal(iso(T0), it.created_at)
        assert.equal(iso(T0), it.updated_at)
    end)

    it("set replaces the whole text with one UpdateItem; created_at stays from the first write", function()
        local t = fx.tenant()
        ct.set(t, "login", "en", { login = { title = "A", description = "B" } })
        fx.advance(60)
        local _, ops = fx.ops(function() ct.set(t, "login", "en", { login = { title = "C" } }) end)
        assert.same({ "UpdateItem" }, ops)
        assert.same({ login = { title = "C" } }, ct.get(t, "login", "en"))
        local it = fx.raw_get(schema.keys.custom_text(t, "login", "en"))
        assert.equal(iso(T0), it.created_at)
        assert.equal(iso(T0 + 60000), it.updated_at)
        ct.set(t, "login", "en", {})
        assert.same({}, ct.get(t, "login", "en"))
    end)

    it("an import's timestamps replace created_at and updated_at", function()
        local t = fx.tenant()
        ct.set(t, "login", "en", { login = { title = "A" } })
        ct.set(t, "login", "en", { login = { title = "B" } },
            { importMetadata = { created_at = "2024-01-02T03:04:05Z", updated_at = "2024-02-02T00:00:00.5Z" } })
        local it = fx.raw_get(schema.keys.custom_text(t, "login", "en"))
        assert.equal("2024-01-02T03:04:05.000Z", it.created_at)
        assert.equal("2024-02-02T00:00:00.500Z", it.updated_at)
    end)

    it("delete removes one entry and returns nothing; deleting a missing one is fine", function()
        local t = fx.tenant()
        ct.set(t, "login", "en", { login = { title = "A" } })
        ct.set(t, "login", "fr", { login = { title = "B" } })
        assert.is_nil(ct.delete(t, "login", "en"))
        assert.is_nil(ct.get(t, "login", "en"))
        assert.same({ login = { title = "B" } }, ct.get(t, "login", "fr"))
        assert.is_nil(ct.delete(t, "login", "en"))
        assert.is_nil(ct.delete(t, "nope", "xx"))
    end)

    it("list returns { prompt, language } of every entry, by prompt then language; listEntries adds the text", function()
        local t = fx.tenant()
        assert.same({}, ct.list(t))
        assert.is_true(core.is_array(ct.list(t)))
        ct.set(t, "signup", "en", { signup = { title = "S" } })
        ct.set(t, "login", "fr", { login = { title = "F" } })
        ct.set(t, "login", "en", { login = { title = "E" } })
        -- another tenant's and other kinds of items of the same tenant are not listed
        ct.set(fx.tenant(), "login", "en", { login = { title = "other" } })
        a.universalLoginTemplates.set(t, { body = "<html></html>" })
        assert.same({ { prompt = "login", language = "en" }, { prompt = "login", language = "fr" },
            { prompt = "signup", language = "en" } }, ct.list(t))
        assert.same({ { prompt = "login", language = "en", custom_text = { login = { title = "E" } } },
            { prompt = "login", language = "fr", custom_text = { login = { title = "F" } } },
            { prompt = "signup", language = "en", custom_text = { signup = { title = "S" } } } }, ct.listEntries(t))
    end)

    it("ids with # and % are escaped in the key and kept in the item", function()
        local t = fx.tenant("a#b%c")
        ct.set(t, "log#in", "e%n", { x = { y = "z" } })
        assert.same({ x = { y = "z" } }, ct.get(t, "log#in", "e%n"))
        assert.is_nil(ct.get(t, "log", "in#e%n"))
        local it = fx.raw_get(schema.keys.custom_text(t, "log#in", "e%n"))
        assert.equal("CUSTOM_TEXT#log%23in#e%25n", it.SK)
        assert.same({ { prompt = "log#in", language = "e%n" } }, ct.list(t))
    end)

    it("rejects bad arguments with a 400 before any request", function()
        local t = fx.tenant()
        fx.rejects(ct.set, t, "login", "en", nil)
        fx.rejects(ct.set, t, "login", "en", "text")
        fx.rejects(ct.set, t, "login", "en", { "a" })
        fx.rejects(ct.set, t, "login", "en", { login = "title" })
        fx.rejects(ct.set, t, "login", "en", { login = { title = 1 } })
        fx.rejects(ct.set, t, "", "en", {})
        fx.rejects(ct.set, t, "login", nil, {})
        fx.rejects(ct.set, nil, "login", "en", {})
        fx.rejects(ct.get, t, "login", "")
        fx.rejects(ct.delete, t, nil, "en")
        fx.rejects(ct.list, "")
        local long = string.rep("x", 1100)
        local err = fx.rejects(ct.set, t, long, "en", {})
        assert.truthy(err.message:find("prompt", 1, true))
        assert.is_nil(ct.get(t, long, "en")) -- nothing can be stored there: no request
    end)

    it("tenants.remove removes the tenant's custom text", function()
        local t = fx.tenant()
        a.tenants.create({ id = t, friendly_name = "T" })
        ct.set(t, "login", "en", { login = { title = "A" } })
        ct.set(t, "signup", "de", { signup = { title = "B" } })
        assert.is_true(a.tenants.remove(t))
        assert.same({}, ct.list(t))
        assert.same({}, fx.raw_partition("TENANT#" .. t))
    end)
end)

describe("universalLoginTemplates", function()
    local a, ult

    setup(function()
        a = fx.adapters()
        ult = a.universalLoginTemplates
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    it("set stores the body; get returns exactly { body }; set again replaces it with one request", function()
        local t = fx.tenant()
        assert.is_nil(ult.get(t))
        assert.is_nil(ult.set(t, { body = "<html>{%- auth0:widget -%}</html>", extra = "dropped" }))
        assert.same({ body = "<html>{%- auth0:widget -%}</html>" }, ult.get(t))
        local it = fx.raw_get(schema.keys.universal_login_template(t))
        assert.equal("UNIVERSAL_LOGIN_TEMPLATE", it.entityType)
        assert.equal("UNIVERSAL_LOGIN_TEMPLATE", it.SK)
        assert.equal(t, it.tenant_id)
        assert.is_nil(it.extra)
        fx.advance(5)
        local _, ops = fx.ops(function() ult:set(t, { body = "" }) end)
        assert.same({ "UpdateItem" }, ops)
        assert.same({ body = "" }, ult.get(t))
        it = fx.raw_get(schema.keys.universal_login_template(t))
        assert.equal(iso(T0), it.created_at)
        assert.equal(iso(T0 + 5000), it.updated_at)
    end)

    it("delete removes it and returns nothing", function()
        local t = fx.tenant()
        ult.set(t, { body = "x" })
        assert.is_nil(ult.delete(t))
        assert.is_nil(ult.get(t))
        assert.is_nil(ult.delete(t))
    end)

    it("rejects a missing body and a body over DynamoDB's item size before any request", function()
        local t = fx.tenant()
        fx.rejects(ult.set, t, {})
        fx.rejects(ult.set, t, { body = 5 })
        fx.rejects(ult.set, t, nil)
        fx.rejects(ult.set, "", { body = "x" })
        fx.rejects(ult.set, t, { body = string.rep("x", 400 * 1024) })
        fx.rejects(ult.get, nil)
    end)

    it("is removed with its tenant", function()
        local t = fx.tenant()
        ult.set(t, { body = "x" })
        a.tenants.remove(t)
        assert.is_nil(ult.get(t))
    end)
end)
