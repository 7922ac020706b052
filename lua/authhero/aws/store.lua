-- The toolkit every entity adapter is written with: records <-> items, the TTL filter, writes that
-- map DynamoDB's conditions onto AuthHero's meanings (409 Conflict, false for "not found"),
-- transactions, placeholder-only expressions, and the listing engine of contract §3 (offset and
-- keyset pagination, totals, the `q` filter with index fast paths). Adapters never build
-- expressions or key strings by hand.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local _M = {}
local mt = { __index = _M }

-- Attributes that are the table's, never a record's. hasLinked marks a user that other users were
-- linked to (so reading a user without it skips the linked-users query).
local BOOKKEEPING = { PK = true, SK = true, GSI1PK = true, GSI1SK = true, GSI2PK = true, GSI2SK = true,
    entityType = true, ttl = true, hasLinked = true }
_M.BOOKKEEPING = BOOKKEEPING

local DEFAULT_PAGE, MAX_OFFSET, MAX_SORT_ROWS, MAX_ITEM_BYTES = 50, 10000, 10000, 400 * 1024

-- new(client, opts) -> ctx. opts: tableName, now (epoch ms), new_id, max_page_size, log_retention_days.
function _M.new(client, opts)
    opts = opts or {}
    if type(client) ~= "table" or type(client.call) ~= "function" then
        error("bad argument #1 to 'create_adapters' (client expected)", 3)
    end
    local now = opts.now or function() return core.now() * 1000 end
    return setmetatable({
        client = client,
        table = schema.table_name(opts.tableName or opts.table_name),
        now_ms = now,
        new_id = opts.new_id or util.new_id,
        max_page_size = opts.max_page_size or 1000,
        log_retention_days = opts.log_retention_days or 30,
    }, mt)
end

function _M.now_s(self)
    return math.floor(self.now_ms() / 1000)
end

function _M.now_iso(self)
    return util.iso(self.now_ms())
end

-- Wraps methods so that adapters.users.get(t, id) and adapters.users:get(t, id) both work.
function _M.adapter(methods)
    local a = {}
    for name, fn in pairs(methods) do
        a[name] = function(first, ...)
            if first == a then return fn(...) end
            return fn(first, ...)
        end
    end
    return a
end

-- validation helpers (400 before any request) --------------------------------------------------

function _M.need_string(v, name)
    if type(v) ~= "string" or v == "" then errors.validation("%s is required", name) end
    return v
end

function _M.need_table(v, name)
    if type(v) ~= "table" then errors.validation("%s must be a table", name) end
    return v
end

function _M.opt_string(v, name)
    if v ~= nil and v ~= core.null and type(v) ~= "string" then errors.validation("%s must be a string", name) end
    return v
end

-- nil, or a non-negative integer (a paging parameter)
function _M.opt_count(v, name)
    if v ~= nil and (type(v) ~= "number" or v ~= math.floor(v) or v < 0) then
        errors.validation("%s must be a non-negative integer", name)
    end
    return v
end

function _M.conflict(message, cause)
    errors.raise(409, "Conflict", message, { cause = cause })
end

-- records <-> items ------------------------------------------------------------------------------

