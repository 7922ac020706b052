-- refreshTokens (contract §5.2): PK TENANT#{t} / SK REFRESH_TOKEN#{id}; GSI1 TENANT#{t}#USER#{u} (a
-- user's tokens), GSI2 TENANT#{t}#RT_LOOKUP#{token_lookup} (getByLookup); key-only index items in the
-- RT_FAMILY#{family_id} and RT_LOGIN#{login_id} partitions, written, rewritten and deleted with the
-- token in one transaction, so revokeFamily / revokeByLoginSession cost what they revoke. TTL from
-- expires_at else idle_expires_at, on the token and its index items alike. Tokens written without
-- index items (e.g. by the TypeScript adapter) are invisible to the two revoke methods.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("refreshTokens")

local REQUIRED_STRINGS = { "login_id", "user_id", "client_id" }
local DEVICE_FIELDS = { "initial_user_agent", "initial_ip", "initial_asn", "last_user_agent", "last_ip", "last_asn" }
local TIME_FIELDS = { "expires_at", "idle_expires_at", "last_exchanged_at", "rotated_at", "revoked_at" }
local STRING_FIELDS = { "token_lookup", "token_hash", "family_id", "rotated_to" }
-- fields that key an index or a helper item, or set the ttl
local DERIVED = { "user_id", "token_lookup", "family_id", "login_id", "expires_at", "idle_expires_at" }
local IS_DERIVED = {}
for _, f in ipairs(DERIVED) do IS_DERIVED[f] = true end

local function is_object(v)
    return type(v) == "table" and v ~= null and not core.is_array(v)
end

local function is_list(v)
    if type(v) ~= "table" or v == null then return false end
    local n = #v
    for k in pairs(v) do
        if type(k) ~= "number" or k ~= math.floor(k) or k < 1 or k > n then return false end
    end
    return true
end

-- Checks and normalizes a record (creating) or a patch in place; 400 on a bad field. The shapes are
-- AuthHero's zod schema's: device holds six strings, resource_servers { audience, scopes } objects.
local function check(r, creating)
    for _, f in ipairs(REQUIRED_STRINGS) do
        if creating or r[f] ~= nil then store.need_string(r[f], f) end
    end
    if creating or r.device ~= nil then
        if not is_object(r.device) then errors.validation("device must be an object") end
        for _, f in ipairs(DEVICE_FIELDS) do
            if type(r.device[f]) ~= "string" then errors.validation("device.%s must be a string", f) end
        end
    end
    if creating or r.resource_servers ~= nil then
        if not is_list(r.resource_servers) then errors.validation("resource_servers must be an array") end
        for i, rs in ipairs(r.resource_servers) do
            if not is_object(rs) or type(rs.audience) ~= "string" or type(rs.scopes) ~= "string" then
                errors.validation("resource_servers[%d] must have an audience and scopes (strings)", i)
            end
        end
    end
    if (creating or r.rotating ~= nil) and type(r.rotating) ~= "boolean" then
        errors.validation("rotating must be a boolean")
    end
    for _, f in ipairs(STRING_FIELDS) do store.opt_string(r[f], f) end
    util.normalize_times(r, TIME_FIELDS)
end

-- "the stored attribute f holds v" (v absent or null: f is absent)
local function same(st, f, v)
    if v == nil or v == null then return "attribute_not_exists(" .. st.name(f) .. ")" end
    return st.name(f) .. " = " .. st.value(v)
end

local function record(item)
    local r = store.to_record(E, item)
    if r == nil then return nil end
    if r.rotating == nil then r.rotating = false end
    if r.resource_servers == nil then r.resource_servers = core.array({}) end
    return r
end

-- the later of two normalized timestamps (either may be absent), or nil
local function later(a, b)
    if type(a) ~= "string" then a = nil end
    if type(b) ~= "string" then b = nil end
    if a == nil or (b ~= nil and b > a) then return b end
    return a
end

