-- clientRegistrationTokens (contract §6): PK TENANT#{t} / SK CLIENT_REGISTRATION_TOKEN#{id}, GSI1
-- TENANT#{t}#CRT_HASH#{token_hash} / CLIENT_REGISTRATION_TOKEN (getByHash), GSI2
-- TENANT#{t}#CLIENT#{client_id} / CLIENT_REGISTRATION_TOKEN#{id} (a client's tokens: listByClient,
-- revokeByClient, client removal), TTL from expires_at, and the guard CLIENT_REGISTRATION_TOKEN_HASH#{hash}
-- (one token per hash, SQL's unique index; same ttl as its token), written and deleted with the
-- token in one transaction. markUsed, revoke and revokeByClient are
-- conditional UpdateItems, so a token is marked used (or revoked) once however many callers race.
-- list(t, params) is an addition (AuthHero has no tenant-wide list) for the command line's export.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("clientRegistrationTokens")
local GUARD = schema.templates.client_registration_token_hash_guard

local TYPES = { iat = true, rat = true }
local TIMES = { "expires_at", "used_at", "revoked_at" }
-- the fields of a token record (anything else in an input is left out)
local FIELDS = { id = true, token_hash = true, type = true, client_id = true, sub = true, constraints = true,
    single_use = true, expires_at = true, used_at = true, revoked_at = true }

local present = util.present

local function record(item)
    local r = store.to_record(E, item)
    if r and r.single_use == nil then r.single_use = false end
    return r
end

-- newest first (created_at descending), then by id descending
local function newer(a, b)
    if a.created_at ~= b.created_at then return tostring(a.created_at) > tostring(b.created_at) end
    return util.byte_lt(b.id, a.id)
end

-- "not yet <field>": the attribute is absent or NULL
local function unset(st, field)
    local n = st.name(field)
    return "(attribute_not_exists(" .. n .. ") OR attribute_type(" .. n .. ", " .. st.value("NULL") .. "))"
end

return function(ctx)
    -- the live token item, or nil
    local function get_raw(t, id)
        return ctx:get_valid(keys.client_registration_token(t, id), record)
    end

    local M = {}

    -- create(t, token) -> token; 409 when the id exists (a live token). used_at and revoked_at are
    -- stored when given (an import of a used or revoked token).
    function M.create(t, token)
        store.need_string(t, "tenant_id")
        store.need_table(token, "client registration token")
        store.need_string(token.id, "id")
        store.need_string(token.token_hash, "token_hash")
        if not TYPES[token.type] then errors.validation("type must be iat or rat, got %s", tostring(token.type)) end
        store.opt_string(token.client_id, "client_id")
        store.opt_string(token.sub, "sub")
        local c = token.constraints
        if present(c) and (type(c) ~= "table" or core.is_array(c) or c[1] ~= nil) then
            errors.validation("constraints must be an object")
        end
        if present(token.single_use) and type(token.single_use) ~= "boolean" then
            errors.validation("single_use must be a boolean")
        end
        local rec = {}
        for k, v in pairs(token) do
            if FIELDS[k] and v ~= null and v ~= "" then rec[k] = v end
        end
        util.normalize_times(rec, TIMES)
        if rec.single_use == nil then rec.single_use = false end
        local now = ctx:now_iso()
        rec.tenant_id, rec.created_at, rec.updated_at = t, now, now
        local k = keys.client_registration_token(t, rec.id)
        for a, v in pairs(schema.index_attrs(E, rec)) do k[a] = v end
        k.ttl = schema.ttl(E, rec)
        local item = ctx:to_item(E, rec, k)
        local g = keys.client_registration_token_hash_guard(t, rec.token_hash)
        g.entityType = GUARD.entity_type
        g.tenant_id, g.client_registration_token_id, g.token_hash = t, rec.id, rec.token_hash
        g.created_at, g.updated_at, g.ttl = now, now, k.ttl
        return record(ctx:create_guarded({ item = item, guard = g, owner_attr = "client_registration_token_id",
            holds = function(owner_id)
                local cur = get_raw(t, owner_id)
                return cur ~= nil and cur.token_hash == rec.token_hash
            end,
            exists = "Client registration token already exists",
            taken = "A client registration token with this hash already exists" }))
    end

    function M.get(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        return record(get_raw(t, id))
    end

    -- getByHash(t, token_hash) -> token or nil: one Query of GSI1 (eventually consistent), re-checked
    -- for tenant and hash; expired tokens are absent.
    function M.getByHash(t, token_hash)
        store.need_string(t, "tenant_id")
        store.need_string(token_hash, "token_hash")
        local found = ctx:index_records(schema.templates.client_registration_token_hash_index,
            { tenant_id = t, token_hash = token_hash }, record)
        table.sort(found, newer)
        return found[1]
    end

    local function of_client(t, client_id)
        return ctx:index_records(schema.templates.client_registration_token_client_index,
            { tenant_id = t, client_id = client_id }, record)
    end

    -- listByClient(t, client_id) -> the client's live tokens, newest first (one Query of GSI2).
    function M.listByClient(t, client_id)
        store.need_string(t, "tenant_id")
        store.need_string(client_id, "client_id")
        local found = of_client(t, client_id)
        table.sort(found, newer)
        return core.array(found)
    end

    -- A conditional UpdateItem on a live token -> true, or false when it is missing, expired, or the
    -- condition (cond_fn) fails.
    local function mark(t, id, set, cond_fn)
        return ctx:update_item(keys.client_registration_token(t, id), set, nil, function(st)
            return st.name("entityType") .. " = " .. st.value(E.entity_type) .. " AND " .. cond_fn(st)
        end)
    end

    -- markUsed(t, id, used_at) -> true exactly once for a live (unexpired, unrevoked) unused token.
    function M.markUsed(t, id, used_at)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_string(used_at, "used_at")
        used_at = util.normalize_time(used_at, "used_at")
        return mark(t, id, { used_at = used_at, updated_at = ctx:now_iso() }, function(st)
            return unset(st, "used_at") .. " AND " .. unset(st, "revoked_at")
        end)
    end

    -- revoke(t, id, revoked_at) -> true when a live token that was not revoked is revoked now.
    function M.revoke(t, id, revoked_at)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_string(revoked_at, "revoked_at")
        revoked_at = util.normalize_time(revoked_at, "revoked_at")
        return mark(t, id, { revoked_at = revoked_at, updated_at = ctx:now_iso() }, function(st)
            return unset(st, "revoked_at")
        end)
    end

    -- revokeByClient(t, client_id, revoked_at) -> how many of the client's live tokens were revoked
    -- now (GSI2, then one conditional UpdateItem per token not yet revoked).
    function M.revokeByClient(t, client_id, revoked_at)
        store.need_string(t, "tenant_id")
        store.need_string(client_id, "client_id")
        store.need_string(revoked_at, "revoked_at")
        revoked_at = util.normalize_time(revoked_at, "revoked_at")
        local n = 0
        for _, r in ipairs(of_client(t, client_id)) do
            if not present(r.revoked_at) then
                local ok = mark(t, r.id, { revoked_at = revoked_at, updated_at = ctx:now_iso() }, function(st)
                    return st.name("client_id") .. " = " .. st.value(client_id) .. " AND " .. unset(st, "revoked_at")
                end)
                if ok then n = n + 1 end
            end
        end
        return n
    end

    -- remove(t, id) -> true when a live token was deleted, with its hash guard (if its own). An
    -- expired token is absent: false, and TTL deletes both.
    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local cur = get_raw(t, id)
        if not cur then return false end
        local guard
        if type(cur.token_hash) == "string" and cur.token_hash ~= "" then
            guard = keys.client_registration_token_hash_guard(t, cur.token_hash)
            if schema.oversized(guard) then guard = nil end
        end
        return ctx:remove_guarded(keys.client_registration_token(t, id), guard,
            store.owned_by("client_registration_token_id", id))
    end

    -- list(t, params?) -> { client_registration_tokens, start, limit, length, total?, next? } in id
    -- order (an addition, for export); no `q`.
    function M.list(t, params)
        store.need_string(t, "tenant_id")
        return ctx:list({
            params = params, pk = keys.tenant_partition(t), prefix = schema.prefix.client_registration_token,
            consistent = true, to_record = record, items_key = "client_registration_tokens",
            sortable = { created_at = true },
        })
    end

    return store.adapter(M)
end
