-- userPermissions (contract §5.7): a permission granted to a user directly, in the partitions of
-- userRoles (TENANT#{t}#USER#{u} global, TENANT#{t}#ORG#{o}#USER#{u} per organization), SK
-- USER_PERMISSION#{rs}#{perm} with each part escaped; GSI1 holds a user's permissions in every
-- scope. Same exact scope rule as userRoles (whose helpers it borrows). Not paginated.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"
local roles_of_users = require "authhero.aws.adapters.user_roles"

local keys = schema.keys
local scope_arg, byte_lt = roles_of_users.scope_arg, util.byte_lt

local E = schema.entity("userPermissions")

-- the { resource_server_identifier, permission_name } of a create/remove argument (400 if bad)
local function check_permission(p)
    store.need_table(p, "permission")
    store.need_string(p.resource_server_identifier, "resource_server_identifier")
    store.need_string(p.permission_name, "permission_name")
    return p
end

-- The record AuthHero's UserPermissionWithDetails describes: resource_server_name falls back to
-- the identifier, description is absent (null in SQL), organization_id only for scoped rows.
local function record(it)
    local o = it.organization_id
    return {
        user_id = it.user_id,
        resource_server_identifier = it.resource_server_identifier,
        resource_server_name = type(it.resource_server_name) == "string" and it.resource_server_name
            or it.resource_server_identifier,
        permission_name = it.permission_name,
        created_at = it.created_at,
        organization_id = (type(o) == "string" and o ~= "") and o or nil,
    }
end

return function(ctx)
    local function item_keys(rec)
        local k = schema.key_attrs(E.item, rec)
        for a, v in pairs((schema.index_attrs(E, rec))) do k[a] = v end
        return k
    end

    local function valid(it, t, user_id, scope)
        if it.entityType ~= E.entity_type or it.tenant_id ~= t or it.user_id ~= user_id then return false end
        if type(it.resource_server_identifier) ~= "string" or type(it.permission_name) ~= "string" then return false end
        if not ctx:live(it) then return false end
        local o = it.organization_id
        if o == nil then o = "" end
        return type(o) == "string" and (scope == nil or o == scope)
    end

    local M = {}

    -- create(t, user_id, permission, organization_id?, options?) -> true. Idempotent (an existing
    -- grant keeps its created_at). The scope is the argument, else permission.organization_id,
    -- else global "" (SQL's order); a user_id inside the permission is ignored.
    function M.create(t, user_id, permission, organization_id, options)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        check_permission(permission)
        local o = scope_arg(organization_id) or scope_arg(permission.organization_id, "permission.organization_id")
            or ""
        roles_of_users.check_options(options)
        local created, updated = ctx:stamps(options)
        local rec = { tenant_id = t, user_id = user_id, organization_id = o,
            resource_server_identifier = permission.resource_server_identifier,
            permission_name = permission.permission_name, created_at = created, updated_at = updated }
        local k = item_keys(rec)
        local ok, err = pcall(ctx.put_new, ctx, ctx:to_item(E, rec, k), "User permission already exists")
        if not ok and not errors.is(err, "Conflict") then error(err, 0) end
        return true
    end

    -- remove(t, user_id, { resource_server_identifier, permission_name }, organization_id?) -> boolean:
    -- one scope exactly; nil means global (""), as AuthHero's SQL adapters do.
    function M.remove(t, user_id, permission, organization_id)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        check_permission(permission)
        local o = scope_arg(organization_id) or ""
        local k = keys.user_permission({ tenant_id = t, organization_id = o, user_id = user_id,
            resource_server_identifier = permission.resource_server_identifier,
            permission_name = permission.permission_name })
        return roles_of_users.delete_live(ctx, k)
    end

    -- list(t, user_id, params?, organization_id?) -> array of UserPermissionWithDetails: every
    -- grant in the scope (nil: every scope through GSI1; "" or an id: that base partition, read
    -- consistently), ordered by organization_id, identifier, name (byte order).
    function M.list(t, user_id, params, organization_id)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        roles_of_users.check_params(params, "a user's permissions")
        local scope = scope_arg(organization_id)
        local read
        if scope == nil then
            read = { index = "GSI1", pk = keys.user_index_partition(t, user_id),
                prefix = schema.prefix.user_permission_user_index }
        else
            read = { pk = keys.user_permission({ tenant_id = t, organization_id = scope, user_id = user_id,
                resource_server_identifier = "", permission_name = "" }).PK,
                prefix = schema.prefix.user_permission, consistent = true }
        end
        local out = core.array({})
        local rows = {}
        for _, it in ipairs(ctx:query_all(read)) do
            if valid(it, t, user_id, scope) then rows[#rows + 1] = it end
        end
        table.sort(rows, function(a, b)
            local ao, bo = a.organization_id or "", b.organization_id or ""
            if ao ~= bo then return byte_lt(ao, bo) end
            if a.resource_server_identifier ~= b.resource_server_identifier then
                return byte_lt(a.resource_server_identifier, b.resource_server_identifier)
            end
            return byte_lt(a.permission_name, b.permission_name)
        end)
        for i, it in ipairs(rows) do out[i] = record(it) end
        return out
    end

    return store.adapter(M)
end
