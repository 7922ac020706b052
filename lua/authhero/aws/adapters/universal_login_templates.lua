-- universalLoginTemplates (contract §6): one item per tenant, TENANT#{t} / UNIVERSAL_LOGIN_TEMPLATE,
-- holding the page template's body. set replaces it in one UpdateItem without a read (created_at
-- kept from the first write, or an import's); get returns { body } or nil; delete returns nothing.
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys

local E = schema.entity("universalLoginTemplates")

return function(ctx)
    local M = {}

    function M.get(t)
        store.need_string(t, "tenant_id")
        local k = keys.universal_login_template(t)
        local r = store.to_record(E, ctx:get_item(k.PK, k.SK))
        if r == nil or type(r.body) ~= "string" then return nil end
        return { body = r.body }
    end

    -- set(t, { body }, options?) -> nothing.
    function M.set(t, template, options)
        store.need_string(t, "tenant_id")
        store.need_table(template, "template")
        if type(template.body) ~= "string" then errors.validation("body is required") end
        local created, updated = ctx:stamps(options)
        local imported = type(options) == "table" and type(options.importMetadata) == "table"
            and options.importMetadata.created_at ~= nil
        ctx:replace_item(E, keys.universal_login_template(t), { tenant_id = t, body = template.body,
            created_at = created, updated_at = updated }, nil, not imported)
    end

    -- delete(t) -> nothing (AuthHero's is void).
    function M.delete(t)
        store.need_string(t, "tenant_id")
        local k = keys.universal_login_template(t)
        ctx:delete_item(k.PK, k.SK)
    end

    return store.adapter(M)
end
