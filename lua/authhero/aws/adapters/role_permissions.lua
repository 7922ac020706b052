-- rolePermissions (contract §4.11): PK TENANT#{t}#ROLE#{r} / SK PERMISSION#{rs}#{perm}, each part
-- escaped, so an identifier holding '#' never collides with another (identifier, name) pair.
-- assign is idempotent (existing rows keep created_at: BatchGetItem, then BatchWriteItem of the
-- new ones); remove is a batch delete that reports true even for absent pairs.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local byte_lt = util.byte_lt

local ENTITY = schema.entity("rolePermissions").entity_type

-- Validates the permissions argument (400) and returns the distinct pairs, in the caller's order.
local function pairs_of(permissions)
    store.need_table(permissions, "permissions")
    local out, seen = {}, {}
    for i, p in ipairs(permissions) do
        if type(p) ~= "table" then errors.validation("permissions[%d] must be a table", i) end
        store.need_string(p.resource_server_identifier, "resource_server_identifier")
        store.need_string(p.permission_name, "permission_name")
        store.opt_string(p.resource_server_name, "resource_server_name")
        local id = p.resource_server_identifier .. "\0" .. p.permission_name
        if not seen[id] then
            seen[id] = true
            out[#out + 1] = p
        end
    end
    return out
end

local function record(item)
    if item == nil or item.entityType ~= ENTITY then return nil end
    return {
        role_id = item.role_id,
        resource_server_identifier = item.resource_server_identifier,
        resource_server_name = item.resource_server_name or item.resource_server_identifier,
        permission_name = item.permission_name,
        created_at = item.created_at,
    }
end

return function(ctx)
    local M = {}

    local function write(requests, what)
        if #requests == 0 then return end
        local left = ctx.client:batch_write(ctx.table, requests)
        if #left > 0 then
            errors.raise(0, "UnprocessedItems", #left .. " role permissions could not be " .. what,
                { unprocessed = left })
        end
    end

    -- assign(t, role_id, permissions, options?) -> true. A role_id inside the items is ignored.
    function M.assign(t, role_id, permissions, options)
        store.need_string(t, "tenant_id")
        store.need_string(role_id, "role_id")
        local list = pairs_of(permissions)
        if #list == 0 then return true end
        local created = ctx:stamps(options)
        local ks = {}
        for i, p in ipairs(list) do
            ks[i] = keys.role_permission(t, role_id, p.resource_server_identifier, p.permission_name)
        end
        local existing, left = ctx.client:batch_get(ctx.table, ks, { ConsistentRead = true })
        if #left > 0 then
            errors.raise(0, "UnprocessedKeys", #left .. " role permissions could not be read", { unprocessed = left })
        end
        local have = {}
        for _, it in ipairs(existing) do have[it.SK] = true end
        local puts = {}
        for i, p in ipairs(list) do
            if not have[ks[i].SK] then
                puts[#puts + 1] = { PutRequest = { Item = {
                    PK = ks[i].PK, SK = ks[i].SK, entityType = ENTITY, tenant_id = t, role_id = role_id,
                    resource_server_identifier = p.resource_server_identifier,
                    resource_server_name = p.resource_server_name ~= core.null and p.resource_server_name or nil,
                    permission_name = p.permission_name, created_at = created, updated_at = created,
                } } }
            end
        end
        write(puts, "written")
        return true
    end

    -- remove(t, role_id, permissions) -> true, also when some pairs were not assigned.
    function M.remove(t, role_id, permissions)
        store.need_string(t, "tenant_id")
        store.need_string(role_id, "role_id")
        local dels = {}
        for _, p in ipairs(pairs_of(permissions)) do
            local k = keys.role_permission(t, role_id, p.resource_server_identifier, p.permission_name)
            dels[#dels + 1] = { DeleteRequest = { Key = k } }
        end
        write(dels, "deleted")
        return true
    end

    -- list(t, role_id, params?) -> array, ordered by identifier then name (byte order of the raw
    -- values, which the escaped sort keys do not preserve), offset pages (default 50), no totals.
    function M.list(t, role_id, params)
        store.need_string(t, "tenant_id")
        store.need_string(role_id, "role_id")
        params = params or {}
        store.need_table(params, "params")
        if type(params.q) == "string" and not params.q:match("^%s*$") then
            errors.validation("q is not supported when listing role permissions")
        end
        store.opt_count(params.page, "page")
        store.opt_count(params.per_page, "per_page")
        local per_page = params.per_page or 50
        if per_page < 1 then per_page = 1 end
        if per_page > ctx.max_page_size then per_page = ctx.max_page_size end
        local all = {}
        for _, it in ipairs(ctx:query_all({ pk = keys.role_partition(t, role_id), prefix = schema.prefix.role_permission,
            consistent = true })) do
            local r = record(it)
            if r then all[#all + 1] = r end
        end
        table.sort(all, function(a, b)
            if a.resource_server_identifier ~= b.resource_server_identifier then
                return byte_lt(a.resource_server_identifier, b.resource_server_identifier)
            end
            return byte_lt(a.permission_name, b.permission_name)
        end)
        local out = core.array({})
        local skip = (params.page or 0) * per_page
        for i = skip + 1, math.min(skip + per_page, #all) do out[#out + 1] = all[i] end
        return out
    end

    return store.adapter(M)
end
