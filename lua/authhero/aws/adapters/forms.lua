-- forms (contract §6): TENANT#{t} / FORM#{id}. messages, languages, translations, nodes, start,
-- ending, style and links are stored as JSON text (upstream drops links; we keep every field of
-- AuthHero's form schema, and only those). create is 409 on a taken id (importMetadata's, else the
-- record's, else generated); update is one conditional UpdateItem; list pages the tenant's FORM#
-- range with q, sort and keyset cursors (store.list).
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys
local null = core.null

local E = schema.entity("forms")
-- the structured fields, each "object" or "array" (the registry's json)
local STRUCTURED = { "messages", "languages", "translations", "nodes", "start", "ending", "style", "links" }

local is_object = util.is_json_object

local is_array = util.is_json_array

-- Checks a form or a patch (patch: absent fields are fine; null removes a structured field).
local function check(r, patch)
    if not patch or r.name ~= nil then store.need_string(r.name, "name") end
    for _, f in ipairs(STRUCTURED) do
        local v = r[f]
        if v ~= nil and v ~= null then
            if E.json[f] == "array" then
                if not is_array(v) then errors.validation("%s must be an array", f) end
            elseif not is_object(v) then
                errors.validation("%s must be an object", f)
            end
        end
    end
end

local function record(item)
    local r = store.to_record(E, item)
    if r == nil then return nil end
    local out = { id = r.id, name = r.name, created_at = r.created_at, updated_at = r.updated_at }
    for _, f in ipairs(STRUCTURED) do out[f] = r[f] end
    return out
end

return function(ctx)
    local M = {}

    function M.create(t, params, options)
        store.need_string(t, "tenant_id")
        store.need_table(params, "form")
        check(params, false)
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id
        if id == nil and params.id ~= null then id = params.id end
        if id == nil then id = ctx.new_id() end
        store.need_string(id, "id")
        local rec = { id = id, tenant_id = t, name = params.name, created_at = created, updated_at = updated }
        for _, f in ipairs(STRUCTURED) do
            if params[f] ~= null then rec[f] = params[f] end
        end
        local item = ctx:to_item(E, rec, keys.form(t, id))
        ctx:put_new(item, "Form already exists")
        return record(item)
    end

    function M.get(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.form(t, id)
        return record(ctx:get_item(k.PK, k.SK))
    end

    -- list(t, params?) -> { forms, start, limit, length, total?, next? }, by id unless sorted.
    function M.list(t, params)
        store.need_string(t, "tenant_id")
        return ctx:list({
            params = params, spec = E.q, pk = keys.tenant_partition(t), prefix = schema.prefix.form,
            to_record = record, items_key = "forms", sortable = E.sortable,
            fast_paths = { id = function(v)
                if v == "" then return {} end
                return { M.get(t, v) }
            end },
        })
    end

    -- update(t, id, partial) -> boolean: the given fields replace the stored ones (each structured
    -- field whole); id and created_at are not changed; name cannot be removed.
    function M.update(t, id, partial)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_table(partial, "form")
        if partial.name == null then errors.validation("name cannot be removed") end
        check(partial, true)
        local p = { name = partial.name }
        for _, f in ipairs(STRUCTURED) do p[f] = partial[f] end
        local set, remove = ctx:patch_sets(E, p)
        return ctx:update_item(keys.form(t, id), set, remove)
    end

    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.form(t, id)
        return ctx:delete_item(k.PK, k.SK) ~= nil
    end

    return store.adapter(M)
end