return function(ctx, adapters)
    local function bump(tenant_id, login_id, until_iso)
        local ls = adapters and adapters.loginSessions
        if until_iso and type(login_id) == "string" and ls and ls._bump then ls._bump(tenant_id, login_id, until_iso) end
    end

    -- The index item of helper h at key k for token `id`: keys, entityType, tenant_id, id, ttl.
    local function index_item(h, k, tenant_id, id, ttl)
        return { PK = k.PK, SK = k.SK, entityType = h.entity_type, tenant_id = tenant_id, id = id, ttl = ttl }
    end

    -- The raw item, live or expired (remove cleans up after expired tokens too).
    local function raw_get(k)
        return ctx.client:call("GetItem", { TableName = ctx.table, Key = { PK = k.PK, SK = k.SK },
            ConsistentRead = true }).Item
    end

    local M = {}

    function M.create(tenant_id, refresh_token)
        store.need_string(tenant_id, "tenant_id")
        store.need_table(refresh_token, "refresh_token")
        store.need_string(refresh_token.id, "id")
        local rec = util.shallow_copy(refresh_token)
        check(rec, true)
        local now = ctx:now_iso()
        rec.created_at, rec.updated_at = now, now
        local full = util.shallow_copy(rec)
        full.tenant_id = tenant_id
        local ttl = schema.ttl(E, full)
        local k = keys.refresh_token(tenant_id, rec.id)
        k.tenant_id, k.ttl = tenant_id, ttl
        for a, v in pairs((schema.index_attrs(E, full))) do k[a] = v end
        local item = ctx:to_item(E, rec, k)
        local tx = ctx:tx()
        tx:put_new(item)
        for _, h in ipairs(E.helpers) do
            local hk = schema.key_attrs(h, full)
            if hk then tx:put(index_item(h, hk, tenant_id, rec.id, ttl)) end
        end
        tx:run("Refresh token already exists")
        bump(tenant_id, rec.login_id, later(rec.expires_at, rec.idle_expires_at))
        return record(item)
    end

    function M.get(tenant_id, id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(id, "id")
        local k = keys.refresh_token(tenant_id, id)
        return record(ctx:get_item(k.PK, k.SK, true))
    end

    -- GSI2 (eventually consistent); the hit must be this tenant's and carry this token_lookup.
    function M.getByLookup(tenant_id, token_lookup)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(token_lookup, "token_lookup")
        return ctx:index_records(schema.templates.refresh_token_lookup_index,
            { tenant_id = tenant_id, token_lookup = token_lookup }, record)[1]
    end

    -- A user's live tokens through GSI1, re-checked for tenant and user (§2.10).
    local function by_user(tenant_id, user_id)
        return ctx:index_records(schema.templates.refresh_token_user_index, { tenant_id = tenant_id, user_id = user_id },
            record)
    end

    function M.list(tenant_id, params)
        store.need_string(tenant_id, "tenant_id")
        return ctx:list({
            params = params, spec = E.q, pk = keys.tenant_partition(tenant_id), prefix = schema.prefix.refresh_token,
            to_record = record, items_key = "refresh_tokens", sortable = E.sortable,
            fast_paths = { user_id = function(v) return by_user(tenant_id, v) end },
        })
    end

    -- The general update: read the token, recompute ttl, index keys and index items from the merged
    -- values, and write them in one transaction conditioned on the values they were computed from
    -- (a lost race is retried once, then 409). -> true, or false when the token is missing.
    local function rewrite(tenant_id, id, p, set, remove)
        local k = keys.refresh_token(tenant_id, id)
        for _ = 1, 2 do
            local old = ctx:get_item(k.PK, k.SK, true)
            if not record(old) then return false end
            local merged = util.shallow_copy(old)
            for f in pairs(IS_DERIVED) do
                if p[f] == null then merged[f] = nil elseif p[f] ~= nil then merged[f] = p[f] end
            end
            merged.tenant_id = tenant_id
            local s, r = util.shallow_copy(set), {}
            for i, f in ipairs(remove) do r[i] = f end
            local ttl = schema.ttl(E, merged)
            if ttl then s.ttl = ttl else r[#r + 1] = "ttl" end
            local ix, absent = schema.index_attrs(E, merged)
            for a, v in pairs(ix) do s[a] = v end
            for _, a in ipairs(absent) do r[#r + 1] = a end
            local tx = ctx:tx()
            local cond = function(st)
                local c = { ctx:cond_exists_live(st) }
                for _, f in ipairs(DERIVED) do c[#c + 1] = same(st, f, old[f]) end
                return table.concat(c, " AND ")
            end
            tx:update(k, s, r, cond)
            for _, h in ipairs(E.helpers) do
                local ok, nk = schema.key_attrs(h, old), schema.key_attrs(h, merged)
                local moved = ok ~= nil and (nk == nil or ok.PK ~= nk.PK or ok.SK ~= nk.SK)
                if moved then tx:delete(ok) end
                if nk and (moved or ok == nil or ttl ~= old.ttl) then tx:put(index_item(h, nk, tenant_id, id, ttl)) end
            end
            if tx:size() == 1 then
                if ctx:update_item(k, s, r, function(st)
                    local c = {}
                    for _, f in ipairs(DERIVED) do c[#c + 1] = same(st, f, old[f]) end
                    return table.concat(c, " AND ")
                end) then
                    return true
                end
            elseif tx:run() then
                return true
            end
        end
        store.conflict("Refresh token was modified concurrently")
    end

    -- A patch touching no derived field is one conditional UpdateItem. One that touches some first
    -- tries one UpdateItem on the condition that nothing derived changes (the stored values already
    -- equal the patch's; for idle_expires_at it is enough that expires_at is stored, since ttl
    -- follows it): AuthHero's refresh (idle_expires_at, last_exchanged_at, device) costs one write.
    -- When that condition fails, the general path (rewrite) reads and writes in one transaction.
    -- options.loginSessionBump = { login_id, expires_at } then extends that login session (bump rule).
    function M.update(tenant_id, id, patch, options)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        local b
        if options ~= nil and options ~= null then
            store.need_table(options, "options")
            b = options.loginSessionBump
            if b == null then b = nil end
            if b ~= nil then
                store.need_table(b, "options.loginSessionBump")
                store.need_string(b.login_id, "options.loginSessionBump.login_id")
                store.need_string(b.expires_at, "options.loginSessionBump.expires_at")
                b = { login_id = b.login_id, expires_at = util.normalize_time(b.expires_at, "loginSessionBump.expires_at") }
            end
        end
        local p = util.shallow_copy(patch)
        for _, f in ipairs(REQUIRED_STRINGS) do
            if p[f] == null then errors.validation("%s cannot be removed", f) end
        end
        for _, f in ipairs({ "device", "resource_servers", "rotating" }) do
            if p[f] == null then errors.validation("%s cannot be removed", f) end
        end
        check(p, false)
        local set, remove = ctx:patch_sets(E, p, { id = true, created_at = true, tenant_id = true })
        local k = keys.refresh_token(tenant_id, id)
        local touched = false
        for f in pairs(IS_DERIVED) do
            if p[f] ~= nil then touched = true end
        end
        local ok
        if not touched then
            ok = ctx:update_item(k, set, remove)
        else
            ok = ctx:update_item(k, set, remove, function(st)
                local c = {}
                for _, f in ipairs({ "user_id", "token_lookup", "family_id", "login_id", "expires_at" }) do
                    if p[f] ~= nil then c[#c + 1] = same(st, f, p[f]) end
                end
                if p.idle_expires_at ~= nil then
                    local idle = "attribute_exists(" .. st.name("expires_at") .. ") OR "
                        .. same(st, "idle_expires_at", p.idle_expires_at)
                    -- alone it is wrapped by update_item; DynamoDB refuses redundant parentheses
                    c[#c + 1] = #c == 0 and idle or "(" .. idle .. ")"
                end
                return table.concat(c, " AND ")
            end)
            if not ok then ok = rewrite(tenant_id, id, p, set, remove) end
        end
        if ok and b then bump(tenant_id, b.login_id, b.expires_at) end
        return ok
    end

    -- Deletes the token (live or expired) and its index items in one transaction, conditioned on the
    -- family and login it was read with. -> true when a live token was removed.
    function M.remove(tenant_id, id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(id, "id")
        local k = keys.refresh_token(tenant_id, id)
        for _ = 1, 3 do
            local old = raw_get(k)
            if old == nil or old.entityType ~= E.entity_type then return false end
            local tx = ctx:tx()
            tx:delete(k, function(st)
                return "attribute_exists(" .. st.name("PK") .. ") AND " .. same(st, "family_id", old.family_id) .. " AND "
                    .. same(st, "login_id", old.login_id)
            end)
            for _, h in ipairs(E.helpers) do
                local hk = schema.key_attrs(h, old)
                if hk then tx:delete(hk) end
            end
            if tx:run() then return ctx:live(old) end
        end
        store.conflict("Refresh token was modified concurrently")
    end

    -- Sets revoked_at on every live, not yet revoked token listed in an index partition whose
    -- `field` still equals `value`; each write is conditional, so concurrent revokes count each
    -- token once. -> how many this call revoked.
    local function revoke(tenant_id, pk, field, value, revoked_at)
        local now = ctx:now_iso()
        local n = 0
        for _, it in ipairs(ctx:query_all({ pk = pk, prefix = schema.prefix.refresh_token_family_item, consistent = true })) do
            if it.tenant_id == tenant_id and type(it.id) == "string" then
                local ok = ctx:update_item(keys.refresh_token(tenant_id, it.id), { revoked_at = revoked_at, updated_at = now },
                    nil, function(st)
                        local r = st.name("revoked_at")
                        return st.name(field) .. " = " .. st.value(value) .. " AND (attribute_not_exists(" .. r
                            .. ") OR attribute_type(" .. r .. ", " .. st.value("NULL") .. "))"
                    end)
                if ok then n = n + 1 end
            end
        end
        return n
    end

    function M.revokeByLoginSession(tenant_id, login_session_id, revoked_at)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(login_session_id, "login_session_id")
        store.need_string(revoked_at, "revoked_at")
        revoked_at = util.normalize_time(revoked_at, "revoked_at")
        local pk = keys.refresh_token_login_item(tenant_id, login_session_id, "").PK
        return revoke(tenant_id, pk, "login_id", login_session_id, revoked_at)
    end

    function M.revokeFamily(tenant_id, family_id, revoked_at)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(family_id, "family_id")
        store.need_string(revoked_at, "revoked_at")
        revoked_at = util.normalize_time(revoked_at, "revoked_at")
        local pk = keys.refresh_token_family_item(tenant_id, family_id, "").PK
        return revoke(tenant_id, pk, "family_id", family_id, revoked_at)
    end

    return store.adapter(M)
end
