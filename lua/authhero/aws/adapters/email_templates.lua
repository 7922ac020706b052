-- emailTemplates (contract §6): TENANT#{t} / EMAIL_TEMPLATE#{template}, one per template name.
-- Records use AuthHero's names (resultUrl, urlLifetimeInSeconds, includeEmailInRedirect); items
-- store them as result_url, url_lifetime_in_seconds, include_email_in_redirect (upstream's
-- attribute names). create is 409 when the name is taken; update is one conditional UpdateItem;
-- list reads the tenant's EMAIL_TEMPLATE# range (by name).
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys
local null = core.null

local E = schema.entity("emailTemplates")

-- record name -> stored attribute
local STORED = { resultUrl = "result_url", urlLifetimeInSeconds = "url_lifetime_in_seconds",
    includeEmailInRedirect = "include_email_in_redirect" }
local FIELDS = { "body", "from", "subject", "syntax", "resultUrl", "urlLifetimeInSeconds", "includeEmailInRedirect",
    "enabled" }

local present = util.present

-- Checks a template or a patch (patch: absent fields are fine).
local function check(r, patch)
    for _, f in ipairs({ "body", "from", "subject" }) do
        if not patch or r[f] ~= nil then
            if type(r[f]) ~= "string" then errors.validation("%s is required", f) end
        end
    end
    if present(r.syntax) and r.syntax ~= "liquid" then errors.validation("syntax must be liquid") end
    store.opt_string(r.resultUrl, "resultUrl")
    local n = r.urlLifetimeInSeconds
    if present(n) and (type(n) ~= "number" or n ~= n or n == math.huge or n == -math.huge) then
        errors.validation("urlLifetimeInSeconds must be a number")
    end
    for _, f in ipairs({ "includeEmailInRedirect", "enabled" }) do
        if present(r[f]) and type(r[f]) ~= "boolean" then errors.validation("%s must be a boolean", f) end
    end
end

local function record(item)
    local r = store.to_record(E, item)
    if r == nil then return nil end
    return { template = r.template, body = r.body, from = r.from, subject = r.subject, syntax = r.syntax or "liquid",
        resultUrl = r.result_url, urlLifetimeInSeconds = r.url_lifetime_in_seconds,
        includeEmailInRedirect = r.include_email_in_redirect == true, enabled = r.enabled ~= false }
end

return function(ctx)
    local M = {}

    -- create(t, template, options?) -> the template as get returns it; 409 when the name is taken.
    function M.create(t, tpl, options)
        store.need_string(t, "tenant_id")
        store.need_table(tpl, "email template")
        store.need_string(tpl.template, "template")
        check(tpl, false)
        local created, updated = ctx:stamps(options)
        local rec = { tenant_id = t, template = tpl.template, created_at = created, updated_at = updated,
            syntax = "liquid", include_email_in_redirect = tpl.includeEmailInRedirect == true,
            enabled = tpl.enabled ~= false }
        for _, f in ipairs({ "body", "from", "subject", "resultUrl", "urlLifetimeInSeconds" }) do
            if present(tpl[f]) then rec[STORED[f] or f] = tpl[f] end
        end
        local item = ctx:to_item(E, rec, keys.email_template(t, tpl.template))
        ctx:put_new(item, "Email template already exists")
        return record(item)
    end

    function M.get(t, name)
        store.need_string(t, "tenant_id")
        store.need_string(name, "template")
        local k = keys.email_template(t, name)
        return record(ctx:get_item(k.PK, k.SK))
    end

    -- list(t) -> array of templates, by name.
    function M.list(t)
        store.need_string(t, "tenant_id")
        local out = core.array({})
        for _, it in ipairs(ctx:query_all({ pk = keys.tenant_partition(t), prefix = schema.prefix.email_template })) do
            local r = record(it)
            if r then out[#out + 1] = r end
        end
        return out
    end

    -- update(t, name, partial) -> boolean. template (the name) is not changed; null resets syntax,
    -- includeEmailInRedirect and enabled to their defaults and removes resultUrl or
    -- urlLifetimeInSeconds; body, from and subject cannot be removed.
    function M.update(t, name, partial)
        store.need_string(t, "tenant_id")
        store.need_string(name, "template")
        store.need_table(partial, "email template")
        for _, f in ipairs({ "body", "from", "subject" }) do
            if partial[f] == null then errors.validation("%s cannot be removed", f) end
        end
        check(partial, true)
        local p = {}
        for _, f in ipairs(FIELDS) do
            local v = partial[f]
            if v == null then
                if f == "syntax" then v = "liquid"
                elseif f == "includeEmailInRedirect" then v = false
                elseif f == "enabled" then v = true end
            end
            p[STORED[f] or f] = v
        end
        local set, remove = ctx:patch_sets(E, p)
        return ctx:update_item(keys.email_template(t, name), set, remove)
    end

    function M.remove(t, name)
        store.need_string(t, "tenant_id")
        store.need_string(name, "template")
        local k = keys.email_template(t, name)
        return ctx:delete_item(k.PK, k.SK) ~= nil
    end

    return store.adapter(M)
end
