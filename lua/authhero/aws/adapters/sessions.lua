-- sessions (contract §4.3): PK TENANT#{t} / SK SESSION#{id}, GSI1 TENANT#{t}#USER#{u} / SESSION#{id}
-- (a user's sessions, for `q = "user_id:…"`), TTL from expires_at else idle_expires_at. create, and
-- an update that moves an expiry later, extend the parent login session through the bump rule
-- (loginSessions._bump, §5.1): a separate best-effort write that never undoes the session's own.
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("sessions")

local TIME_FIELDS = { "expires_at", "idle_expires_at", "authenticated_at", "last_interaction_at", "revoked_at",
    "used_at" }

local function present(v)
    if v == null then return nil end
    return v
end

-- epoch seconds from expires_at, else idle_expires_at, else nil
local function ttl_of(expires_at, idle_expires_at)
    return store.ttl_from(present(expires_at)) or store.ttl_from(present(idle_expires_at))
end

-- the later of two normalized timestamps (either may be absent), or nil
local function later(a, b)
    if type(a) ~= "string" then a = nil end
    if type(b) ~= "string" then b = nil end
    if a == nil or (b ~= nil and b > a) then return b end
    return a
end

return function(ctx, adapters)
    local function to_record(item) return store.to_record(E, item) end

    -- Extends login session `ls_id` to `until_iso` (never shortens; best effort, never raises).
    local function bump(tenant_id, ls_id, until_iso)
        local ls = adapters and adapters.loginSessions
        if until_iso and type(ls_id) == "string" and ls and ls._bump then ls._bump(tenant_id, ls_id, until_iso) end
    end

    local M = {}

    function M.create(tenant_id, session)
        store.need_string(tenant_id, "tenant_id")
        store.need_table(session, "session")
        store.need_string(session.id, "id")
        store.need_string(session.user_id, "user_id")
        store.need_string(session.login_session_id, "login_session_id")
        local rec = util.shallow_copy(session)
        util.normalize_times(rec, TIME_FIELDS)
        local now = ctx:now_iso()
        if present(rec.device) == nil then rec.device = {} end
        if present(rec.clients) == nil then rec.clients = core.array({}) end
        if present(rec.authenticated_at) == nil then rec.authenticated_at = now end
        if present(rec.last_interaction_at) == nil then rec.last_interaction_at = now end
        rec.created_at, rec.updated_at = now, now
        local k = keys.session(tenant_id, rec.id)
        local idx = keys.session_user_index(tenant_id, rec.user_id, rec.id)
        k.GSI1PK, k.GSI1SK = idx.GSI1PK, idx.GSI1SK
        k.tenant_id = tenant_id
        k.ttl = ttl_of(rec.expires_at, rec.idle_expires_at)
        local item = ctx:to_item(E, rec, k)
        ctx:put_new(item, "Session already exists")
        bump(tenant_id, rec.login_session_id, later(rec.expires_at, rec.idle_expires_at))
        return to_record(item)
    end

    function M.get(tenant_id, id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(id, "id")
        local k = keys.session(tenant_id, id)
        local item = ctx:get_item(k.PK, k.SK, true)
        return item and to_record(item) or nil
    end

    -- A user's live sessions through GSI1, re-checked for tenant and user (§2.10).
    local function by_user(tenant_id, user_id)
        return ctx:index_records(schema.templates.session_user_index, { tenant_id = tenant_id, user_id = user_id },
            to_record)
    end

    function M.list(tenant_id, params)
        store.need_string(tenant_id, "tenant_id")
        return ctx:list({
            params = params, spec = E.q, pk = keys.tenant_partition(tenant_id), prefix = schema.prefix.session,
            to_record = to_record, items_key = "sessions", sortable = E.sortable,
            fast_paths = { user_id = function(v) return by_user(tenant_id, v) end },
        })
    end

    -- Patches touching neither expiry nor user_id are one conditional UpdateItem. Otherwise the
    -- stored item is read first (ttl depends on both expiry fields) and the write is conditioned on
    -- the values it was computed from; a lost race is retried once, then 409. When an expiry moved
    -- later, the login session (the patch's login_session_id, else the stored one) is then bumped
    -- to the later of the session's expiries.
    function M.update(tenant_id, id, patch)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        local p = util.shallow_copy(patch)
        for _, f in ipairs({ "user_id", "login_session_id" }) do
            if p[f] ~= nil then store.need_string(p[f], f) end
        end
        util.normalize_times(p, TIME_FIELDS)
        if p.device == null then p.device = {} end
        if p.clients == null then p.clients = core.array({}) end
        local set, remove = ctx:patch_sets(E, p, { id = true, created_at = true })
        local k = keys.session(tenant_id, id)
        local derived = p.expires_at ~= nil or p.idle_expires_at ~= nil or p.user_id ~= nil
        if not derived then return ctx:update_item(k, set, remove) end

        for _ = 1, 2 do
            local old = ctx:get_item(k.PK, k.SK, true)
            if not old then return false end
            local s, r = util.shallow_copy(set), {}
            for i, f in ipairs(remove) do r[i] = f end
            local exp, idle = old.expires_at, old.idle_expires_at
            if p.expires_at ~= nil then exp = p.expires_at end
            if p.idle_expires_at ~= nil then idle = p.idle_expires_at end
            local ttl = ttl_of(exp, idle)
            if ttl then s.ttl = ttl else r[#r + 1] = "ttl" end
            if p.user_id ~= nil then
                local idx = keys.session_user_index(tenant_id, p.user_id, id)
                s.GSI1PK, s.GSI1SK = idx.GSI1PK, idx.GSI1SK
            end
            local ok = ctx:update_item(k, s, r, function(st)
                local conds = {}
                for _, f in ipairs({ "expires_at", "idle_expires_at", "user_id" }) do
                    if old[f] == nil then
                        conds[#conds + 1] = "attribute_not_exists(" .. st.name(f) .. ")"
                    else
                        conds[#conds + 1] = st.name(f) .. " = " .. st.value(old[f])
                    end
                end
                return table.concat(conds, " AND ")
            end)
            if ok then
                local moved = false
                for _, f in ipairs({ "expires_at", "idle_expires_at" }) do
                    local v = present(p[f])
                    if v ~= nil and (type(old[f]) ~= "string" or v > old[f]) then moved = true end
                end
                if moved then
                    local ls_id = p.login_session_id
                    if ls_id == nil then ls_id = old.login_session_id end
                    bump(tenant_id, ls_id, later(exp, idle))
                end
                return true
            end
        end
        store.conflict("Session was modified concurrently")
    end

    function M.remove(tenant_id, id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(id, "id")
        local k = keys.session(tenant_id, id)
        local old = ctx:delete_item(k.PK, k.SK)
        return old ~= nil and ctx:live(old)
    end

    return store.adapter(M)
end
