-- tenants (contract §4.1): PK TENANT#{t} / SK TENANT, listed through GSI1 TENANTS / TENANT#{t}.
-- remove cascades through the registry: the tenant partition and everything its records own
-- (their partitions, index-found records, helper items such as client-id pointers and domain
-- claims), and the tenant's items in global partitions (signing keys).
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys
local E = schema.entity("tenants")

return function(ctx)
    local function to_record(item) return store.to_record(E, item) end

    local M = {}

    function M.create(params, options)
        store.need_table(params, "tenant")
        store.need_string(params.friendly_name, "friendly_name")
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id or params.id or ctx.new_id()
        store.need_string(id, "id")
        local rec = {}
        for k, v in pairs(params) do rec[k] = v end
        rec.id, rec.created_at, rec.updated_at = id, created, updated
        local k = keys.tenant(id)
        for a, v in pairs(schema.index_attrs(E, rec)) do k[a] = v end
        local item = ctx:to_item(E, rec, k)
        ctx:put_new(item, "Tenant already exists")
        return to_record(item)
    end

    function M.get(id)
        store.need_string(id, "id")
        local k = keys.tenant(id)
        local item = ctx:get_item(k.PK, k.SK, true)
        return item and to_record(item) or nil
    end

    function M.list(params)
        params = params or {}
        local res = ctx:list({
            params = params, spec = E.q, index = "GSI1", pk = keys.tenant_index("").GSI1PK,
            prefix = schema.prefix.tenant_index, to_record = to_record, items_key = "tenants", sortable = E.sortable,
            fast_paths = { id = function(v)
                local r = M.get(v)
                return { r }
            end },
        })
        local out = { tenants = res.tenants }
        if params.include_totals or params.from ~= nil or params.take ~= nil then
            out.totals = { start = res.start, limit = res.limit, length = res.length, total = res.total, next = res.next }
        end
        return out
    end

    function M.update(id, patch)
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        local set, remove = ctx:patch_sets(E, patch, { id = true, created_at = true })
        return ctx:update_item(keys.tenant(id), set, remove)
    end

    -- Deletes everything the tenant owns, then the tenant; true when the tenant existed. Without
    -- a tenant item the leftovers of its id are removed all the same.
    function M.remove(id)
        store.need_string(id, "id")
        local k = keys.tenant(id)
        local item = ctx:get_item(k.PK, k.SK, true)
        local root = item or { PK = k.PK, SK = k.SK, id = id, entityType = E.entity_type }
        ctx:delete_items(ctx:removal_items(E, root, { without_self = item == nil }), "tenant " .. id)
        return item ~= nil
    end

    return store.adapter(M)
end
