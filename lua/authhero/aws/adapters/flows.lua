-- flows (contract §6): TENANT#{t} / FLOW#{id}, generated ids "af_" + 21 characters; actions stored
-- as JSON text (an array, [] when absent). create is 409 on a taken id (importMetadata's, else the
-- record's, else generated); update is one conditional UpdateItem (store.update_item, with its
-- retry rules) and a consistent read of the flow it returns, nil when there is none; list pages the
-- tenant's FLOW# range (store.list).
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys
local null = core.null

local E = schema.entity("flows")

local is_array = util.is_json_array

local function check(r, patch)
    if not patch or r.name ~= nil then store.need_string(r.name, "name") end
    local a = r.actions
    if a ~= nil and a ~= null then
        if not is_array(a) then errors.validation("actions must be an array") end
        for _, step in ipairs(a) do
            if type(step) ~= "table" or core.is_array(step) then errors.validation("actions must be objects") end
        end
    end
end

local function record(item)
    local r = store.to_record(E, item)
    if r == nil then return nil end
    return { id = r.id, name = r.name, actions = r.actions or core.array({}), created_at = r.created_at,
        updated_at = r.updated_at }
end

return function(ctx)
    local M = {}

    function M.create(t, params, options)
        store.need_string(t, "tenant_id")
        store.need_table(params, "flow")
        check(params, false)
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id
        if id == nil and params.id ~= null then id = params.id end
        if id == nil then id = "af_" .. ctx.new_id() end
        store.need_string(id, "id")
        local actions = params.actions
        if actions == nil or actions == null then actions = core.array({}) end
        local rec = { id = id, tenant_id = t, name = params.name, actions = actions, created_at = created,
            updated_at = updated }
        local item = ctx:to_item(E, rec, keys.flow(t, id))
        ctx:put_new(item, "Flow already exists")
        return record(item)
    end

    function M.get(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.flow(t, id)
        return record(ctx:get_item(k.PK, k.SK))
    end

    -- list(t, params?) -> { flows, start, limit, length, total?, next? }, by id unless sorted.
    function M.list(t, params)
        store.need_string(t, "tenant_id")
        return ctx:list({
            params = params, spec = E.q, pk = keys.tenant_partition(t), prefix = schema.prefix.flow,
            to_record = record, items_key = "flows", sortable = E.sortable,
            fast_paths = { id = function(v)
                if v == "" then return {} end
                return { M.get(t, v) }
            end },
        })
    end

    -- update(t, id, partial) -> the updated flow, or nil when there is none. name and actions
    -- replace the stored ones (actions null: []); id and created_at are not changed.
    function M.update(t, id, partial)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_table(partial, "flow")
        if partial.name == null then errors.validation("name cannot be removed") end
        check(partial, true)
        local p = { name = partial.name, actions = partial.actions }
        if p.actions == null then p.actions = core.array({}) end
        local set, remove = ctx:patch_sets(E, p)
        local k = keys.flow(t, id)
        if not ctx:update_item(k, set, remove) then return nil end
        return record(ctx:get_item(k.PK, k.SK, true))
    end

    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.flow(t, id)
        return ctx:delete_item(k.PK, k.SK) ~= nil
    end

    return store.adapter(M)
end
