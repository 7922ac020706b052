-- hookCode (contract §6): TENANT#{t} / HOOK_CODE#{id}, generated ids "hc_" + 21 characters; the
-- record carries tenant_id (AuthHero's HookCode has it); secrets stored as JSON text. code is at
-- most 100 000 characters, counted as JavaScript counts them (UTF-16 code units). update is one
-- conditional UpdateItem, never a read-modify-write. list (not AuthHero's: for the command line's
-- export) pages the tenant's HOOK_CODE# range.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys
local null = core.null

local E = schema.entity("hookCode")
local MAX_CODE = 100000

-- JavaScript's length of a UTF-8 string: one per character, two for those beyond U+FFFF.
local function js_length(s)
    local _, chars = s:gsub("[^\128-\191]", "")
    local _, astral = s:gsub("[\240-\247]", "")
    return chars + astral
end

local function check_code(code)
    if type(code) ~= "string" then errors.validation("code is required") end
    local n = js_length(code)
    if n > MAX_CODE then errors.validation("code is %d characters; at most %d are allowed", n, MAX_CODE) end
end

local function check_secrets(s)
    if s == nil or s == null then return end
    if type(s) ~= "table" or core.is_array(s) or #s > 0 then errors.validation("secrets must be an object") end
    for k, v in pairs(s) do
        if type(k) ~= "string" or type(v) ~= "string" then errors.validation("secrets must map strings to strings") end
    end
end

local function record(item)
    local r = store.to_record(E, item)
    if r == nil then return nil end
    return { id = r.id, tenant_id = r.tenant_id, code = r.code, secrets = r.secrets, created_at = r.created_at,
        updated_at = r.updated_at }
end

return function(ctx)
    local M = {}

    -- create(t, { code, secrets? }, options?) -> the hook code, tenant_id included.
    function M.create(t, hook_code, options)
        store.need_string(t, "tenant_id")
        store.need_table(hook_code, "hook code")
        check_code(hook_code.code)
        check_secrets(hook_code.secrets)
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id
        if id == nil and hook_code.id ~= null then id = hook_code.id end
        if id == nil then id = "hc_" .. ctx.new_id() end
        store.need_string(id, "id")
        local rec = { id = id, tenant_id = t, code = hook_code.code, created_at = created, updated_at = updated }
        if hook_code.secrets ~= null then rec.secrets = hook_code.secrets end
        local item = ctx:to_item(E, rec, keys.hook_code(t, id))
        ctx:put_new(item, "Hook code already exists")
        return record(item)
    end

    function M.get(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.hook_code(t, id)
        return record(ctx:get_item(k.PK, k.SK))
    end

    -- update(t, id, partial) -> boolean: code and secrets replace the stored ones (secrets null
    -- removes them), in one conditional UpdateItem.
    function M.update(t, id, partial)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_table(partial, "hook code")
        if partial.code ~= nil then check_code(partial.code) end
        check_secrets(partial.secrets)
        local set, remove = ctx:patch_sets(E, { code = partial.code, secrets = partial.secrets })
        return ctx:update_item(keys.hook_code(t, id), set, remove)
    end

    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.hook_code(t, id)
        return ctx:delete_item(k.PK, k.SK) ~= nil
    end

    -- list(t, params?) -> { hook_codes, start, limit, length, total?, next? }, by id.
    function M.list(t, params)
        store.need_string(t, "tenant_id")
        return ctx:list({ params = params, pk = keys.tenant_partition(t), prefix = schema.prefix.hook_code,
            to_record = record, items_key = "hook_codes", sortable = E.sortable })
    end

    return store.adapter(M)
end
