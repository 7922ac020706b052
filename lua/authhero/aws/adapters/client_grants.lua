-- clientGrants (contract §5.4): PK TENANT#{t} / SK CLIENT_GRANT#{id}, GSI1 TENANT#{t}#CLIENT#{client_id}
-- / CLIENT_GRANT#{audience} (a client's grants, for `q = client_id:…`), and the guard
-- CLIENT_GRANT_KEY#{client_id}#{audience} that allows one grant per (client, audience): written,
-- moved and deleted with the grant in one transaction. Defaults follow AuthHero's SQL adapter
-- (scope and authorization_details_types [], allow_any_organization and is_system false).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local filter = require "authhero.aws.filter"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("clientGrants")
local USAGES = { deny = true, allow = true, require = true }
local SUBJECTS = { client = true, user = true }
local DEFAULTS = { allow_any_organization = false, is_system = false }
local ARRAYS = { "scope", "authorization_details_types" }
local TAKEN = "A client grant for this client and audience already exists"

local function absent(v)
    return v == nil or v == null
end

local function string_array(v, name)
    if type(v) ~= "table" then errors.validation("%s must be an array of strings", name) end
    local n = 0
    for k, s in pairs(v) do
        n = n + 1
        if type(k) ~= "number" or type(s) ~= "string" then errors.validation("%s must be an array of strings", name) end
    end
    if n ~= #v then errors.validation("%s must be an array of strings", name) end
end

-- Checks a grant or a patch (patch: absent fields are fine; null resets a field to its default).
local function check(r, patch)
    for _, f in ipairs({ "client_id", "audience" }) do
        if not patch or r[f] ~= nil then store.need_string(r[f], f) end
    end
    for _, f in ipairs(ARRAYS) do
        if not absent(r[f]) then string_array(r[f], f) end
    end
    for f in pairs(DEFAULTS) do
        if not absent(r[f]) and type(r[f]) ~= "boolean" then errors.validation("%s must be a boolean", f) end
    end
    if not absent(r.organization_usage) and not USAGES[r.organization_usage] then
        errors.validation("organization_usage must be deny, allow or require")
    end
    if not absent(r.subject_type) and not SUBJECTS[r.subject_type] then
        errors.validation("subject_type must be client or user")
    end
end

-- null in a patch means "back to the default" for the fields that have one
local function fill_defaults(r, only_null)
    for _, f in ipairs(ARRAYS) do
        if r[f] == null or (not only_null and r[f] == nil) then r[f] = core.array({}) end
    end
    for f, v in pairs(DEFAULTS) do
        if r[f] == null or (not only_null and r[f] == nil) then r[f] = v end
    end
end

local function record(item)
    local r = store.to_record(E, item)
    if r then fill_defaults(r, false) end
    return r
end

-- The GSI1 and guard keys of (tenant, client_id, audience) in one table, with the fields they are
-- built from: for the store's key-size checks (store.check_key, schema.oversized).
local function pair_keys(t, client_id, audience)
    local k = keys.client_grant_guard(t, client_id, audience)
    local idx = keys.client_grant_client_index(t, client_id, audience)
    k.GSI1PK, k.GSI1SK = idx.GSI1PK, idx.GSI1SK
    k.tenant_id, k.client_id, k.audience = t, client_id, audience
    return k
end

-- The guard of a stored pair, or nil when there is none to delete: a half missing, or keys too long
-- for DynamoDB (an item written by other tools).
local function stored_guard_key(t, client_id, audience)
    if type(client_id) ~= "string" or type(audience) ~= "string" then return nil end
    if schema.oversized(pair_keys(t, client_id, audience)) then return nil end
    return keys.client_grant_guard(t, client_id, audience)
end