-- Builds the stored item from a record: JSON fields encoded per schema (E.json: field -> "array" |
-- "object"), nils and bookkeeping names dropped, keys and entityType added.
function _M.to_item(_, E, record, keys)
    local item = {}
    for k, v in pairs(record) do
        if not BOOKKEEPING[k] and v ~= nil and (E.drop == nil or not E.drop[k]) then
            local kind = E.json and E.json[k]
            if kind then
                if v ~= core.null then item[k] = util.json_field(v, kind) end
            elseif v ~= core.null then
                item[k] = v
            end
        end
    end
    for k, v in pairs(keys) do item[k] = v end
    item.entityType = E.entity_type
    _M.check_key(item, E)
    local size = core.item_size(item) -- as DynamoDB measures it (§9.3 #15), not the JSON text's length
    if size > MAX_ITEM_BYTES then
        errors.validation("%s is %d bytes as an item; DynamoDB's limit is 400 KB", E.entity_type, size)
    end
    return item
end

-- Raises a 400 naming the field when a key attribute of item is longer than DynamoDB allows
-- (contract §2.4): the longest string among the fields the keys of E (an entity or helper, when
-- known) are built from, else the key attribute itself.
function _M.check_key(item, E)
    local attr, size, limit = schema.oversized(item)
    if not attr then return end
    local name, len = nil, -1
    local bt = E == nil and schema.by_type[item.entityType] or nil
    E = E or (bt and bt.entity)
    if E and E.item then
        local templates = { E.item }
        for _, t in ipairs(E.indexes or {}) do templates[#templates + 1] = t end
        for _, t in ipairs(E.helpers or {}) do templates[#templates + 1] = t end
        for _, t in ipairs(templates) do
            for _, f in ipairs(t.fields) do
                local v = item[f]
                if type(v) == "string" and (#v > len or (#v == len and f < name)) then name, len = f, #v end
            end
        end
    end
    errors.validation("%s is too long: the %s key would be %d bytes (DynamoDB's limit is %d)", name or attr, attr,
        size, limit)
end

-- A key no item can have (longer than DynamoDB allows): reads and writes by it find nothing.
local function impossible(key)
    return schema.oversized(key) ~= nil
end

-- A patch -> (set, remove) for update_item: nil leaves a field alone, core.null removes it, JSON
-- fields are encoded per schema; fields in `ignore` and bookkeeping names are skipped.
function _M.patch_sets(self, E, patch, ignore)
    local set, remove = {}, {}
    for k, v in pairs(patch) do
        if type(k) == "string" and not BOOKKEEPING[k] and not (ignore and ignore[k]) and not (E.drop and E.drop[k]) then
            if v == core.null then
                remove[#remove + 1] = k
            else
                local kind = E.json and E.json[k]
                set[k] = kind and util.json_field(v, kind) or v
            end
        end
    end
    table.sort(remove)
    set.updated_at = self:now_iso()
    return set, remove
end

-- created_at / updated_at for a create: importMetadata's when given, else now.
function _M.stamps(self, options)
    local im = type(options) == "table" and options.importMetadata or nil
    local now = self:now_iso()
    local created = im and im.created_at and util.normalize_time(im.created_at, "created_at") or now
    local updated = im and im.updated_at and util.normalize_time(im.updated_at, "updated_at") or created
    return created, updated, im and im.id
end

-- The record an item stands for, or nil when there is no item or it is of another entity:
-- bookkeeping removed, JSON fields decoded, and the attributes E.hidden names (stored for
-- isolation checks, e.g. tenant_id, but not part of AuthHero's record) left out.
function _M.to_record(E, item)
    if item == nil or item.entityType ~= E.entity_type then return nil end
    local r = {}
    for k, v in pairs(item) do
        if not BOOKKEEPING[k] and not (E.hidden and E.hidden[k]) then
            local kind = E.json and E.json[k]
            r[k] = kind and util.read_json_field(v, kind) or v
        end
    end
    return r
end

-- An item whose ttl is at or before now is absent (DynamoDB deletes lazily).
function _M.live(self, item)
    if item == nil then return false end
    local ttl = item.ttl
    return type(ttl) ~= "number" or ttl > self:now_s()
end

-- TTL in epoch seconds from an ISO timestamp (or nil).
function _M.ttl_from(iso)
    local ms = util.parse_iso(iso)
    return ms and math.floor(ms / 1000) or nil
end

-- expressions with placeholders only --------------------------------------------------------------

local function names_values()
    local st = { names = {}, values = {}, n = 0, v = 0, byname = {} }
    function st.name(attr)
        local ph = st.byname[attr]
        if not ph then
            st.n = st.n + 1
            ph = "#n" .. st.n
            st.byname[attr] = ph
            st.names[ph] = attr
        end
        return ph
    end
    function st.value(v)
        st.v = st.v + 1
        local ph = ":v" .. st.v
        st.values[ph] = v
        return ph
    end
    function st.apply(req)
        if next(st.names) then req.ExpressionAttributeNames = st.names end
        if next(st.values) then req.ExpressionAttributeValues = st.values end
        return req
    end
    return st
end
_M.names_values = names_values

-- UpdateItem request: set = { attr = value }, remove = { attr, ... }; cond built by cond_fn(st);
-- once = { attr = value } is set only where the item has no value yet (if_not_exists), after set.
function _M.update_request(self, key, set, remove, cond_fn, once)
    if set then _M.check_key(set) end -- index keys the update moves
    local st = names_values()
    local sets, rems = {}, {}
    for _, k in ipairs(util.sorted_keys(set)) do sets[#sets + 1] = st.name(k) .. " = " .. st.value(set[k]) end
    for _, k in ipairs(util.sorted_keys(once)) do
        local n = st.name(k)
        sets[#sets + 1] = n .. " = if_not_exists(" .. n .. ", " .. st.value(once[k]) .. ")"
    end
    for _, k in ipairs(remove or {}) do rems[#rems + 1] = st.name(k) end
    local expr = {}
    if #sets > 0 then expr[#expr + 1] = "SET " .. table.concat(sets, ", ") end
    if #rems > 0 then expr[#expr + 1] = "REMOVE " .. table.concat(rems, ", ") end
    local req = { TableName = self.table, Key = key, UpdateExpression = table.concat(expr, " ") }
    if cond_fn then req.ConditionExpression = cond_fn(st) end
    return st.apply(req)
end

-- UpdateItem request that creates the item when it is absent (no condition): SET `set`, `once` only
-- where the item has no value yet (e.g. created_at), REMOVE `remove`.
function _M.upsert_request(self, key, set, once, remove)
    return self:update_request(key, set, remove, nil, once)
end

-- replace_item(E, key, record, clear, keep_created) -> nothing: one UpdateItem that makes the item
-- at key exactly the record's, creating it when absent (no read): every attribute to_item stores
-- (checked as to_item checks) is set and the fields in `clear` the record lacks are removed.
-- keep_created: created_at is the stored one when there is one (record.created_at otherwise);
-- else record.created_at replaces it (an import's timestamp).
function _M.replace_item(self, E, key, record, clear, keep_created)
    local item = self:to_item(E, record, key)
    local set, once, remove = {}, nil, {}
    for a, v in pairs(item) do
        if a ~= "PK" and a ~= "SK" then set[a] = v end
    end
    if keep_created then set.created_at, once = nil, { created_at = item.created_at } end
    for _, f in ipairs(clear or {}) do
        if item[f] == nil then remove[#remove + 1] = f end
    end
    self.client:call("UpdateItem", self:upsert_request({ PK = key.PK, SK = key.SK }, set, once, remove))
end

-- "the item exists and is live"
function _M.cond_exists_live(self, st)
    return "attribute_exists(" .. st.name("PK") .. ") AND (attribute_not_exists(" .. st.name("ttl") .. ") OR "
        .. st.name("ttl") .. " > " .. st.value(self:now_s()) .. ")"
end

-- "no live item here" (an expired one may be overwritten)
function _M.cond_absent(self, st)
    return "attribute_not_exists(" .. st.name("PK") .. ") OR " .. st.name("ttl") .. " <= " .. st.value(self:now_s())
end

-- single-item operations ---------------------------------------------------------------------------

function _M.get_item(self, pk, sk, consistent)
    if impossible({ PK = pk, SK = sk }) then return nil end
    local r = self.client:call("GetItem", { TableName = self.table, Key = { PK = pk, SK = sk },
        ConsistentRead = consistent and true or nil })
    if r.Item and self:live(r.Item) then return r.Item end
    return nil
end

-- get_valid(key, record) -> the live item at key, read consistently, when record(item) accepts it
-- (the entity's own record reader: right type, fields it needs), else nil.
function _M.get_valid(self, key, record)
    local item = self:get_item(key.PK, key.SK, true)
    if record(item) == nil then return nil end
    return item
end

-- Exactly once for conditional writes. Their requests ask for the item that failed the condition
-- (ReturnValuesOnConditionCheckFailure = ALL_OLD) and are declared idempotent to the client, which
-- then re-sends them after a failure the server may have acted on (a 5xx, a lost reply). When such
-- a retry fails its condition (err.maybe_applied: an earlier attempt of this call may have been
-- applied) and the item found is the one this call wrote, that is this call's own success, not a
-- conflict. A condition failing on the first attempt is always a real one.
local RESEND = { idempotent = true }

-- Lua values as DynamoDB stores them: tables compared deeply, sets as unordered.
local function same_value(a, b)
    if a == b then return true end
    if type(a) ~= "table" or type(b) ~= "table" then return false end
    if core.is_set(a) or core.is_set(b) then
        if #a ~= #b then return false end
        local used = {}
        for _, x in ipairs(a) do
            local found = false
            for j, y in ipairs(b) do
                if not used[j] and same_value(x, y) then
                    used[j], found = true, true
                    break
                end
            end
            if not found then return false end
        end
        return true
    end
    for k, v in pairs(a) do
        if not same_value(v, b[k]) then return false end
    end
    for k in pairs(b) do
        if a[k] == nil then return false end
    end
    return true
end
_M._same = same_value

-- The item a failed condition returned (ALL_OLD), taken off the error so that a 409 or a false
-- never carries someone else's record along.
local function old_item(err)
    local cause = type(err.cause) == "table" and err.cause or nil
    local it = cause and cause.Item
    if cause then cause.Item = nil end
    return type(it) == "table" and it or nil
end

-- A write that ended in an error saying it may have been applied (the client ran out of attempts
-- or time after an attempt the server may have acted on) is settled by one consistent read:
-- true when the item at key is there and holds(item) says it is this call's write. A failed read
-- settles nothing (false), and the caller re-raises the write's error.
local function settled(self, key, holds)
    local ok, r = pcall(self.client.call, self.client, "GetItem", { TableName = self.table,
        Key = { PK = key.PK, SK = key.SK }, ConsistentRead = true })
    return ok and type(r) == "table" and r.Item ~= nil and holds(r.Item) or false
end

-- PutItem that must not replace a live item; a taken key raises 409 with message.
function _M.put_new(self, item, message)
    _M.check_key(item)
    local st = names_values()
    local req = st.apply({ TableName = self.table, Item = item, ConditionExpression = self:cond_absent(st),
        ReturnValuesOnConditionCheckFailure = "ALL_OLD" })
    local ok, err = pcall(self.client.call, self.client, "PutItem", req, RESEND)
    if not ok then
        if errors.is(err, "ConditionalCheckFailedException") then
            local old = old_item(err)
            if err.maybe_applied and same_value(old, item) then return item end -- our own earlier attempt
            _M.conflict(message, err)
        end
        if errors.is(err) and err.maybe_applied and settled(self, item, function(it) return same_value(it, item) end) then
            return item
        end
        error(err, 0)
    end
    return item
end

-- UpdateItem on a live item -> true, or false when it is missing.
function _M.update_item(self, key, set, remove, extra_cond)
    if impossible(key) then return false end
    local req = self:update_request(key, set, remove, function(st)
        local c = self:cond_exists_live(st)
        if extra_cond then c = "(" .. c .. ") AND (" .. extra_cond(st) .. ")" end
        return c
    end)
    req.ReturnValuesOnConditionCheckFailure = "ALL_OLD"
    local ok, err = pcall(self.client.call, self.client, "UpdateItem", req, RESEND)
    if ok then return true end
    -- our own earlier attempt, if the item holds every value we wrote
    local function mine(it)
        for k, v in pairs(set or {}) do
            if not same_value(it[k], v) then return false end
        end
        for _, k in ipairs(remove or {}) do
            if it[k] ~= nil then return false end
        end
        return true
    end
    if errors.is(err, "ConditionalCheckFailedException") then
        local old = old_item(err)
        return (err.maybe_applied and old ~= nil and mine(old)) == true
    end
    if errors.is(err) and err.maybe_applied and settled(self, key, mine) then return true end
    error(err, 0)
end

-- DeleteItem -> the old item (live or not), or nil when there was none.
function _M.delete_item(self, pk, sk)
    if impossible({ PK = pk, SK = sk }) then return nil end
    local r = self.client:call("DeleteItem", { TableName = self.table, Key = { PK = pk, SK = sk },
        ReturnValues = "ALL_OLD" })
    return r.Attributes
end

-- transactions ---------------------------------------------------------------------------------------

-- Builder: tx:put(item, cond_fn?), tx:update(key, set, remove, cond_fn?), tx:delete(key, cond_fn?),
-- tx:check(key, cond_fn); cond_fn(st) returns a condition using the st placeholders.
local Tx = {}
Tx.__index = Tx

function _M.tx(self)
    return setmetatable({ ctx = self, items = {}, keys = {} }, Tx)
end

local function key_id(key)
    return tostring(key.PK) .. "\0" .. tostring(key.SK)
end

function Tx._add(self, kind, key, op)
    _M.check_key(key) -- a write: 400 before any request (reads check and find nothing instead)
    local id = key_id(key)
    if self.keys[id] then error("transaction has two operations on " .. id:gsub("%z", " / "), 3) end
    self.keys[id] = true
    self.items[#self.items + 1] = { [kind] = op }
end

function Tx.put(self, item, cond_fn)
    local st = names_values()
    local op = { TableName = self.ctx.table, Item = item }
    if cond_fn then op.ConditionExpression = cond_fn(st) end
    self:_add("Put", item, st.apply(op))
    self.puts = self.puts or {}
    self.puts[#self.puts + 1] = item
end

function Tx.put_new(self, item)
    self:put(item, function(st) return self.ctx:cond_absent(st) end)
end

function Tx.update(self, key, set, remove, cond_fn)
    self:_add("Update", key, self.ctx:update_request(key, set, remove, cond_fn))
end

function Tx.delete(self, key, cond_fn)
    local st = names_values()
    local op = { TableName = self.ctx.table, Key = key }
    if cond_fn then op.ConditionExpression = cond_fn(st) end
    self:_add("Delete", key, st.apply(op))
end

function Tx.check(self, key, cond_fn)
    local st = names_values()
    self:_add("ConditionCheck", key, st.apply({ TableName = self.ctx.table, Key = key,
        ConditionExpression = cond_fn(st) }))
end

function Tx.size(self)
    return #self.items
end

-- Runs it: a cancellation caused by a condition raises 409 with message (or, with no message,
-- returns false); other failures propagate with their AWS code. Every attempt carries the same
-- ClientRequestToken (the client adds it), so a retry after a lost reply is the first attempt's
-- success, never a 409. When the client gives up after an attempt that may have been applied, a
-- transaction with puts is settled by reading them back: all there as written means it was applied
-- (a transaction is all or nothing).
function Tx.run(self, message)
    if #self.items == 0 then return true end
    if #self.items > 100 then errors.validation("a transaction holds at most 100 operations, got %d", #self.items) end
    local ok, err = pcall(self.ctx.client.call, self.ctx.client, "TransactWriteItems",
        { TransactItems = self.items })
    if ok then return true end
    if errors.is(err) and err.maybe_applied and self.puts then
        local all = true
        for _, item in ipairs(self.puts) do
            if not settled(self.ctx, item, function(it) return same_value(it, item) end) then
                all = false
                break
            end
        end
        if all then return true end
    end
    if errors.is(err, "TransactionCanceledException") then
        local reasons = type(err.cause) == "table" and err.cause.CancellationReasons or {}
        for _, r in ipairs(reasons) do
            if r.Code == "ConditionalCheckFailed" then
                if message then _M.conflict(message, err) end
                return false, reasons
            end
        end
    end
    error(err, 0)
end

-- unique values kept by guard items ------------------------------------------------------------------

-- Was this CancellationReason a failed condition?
function _M.failed(reason)
    return type(reason) == "table" and reason.Code == "ConditionalCheckFailed"
end

-- Condition "the guard is absent or belongs to this owner" (owner attribute = value).
function _M.owned_by(attr, value)
    return function(st)
        return "attribute_not_exists(" .. st.name("PK") .. ") OR " .. st.name(attr) .. " = " .. st.value(value)
    end
end

-- Changes a unique field of an item and moves its guard in one transaction, conditioned on the
-- value read; a lost race re-reads and retries. Returns false when the item is missing, raises 409
-- (o.taken) when the new value's guard belongs to someone else.
-- o: key, field, value (new), set/remove (the rest of the update, applied either way),
--    valid(item) -> boolean, guard_key(value), guard_item(value), owned (cond_fn for the old guard),
--    taken, busy (messages).
function _M.move_guard(self, o)
    for _ = 1, 3 do
        local cur = self:get_item(o.key.PK, o.key.SK, true)
        if not (cur and o.valid(cur)) then return false end
        local old = cur[o.field]
        if old == o.value then return self:update_item(o.key, o.set, o.remove) end
        local had = type(old) == "string"
        local drop_old = had
        for _ = 1, 2 do
            local tx = self:tx()
            tx:update(o.key, o.set, o.remove, function(st)
                local c = self:cond_exists_live(st)
                if had then c = c .. " AND " .. st.name(o.field) .. " = " .. st.value(old) end
                return c
            end)
            if drop_old then tx:delete(o.guard_key(old), o.owned) end
            tx:put_new(o.guard_item(o.value))
            local ok, reasons = tx:run()
            if ok then return true end
            if _M.failed(reasons[#reasons]) then _M.conflict(o.taken) end
            if _M.failed(reasons[1]) then break end -- missing or changed meanwhile: read again
            drop_old = false -- the old guard is someone else's (never expected): leave it
        end
    end
    _M.conflict(o.busy)
end

-- Deletes a live item and its guard (if guard_key) in one transaction -> true, or false when the
-- item was missing. A guard that is not the item's own (owned fails) is left alone.
function _M.remove_guarded(self, key, guard_key, owned)
    local drop = guard_key ~= nil
    for _ = 1, 2 do
        local tx = self:tx()
        tx:delete(key, function(st) return self:cond_exists_live(st) end)
        if drop then tx:delete(guard_key, owned) end
        local ok, reasons = tx:run()
        if ok then return true end
        if _M.failed(reasons[1]) then return false end
        drop = false
    end
    return false
end

-- Takes over a left-over guard: one whose owner is gone or no longer holds the guarded value
-- (written outside this library, or missed by a cascade that read a lagging index) is deleted, on the
-- condition that its owner attribute is still what was read, so the value can be taken.
-- guard_key: { PK, SK }; owner_attr: the guard's attribute naming its owner's id; self_id: the
-- record about to take the value (nil on create); holds(owner_id) -> true when that owner (read
-- consistently) still has the value. Returns true when trying again may succeed (the guard is gone,
-- is self_id's own, or was stale and is deleted now), false when its owner holds it (a real 409).
-- May raise on other failures.
function _M.drop_stale_guard(self, guard_key, owner_attr, self_id, holds)
    local g = self:get_item(guard_key.PK, guard_key.SK, true)
    if not g then return true end
    local owner = g[owner_attr]
    if self_id ~= nil and owner == self_id then return true end
    if type(owner) == "string" and holds(owner) then return false end
    local tx = self:tx()
    tx:delete({ PK = guard_key.PK, SK = guard_key.SK }, function(st)
        if owner == nil then return "attribute_not_exists(" .. st.name(owner_attr) .. ")" end
        return st.name(owner_attr) .. " = " .. st.value(owner)
    end)
    tx:run()
    return true
end

-- Puts a new item and the guard of its unique value in one transaction -> item. A taken item key
-- raises 409 (o.exists); a guard held by a live owner raises 409 (o.taken); a left-over guard is
-- taken over (drop_stale_guard) and the put tried once more.
-- o: item, guard (the guard item), owner_attr, holds(owner_id) (as drop_stale_guard), exists, taken.
function _M.create_guarded(self, o)
    for _ = 1, 2 do
        local tx = self:tx()
        tx:put_new(o.item)
        tx:put_new(o.guard)
        local ok, reasons = tx:run()
        if ok then return o.item end
        if _M.failed(reasons[1]) then _M.conflict(o.exists) end
        if not self:drop_stale_guard(o.guard, o.owner_attr, nil, o.holds) then break end
    end
    _M.conflict(o.taken)
end

-- Deletes items (or keys) in batches of 25, unprocessed ones retried; raises UnprocessedItems
-- naming `what` when some still could not be deleted.
function _M.delete_items(self, items, what)
    if #items == 0 then return 0 end
    local reqs, seen = {}, {}
    for _, it in ipairs(items) do
        local id = key_id(it)
        if not seen[id] then -- one batch may not name a key twice
            seen[id] = true
            reqs[#reqs + 1] = { DeleteRequest = { Key = { PK = it.PK, SK = it.SK } } }
        end
    end
    local left = self.client:batch_write(self.table, reqs)
    if #left > 0 then
        errors.raise(0, "UnprocessedItems", #left .. " items of " .. what .. " could not be deleted; try again",
            { unprocessed = left })
    end
    return #reqs
end

-- reading ranges ------------------------------------------------------------------------------------

-- A Query over one partition (optionally an index) with an optional sort-key prefix.
-- opts: pk, prefix, index ("GSI1"/"GSI2"), consistent, limit, start (ExclusiveStartKey).
-- Returns the raw reply.
function _M.query_page(self, opts)
    -- no item has such a key (an index key's limits are the base table's)
    if impossible({ PK = opts.pk, SK = opts.prefix }) then return { Items = {} } end
    local st = names_values()
    local pk_attr, sk_attr = "PK", "SK"
    if opts.index then pk_attr, sk_attr = opts.index .. "PK", opts.index .. "SK" end
    local cond = st.name(pk_attr) .. " = " .. st.value(opts.pk)
    if opts.prefix and opts.prefix ~= "" then
        cond = cond .. " AND begins_with(" .. st.name(sk_attr) .. ", " .. st.value(opts.prefix) .. ")"
    end
    local req = {
        TableName = self.table, IndexName = opts.index, KeyConditionExpression = cond,
        ExclusiveStartKey = opts.start, Limit = opts.limit, ConsistentRead = opts.consistent or nil,
    }
    return self.client:call("Query", st.apply(req))
end

-- Every live item of a range, following pages (opts.include_expired: expired ones too).
function _M.query_all(self, opts)
    local out = {}
    local start
    repeat
        local o = util.shallow_copy(opts)
        o.start = start
        local r = self:query_page(o)
        for _, it in ipairs(r.Items or {}) do
            if opts.include_expired or self:live(it) then out[#out + 1] = it end
        end
        start = r.LastEvaluatedKey
    until start == nil
    return out
end

-- index_records(template, fields, to_record) -> records: the live items of the partition of an
-- index template (schema.templates.<name>) that `fields` (field -> value) fill, read by the
-- template's sort-key prefix (the whole sort key when `fields` fill it too), re-checked (§2.10: an
-- index is shared and eventually consistent) so that every attribute named in `fields` equals the
-- item's, and read by to_record(item) -> record or nil (nil drops the item). As with the keys.<name>
-- builders, "" is a value and a partition field missing from `fields` is a programming error.
function _M.index_records(self, template, fields, to_record)
    local pk, prefix
    local filled = true
    for _, f in ipairs(template.fields) do
        if fields[f] == nil then filled = false end
    end
    if filled then
        local k = schema.keys[template.name](fields)
        pk, prefix = k[template.pk_attr], k[template.sk_attr]
    else
        pk, prefix = schema.partition_of(template, function(f) return fields[f] end, true), template.prefix
    end
    local out = {}
    for _, it in ipairs(self:query_all({ pk = pk, prefix = prefix, index = template.index })) do
        local same = true
        for f, v in pairs(fields) do
            if it[f] ~= v then same = false end
        end
        local r = same and to_record(it) or nil
        if r ~= nil then out[#out + 1] = r end
    end
    return out
end

-- Deletes every item of a range, expired ones included (batched by 25, unprocessed retried);
-- returns how many.
function _M.delete_range(self, opts)
    local o = util.shallow_copy(opts)
    o.include_expired = true
    return self:delete_items(self:query_all(o), "range " .. tostring(opts.pk))
end

-- cascades (the registry's parents edges) ------------------------------------------------------

-- removal_items(E, item, opts) -> what removing the record `item` (a raw item of entity E) takes
-- along, as raw items, in a safe deletion order: every record found through the registry's
-- parents edges, recursively, each preceded by its helper items and followed by nothing it owns;
-- then the item's own helpers; then the item itself. Helpers that name owners (guards, pointers)
-- are included only when they are this record's (read consistently, in batches). Expired items are
-- included. opts.without_self leaves out the item and its own helpers. Helpers that are the
-- record's alone (index and version items) are named by key without a read, unless
-- opts.read_helpers (then only those that exist come back, as items). Reads only.
-- A base-table partition built from the parent's key (TENANT#{t}, TENANT#{t}#USER#{u}, ...) is
-- the parent's entirely (read whole, whatever lives there); an index partition yields only the
-- edges' entities (read by sort-key prefix when there is one edge); a partition without a
-- placeholder (KEYS) only the tenant's items. Items of another tenant are never taken.
function _M.removal_items(self, E, item, opts)
    opts = opts or {}
    local t = item[E.tenant_field]
    local visited, entries, checks = {}, {}, {}

    local function mine(it, global)
        if global then return it.tenant_id == t end
        return it.tenant_id == nil or it.tenant_id == t
    end

    local visit
    local function children(CE, it)
        local groups, order = {}, {}
        for _, edge in ipairs(CE.children) do
            local tpl = edge.template
            local pk = schema.partition_of(tpl, function(f)
                if f == "tenant_id" then return t end -- one cascade stays in one tenant
                return it[edge.map[f] or f]
            end)
            if pk then
                local gid = (tpl.index or "") .. "\0" .. pk
                local g = groups[gid]
                if not g then
                    g = { pk = pk, index = tpl.index, edges = {}, global = #tpl.pk_fields == 0 }
                    groups[gid] = g
                    order[#order + 1] = g
                end
                g.edges[#g.edges + 1] = edge
            end
        end
        for _, g in ipairs(order) do
            -- a base-table partition the parent's key names is read whole; otherwise by prefix
            local whole = g.index == nil and not g.global
            local prefix = not whole and #g.edges == 1 and g.edges[1].template.prefix or nil
            local found = self:query_all({ pk = g.pk, index = g.index, prefix = prefix, consistent = g.index == nil,
                include_expired = true })
            for _, f in ipairs(found) do
                if mine(f, g.global) then
                    local bt = schema.by_type[f.entityType]
                    local child
                    for _, edge in ipairs(g.edges) do
                        if bt and not bt.helper and bt.entity == edge.child then child = edge.child end
                    end
                    if whole and not child and bt and not bt.helper then child = bt.entity end
                    if child then
                        visit(child, f)
                    elseif whole and not visited[key_id(f)] then
                        visited[key_id(f)] = true
                        entries[#entries + 1] = { item = f, checks = {} }
                    end
                end
            end
        end
    end

    local function helpers(CE, it, entry)
        for _, h in ipairs(CE.helpers) do
            local k = schema.key_attrs(h, it)
            if k and not visited[key_id(k)] then
                visited[key_id(k)] = true
                k.entityType = h.entity_type
                local c = { key = k }
                if h.owner or opts.read_helpers then -- a shared key: only while it is still this record's
                    c.want = {}
                    for _, a in ipairs(h.owner or {}) do c.want[a] = it[(h.owner_fields and h.owner_fields[a]) or a] end
                    checks[#checks + 1] = c
                else
                    c.item = k -- the record's own key (an index item): nobody else's; deleting it is enough
                end
                entry.checks[#entry.checks + 1] = c
            end
        end
    end

    visit = function(CE, it, root)
        local id = key_id(it)
        if visited[id] then return end
        visited[id] = true
        children(CE, it)
        if root and opts.without_self then return end
        local entry = { item = it, checks = {} }
        helpers(CE, it, entry)
        entries[#entries + 1] = entry
    end
    visit(E, item, true)

    -- owner checks of helper items, in batches of 100 consistent reads
    if #checks > 0 then
        local ks = {}
        for i, c in ipairs(checks) do ks[i] = { PK = c.key.PK, SK = c.key.SK } end
        local got, left = self.client:batch_get(self.table, ks, { ConsistentRead = true })
        if #left > 0 then
            errors.raise(0, "UnprocessedKeys", #left .. " helper items could not be read; try again",
                { unprocessed = left })
        end
        local stored = {}
        for _, it in ipairs(got) do stored[key_id(it)] = it end
        for _, c in ipairs(checks) do
            local s = stored[key_id(c.key)]
            if s then
                local own = true
                for a, v in pairs(c.want) do
                    if s[a] ~= v then own = false end
                end
                c.item = own and s or nil
            end
        end
    end

    local out = {}
    for _, e in ipairs(entries) do
        for _, c in ipairs(e.checks) do
            if c.item then out[#out + 1] = c.item end
        end
        if not (opts.without_self and e.item == item) then out[#out + 1] = e.item end
    end
    return out
end

-- listing (contract §3) ---------------------------------------------------------------------------

local function clamp_size(v, max, name)
    if v == nil then return math.min(DEFAULT_PAGE, max) end
    if type(v) ~= "number" or v ~= math.floor(v) then errors.validation("%s must be an integer", name) end
    if v < 1 then return 1 end
    if v > max then return max end
    return v
end

local function key_of(item, index)
    local k = { PK = item.PK, SK = item.SK }
    if index then
        k[index .. "PK"] = item[index .. "PK"]
        k[index .. "SK"] = item[index .. "SK"]
    end
    return k
end

local function fingerprint(opts, q)
    return core.sha256_hex(table.concat({ opts.index or "", opts.pk or "", opts.prefix or "", q or "",
        opts.items_key or "" }, "\0")):sub(1, 16)
end

local function encode_cursor(key, fp)
    return util.b64url(core.json_encode({ k = key, f = fp }))
end

-- A cursor that is malformed, foreign, forged or stale is ignored (the listing restarts), never an
-- error and never a start key DynamoDB would refuse (contract §3.3). Its fingerprint is no secret
-- (it is in every cursor), so the key itself is checked against the query `read` (pk, prefix,
-- index): it holds exactly the key attributes of the table (PK, SK) and, for an index, the index's
-- pair; each is a non-empty string within DynamoDB's key limits; the partition (the index's, for an
-- index) is the query's and the sort key starts with the query's prefix.
local function decode_cursor(s, fp, read)
    local raw = util.unb64url(s)
    if not raw then return nil end
    local ok, t = pcall(core.json_decode, raw)
    if not ok or type(t) ~= "table" or t.f ~= fp or type(t.k) ~= "table" or t.o ~= nil then return nil end
    local key, pk_attr, sk_attr = t.k, "PK", "SK"
    local want = { PK = true, SK = true }
    if read.index then
        pk_attr, sk_attr = read.index .. "PK", read.index .. "SK"
        want[pk_attr], want[sk_attr] = true, true
    end
    local n = 0
    for k, v in pairs(key) do
        if not want[k] or type(v) ~= "string" or v == "" then return nil end
        n = n + 1
    end
    if n ~= (read.index and 4 or 2) or schema.oversized(key) then return nil end
    local prefix = read.prefix or ""
    if key[pk_attr] ~= read.pk or key[sk_attr]:sub(1, #prefix) ~= prefix then return nil end
    return key
end

local function decode_offset_cursor(s, fp)
    local raw = util.unb64url(s)
    if not raw then return nil end
    local ok, t = pcall(core.json_decode, raw)
    if not ok or type(t) ~= "table" or t.f ~= fp or type(t.o) ~= "number" or t.o < 0 or t.o ~= math.floor(t.o) then
        return nil
    end
    return t.o
end

-- Pages an in-memory list of records the way list() pages a range.
local function page_list(records, params, keyset, limit, fp, items_key)
    local res = { start = 0, limit = limit }
    local list = core.array({})
    if keyset then
        local from = params.from and decode_offset_cursor(params.from, fp) or 0
        for i = from + 1, math.min(from + limit, #records) do list[#list + 1] = records[i] end
        if from + limit < #records then res.next = util.b64url(core.json_encode({ o = from + limit, f = fp })) end
    else
        local page = params.page or 0
        local skip = page * limit
        res.start = skip
        for i = skip + 1, math.min(skip + limit, #records) do list[#list + 1] = records[i] end
        if params.include_totals then res.total = #records end
    end
    -- with include_totals, length holds the total (AuthHero's routes report it; contract §9.3 #4)
    res.length = res.total or #list
    res[items_key] = list
    return res
end

-- The params of a list call (nil: none) and its q (nil when absent or blank); 400 when params is
-- not a table or q not a string.
function _M.list_params(params)
    if params == nil then params = {} end
    if type(params) ~= "table" then errors.validation("list params must be a table") end
    local q = params.q
    if q ~= nil and type(q) ~= "string" then errors.validation("q must be a string") end
    if q and q:match("^%s*$") then q = nil end
    return params, q
end

-- page_params(params) -> keyset (boolean), limit: the paging parameters of a list call (from/take
-- for keyset pages, else page/per_page); raises 400 on bad ones.
local function page_params(self, params)
    _M.opt_count(params.page, "page")
    local keyset = params.from ~= nil or params.take ~= nil
    return keyset, clamp_size(keyset and params.take or params.per_page, self.max_page_size,
        keyset and "take" or "per_page")
end
_M.page_params = page_params

-- How many records an offset page (params.page of limit each) skips; 400 past MAX_OFFSET (keyset
-- pagination goes further).
function _M.offset_of(params, limit)
    local skip = (params.page or 0) * limit
    if skip > MAX_OFFSET then
        errors.validation("page * per_page may not exceed %d; use keyset pagination (from/take)", MAX_OFFSET)
    end
    return skip
end

-- pager(params, items_key, what) -> page(records): checks the paging parameters now (a 400
-- before any request) and returns the function that pages a record list in memory the way list()
-- pages a range; `what` names the listing, so its cursors are refused by any other.
function _M.pager(self, params, items_key, what)
    local keyset, limit = page_params(self, params)
    local fp = core.sha256_hex(what):sub(1, 16)
    return function(records) return page_list(records, params, keyset, limit, fp, items_key) end
end

-- list(opts) -> { [items_key] = records, start, limit, length, total?, next? }
-- opts: params (the caller's), spec (filter spec, nil = q unsupported), pk, prefix, index,
-- to_record(item) -> record or nil, items_key, sortable (set of fields), fast_paths
-- ({ field = function(value) -> records }), keep(record) -> boolean (e.g. keyset drops linked users).
function _M.list(self, opts)
    local params, q = _M.list_params(opts.params or {})
    local filter = require "authhero.aws.filter"
    local pred, ast
    if q then
        if not opts.spec then errors.validation("q is not supported when listing %s", opts.items_key) end
        ast = filter.parse(q, opts.spec)
        pred = filter.compile(ast)
    end
    local keyset, limit = page_params(self, params)
    local fp = fingerprint(opts, q)
    local keep = opts.keep
    local function accept(rec, keyset_mode)
        if rec == nil then return false end
        if keep and not keep(rec, keyset_mode) then return false end
        return pred == nil or pred(rec)
    end

    -- an index answers the query: filter the candidates in Lua, page in memory
    if ast and opts.fast_paths then
        for field, fn in pairs(opts.fast_paths) do
            local v = filter.equality(ast, field)
            if v ~= nil then
                local out = {}
                for _, rec in ipairs(fn(v)) do
                    if accept(rec, keyset) then out[#out + 1] = rec end
                end
                return page_list(out, params, keyset, limit, fp, opts.items_key)
            end
        end
    end

    local sort = params.sort
    local sort_by = not keyset and type(sort) == "table" and opts.sortable and opts.sortable[sort.sort_by]
        and sort.sort_by or nil
    local res = { start = 0, limit = limit }
    local list = core.array({})
    local read = { pk = opts.pk, prefix = opts.prefix, index = opts.index, consistent = opts.consistent }

    if keyset then
        local start = params.from and decode_cursor(params.from, fp, read) or nil
        local last_key
        repeat
            read.start = start
            read.limit = math.min(1000, (limit + 1) * (pred and 4 or 1))
            local r = self:query_page(read)
            for _, it in ipairs(r.Items or {}) do
                if self:live(it) then
                    local rec = opts.to_record(it)
                    if accept(rec, true) then
                        if #list == limit then
                            res.next = encode_cursor(last_key, fp) -- one more exists: hand out a cursor
                            break
                        end
                        list[#list + 1] = rec
                        last_key = key_of(it, opts.index)
                    end
                end
            end
            start = r.LastEvaluatedKey
        until res.next or start == nil
    else
        local skip = _M.offset_of(params, limit)
        res.start = skip
        if sort_by then
            local all = {}
            read.start = nil
            repeat
                local r = self:query_page(read)
                for _, it in ipairs(r.Items or {}) do
                    if self:live(it) then
                        local rec = opts.to_record(it)
                        if accept(rec, false) then
                            all[#all + 1] = rec
                            if #all > MAX_SORT_ROWS then
                                errors.validation("too many records to sort (more than %d); narrow the query", MAX_SORT_ROWS)
                            end
                        end
                    end
                end
                read.start = r.LastEvaluatedKey
            until read.start == nil
            local desc = sort.sort_order == "desc" or sort.sort_order == -1
            local pos = {}
            for i, rec in ipairs(all) do pos[rec] = i end
            -- stable: equal (or absent) values keep the natural order; absent values sort last
            table.sort(all, function(a, b)
                local x, y = a[sort_by], b[sort_by]
                local xn, yn = x == nil or x == core.null, y == nil or y == core.null
                if xn or yn or x == y then
                    if xn ~= yn then return yn end
                    return pos[a] < pos[b]
                end
                if type(x) ~= type(y) then x, y = tostring(x), tostring(y) end
                if x == y then return pos[a] < pos[b] end
                if desc then return x > y end
                return x < y
            end)
            for i = skip + 1, math.min(skip + limit, #all) do list[#list + 1] = all[i] end
            if params.include_totals then res.total = #all end
        else
            local seen = 0
            local need_total = params.include_totals and true or false
            read.start = nil
            repeat
                read.limit = need_total and 1000 or math.min(1000, (skip + limit - seen) * (pred and 4 or 1) + 1)
                local r = self:query_page(read)
                for _, it in ipairs(r.Items or {}) do
                    if self:live(it) then
                        local rec = opts.to_record(it)
                        if accept(rec, false) then
                            seen = seen + 1
                            if seen > skip and #list < limit then list[#list + 1] = rec end
                        end
                    end
                end
                read.start = r.LastEvaluatedKey
            until read.start == nil or (not need_total and #list >= limit)
            if need_total then res.total = seen end
        end
    end
    res.length = res.total or #list -- as in page_list
    res[opts.items_key] = list
    return res
end

return _M
