-- organizationConnections (contract §6): a connection enabled for an organization, PK
-- TENANT#{t}#ORG#{organization_id} / SK ORG_CONNECTION#{connection_id} (one per pair: create is 409 on
-- an existing one, SQL's unique index), GSI2 TENANT#{t}#CONNECTION#{connection_id} /
-- ORG_CONNECTION#{organization_id} so that removing the connection finds them. Records embed the
-- connection's {name, strategy}, read with one BatchGetItem per list (get reads both items in one).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys
local null = core.null

local E = schema.entity("organizationConnections")
local CONNECTION = schema.entity("connections")

local DEFAULTS = { assign_membership_on_login = false, show_as_button = true, is_signup_enabled = true }
local EXISTS = "Connection already enabled for this organization"

local function check_flags(r)
    for f in pairs(DEFAULTS) do
        local v = r[f]
        if v ~= nil and v ~= null and type(v) ~= "boolean" then errors.validation("%s must be a boolean", f) end
    end
end

-- The item key and GSI2 key of a pair, with the fields they are built from (for check_key).
local function pair_keys(t, organization_id, connection_id)
    local f = { tenant_id = t, organization_id = organization_id, connection_id = connection_id }
    local k = keys.organization_connection(f)
    local ix = keys.organization_connection_connection_index(f)
    k.GSI2PK, k.GSI2SK = ix.GSI2PK, ix.GSI2SK
    return k
end

-- The record an item stands for (defaults filled for items written without them), connection added.
local function record(item, connection)
    local r = store.to_record(E, item)
    if r == nil then return nil end
    for f, v in pairs(DEFAULTS) do
        if r[f] == nil then r[f] = v end
    end
    if connection then r.connection = { name = connection.name, strategy = connection.strategy } end
    return r
end

return function(ctx)
    -- connection id -> its item, for the connections of tenant t named by the items; one
    -- BatchGetItem (per 100) reading only what the record embeds.
    local function connections_of(t, items)
        local ks, seen = {}, {}
        for _, it in ipairs(items) do
            local id = it.connection_id
            if type(id) == "string" and not seen[id] then
                seen[id] = true
                local k = keys.connection(t, id)
                if not schema.oversized(k) then ks[#ks + 1] = k end
            end
        end
        local by_id = {}
        if #ks == 0 then return by_id end
        local got, left = ctx.client:batch_get(ctx.table, ks, { ProjectionExpression = "#i, #t, #e, #n, #s",
            ExpressionAttributeNames = { ["#i"] = "id", ["#t"] = "tenant_id", ["#e"] = "entityType", ["#n"] = "name",
                ["#s"] = "strategy" } })
        if #left > 0 then
            errors.raise(0, "UnprocessedKeys", #left .. " connections could not be read; try again",
                { unprocessed = left })
        end
        for _, c in ipairs(got) do
            if c.entityType == CONNECTION.entity_type and c.tenant_id == t and type(c.id) == "string" then
                by_id[c.id] = c
            end
        end
        return by_id
    end

    local function with_connection(t, item)
        if item == nil or item.entityType ~= E.entity_type then return nil end
        return record(item, connections_of(t, { item })[item.connection_id])
    end

    local function need_pair(t, organization_id, connection_id)
        store.need_string(t, "tenant_id")
        store.need_string(organization_id, "organization_id")
        store.need_string(connection_id, "connection_id")
    end

    local M = {}

    -- create(t, organization_id, c, options?) -> record; 409 when the pair exists.
    function M.create(t, organization_id, c, options)
        store.need_string(t, "tenant_id")
        store.need_string(organization_id, "organization_id")
        store.need_table(c, "organization connection")
        store.need_string(c.connection_id, "connection_id")
        check_flags(c)
        local created, updated = ctx:stamps(options)
        local rec = { tenant_id = t, organization_id = organization_id, connection_id = c.connection_id,
            created_at = created, updated_at = updated }
        for f, v in pairs(DEFAULTS) do
            if c[f] == nil or c[f] == null then rec[f] = v else rec[f] = c[f] end
        end
        local item = ctx:to_item(E, rec, pair_keys(t, organization_id, c.connection_id))
        ctx:put_new(item, EXISTS)
        return with_connection(t, item)
    end

    -- get(t, organization_id, connection_id) -> record or nil: the pair and its connection in one
    -- BatchGetItem.
    function M.get(t, organization_id, connection_id)
        need_pair(t, organization_id, connection_id)
        local k = keys.organization_connection(t, organization_id, connection_id)
        local ck = keys.connection(t, connection_id)
        if schema.oversized(k) or schema.oversized(ck) then return nil end
        local got, left = ctx.client:batch_get(ctx.table, { k, ck }, { ConsistentRead = true })
        if #left > 0 then
            errors.raise(0, "UnprocessedKeys", "organization connection could not be read; try again",
                { unprocessed = left })
        end
        local item, conn
        for _, it in ipairs(got) do
            if it.SK == k.SK and it.PK == k.PK then item = it end
            if it.SK == ck.SK and it.PK == ck.PK and it.entityType == CONNECTION.entity_type and it.tenant_id == t then
                conn = it
            end
        end
        if item == nil or item.tenant_id ~= t then return nil end
        return record(item, conn)
    end

    -- list(t, organization_id) -> the organization's connections (by connection id), each with its
    -- connection embedded: one Query and one BatchGetItem.
    function M.list(t, organization_id)
        store.need_string(t, "tenant_id")
        store.need_string(organization_id, "organization_id")
        local items = {}
        for _, it in ipairs(ctx:query_all({ pk = keys.organization_partition(t, organization_id),
            prefix = schema.prefix.organization_connection, consistent = true })) do
            if it.entityType == E.entity_type and it.tenant_id == t then items[#items + 1] = it end
        end
        local out = core.array({})
        if #items == 0 then return out end
        local conns = connections_of(t, items)
        for _, it in ipairs(items) do out[#out + 1] = record(it, conns[it.connection_id]) end
        return out
    end

    -- update(t, organization_id, connection_id, patch) -> the updated record, or nil when there is
    -- none. connection_id (and the keys' fields) cannot change; null sets a flag back to its default.
    function M.update(t, organization_id, connection_id, patch)
        need_pair(t, organization_id, connection_id)
        store.need_table(patch, "patch")
        check_flags(patch)
        local p = {}
        for f, v in pairs(DEFAULTS) do
            if patch[f] == null then p[f] = v else p[f] = patch[f] end
        end
        local set = ctx:patch_sets(E, p)
        local k = keys.organization_connection(t, organization_id, connection_id)
        if schema.oversized(k) then return nil end
        local req = ctx:update_request(k, set, nil, function(st)
            return "attribute_exists(" .. st.name("PK") .. ") AND " .. st.name("entityType") .. " = "
                .. st.value(E.entity_type)
        end)
        req.ReturnValues = "ALL_NEW"
        local ok, res = pcall(ctx.client.call, ctx.client, "UpdateItem", req)
        if not ok then
            if errors.is(res, "ConditionalCheckFailedException") then return nil end
            error(res, 0)
        end
        return with_connection(t, res.Attributes)
    end

    -- remove(t, organization_id, connection_id) -> true when it was there.
    function M.remove(t, organization_id, connection_id)
        need_pair(t, organization_id, connection_id)
        local k = keys.organization_connection(t, organization_id, connection_id)
        local old = ctx:delete_item(k.PK, k.SK)
        return old ~= nil and old.entityType == E.entity_type
    end

    return store.adapter(M)
end
