-- emailProviders (contract §6): one item per tenant, TENANT#{t} / EMAIL_PROVIDER; credentials and
-- settings stored as JSON text. create replaces the provider in one UpdateItem without a read
-- (AuthHero checks for an existing one itself; created_at kept from the first write, or an
-- import's); update merges the given fields into an existing provider with one conditional
-- UpdateItem (false when there is none); remove returns whether there was one. Only the fields of
-- AuthHero's emailProviderSchema are stored.
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys
local null = core.null

local E = schema.entity("emailProviders")
local OPTIONAL = { "default_from_address", "settings" }

local is_object = util.is_json_object

-- Checks a provider (patch: absent fields are fine; null removes an optional one).
local function check(p, patch)
    if not patch or p.name ~= nil then store.need_string(p.name, "name") end
    if not patch or p.credentials ~= nil then
        if not is_object(p.credentials) then errors.validation("credentials is required (an object)") end
    end
    if p.enabled ~= nil and p.enabled ~= null and type(p.enabled) ~= "boolean" then
        errors.validation("enabled must be a boolean")
    end
    store.opt_string(p.default_from_address, "default_from_address")
    if p.settings ~= nil and p.settings ~= null and not is_object(p.settings) then
        errors.validation("settings must be an object")
    end
end

local function record(item)
    local r = store.to_record(E, item)
    if r == nil then return nil end
    local out = { name = r.name, enabled = r.enabled ~= false, default_from_address = r.default_from_address,
        credentials = r.credentials or {}, settings = r.settings }
    return out
end

return function(ctx)
    local M = {}

    -- create(t, provider, options?) -> nothing: the provider replaces any stored one.
    function M.create(t, provider, options)
        store.need_string(t, "tenant_id")
        store.need_table(provider, "email provider")
        check(provider, false)
        local created, updated = ctx:stamps(options)
        local imported = type(options) == "table" and type(options.importMetadata) == "table"
            and options.importMetadata.created_at ~= nil
        local rec = { tenant_id = t, name = provider.name, enabled = provider.enabled ~= false,
            credentials = provider.credentials, created_at = created, updated_at = updated }
        for _, f in ipairs(OPTIONAL) do
            if provider[f] ~= null then rec[f] = provider[f] end
        end
        ctx:replace_item(E, keys.email_provider(t), rec, OPTIONAL, not imported)
    end

    function M.get(t)
        store.need_string(t, "tenant_id")
        local k = keys.email_provider(t)
        return record(ctx:get_item(k.PK, k.SK))
    end

    -- update(t, partial) -> boolean: the given fields replace the stored ones (credentials and
    -- settings whole); null removes default_from_address or settings and resets enabled to true.
    function M.update(t, partial)
        store.need_string(t, "tenant_id")
        store.need_table(partial, "email provider")
        if partial.name == null or partial.credentials == null then
            errors.validation("name and credentials cannot be removed")
        end
        check(partial, true)
        local p = {}
        for _, f in ipairs({ "name", "enabled", "default_from_address", "credentials", "settings" }) do
            p[f] = partial[f]
        end
        if p.enabled == null then p.enabled = true end
        local set, remove = ctx:patch_sets(E, p)
        return ctx:update_item(keys.email_provider(t), set, remove)
    end

    function M.remove(t)
        store.need_string(t, "tenant_id")
        local k = keys.email_provider(t)
        return ctx:delete_item(k.PK, k.SK) ~= nil
    end

    return store.adapter(M)
end
