-- organizations (contract §4.8): PK TENANT#{t} / SK ORG#{id} and the name guard ORG_NAME#{name}
-- (unique names, consistent get-by-name). remove cascades through the registry to what the
-- organization owns (its partition: members with their id pointers, organization connections; its
-- invites); organization-scoped roles are left ([may]). The module is callable; `record(item)` is shared with user_organizations.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys
local E = schema.entity("organizations")

-- The record an organization item stands for (nil for any other item).
local function record(item)
    local r = store.to_record(E, item)
    if r == nil then return nil end
    if r.metadata == nil then r.metadata = {} end
    if r.enabled_connections == nil then r.enabled_connections = core.array({}) end
    return r
end

local function check_name(v)
    if v == core.null or type(v) ~= "string" or v == "" then errors.validation("name is required") end
end

local function new(ctx)
    local function guard_item(t, name, id, now)
        local g = keys.organization_name_guard(t, name)
        g.entityType = "ORGANIZATION_NAME"
        g.organization_id, g.tenant_id, g.created_at, g.updated_at = id, t, now, now
        return g
    end

    local function get_by_id(t, id)
        local k = keys.organization(t, id)
        return record(ctx:get_item(k.PK, k.SK, true))
    end

    -- The name guard says which organization owns a name; the organization must still carry it.
    local function get_by_name(t, name)
        local g = keys.organization_name_guard(t, name)
        local guard = ctx:get_item(g.PK, g.SK, true)
        if not guard or type(guard.organization_id) ~= "string" then return nil end
        local r = get_by_id(t, guard.organization_id)
        if r and r.name == name then return r end
        return nil
    end

    local M = {}

    function M.create(t, org, options)
        store.need_string(t, "tenant_id")
        store.need_table(org, "organization")
        check_name(org.name)
        store.opt_string(org.display_name, "display_name")
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id or org.id or ctx.new_id()
        store.need_string(id, "id")
        local rec = {}
        for k, v in pairs(org) do rec[k] = v end
        rec.id, rec.tenant_id, rec.created_at, rec.updated_at = id, t, created, updated
        if rec.metadata == nil then rec.metadata = {} end
        if rec.enabled_connections == nil then rec.enabled_connections = core.array({}) end
        local item = ctx:to_item(E, rec, keys.organization(t, id))
        local tx = ctx:tx()
        tx:put_new(item)
        tx:put_new(guard_item(t, rec.name, id, created))
        local ok, reasons = tx:run()
        if not ok then
            if store.failed(reasons[1]) then store.conflict("Organization already exists") end
            store.conflict("An organization with this name already exists")
        end
        return record(item)
    end

    -- get(t, id_or_name): by id, otherwise by exact name (AuthHero accepts either).
    function M.get(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        return get_by_id(t, id) or get_by_name(t, id)
    end

    function M.list(t, params)
        store.need_string(t, "tenant_id")
        return ctx:list({
            params = params, spec = E.q, pk = keys.tenant_partition(t), prefix = schema.prefix.organization,
            to_record = record, items_key = "organizations", sortable = E.sortable, consistent = true,
            fast_paths = {
                id = function(v) return { get_by_id(t, v) } end,
                name = function(v) return { get_by_name(t, v) } end,
            },
        })
    end

    -- A rename moves the name guard in the same transaction (store.move_guard).
    local function rename(t, id, set, remove, new_name)
        return ctx:move_guard({
            key = keys.organization(t, id), field = "name", value = new_name, set = set, remove = remove,
            valid = function(cur) return record(cur) ~= nil end,
            guard_key = function(name) return keys.organization_name_guard(t, name) end,
            guard_item = function(name) return guard_item(t, name, id, set.updated_at) end,
            owned = store.owned_by("organization_id", id),
            taken = "An organization with this name already exists",
            busy = "Organization was modified concurrently; try again",
        })
    end

    function M.update(t, id, patch)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        if patch.name ~= nil then check_name(patch.name) end
        store.opt_string(patch.display_name, "display_name")
        local set, remove = ctx:patch_sets(E, patch, { id = true, tenant_id = true, created_at = true })
        if patch.name == nil then return ctx:update_item(keys.organization(t, id), set, remove) end
        return rename(t, id, set, remove, patch.name)
    end

    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.organization(t, id)
        local cur = ctx:get_item(k.PK, k.SK, true)
        if not record(cur) then return false end
        -- what the organization owns goes first (store.removal_items), then it and its name guard
        ctx:delete_items(ctx:removal_items(E, cur, { without_self = true }), "organization " .. id)
        local guard = type(cur.name) == "string" and keys.organization_name_guard(t, cur.name) or nil
        return ctx:remove_guarded(k, guard, store.owned_by("organization_id", id))
    end

    return store.adapter(M)
end

return setmetatable({ record = record, entity = E }, {
    __call = function(_, ctx, adapters) return new(ctx, adapters) end,
})
