-- roles (contract §4.10): PK TENANT#{t} / SK ROLE#{id}, plus the name guard ROLE_NAME#{name} that
-- keeps names unique per tenant. remove cascades through the registry to the role's permission
-- partition TENANT#{t}#ROLE#{id} and to the user-role assignments found through GSI2 ROLE_USERS.
-- The module is callable; `record(item)` is shared with user_roles.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys

local E = schema.entity("roles")

-- The record a role item stands for (nil for any other item); is_system only when true.
local function record(item)
    local r = store.to_record(E, item)
    if r and r.is_system ~= true then r.is_system = nil end
    return r
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

local function new(ctx)
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
            if store.failed(reasons[1]) then store.conflict("Role already exists") end
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
            params = params, spec = E.q, pk = keys.tenant_partition(t), prefix = schema.prefix.role,
            to_record = record, items_key = "roles", sortable = E.sortable, consistent = true,
            fast_paths = { id = function(v) return { get_by_id(t, v) } end },
        })
    end

    -- A rename moves the name guard in the same transaction (store.move_guard).
    local function rename(t, id, set, remove, new_name)
        return ctx:move_guard({
            key = keys.role(t, id), field = "name", value = new_name, set = set, remove = remove,
            valid = function(cur) return record(cur) ~= nil end,
            guard_key = function(name) return keys.role_name_guard(t, name) end,
            guard_item = function(name) return guard_item(t, name, id, set.updated_at) end,
            owned = store.owned_by("role_id", id),
            taken = "A role with this name already exists", busy = "Role was modified concurrently; try again",
        })
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

    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.role(t, id)
        local cur = ctx:get_item(k.PK, k.SK, true)
        if not record(cur) then return false end
        -- the role's permissions and assignments go first (store.removal_items), then it and its guard
        ctx:delete_items(ctx:removal_items(E, cur, { without_self = true }), "role " .. id)
        local guard = type(cur.name) == "string" and keys.role_name_guard(t, cur.name) or nil
        return ctx:remove_guarded(k, guard, store.owned_by("role_id", id))
    end

    return store.adapter(M)
end

return setmetatable({ record = record, entity = E }, {
    __call = function(_, ctx) return new(ctx) end,
})
