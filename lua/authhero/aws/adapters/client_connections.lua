-- clientConnections (contract §6): a client's connections in display order, one item per pair
-- (PK TENANT#{t}#CLIENT#{c} / SK CLIENT_CONNECTION#{order:05}#{id}, GSI1 TENANT#{t}#CONNECTION#{id} /
-- CLIENT_CONNECTION#{c}), plus a version item (SK CLIENT_CONNECTION_LIST) that fences every write
-- adding to a client's list, so no connection is listed twice. The partition goes with the client.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local connections = require "authhero.aws.adapters.connections"

local keys = schema.keys
local null = core.null

local E = schema.entity("clientConnections")

local LIST = schema.templates.client_connection_list -- the version item (registry helper)
local READ_PREFIX = "CLIENT_CONNECTION" -- the items (CLIENT_CONNECTION#…) and the list item, in one Query
local MAX_ORDER = 99999                 -- five digits in the sort key
local CHUNK = 99                        -- writes per transaction, next to the version update
local MAX_LOST = 25                     -- lost races (another writer committed first) before a 409
local BUSY = "Client connections were modified concurrently; try again"

-- The item key (and GSI1 key) of a (client, connection) pair at an order.
local function item_keys(t, client_id, connection_id, order)
    local f = { tenant_id = t, client_id = client_id, connection_id = connection_id, order = order }
    local k = keys.client_connection(f)
    local ix = keys.client_connection_connection_index(f)
    k.GSI1PK, k.GSI1SK = ix.GSI1PK, ix.GSI1SK
    return k
end

-- The keys of a pair with the ids they are built from, for the store's key-size check (the order
-- does not change key lengths).
local function pair_keys(t, client_id, connection_id)
    local k = item_keys(t, client_id, connection_id, 0)
    k.tenant_id, k.client_id, k.connection_id = t, client_id, connection_id
    return k
end

local function order_of(it)
    if type(it.order) == "number" then return it.order end
    return tonumber(tostring(it.SK):match("^CLIENT_CONNECTION#(%d+)#")) or 0
end

return function(ctx)
    local function list_key(t, client_id)
        return keys.client_connection_list(t, client_id)
    end

    -- The client's items in order (sort-key order is the display order) and its list item.
    local function read_state(t, client_id)
        local items, head = {}, nil
        for _, it in ipairs(ctx:query_all({ pk = keys.client_partition(t, client_id), prefix = READ_PREFIX,
            consistent = true })) do
            if it.entityType == E.entity_type and it.tenant_id == t then
                items[#items + 1] = it
            elseif it.entityType == LIST.entity_type and it.SK == LIST.prefix then
                head = it
            end
        end
        return items, head and head.version
    end

    local function new_item(t, client_id, connection_id, order, created, now)
        local rec = { tenant_id = t, client_id = client_id, connection_id = connection_id, order = order,
            created_at = created or now, updated_at = now }
        return ctx:to_item(E, rec, item_keys(t, client_id, connection_id, order))
    end

    -- Adds the version step to tx: version v -> v + 1, only if it is still v (nil: no list item yet).
    -- addClientToConnection and updateByClient write in one TransactWriteItems with this step, so
    -- writers that add to one client's list are serialized (a loser reads again); removals only
    -- delete and need no fence. connections.remove deleting items behind it is harmless.
    local function fence(tx, t, client_id, v, now)
        local set = { version = (v or 0) + 1, entityType = LIST.entity_type, tenant_id = t, client_id = client_id,
            updated_at = now }
        if v == nil then set.created_at = now end
        tx:update(list_key(t, client_id), set, nil, function(st)
            if v == nil then return "attribute_not_exists(" .. st.name("version") .. ")" end
            return st.name("version") .. " = " .. st.value(v)
        end)
    end

    -- Runs tx -> true, or false when another writer got there first (a failed condition, or a
    -- transaction conflict the client's retries did not get past). Other failures raise.
    local function run(tx)
        local ok, res = pcall(tx.run, tx)
        if ok then return res end
        if errors.is(res, "TransactionCanceledException") then
            local reasons = type(res.cause) == "table" and res.cause.CancellationReasons or {}
            local conflict = false
            for _, r in ipairs(reasons) do
                if r.Code == "TransactionConflict" then
                    conflict = true
                elseif r.Code ~= nil and r.Code ~= "None" then
                    error(res, 0)
                end
            end
            if conflict then return false end
        end
        error(res, 0)
    end

    -- Makes the client's list exactly `want` (distinct connection ids, in order): deletes what is not
    -- wanted where it is, writes what is missing, leaves items already in place alone. Up to CHUNK
    -- writes per transaction, each fenced by the version, so a list that fits is replaced atomically;
    -- a longer one in several steps. A lost race reads again and plans again.
    local function replace(t, client_id, want)
        local wanted = {}
        for i, id in ipairs(want) do
            local k = item_keys(t, client_id, id, i - 1)
            wanted[k.SK] = { id = id, order = i - 1, SK = k.SK }
        end
        for _ = 1, MAX_LOST do
            local items, v = read_state(t, client_id)
            local now = ctx:now_iso()
            local have, created, ops = {}, {}, {}
            for _, it in ipairs(items) do
                have[it.SK] = true
                created[it.connection_id] = created[it.connection_id] or it.created_at
                if not wanted[it.SK] then ops[#ops + 1] = { delete = { PK = it.PK, SK = it.SK } } end
            end
            for i, id in ipairs(want) do
                local k = item_keys(t, client_id, id, i - 1)
                if not have[k.SK] then ops[#ops + 1] = { put = new_item(t, client_id, id, i - 1, created[id], now) } end
            end
            if #ops == 0 then return true end
            local i, lost = 1, false
            while i <= #ops do
                local tx = ctx:tx()
                local last = math.min(#ops, i + CHUNK - 1)
                for j = i, last do
                    if ops[j].delete then tx:delete(ops[j].delete) else tx:put(ops[j].put) end
                end
                fence(tx, t, client_id, v, now)
                if not run(tx) then
                    lost = true
                    break
                end
                v = (v or 0) + 1
                i = last + 1
            end
            if not lost then return true end
        end
        store.conflict(BUSY)
    end

    local function need_ids(t, connection_id, client_id)
        store.need_string(t, "tenant_id")
        store.need_string(connection_id, "connection_id")
        store.need_string(client_id, "client_id")
    end

    local M = {}

    -- listByClient(t, client_id) -> the client's connections (records as connections.get returns
    -- them) in its order, read with one BatchGetItem per 100; connections that no longer exist are
    -- skipped.
    function M.listByClient(t, client_id)
        store.need_string(t, "tenant_id")
        store.need_string(client_id, "client_id")
        local out = core.array({})
        local ids, ks, seen = {}, {}, {}
        for _, it in ipairs(read_state(t, client_id)) do
            local id = it.connection_id
            if type(id) == "string" and not seen[id] then
                seen[id] = true
                ids[#ids + 1] = id
                ks[#ks + 1] = keys.connection(t, id)
            end
        end
        if #ks == 0 then return out end
        local got, left = ctx.client:batch_get(ctx.table, ks)
        if #left > 0 then
            errors.raise(0, "UnprocessedKeys", #left .. " connections of client " .. client_id
                .. " could not be read; try again", { unprocessed = left })
        end
        local by_id = {}
        for _, it in ipairs(got) do
            if it.tenant_id == t and type(it.id) == "string" then by_id[it.id] = connections.record(it) end
        end
        for _, id in ipairs(ids) do
            if by_id[id] then out[#out + 1] = by_id[id] end
        end
        return out
    end

    -- updateByClient(t, client_id, ids) -> true: the client's list becomes ids, in that order. A
    -- connection id given twice is listed once, at its first place.
    function M.updateByClient(t, client_id, ids)
        store.need_string(t, "tenant_id")
        store.need_string(client_id, "client_id")
        if type(ids) ~= "table" or ids == null then errors.validation("connection_ids must be an array") end
        local want, seen = {}, {}
        for i, id in ipairs(ids) do
            store.need_string(id, "connection_ids[" .. i .. "]")
            if not seen[id] then
                seen[id] = true
                want[#want + 1] = id
            end
        end
        if #want > MAX_ORDER + 1 then errors.validation("a client holds at most %d connections", MAX_ORDER + 1) end
        -- keys that would not fit: a 400 naming the id before the read
        for _, id in ipairs(want) do store.check_key(pair_keys(t, client_id, id), E) end
        if #want == 0 then store.check_key(pair_keys(t, client_id, ""), E) end
        return replace(t, client_id, want)
    end

    -- listByConnection(t, connection_id) -> the ids of the clients that have it (GSI1; items of
    -- another tenant or connection are dropped).
    function M.listByConnection(t, connection_id)
        store.need_string(t, "tenant_id")
        store.need_string(connection_id, "connection_id")
        local out = core.array({})
        local ix = keys.client_connection_connection_index({ tenant_id = t, connection_id = connection_id, client_id = "" })
        local seen = {}
        for _, it in ipairs(ctx:query_all({ pk = ix.GSI1PK, index = "GSI1",
            prefix = schema.prefix.client_connection_connection_index })) do
            if it.entityType == E.entity_type and it.tenant_id == t and it.connection_id == connection_id
                and type(it.client_id) == "string" and not seen[it.client_id] then
                seen[it.client_id] = true
                out[#out + 1] = it.client_id
            end
        end
        return out
    end

    -- addClientToConnection(t, connection_id, client_id) -> true: appends the connection to the
    -- client's list (after the highest order there); nothing changes when it is already listed.
    function M.addClientToConnection(t, connection_id, client_id)
        need_ids(t, connection_id, client_id)
        store.check_key(pair_keys(t, client_id, connection_id), E) -- before the read
        for _ = 1, MAX_LOST do
            local items, v = read_state(t, client_id)
            local top = -1
            for _, it in ipairs(items) do
                if it.connection_id == connection_id then return true end
                if order_of(it) > top then top = order_of(it) end
            end
            if top + 1 > MAX_ORDER then
                -- orders used up (many adds and removes): renumber the list with the new one at the end
                local want = {}
                for i, it in ipairs(items) do want[i] = it.connection_id end
                want[#want + 1] = connection_id
                if #want > MAX_ORDER + 1 then errors.validation("a client holds at most %d connections", MAX_ORDER + 1) end
                return replace(t, client_id, want)
            end
            local now = ctx:now_iso()
            local tx = ctx:tx()
            tx:put(new_item(t, client_id, connection_id, top + 1, nil, now))
            fence(tx, t, client_id, v, now)
            if run(tx) then return true end
        end
        store.conflict(BUSY)
    end

    -- removeClientFromConnection(t, connection_id, client_id) -> true when the connection was in
    -- the client's list (every copy is deleted), false when it was not.
    function M.removeClientFromConnection(t, connection_id, client_id)
        need_ids(t, connection_id, client_id)
        if schema.oversized(item_keys(t, client_id, connection_id, 0)) then return false end -- no such pair: no read
        local removed = false
        for _, it in ipairs(read_state(t, client_id)) do
            if it.connection_id == connection_id and ctx:delete_item(it.PK, it.SK) ~= nil then removed = true end
        end
        return removed
    end

    return store.adapter(M)
end
