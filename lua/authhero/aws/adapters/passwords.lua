-- passwords (contract §4.7): PK TENANT#{t}#USER#{u} / SK PASSWORD#{id}. At most one row is current:
-- making a row current flips every other current row in the same TransactWriteItems. The user
-- partition also holds roles and permissions, so every read uses the PASSWORD# prefix.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys, prefix = schema.keys, schema.prefix

local E = schema.entity("passwords")

local function opt_boolean(v, name)
    if v ~= nil and type(v) ~= "boolean" then errors.validation("%s must be a boolean", name) end
    return v
end

-- newest first: created_at descending, then id descending (ties within one millisecond)
local function newer(a, b)
    local x, y = a.created_at or "", b.created_at or ""
    if x ~= y then return x > y end
    return tostring(a.id) > tostring(b.id)
end

return function(ctx)
    local function to_record(item) return store.to_record(E, item) end

    -- every password row of a user (consistent; these partitions are small)
    local function rows(t, user_id)
        return ctx:query_all({ pk = keys.user_partition(t, user_id), prefix = prefix.password, consistent = true })
    end

    local function current_items(t, user_id, except_id)
        local out = {}
        for _, it in ipairs(rows(t, user_id)) do
            if it.entityType == E.entity_type and it.is_current == true and it.id ~= except_id then
                out[#out + 1] = it
            end
        end
        return out
    end

    local function still_current(st)
        return st.name("is_current") .. " = " .. st.value(true)
    end

    local function flip_all(tx, items, now)
        for _, it in ipairs(items) do
            tx:update({ PK = it.PK, SK = it.SK }, { is_current = false, updated_at = now }, nil, still_current)
        end
    end

    local M = {}

    -- _item(t, password, options) -> the stored item of a new row (validated, nothing sent). Used by
    -- users.create to put the first password in the user's own transaction.
    function M._item(t, password, options)
        store.need_string(t, "tenant_id")
        store.need_table(password, "password")
        store.need_string(password.user_id, "user_id")
        store.need_string(password.password, "password")
        store.opt_string(password.algorithm, "algorithm")
        opt_boolean(password.is_current, "is_current")
        store.opt_string(password.id, "id")
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id or password.id or ctx.new_id()
        store.need_string(id, "id")
        local algorithm = password.algorithm
        if algorithm == nil or algorithm == core.null then algorithm = "argon2id" end
        local rec = {
            id = id, user_id = password.user_id, password = password.password, algorithm = algorithm,
            is_current = password.is_current ~= false, tenant_id = t, created_at = created, updated_at = updated,
        }
        return ctx:to_item(E, rec, keys.password(t, password.user_id, id))
    end

    function M.create(t, password, options)
        local item = M._item(t, password, options)
        if not item.is_current then
            ctx:put_new(item, "Password already exists")
            return to_record(item)
        end
        -- one transaction: the new current row + "no longer current" on every current row; a row
        -- that changed under us cancels it, so re-read and try once more.
        for _ = 1, 2 do
            local tx = ctx:tx()
            flip_all(tx, current_items(t, item.user_id, item.id), item.updated_at)
            tx:put_new(item)
            local ok, reasons = tx:run(nil)
            if ok then return to_record(item) end
            local last = reasons[tx:size()]
            if last and last.Code == "ConditionalCheckFailed" then store.conflict("Password already exists") end
        end
        store.conflict("Passwords of this user changed concurrently; try again")
    end

    -- update(t, { id?, user_id, password?, algorithm?, is_current? }) -> boolean. Rewrites the row
    -- with that id, or the current row when no id is given.
    function M.update(t, password)
        store.need_string(t, "tenant_id")
        store.need_table(password, "password")
        store.need_string(password.user_id, "user_id")
        store.opt_string(password.id, "id")
        store.opt_string(password.password, "password")
        store.opt_string(password.algorithm, "algorithm")
        opt_boolean(password.is_current, "is_current")
        local user_id, id = password.user_id, password.id
        if id == nil or id == core.null then
            local cur = M.get(t, user_id)
            if not cur then return false end
            id = cur.id
        end
        local set = { updated_at = ctx:now_iso() }
        for _, f in ipairs({ "password", "algorithm", "is_current" }) do
            local v = password[f]
            if v ~= nil and v ~= core.null then set[f] = v end
        end
        local key = keys.password(t, user_id, id)
        local function is_password(st)
            return st.name("entityType") .. " = " .. st.value(E.entity_type)
        end
        if set.is_current ~= true then
            return ctx:update_item(key, set, nil, is_password)
        end
        for _ = 1, 2 do
            local tx = ctx:tx()
            tx:update(key, set, nil, function(st)
                return "(" .. ctx:cond_exists_live(st) .. ") AND " .. is_password(st)
            end)
            flip_all(tx, current_items(t, user_id, id), set.updated_at)
            local ok, reasons = tx:run(nil)
            if ok then return true end
            if reasons[1] and reasons[1].Code == "ConditionalCheckFailed" then return false end
        end
        store.conflict("Passwords of this user changed concurrently; try again")
    end

    -- get(t, user_id) -> the current row (the newest if several are current) or nil
    function M.get(t, user_id)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        local best
        for _, it in ipairs(rows(t, user_id)) do
            local r = to_record(it)
            if r and r.is_current == true and (best == nil or newer(r, best)) then best = r end
        end
        return best
    end

    -- list(t, user_id, limit?) -> array, newest first, at most limit rows (password history)
    function M.list(t, user_id, limit)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        if limit ~= nil and (type(limit) ~= "number" or limit < 0 or limit ~= math.floor(limit)) then
            errors.validation("limit must be a non-negative integer")
        end
        local all = {}
        for _, it in ipairs(rows(t, user_id)) do
            local r = to_record(it)
            if r then all[#all + 1] = r end
        end
        table.sort(all, newer)
        local out = core.array({})
        for i = 1, math.min(#all, limit or #all) do out[i] = all[i] end
        return out
    end

    return store.adapter(M)
end
