-- userRoles (contract §5.6): a role assigned to a user, globally (PK TENANT#{t}#USER#{u},
-- organization_id "") or in one organization (PK TENANT#{t}#ORG#{o}#USER#{u}), SK USER_ROLE#{r};
-- GSI1 (a user's roles in every scope) and GSI2 ROLE_USERS (listUsers, role removal). Owns the
-- exact scope rule; the module also lends it and its argument checks to user_permissions.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"
local roles = require "authhero.aws.adapters.roles"

local keys = schema.keys
local byte_lt = util.byte_lt

local E = schema.entity("userRoles")

-- helpers shared with user_permissions --------------------------------------------------------

-- The scope argument: nil (or null) -> nil = every scope; "" -> global; "<id>" -> that organization.
local function scope_arg(v, name)
    if v == nil or v == core.null then return nil end
    if type(v) ~= "string" then errors.validation("%s must be a string", name or "organization_id") end
    return v
end

-- list params: nil or a table; `q` is not supported (400).
local function check_params(params, what)
    if params == nil then return {} end
    store.need_table(params, "params")
    if params.q ~= nil and params.q ~= core.null then
        if type(params.q) ~= "string" then errors.validation("q must be a string") end
        if not params.q:match("^%s*$") then errors.validation("q is not supported when listing %s", what) end
    end
    return params
end

local function check_options(options)
    if options ~= nil and options ~= core.null then store.need_table(options, "options") end
end

-- Deletes a live item with a condition, so that of concurrent removes exactly one reports it:
-- true when it was there, false otherwise (an expired item is left to DynamoDB's TTL sweep). A key
-- no item can have (too long for DynamoDB) is false without a request.
local function delete_live(ctx, k)
    if schema.oversized(k) then return false end
    local st = store.names_values()
    local req = st.apply({ TableName = ctx.table, Key = { PK = k.PK, SK = k.SK },
        ConditionExpression = ctx:cond_exists_live(st) })
    local ok, err = pcall(ctx.client.call, ctx.client, "DeleteItem", req)
    if ok then return true end
    if errors.is(err, "ConditionalCheckFailedException") then return false end
    error(err, 0)
end

local function new(ctx)
    -- All key attributes of an assignment (item, GSI1, GSI2).
    local function all_keys(rec)
        local k = schema.key_attrs(E.item, rec)
        for a, v in pairs((schema.index_attrs(E, rec))) do k[a] = v end
        return k
    end

    -- The base partition of one scope ("" global, else the organization's).
    local function scope_partition(t, user_id, scope)
        return keys.user_role({ tenant_id = t, organization_id = scope, user_id = user_id, role_id = "" }).PK
    end

    -- Is this a live assignment of user_id in tenant t (and in scope, when one is given)?
    local function valid(it, t, user_id, scope)
        if it.entityType ~= E.entity_type or it.tenant_id ~= t or it.user_id ~= user_id then return false end
        if type(it.role_id) ~= "string" or not ctx:live(it) then return false end
        local o = it.organization_id
        if o == nil then o = "" end
        return type(o) == "string" and (scope == nil or o == scope)
    end

    local M = {}

    -- create(t, user_id, role_id, organization_id?, options?) -> true. Idempotent: an existing
    -- assignment is kept as it is (its created_at too). nil scope means global ("", as SQL).
    function M.create(t, user_id, role_id, organization_id, options)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        store.need_string(role_id, "role_id")
        local o = scope_arg(organization_id) or ""
        check_options(options)
        local created, updated = ctx:stamps(options)
        local rec = { tenant_id = t, user_id = user_id, role_id = role_id, organization_id = o,
            created_at = created, updated_at = updated }
        local k = all_keys(rec)
        local ok, err = pcall(ctx.put_new, ctx, ctx:to_item(E, rec, k), "User role already exists")
        if not ok and not errors.is(err, "Conflict") then error(err, 0) end
        return true
    end

    -- remove(t, user_id, role_id, organization_id?) -> boolean: deletes the assignment in exactly
    -- one scope; nil means global (""), as AuthHero's SQL adapters do, never "every scope".
    function M.remove(t, user_id, role_id, organization_id)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        store.need_string(role_id, "role_id")
        local o = scope_arg(organization_id) or ""
        local k = keys.user_role({ tenant_id = t, organization_id = o, user_id = user_id, role_id = role_id })
        return delete_live(ctx, k)
    end

    -- list(t, user_id, params?, organization_id?) -> array of role records, one per assignment in
    -- the scope (nil: every scope, through GSI1; "" or an id: that base partition, read
    -- consistently), ordered by organization_id then role_id; roles that no longer exist are
    -- skipped. Not paginated (SQL parity).
    -- The live assignment items of a user in a scope (nil: every scope, through GSI1; "" or an
    -- id: that base partition, read consistently), ordered by organization_id then role_id.
    local function assignments(t, user_id, scope)
        local read
        if scope == nil then
            read = { index = "GSI1", pk = keys.user_index_partition(t, user_id),
                prefix = schema.prefix.user_role_user_index }
        else
            read = { pk = scope_partition(t, user_id, scope), prefix = schema.prefix.user_role, consistent = true }
        end
        local found = {}
        for _, it in ipairs(ctx:query_all(read)) do
            if valid(it, t, user_id, scope) then found[#found + 1] = it end
        end
        table.sort(found, function(a, b)
            local x, y = a.organization_id or "", b.organization_id or ""
            if x ~= y then return byte_lt(x, y) end
            return byte_lt(a.role_id, b.role_id)
        end)
        return found
    end

    function M.list(t, user_id, params, organization_id)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        check_params(params, "a user's roles")
        local scope = scope_arg(organization_id)
        local out = core.array({})
        local found = {}
        for i, it in ipairs(assignments(t, user_id, scope)) do found[i] = { o = it.organization_id or "", r = it.role_id } end
        if #found == 0 then return out end

        local ks, want = {}, {}
        for _, f in ipairs(found) do
            if want[f.r] == nil then
                want[f.r] = false
                local k = keys.role(t, f.r)
                if not schema.oversized(k) then ks[#ks + 1] = k end -- BatchGetItem would refuse it
            end
        end
        local items, left = ctx.client:batch_get(ctx.table, ks)
        if #left > 0 then
            errors.raise(0, "UnprocessedKeys", #left .. " roles could not be read; try again", { unprocessed = left })
        end
        for _, it in ipairs(items) do
            local r = ctx:live(it) and roles.record(it) or nil
            if r and want[r.id] == false then want[r.id] = r end
        end
        local used = {}
        for _, f in ipairs(found) do
            local r = want[f.r]
            if r then
                -- a role held in two scopes appears twice: separate tables, so callers may change one
                out[#out + 1] = used[r] and util.shallow_copy(r) or r
                used[r] = true
            end
        end
        return out
    end

    -- listAssignments(t, user_id) -> array of { user_id, role_id, organization_id ("" for global),
    -- created_at }, every scope, ordered as list orders them. Not AuthHero's: its list answers
    -- roles without their scope, which an export must keep (the command line's export uses this).
    function M.listAssignments(t, user_id)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        local out = core.array({})
        for i, it in ipairs(assignments(t, user_id, nil)) do
            out[i] = { user_id = it.user_id, role_id = it.role_id, organization_id = it.organization_id or "",
                created_at = it.created_at }
        end
        return out
    end

    -- listUsers(t, role_id, params?) -> { userIds, start, limit, length, next? }: distinct user
    -- ids holding the role in any scope (GSI2 ROLE_USERS). Offset mode reads the whole index
    -- partition, sorts by user_id (byte order) and reports the number of distinct users as
    -- `length`. Keyset mode (from/take) walks the index in its key order, which is ascending
    -- user_id for every id without '#', '%' or a byte below '$' (escaping and the '#' after the
    -- id reorder those); the cursor names the last user, and the next page starts after all of
    -- that user's assignments.
    function M.listUsers(t, role_id, params)
        store.need_string(t, "tenant_id")
        store.need_string(role_id, "role_id")
        params = check_params(params, "a role's users")
        store.opt_count(params.page, "page")
        store.opt_count(params.per_page, "per_page")
        store.opt_count(params.take, "take")
        if params.from ~= nil and type(params.from) ~= "string" then errors.validation("from must be a string") end
        local keyset = params.from ~= nil or params.take ~= nil
        local limit = (keyset and params.take or params.per_page) or 50
        if limit < 1 then limit = 1 end
        if limit > ctx.max_page_size then limit = ctx.max_page_size end

        local ix = keys.user_role_role_index({ tenant_id = t, role_id = role_id, user_id = "", organization_id = "" })
        local pk, prefix = ix.GSI2PK, schema.prefix.user_role_role_index
        local ids = core.array({})
        local function ok(it)
            return it.entityType == E.entity_type and it.tenant_id == t and it.role_id == role_id
                and type(it.user_id) == "string" and it.user_id ~= "" and ctx:live(it)
        end

        if not keyset then
            local page = params.page or 0
            local res = { start = page * limit, limit = limit, length = 0, userIds = ids }
            local all, seen = {}, {}
            for _, it in ipairs(ctx:query_all({ index = "GSI2", pk = pk, prefix = prefix })) do
                if ok(it) and not seen[it.user_id] then
                    seen[it.user_id] = true
                    all[#all + 1] = it.user_id
                end
            end
            table.sort(all, byte_lt)
            for i = res.start + 1, math.min(res.start + limit, #all) do ids[#ids + 1] = all[i] end
            res.length = #all
            return res
        end

        local res = { start = 0, limit = limit, length = 0, userIds = ids }
        if schema.oversized({ GSI2PK = pk }) then return res end -- no such partition (a Query would be refused)
        local fp = core.sha256_hex(table.concat({ "listUsers", t, role_id }, "\0")):sub(1, 16)
        -- the cursor: the last user id of the previous page, bound to this role
        local after
        if params.from then
            local raw = util.unb64url(params.from)
            local good, c = pcall(core.json_decode, raw or "")
            if raw and good and type(c) == "table" and c.f == fp and type(c.u) == "string" and c.u ~= "" then
                after = c.u
            end
        end
        -- sort keys of one user are "USER#{u}#..."; the first key past all of them is "USER#{u}$"
        local upper = prefix:sub(1, -2) .. string.char(prefix:byte(-1) + 1)
        local low = prefix
        if after then
            local sk = keys.user_role_role_index({ tenant_id = t, role_id = role_id, user_id = after,
                organization_id = "" }).GSI2SK
            if not schema.oversized({ GSI2SK = sk }) then low = sk:sub(1, -2) .. string.char(sk:byte(-1) + 1) end
        end
        local start, last, seen = nil, nil, {}
        repeat
            local st = store.names_values()
            local sk = st.name("GSI2SK")
            local req = st.apply({ TableName = ctx.table, IndexName = "GSI2",
                KeyConditionExpression = st.name("GSI2PK") .. " = " .. st.value(pk) .. " AND " .. sk
                    .. " BETWEEN " .. st.value(low) .. " AND " .. st.value(upper),
                ExclusiveStartKey = start, Limit = math.min(1000, limit + 1) })
            local r = ctx.client:call("Query", req)
            for _, it in ipairs(r.Items or {}) do
                if ok(it) and not seen[it.user_id] then
                    if #ids == limit then
                        res.next = util.b64url(core.json_encode({ u = last, f = fp })) -- one more exists
                        break
                    end
                    seen[it.user_id] = true
                    ids[#ids + 1] = it.user_id
                    last = it.user_id
                end
            end
            start = r.LastEvaluatedKey
        until res.next or start == nil
        res.length = #ids
        return res
    end

    return store.adapter(M)
end

return setmetatable({
    scope_arg = scope_arg, check_params = check_params, check_options = check_options, delete_live = delete_live,
    entity = E,
}, {
    __call = function(_, ctx) return new(ctx) end,
})
