-- userOrganizations (contract §4.9): the member item TENANT#{t}#ORG#{o} / MEMBER#{u} (GSI1
-- TENANT#{t}#USER#{u} / MEMBER#{o}) and its id pointer TENANT#{t} / MEMBER_ID#{id}, always written
-- and deleted together in one transaction. Lists pick the organization partition, the user's GSI1
-- partition or the tenant's pointers from the q filter; listUserOrganizations pages in memory.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local filter = require "authhero.aws.filter"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local organizations = require "authhero.aws.adapters.organizations"

local keys = schema.keys

local E = schema.entity("userOrganizations")
local MEMBER, POINTER = E.entity_type, "USER_ORGANIZATION_ID"
local EP = { entity_type = POINTER }
local FIELDS = { "id", "user_id", "organization_id", "created_at", "updated_at" }

local function failed(reason)
    return type(reason) == "table" and reason.Code == "ConditionalCheckFailed"
end

return function(ctx)
    -- member items and pointers hold the same fields; both read as the membership record
    local function reader(entity_type, t)
        return function(item)
            if item == nil or item.entityType ~= entity_type or item.tenant_id ~= t then return nil end
            local r = {}
            for _, f in ipairs(FIELDS) do r[f] = item[f] end
            return r
        end
    end

    local function pointer(t, id)
        local k = keys.member_id_pointer(t, id)
        return ctx:get_item(k.PK, k.SK, true)
    end

    local M = {}

    function M.create(t, params, options)
        store.need_string(t, "tenant_id")
        store.need_table(params, "user organization")
        store.need_string(params.user_id, "user_id")
        store.need_string(params.organization_id, "organization_id")
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id or ctx.new_id()
        store.need_string(id, "id")
        local rec = { id = id, user_id = params.user_id, organization_id = params.organization_id, tenant_id = t,
            created_at = created, updated_at = updated }
        local mk = keys.member(t, rec.organization_id, rec.user_id)
        local idx = keys.member_user_index(t, rec.user_id, rec.organization_id)
        mk.GSI1PK, mk.GSI1SK = idx.GSI1PK, idx.GSI1SK
        local item = ctx:to_item(E, rec, mk)
        local tx = ctx:tx()
        tx:put_new(item)
        tx:put_new(ctx:to_item(EP, rec, keys.member_id_pointer(t, id)))
        local ok, reasons = tx:run()
        if not ok then
            if failed(reasons[1]) then store.conflict("User is already a member of this organization") end
            store.conflict("User organization already exists")
        end
        return reader(MEMBER, t)(item)
    end

    function M.get(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        return reader(POINTER, t)(pointer(t, id))
    end

    -- Deletes the pointer and the member item together; a member item that belongs to another
    -- membership id (never expected) is left alone.
    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local p = reader(POINTER, t)(pointer(t, id))
        if not p or type(p.user_id) ~= "string" or type(p.organization_id) ~= "string" then return false end
        local with_member = true
        for _ = 1, 2 do
            local tx = ctx:tx()
            tx:delete(keys.member_id_pointer(t, id), function(st) return ctx:cond_exists_live(st) end)
            if with_member then
                tx:delete(keys.member(t, p.organization_id, p.user_id), function(st)
                    return "attribute_not_exists(" .. st.name("PK") .. ") OR " .. st.name("id") .. " = " .. st.value(id)
                end)
            end
            local ok, reasons = tx:run()
            if ok then return true end
            if failed(reasons[1]) then return false end
            with_member = false
        end
        return false
    end

    -- Only updated_at changes; user_id and organization_id are part of the keys (remove + create).
    function M.update(t, id, patch)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        store.opt_string(patch.user_id, "user_id")
        store.opt_string(patch.organization_id, "organization_id")
        if patch.user_id == core.null or patch.organization_id == core.null then
            errors.validation("user_id and organization_id cannot be removed")
        end
        local p = reader(POINTER, t)(pointer(t, id))
        if not p then return false end
        if (patch.user_id ~= nil and patch.user_id ~= p.user_id)
            or (patch.organization_id ~= nil and patch.organization_id ~= p.organization_id) then
            errors.validation("user_id and organization_id of a membership cannot change; remove it and create another")
        end
        local set = { updated_at = ctx:now_iso() }
        local tx = ctx:tx()
        tx:update(keys.member_id_pointer(t, id), set, nil, function(st) return ctx:cond_exists_live(st) end)
        tx:update(keys.member(t, p.organization_id, p.user_id), set, nil, function(st)
            return ctx:cond_exists_live(st) .. " AND " .. st.name("id") .. " = " .. st.value(id)
        end)
        return (tx:run()) and true or false
    end

    -- q: user_id (GSI1), organization_id (the organization partition), both, or empty (every
    -- pointer of the tenant); anything else that parses (OR, negation) filters the pointers.
    function M.list(t, params)
        store.need_string(t, "tenant_id")
        params = params or {}
        store.need_table(params, "params")
        local q = params.q
        if q ~= nil and type(q) ~= "string" then errors.validation("q must be a string") end
        local ast = q and filter.parse(q, E.q) or nil
        local u = ast and filter.equality(ast, "user_id")
        local o = ast and filter.equality(ast, "organization_id")
        local opts = { params = params, spec = E.q, items_key = "userOrganizations", sortable = E.sortable }
        if u then
            opts.index, opts.pk, opts.prefix = "GSI1", keys.member_user_index(t, u, "").GSI1PK, schema.prefix.member
            opts.to_record = reader(MEMBER, t)
        elseif o then
            opts.pk, opts.prefix, opts.consistent = keys.organization_partition(t, o), schema.prefix.member, true
            opts.to_record = reader(MEMBER, t)
        else
            opts.pk, opts.prefix, opts.consistent = keys.tenant_partition(t), schema.prefix.member_id_pointer, true
            opts.to_record = reader(POINTER, t)
        end
        return ctx:list(opts)
    end

    -- The organizations of a user: every membership (GSI1), the organizations by BatchGetItem
    -- (deleted ones skipped), then paged in memory so pages are full and totals exact.
    function M.listUserOrganizations(t, user_id, params)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        params = params or {}
        store.need_table(params, "params")
        if type(params.q) == "string" and not params.q:match("^%s*$") then
            errors.validation("q is not supported when listing a user's organizations")
        end
        local page = ctx:pager(params, "organizations", table.concat({ "listUserOrganizations", t, user_id }, "\0"))

        local members = ctx:query_all({ index = "GSI1", pk = keys.member_user_index(t, user_id, "").GSI1PK,
            prefix = schema.prefix.member })
        local order, want = {}, {}
        for _, it in ipairs(members) do
            local oid = it.organization_id
            if it.entityType == MEMBER and it.tenant_id == t and it.user_id == user_id and type(oid) == "string"
                and not want[oid] then
                want[oid] = true
                order[#order + 1] = oid
            end
        end
        local found = {}
        if #order > 0 then
            local ks = {}
            for i, oid in ipairs(order) do ks[i] = keys.organization(t, oid) end
            local items, left = ctx.client:batch_get(ctx.table, ks)
            if #left > 0 then
                errors.raise(0, "UnprocessedKeys", #left .. " organizations could not be read", { unprocessed = left })
            end
            for _, it in ipairs(items) do
                local r = organizations.record(it)
                if r and want[r.id] then found[r.id] = r end
            end
        end
        local all = {}
        for _, oid in ipairs(order) do
            if found[oid] then all[#all + 1] = found[oid] end
        end

        return page(all)
    end

    return store.adapter(M)
end
