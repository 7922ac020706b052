-- branding (contract §5.8): one item per tenant, TENANT#{t} / BRANDING. set merges in one UpdateItem
-- (given fields overwrite, absent ones stay, null removes; created_at kept from the first write), no
-- read-modify-write. Only AuthHero's branding fields are stored (colors and font as JSON text);
-- other fields of the argument are ignored, as AuthHero's schema strips them.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("branding")
local FIELDS = { "colors", "logo_url", "favicon_url", "powered_by_logo_url", "font", "dark_mode" }
local DARK_MODES = { dark = true, light = true, auto = true }
local MAX_ITEM_BYTES = 400 * 1024

local function is_object(v)
    return type(v) == "table" and not core.is_array(v)
end

local function opt_string(v, name)
    if v ~= nil and type(v) ~= "string" then errors.validation("%s must be a string", name) end
end

-- AuthHero's brandingSchema, field by field (null = remove the field, allowed for each).
local CHECKS = {
    colors = function(v)
        if not is_object(v) then errors.validation("colors must be an object") end
        if type(v.primary) ~= "string" then errors.validation("colors.primary is required") end
        local bg = v.page_background
        if bg ~= nil and type(bg) ~= "string" then
            if not is_object(bg) then errors.validation("colors.page_background must be a string or an object") end
            for _, f in ipairs({ "type", "start", "end" }) do opt_string(bg[f], "colors.page_background." .. f) end
            if bg.angle_deg ~= nil and type(bg.angle_deg) ~= "number" then
                errors.validation("colors.page_background.angle_deg must be a number")
            end
        end
    end,
    font = function(v)
        if not is_object(v) then errors.validation("font must be an object") end
        if type(v.url) ~= "string" then errors.validation("font.url is required") end
    end,
    dark_mode = function(v)
        if not DARK_MODES[v] then errors.validation("dark_mode must be dark, light or auto") end
    end,
}
for _, f in ipairs({ "logo_url", "favicon_url", "powered_by_logo_url" }) do
    CHECKS[f] = function(v) opt_string(v, f) end
end

return function(ctx)
    local M = {}

    -- set(t, branding) -> nothing. A merge: every field given replaces the stored one.
    function M.set(tenant_id, branding)
        store.need_string(tenant_id, "tenant_id")
        store.need_table(branding, "branding")
        local set, remove = {}, {}
        for _, f in ipairs(FIELDS) do
            local v = branding[f]
            if v == null then
                remove[#remove + 1] = f
            elseif v ~= nil then
                CHECKS[f](v)
                local kind = E.json[f]
                set[f] = kind and util.json_field(v, kind) or v
            end
        end
        local now = ctx:now_iso()
        set.entityType, set.tenant_id, set.updated_at = E.entity_type, tenant_id, now
        -- the item as DynamoDB measures it (core.item_size, §9.3 #15): key, created_at and the fields
        -- set (stored fields this call leaves alone are not counted; DynamoDB refuses what is over)
        local whole = util.shallow_copy(set)
        local k = keys.branding(tenant_id)
        whole.PK, whole.SK, whole.created_at = k.PK, k.SK, now
        local size = core.item_size(whole)
        if size > MAX_ITEM_BYTES then
            errors.validation("branding is %d bytes as an item; DynamoDB's limit is 400 KB", size)
        end
        ctx.client:call("UpdateItem", ctx:upsert_request(keys.branding(tenant_id), set, { created_at = now }, remove))
    end

    -- get(t) -> branding or nil.
    function M.get(tenant_id)
        store.need_string(tenant_id, "tenant_id")
        local k = keys.branding(tenant_id)
        return store.to_record(E, ctx:get_item(k.PK, k.SK, true))
    end

    return store.adapter(M)
end
