-- emailProviders and emailTemplates (contract §6) against DynamoDB Local: AuthHero's field names in
-- records and upstream's stored names, defaults, create as upsert (providers) or 409 (templates),
-- updates in one conditional request, list order, validation before any request, the cascade.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"
local util = require "authhero.aws.util"

local T0 = math.floor(core.now()) * 1000
local function iso(ms) return util.iso(ms) end

describe("emailProviders", function()
    local a, ep

    setup(function()
        a = fx.adapters()
        ep = a.emailProviders
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    local function raw(t) return fx.raw_get(schema.keys.email_provider(t)) end

    it("create stores the provider (credentials and settings as JSON); get returns AuthHero's shape", function()
        local t = fx.tenant()
        assert.is_nil(ep.get(t))
        assert.is_nil(ep.create(t, { name = "sendgrid", credentials = { api_key = "k" },
            settings = { region = "eu" }, default_from_address = "no-reply@example.com", tenant_id = "x", junk = 1 }))
        assert.same({ name = "sendgrid", enabled = true, credentials = { api_key = "k" }, settings = { region = "eu" },
            default_from_address = "no-reply@example.com" }, ep.get(t))
        local it = raw(t)
        assert.equal("EMAIL_PROVIDER", it.entityType)
        assert.equal("EMAIL_PROVIDER", it.SK)
        assert.equal(t, it.tenant_id)
        assert.is_true(it.enabled)
        assert.equal("string", type(it.credentials))
        assert.equal("string", type(it.settings))
        assert.is_nil(it.junk)
        assert.equal(iso(T0), it.created_at)
    end)

    it("create replaces an existing provider (optional fields it lacks are removed), keeping created_at", function()
        local t = fx.tenant()
        ep.create(t, { name = "sendgrid", credentials = { api_key = "k" }, settings = { a = "b" },
            default_from_address = "a@example.com", enabled = false })
        fx.advance(10)
        local _, ops = fx.ops(function() ep.create(t, { name = "mailgun", credentials = { domain = "d" } }) end)
        assert.same({ "UpdateItem" }, ops)
        assert.same({ name = "mailgun", enabled = true, credentials = { domain = "d" } }, ep.get(t))
        local it = raw(t)
        assert.is_nil(it.settings)
        assert.is_nil(it.default_from_address)
        assert.equal(iso(T0), it.created_at)
        assert.equal(iso(T0 + 10000), it.updated_at)
    end)

    it("update merges the given fields with one conditional UpdateItem; false when there is no provider", function()
        local t = fx.tenant()
        assert.is_false(ep.update(t, { name = "x" }))
        assert.is_nil(raw(t)) -- the update did not create one
        ep.create(t, { name = "sendgrid", credentials = { api_key = "k" }, settings = { a = "b" } })
        local ok, ops = fx.ops(function()
            return ep.update(t, { enabled = false, default_from_address = "x@example.com", credentials = { api_key = "k2" } })
        end)
        assert.is_true(ok)
        assert.same({ "UpdateItem" }, ops)
        assert.same({ name = "sendgrid", enabled = false, credentials = { api_key = "k2" }, settings = { a = "b" },
            default_from_address = "x@example.com" }, ep.get(t))
        assert.is_true(ep:update(t, { settings = core.null, default_from_address = core.null, enabled = core.null }))
        assert.same({ name = "sendgrid", enabled = true, credentials = { api_key = "k2" } }, ep.get(t))
    end)

    it("remove returns whether there was a provider", function()
        local t = fx.tenant()
        assert.is_false(ep.remove(t))
        ep.create(t, { name = "sendgrid", credentials = {} })
        assert.is_true(ep.remove(t))
        assert.is_nil(ep.get(t))
        assert.is_false(ep.remove(t))
    end)

    it("rejects missing or mistyped fields before any request", function()
        local t = fx.tenant()
        fx.rejects(ep.create, t, { credentials = {} })
        fx.rejects(ep.create, t, { name = "x" })
        fx.rejects(ep.create, t, { name = "x", credentials = { "a" } })
        fx.rejects(ep.create, t, { name = "x", credentials = {}, enabled = "yes" })
        fx.rejects(ep.create, t, { name = "x", credentials = {}, settings = "s" })
        fx.rejects(ep.create, t, { name = "x", credentials = {}, default_from_address = 5 })
        fx.rejects(ep.create, "", { name = "x", credentials = {} })
        fx.rejects(ep.update, t, { name = core.null })
        fx.rejects(ep.update, t, { credentials = core.null })
        fx.rejects(ep.update, t, { credentials = "c" })
        fx.rejects(ep.update, t, nil)
    end)

    it("is removed with its tenant", function()
        local t = fx.tenant()
        ep.create(t, { name = "sendgrid", credentials = {} })
        a.tenants.remove(t)
        assert.is_nil(ep.get(t))
    end)
end)

describe("emailTemplates", function()
    local a, et

    setup(function()
        a = fx.adapters()
        et = a.emailTemplates
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    local function raw(t, name) return fx.raw_get(schema.keys.email_template(t, name)) end
    local function tpl(name, over)
        local r = { template = name, body = "<p>{{ code }}</p>", from = "a@example.com", subject = "Hi" }
        for k, v in pairs(over or {}) do r[k] = v end
        return r
    end

    it("create applies the defaults, returns the template as get does, and stores upstream's names", function()
        local t = fx.tenant()
        local c = et.create(t, tpl("verify_email", { resultUrl = "https://example.com/done",
            urlLifetimeInSeconds = 3600, includeEmailInRedirect = true, junk = "x" }))
        local want = { template = "verify_email", body = "<p>{{ code }}</p>", from = "a@example.com", subject = "Hi",
            syntax = "liquid", resultUrl = "https://example.com/done", urlLifetimeInSeconds = 3600,
            includeEmailInRedirect = true, enabled = true }
        assert.same(want, c)
        assert.same(want, et.get(t, "verify_email"))
        if math.type then assert.equal("integer", math.type(et.get(t, "verify_email").urlLifetimeInSeconds)) end
        local it = raw(t, "verify_email")
        assert.equal("EMAIL_TEMPLATE", it.entityType)
        assert.equal("EMAIL_TEMPLATE#verify_email", it.SK)
        assert.equal("https://example.com/done", it.result_url)
        assert.equal(3600, it.url_lifetime_in_seconds)
        assert.is_true(it.include_email_in_redirect)
        assert.is_nil(it.resultUrl)
        assert.is_nil(it.urlLifetimeInSeconds)
        assert.is_nil(it.includeEmailInRedirect)
        assert.is_nil(it.junk)
        assert.equal(t, it.tenant_id)
        assert.equal(iso(T0), it.created_at)

        local d = et.create(t, tpl("password_reset"))
        assert.same({ template = "password_reset", body = "<p>{{ code }}</p>", from = "a@example.com", subject = "Hi",
            syntax = "liquid", includeEmailInRedirect = false, enabled = true }, d)
        assert.is_false(raw(t, "password_reset").include_email_in_redirect)
        assert.is_false(et.create(t, tpl("welcome_email", { enabled = false })).enabled)
    end)

    it("create is 409 when the template exists", function()
        local t = fx.tenant()
        et.create(t, tpl("verify_email"))
        local err = fx.raises(409, "Conflict", et.create, t, tpl("verify_email", { body = "other" }))
        assert.equal("Email template already exists", err.message)
        assert.equal("<p>{{ code }}</p>", et.get(t, "verify_email").body)
    end)

    it("update changes the given fields with one conditional UpdateItem; false when missing", function()
        local t = fx.tenant()
        assert.is_false(et.update(t, "verify_email", { body = "x" }))
        assert.is_nil(raw(t, "verify_email"))
        et.create(t, tpl("verify_email", { resultUrl = "https://a", urlLifetimeInSeconds = 60 }))
        fx.advance(3)
        local ok, ops = fx.ops(function()
            return et.update(t, "verify_email", { subject = "New", includeEmailInRedirect = true, enabled = false,
                template = "ignored", resultUrl = "https://b" })
        end)
        assert.is_true(ok)
        assert.same({ "UpdateItem" }, ops)
        assert.same({ template = "verify_email", body = "<p>{{ code }}</p>", from = "a@example.com", subject = "New",
            syntax = "liquid", resultUrl = "https://b", urlLifetimeInSeconds = 60, includeEmailInRedirect = true,
            enabled = false }, et.get(t, "verify_email"))
        assert.equal("https://b", raw(t, "verify_email").result_url)
        assert.equal(iso(T0 + 3000), raw(t, "verify_email").updated_at)
        assert.equal(iso(T0), raw(t, "verify_email").created_at)
        assert.is_nil(et.get(t, "ignored"))
        -- null removes the optional ones and resets the defaults
        assert.is_true(et:update(t, "verify_email", { resultUrl = core.null, urlLifetimeInSeconds = core.null,
            enabled = core.null, includeEmailInRedirect = core.null }))
        local g = et.get(t, "verify_email")
        assert.is_nil(g.resultUrl)
        assert.is_nil(g.urlLifetimeInSeconds)
        assert.is_true(g.enabled)
        assert.is_false(g.includeEmailInRedirect)
        assert.is_nil(raw(t, "verify_email").result_url)
    end)

    it("list returns every template of the tenant by name; remove returns whether it existed", function()
        local t = fx.tenant()
        assert.same({}, et.list(t))
        for _, n in ipairs({ "welcome_email", "blocked_account", "verify_email" }) do et.create(t, tpl(n)) end
        et.create(fx.tenant(), tpl("change_password"))
        a.emailProviders.create(t, { name = "x", credentials = {} })
        assert.same({ "blocked_account", "verify_email", "welcome_email" }, fx.ids(et.list(t), "template"))
        assert.same(et.get(t, "verify_email"), et.list(t)[2])
        assert.is_true(et.remove(t, "verify_email"))
        assert.is_false(et.remove(t, "verify_email"))
        assert.same({ "blocked_account", "welcome_email" }, fx.ids(et.list(t), "template"))
    end)

    it("rejects missing required fields and bad types before any request", function()
        local t = fx.tenant()
        fx.rejects(et.create, t, tpl(nil))
        for _, f in ipairs({ "body", "from", "subject" }) do
            fx.rejects(et.create, t, tpl("verify_email", { [f] = core.null }))
        end
        local b = tpl("verify_email")
        b.body = nil
        fx.rejects(et.create, t, b)
        fx.rejects(et.create, t, tpl("verify_email", { syntax = "handlebars" }))
        fx.rejects(et.create, t, tpl("verify_email", { urlLifetimeInSeconds = "60" }))
        fx.rejects(et.create, t, tpl("verify_email", { enabled = 1 }))
        fx.rejects(et.create, t, tpl("verify_email", { resultUrl = true }))
        fx.rejects(et.update, t, "verify_email", { body = core.null })
        fx.rejects(et.update, t, "verify_email", { subject = 5 })
        fx.rejects(et.update, t, "", { subject = "x" })
        fx.rejects(et.get, t, nil)
        fx.rejects(et.list, nil)
    end)

    it("are removed with their tenant", function()
        local t = fx.tenant()
        et.create(t, tpl("verify_email"))
        et.create(t, tpl("password_reset"))
        a.tenants.remove(t)
        assert.same({}, et.list(t))
    end)
end)
