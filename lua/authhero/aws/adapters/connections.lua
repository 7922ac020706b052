-- connections (contract §4.5): PK TENANT#{t} / SK CONNECTION#{id}, with the name index GSI1
-- TENANT#{t}#CONNECTION_NAME#{name} / CONNECTION (rewritten on rename) serving `q = "name:…"`.
-- Names are not unique. remove detaches the connection from clients and organizations (the
-- client-connection and organization-connection items the registry lists under it, found through
-- their GSI1 / GSI2 connection keys). The module is callable; `record(item)` is shared with
-- client_connections.
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("connections")

-- A copy of v without null-valued map entries, at every depth (AuthHero does this for Terraform
-- payloads). Array elements are kept as they are; marker metatables survive the copy.
local function drop_nulls(v)
    if type(v) ~= "table" then return v end
    local out = {}
    local is_array = core.is_array(v)
    for k, x in pairs(v) do
        if x ~= null or is_array then out[k] = drop_nulls(x) end
    end
    return setmetatable(out, getmetatable(v))
end

-- options, enabled_clients and is_system as stored: null options -> {}, null enabled_clients -> [],
-- is_system only when true (false or null removes it).
local function normalize(r)
    if r.options ~= nil then
        if r.options == null then r.options = {} else r.options = drop_nulls(r.options) end
    end
    if r.enabled_clients == null then r.enabled_clients = core.array({}) end
    if r.is_system ~= nil and r.is_system ~= true then r.is_system = null end
end

-- The record a connection item stands for (nil for any other item); is_system only when true.
local function record(item)
    local r = store.to_record(E, item)
    if r and r.is_system ~= true then r.is_system = nil end
    return r
end

local function new(ctx)
    local M = {}

    function M.create(tenant_id, connection, options)
        store.need_string(tenant_id, "tenant_id")
        store.need_table(connection, "connection")
        store.need_string(connection.name, "name")
        store.need_string(connection.strategy, "strategy")
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id or connection.id
        if id == nil or id == null then id = ctx.new_id() end
        store.need_string(id, "id")
        local rec = util.shallow_copy(connection)
        normalize(rec)
        if rec.options == nil then rec.options = {} end
        if rec.enabled_clients == nil then rec.enabled_clients = core.array({}) end
        rec.id, rec.created_at, rec.updated_at = id, created, updated
        local k = keys.connection(tenant_id, id)
        local idx = keys.connection_name_index(tenant_id, rec.name)
        k.GSI1PK, k.GSI1SK = idx.GSI1PK, idx.GSI1SK
        k.tenant_id = tenant_id
        local item = ctx:to_item(E, rec, k)
        ctx:put_new(item, "Connection already exists")
        return record(item)
    end

    function M.get(tenant_id, id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(id, "id")
        local k = keys.connection(tenant_id, id)
        local item = ctx:get_item(k.PK, k.SK)
        return item and record(item) or nil
    end

    -- Connections with this exact name through GSI1, re-checked for tenant and name (§2.10).
    local function by_name(tenant_id, name)
        local out = ctx:index_records(schema.templates.connection_name_index, { tenant_id = tenant_id, name = name },
            record)
        table.sort(out, function(a, b) return a.id < b.id end)
        return out
    end

    function M.list(tenant_id, params)
        store.need_string(tenant_id, "tenant_id")
        return ctx:list({
            params = params, spec = E.q, pk = keys.tenant_partition(tenant_id), prefix = schema.prefix.connection,
            to_record = record, items_key = "connections", sortable = E.sortable,
            fast_paths = { name = function(v) return by_name(tenant_id, v) end },
        })
    end

    -- One UpdateItem; a rename rewrites the name index in the same write.
    function M.update(tenant_id, id, patch)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        if patch.name ~= nil then store.need_string(patch.name, "name") end
        if patch.strategy ~= nil then store.need_string(patch.strategy, "strategy") end
        local p = util.shallow_copy(patch)
        normalize(p)
        local set, remove = ctx:patch_sets(E, p, { id = true, created_at = true })
        if p.name ~= nil then
            local idx = keys.connection_name_index(tenant_id, p.name)
            set.GSI1PK, set.GSI1SK = idx.GSI1PK, idx.GSI1SK
        end
        return ctx:update_item(keys.connection(tenant_id, id), set, remove)
    end

    -- Detaches the connection from the clients that use it (what it owns per the registry), then
    -- deletes it.
    function M.remove(tenant_id, id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(id, "id")
        local k = keys.connection(tenant_id, id)
        local cur = ctx:get_item(k.PK, k.SK, true)
        if cur == nil then return false end
        ctx:delete_items(ctx:removal_items(E, cur, { without_self = true }), "connection " .. id)
        return ctx:delete_item(k.PK, k.SK) ~= nil
    end

    return store.adapter(M)
end

return setmetatable({ record = record, entity = E }, {
    __call = function(_, ctx) return new(ctx) end,
})