return function(ctx)
    local function guard_item(t, id, client_id, audience, now)
        local g = keys.client_grant_guard(t, client_id, audience)
        g.entityType = "CLIENT_GRANT_KEY"
        g.tenant_id, g.client_grant_id, g.client_id, g.audience = t, id, client_id, audience
        g.created_at, g.updated_at = now, now
        return g
    end

    local function get_raw(t, id)
        return ctx:get_valid(keys.client_grant(t, id), record)
    end

    -- Does grant `owner_id` still have this (client_id, audience)? (store.drop_stale_guard)
    local function holder_of(t, client_id, audience)
        return function(owner_id)
            local owner = get_raw(t, owner_id)
            return owner ~= nil and owner.client_id == client_id and owner.audience == audience
        end
    end

    local function drop_stale_guard(t, client_id, audience, self)
        return ctx:drop_stale_guard(keys.client_grant_guard(t, client_id, audience), "client_grant_id", self,
            holder_of(t, client_id, audience))
    end

    local M = {}

    function M.create(t, grant, options)
        store.need_string(t, "tenant_id")
        store.need_table(grant, "client grant")
        check(grant, false)
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id or grant.id
        if absent(id) then id = ctx.new_id() end
        store.need_string(id, "id")
        local rec = util.shallow_copy(grant)
        fill_defaults(rec, false)
        rec.id, rec.tenant_id, rec.created_at, rec.updated_at = id, t, created, updated
        local k = keys.client_grant(t, id)
        local idx = keys.client_grant_client_index(t, grant.client_id, grant.audience)
        k.GSI1PK, k.GSI1SK = idx.GSI1PK, idx.GSI1SK
        local item = ctx:to_item(E, rec, k)
        return record(ctx:create_guarded({ item = item, guard = guard_item(t, id, rec.client_id, rec.audience, created),
            owner_attr = "client_grant_id", holds = holder_of(t, rec.client_id, rec.audience),
            exists = "Client grant already exists", taken = TAKEN }))
    end

    function M.get(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        return record(get_raw(t, id))
    end

    -- A client's grants through GSI1 (one audience: that sort key only), re-checked for tenant,
    -- client and audience (§2.10); the full `q` is applied on top by store.list.
    local function by_client(t, client_id, audience)
        if schema.oversized(pair_keys(t, client_id, audience or "")) then return {} end -- no such pair: no read
        return ctx:index_records(schema.templates.client_grant_client_index,
            { tenant_id = t, client_id = client_id, audience = audience }, record)
    end

    function M.list(t, params)
        store.need_string(t, "tenant_id")
        local audience
        if type(params) == "table" and type(params.q) == "string" then
            local ok, ast = pcall(filter.parse, params.q, E.q)
            if ok then audience = filter.equality(ast, "audience") end -- a bad q: store.list says why
        end
        return ctx:list({
            params = params, spec = E.q, pk = keys.tenant_partition(t), prefix = schema.prefix.client_grant,
            consistent = true, to_record = record, items_key = "client_grants", sortable = E.sortable,
            fast_paths = {
                client_id = function(v) return by_client(t, v, audience) end,
                id = function(v)
                    if v == "" then return {} end
                    return { M.get(t, v) }
                end,
            },
        })
    end

    -- A new client_id or audience rewrites GSI1 and moves the guard in one transaction,
    -- conditioned on the pair read; a lost race re-reads, a taken pair is 409.
    local function move(t, id, k, set, remove, patch)
        local drop_old = true
        for _ = 1, 3 do
            local cur = get_raw(t, id)
            if not cur then return false end
            local c_id = patch.client_id or cur.client_id
            local aud = patch.audience or cur.audience
            if c_id == cur.client_id and aud == cur.audience then
                local same = ctx:update_item(k, set, remove, function(st)
                    return st.name("client_id") .. " = " .. st.value(c_id) .. " AND " .. st.name("audience") .. " = "
                        .. st.value(aud)
                end)
                if same then return true end
            else
                store.check_key(pair_keys(t, c_id, aud), E)
                local idx = keys.client_grant_client_index(t, c_id, aud)
                local s = util.shallow_copy(set)
                s.GSI1PK, s.GSI1SK = idx.GSI1PK, idx.GSI1SK
                local had = type(cur.client_id) == "string" and type(cur.audience) == "string"
                local tx = ctx:tx()
                tx:update(k, s, remove, function(st)
                    local c = ctx:cond_exists_live(st)
                    for _, f in ipairs({ "client_id", "audience" }) do
                        if cur[f] == nil then
                            c = c .. " AND attribute_not_exists(" .. st.name(f) .. ")"
                        else
                            c = c .. " AND " .. st.name(f) .. " = " .. st.value(cur[f])
                        end
                    end
                    return c
                end)
                local old_guard = had and drop_old and stored_guard_key(t, cur.client_id, cur.audience) or nil
                if old_guard then tx:delete(old_guard, store.owned_by("client_grant_id", id)) end
                tx:put_new(guard_item(t, id, c_id, aud, set.updated_at))
                local ok, reasons = tx:run()
                if ok then return true end
                if store.failed(reasons[#reasons]) and not drop_stale_guard(t, c_id, aud, id) then
                    store.conflict(TAKEN)
                end
                if old_guard and store.failed(reasons[2]) and not store.failed(reasons[1]) then
                    drop_old = false -- the old pair's guard is another grant's (never expected): leave it
                end
            end
        end
        store.conflict("Client grant was modified concurrently; try again")
    end

    function M.update(t, id, patch)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        check(patch, true)
        local p = util.shallow_copy(patch)
        fill_defaults(p, true)
        local set, remove = ctx:patch_sets(E, p, { id = true, tenant_id = true, created_at = true })
        local k = keys.client_grant(t, id)
        if p.client_id == nil and p.audience == nil then return ctx:update_item(k, set, remove) end
        if schema.oversized(k) then return false end -- no such grant
        -- a pair too long for its keys, whatever the other half is stored as: a 400 before the read
        store.check_key(pair_keys(t, p.client_id or "", p.audience or ""), E)
        return move(t, id, k, set, remove, p)
    end

    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local cur = get_raw(t, id)
        if not cur then return false end
        return ctx:remove_guarded(keys.client_grant(t, id), stored_guard_key(t, cur.client_id, cur.audience),
            store.owned_by("client_grant_id", id))
    end

    return store.adapter(M)
end
