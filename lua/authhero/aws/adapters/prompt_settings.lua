-- promptSettings (contract §6): one item per tenant, TENANT#{t} / PROMPT_SETTINGS (entityType
-- PROMPT_SETTING). set merges the given fields in one UpdateItem (null removes one, so it reads as
-- its default again); get never returns nil: AuthHero's defaults fill whatever is not stored. Only
-- the five fields of AuthHero's promptSettingSchema are stored; others are ignored (SQL parity).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys
local null = core.null

local E = schema.entity("promptSettings")

local DEFAULTS = {
    universal_login_experience = "new", identifier_first = false, password_first = false,
    webauthn_platform_first_factor = false, show_last_used_connection = false,
}
local FIELDS = { "universal_login_experience", "identifier_first", "password_first", "webauthn_platform_first_factor",
    "show_last_used_connection" }
local EXPERIENCES = { new = true, classic = true }

local function check(f, v)
    if f == "universal_login_experience" then
        if not EXPERIENCES[v] then errors.validation("universal_login_experience must be new or classic") end
    elseif type(v) ~= "boolean" then
        errors.validation("%s must be a boolean", f)
    end
end

return function(ctx)
    local M = {}

    -- set(t, partial) -> nothing. Fields given replace the stored ones; the rest stay.
    function M.set(tenant_id, partial)
        store.need_string(tenant_id, "tenant_id")
        store.need_table(partial, "prompt settings")
        local set, remove = {}, {}
        for _, f in ipairs(FIELDS) do
            local v = partial[f]
            if v == null then
                remove[#remove + 1] = f
            elseif v ~= nil then
                check(f, v)
                set[f] = v
            end
        end
        local now = ctx:now_iso()
        set.entityType, set.tenant_id, set.updated_at = E.entity_type, tenant_id, now
        ctx.client:call("UpdateItem",
            ctx:upsert_request(keys.prompt_settings(tenant_id), set, { created_at = now }, remove))
    end

    -- get(t) -> the settings, every field present (stored value, else AuthHero's default).
    function M.get(tenant_id)
        store.need_string(tenant_id, "tenant_id")
        local k = keys.prompt_settings(tenant_id)
        local stored = store.to_record(E, ctx:get_item(k.PK, k.SK, true)) or {}
        local out = {}
        for _, f in ipairs(FIELDS) do
            local v = stored[f]
            if f == "universal_login_experience" then
                if not EXPERIENCES[v] then v = DEFAULTS[f] end
            elseif type(v) == "number" then
                v = v ~= 0 -- 0/1 as other tools write booleans
            elseif type(v) ~= "boolean" then
                v = DEFAULTS[f]
            end
            out[f] = v
        end
        return out
    end

    return store.adapter(M)
end
