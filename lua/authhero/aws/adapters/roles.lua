-- roles (contract §4.10): PK TENANT#{t} / SK ROLE#{id}, plus the name guard ROLE_NAME#{name} that
-- keeps names unique per tenant. remove cascades to the role's permission partition
-- TENANT#{t}#ROLE#{id} and to the user-role assignments found through GSI2 ROLE_USERS (§5.6).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys

local E = { entity_type = "ROLE", json = { metadata = "object" } }

local Q = {
    fields = {
        id = { type = "string" }, name = { type = "string" }, description = { type = "string" },
        is_system = { type = "boolean", default = false },
    },
    search = { { field = "name", mode = "substring" } },
}
local SORTABLE = { name = true, created_at = true }

-- userRoles' GSI2 partition (contract §5.6); not in schema.keys yet.
local function role_users_index_pk(t, r) return core.key("TENANT", t, "ROLE_USERS", r) end
local ROLE_USERS_PREFIX = "USER#"

local function record(item)
    if item == nil or item.entityType ~= E.entity_type then return nil end
    local r = store.to_record(E, item)
    r.tenant_id = nil
    if r.is_system ~= true then r.is_system = nil end
    return r
end

local function owned_by(attr, value)
    return function(st)
        return "attribute_not_exists(" .. st.name("PK") .. ") OR " .. st.name(attr) .. " = " .. st.value(value)
    end
end

local function failed(reason)
    return type(reason) == "table" and reason.Code == "ConditionalCheckFailed"
end

-- name: 1-50 characters (UTF-8 code points)
local function check_name(v)
    if v == core.null or type(v) ~= "string" or v == "" then errors.validation("name is required") end
    local _, n = v:gsub("[^\128-\191]", "")
    if n > 50 then errors.validation("name must be at most 50 characters") end
end

local function check_fields(r)
    store.opt_string(r.description, "description")
    if r.is_system ~= nil and r.is_system ~= core.null and type(r.is_system) ~= "boolean" then
        errors.validation("is_system must be a boolean")
    end
end

return function(ctx)
    local function guard_item(t, name, id, now)
        local g = keys.role_name_guard(t, name)
        g.entityType = "ROLE_NAME"
        g.role_id, g.tenant_id, g.created_at, g.updated_at = id, t, now, now
        return g
    end

    local function get_by_id(t, id)
        local k = keys.role(t, id)
        return record(ctx:get_item(k.PK, k.SK, true))
    end

    local M = {}

    function M.create(t, role, options)
        store.need_string(t, "tenant_id")
        store.need_table(role, "role")
        check_name(role.name)
        check_fields(role)
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id or role.id or ctx.new_id()
        store.need_string(id, "id")
        local rec = {}
        for k, v in pairs(role) do rec[k] = v end
        rec.id, rec.tenant_id, rec.created_at, rec.updated_at = id, t, created, updated
        if rec.is_system ~= true then rec.is_system = nil end
        local item = ctx:to_item(E, rec, keys.role(t, id))
        local tx = ctx:tx()
        tx:put_new(item)
        tx:put_new(guard_item(t, rec.name, id, created))
        local ok, reasons = tx:run()
        if not ok then
            if failed(reasons[1]) then store.conflict("Role already exists") end
            store.conflict("A role with this name already exists")
        end
        return record(item)
    end

    function M.get(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        return get_by_id(t, id)
    end

    function M.list(t, params)
        store.need_string(t, "tenant_id")
        return ctx:list({
            params = params, spec = Q, pk = keys.tenant_partition(t), prefix = schema.prefix.role,
            to_record = record, items_key = "roles", sortable = SORTABLE, consistent = true,
            fast_paths = { id = function(v) return { get_by_id(t, v) } end },
        })
    end

    -- A rename writes the role, deletes the old guard and creates the new one in one transaction,
    -- conditioned on the name read; a lost race re-reads and retries.
    local function rename(t, id, set, remove, new_name)
        local k = keys.role(t, id)
        for _ = 1, 3 do
            local cur = ctx:get_item(k.PK, k.SK, true)
            if not record(cur) then return false end
            if cur.name == new_name then return ctx:update_item(k, set, remove) end
            local drop_old = true
            for _ = 1, 2 do
                local tx = ctx:tx()
                tx:update(k, set, remove, function(st)
                    return ctx:cond_exists_live(st) .. " AND " .. st.name("name") .. " = " .. st.value(cur.name)
                end)
                if drop_old then tx:delete(keys.role_name_guard(t, cur.name), owned_by("role_id", id)) end
                tx:put_new(guard_item(t, new_name, id, set.updated_at))
                local ok, reasons = tx:run()
                if ok then return true end
                if failed(reasons[#reasons]) then store.conflict("A role with this name already exists") end
                if failed(reasons[1]) then break end
                drop_old = false
            end
        end
        store.conflict("Role was modified concurrently; try again")
    end

    function M.update(t, id, patch)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        if patch.name ~= nil then check_name(patch.name) end
        check_fields(patch)
        local set, remove = ctx:patch_sets(E, patch, { id = true, tenant_id = true, created_at = true, is_system = true })
        -- is_system is stored only when true
        if patch.is_system == true then
            set.is_system = true
        elseif patch.is_system ~= nil then
            remove[#remove + 1] = "is_system"
        end
        if patch.name == nil then return ctx:update_item(keys.role(t, id), set, remove) end
        return rename(t, id, set, remove, patch.name)
    end

    -- The role's permissions and the user-role assignments that name it.
    local function cascade(t, id)
        local dels = {}
        local function del(it) dels[#dels + 1] = { DeleteRequest = { Key = { PK = it.PK, SK = it.SK } } } end
        for _, it in ipairs(ctx:query_all({ pk = keys.role_partition(t, id), consistent = true })) do del(it) end
        for _, it in ipairs(ctx:query_all({ pk = role_users_index_pk(t, id), index = "GSI2",
            prefix = ROLE_USERS_PREFIX })) do
            if it.entityType == "USER_ROLE" and it.tenant_id == t and it.role_id == id then del(it) end
        end
        if #dels > 0 then
            local left = ctx.client:batch_write(ctx.table, dels)
            if #left > 0 then
                errors.raise(0, "UnprocessedItems", #left .. " items of role " .. id .. " could not be deleted",
                    { unprocessed = left })
            end
        end
    end

    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.role(t, id)
        local cur = ctx:get_item(k.PK, k.SK, true)
        if not record(cur) then return false end
        local drop_guard = type(cur.name) == "string"
        local removed = false
        for _ = 1, 2 do
            local tx = ctx:tx()
            tx:delete(k, function(st) return ctx:cond_exists_live(st) end)
            if drop_guard then tx:delete(keys.role_name_guard(t, cur.name), owned_by("role_id", id)) end
            local ok, reasons = tx:run()
            if ok then
                removed = true
                break
            end
            if failed(reasons[1]) then return false end
            drop_guard = false
        end
        if not removed then return false end
        cascade(t, id)
        return true
    end

    return store.adapter(M)
end
