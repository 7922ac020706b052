-- authenticationMethods (contract §6): PK TENANT#{t} / SK AUTHENTICATION_METHOD#{id}, GSI1
-- TENANT#{t}#USER#{user_id} / AUTHENTICATION_METHOD#{id} (a user's methods; user removal) and, for
-- methods with a credential id, GSI2 TENANT#{t}#CREDENTIAL#{credential_id} / AUTHENTICATION_METHOD
-- (getByCredentialId, the passkey login) plus the guard AUTHENTICATION_METHOD_CREDENTIAL#{credential_id}:
-- a credential id belongs to one method per tenant (409), written, moved and deleted with it in one
-- transaction. [deviation] SQL's index on credential_id is not unique; WebAuthn asks relying parties
-- to refuse a credential id that is already registered, and a passkey login must find one user.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("authenticationMethods")
local GUARD = schema.templates.authentication_method_credential_guard

local TYPES = { email = true, push = true, passkey = true, phone = true, totp = true, ["webauthn-roaming"] = true,
    ["webauthn-platform"] = true }
local CREDENTIAL = { "credential_id", "public_key" }
-- what each type needs (AuthHero's MFA and passkey flows read these)
local REQUIRED = { phone = { "phone_number" }, totp = { "totp_secret" }, ["webauthn-roaming"] = CREDENTIAL,
    ["webauthn-platform"] = CREDENTIAL, passkey = CREDENTIAL }
-- fields a patch may not remove: some type needs each of them
local KEPT = { phone_number = true, totp_secret = true, credential_id = true, public_key = true }
local STRINGS = { "phone_number", "totp_secret", "credential_id", "public_key", "friendly_name" }
local BOOLEANS = { "credential_backed_up", "confirmed" }
-- the fields of a record (anything else in an input is left out, as AuthHero's schema strips it)
local FIELDS = { id = true, user_id = true, type = true, phone_number = true, totp_secret = true,
    credential_id = true, public_key = true, sign_count = true, credential_backed_up = true, transports = true,
    friendly_name = true, confirmed = true }
local EXISTS = "Authentication method already exists"
local TAKEN = "An authentication method with this credential id already exists"
local BUSY = "Authentication method was modified concurrently; try again"

local present = util.present

-- Type checks of what a method or a patch carries (null passes; the callers decide what it means).
local function check_types(r)
    for _, f in ipairs(STRINGS) do
        local v = r[f]
        if present(v) and (type(v) ~= "string" or (KEPT[f] and v == "")) then
            errors.validation("%s must be a non-empty string", f)
        end
    end
    for _, f in ipairs(BOOLEANS) do
        if present(r[f]) and type(r[f]) ~= "boolean" then errors.validation("%s must be a boolean", f) end
    end
    local n = r.sign_count
    if present(n) and (type(n) ~= "number" or n ~= math.floor(n) or n < 0) then
        errors.validation("sign_count must be a non-negative integer")
    end
    local tr = r.transports
    if present(tr) then
        if type(tr) ~= "table" then errors.validation("transports must be an array of strings") end
        local c = 0
        for k, v in pairs(tr) do
            c = c + 1
            if type(k) ~= "number" or type(v) ~= "string" then errors.validation("transports must be an array of strings") end
        end
        if c ~= #tr then errors.validation("transports must be an array of strings") end
    end
end

local function check(m)
    store.need_string(m.user_id, "user_id")
    if not TYPES[m.type] then
        errors.validation("type must be one of email, push, passkey, phone, totp, webauthn-roaming, "
            .. "webauthn-platform; got %s", tostring(m.type))
    end
    check_types(m)
    for _, f in ipairs(REQUIRED[m.type] or {}) do
        if not present(m[f]) then errors.validation("%s is required for a %s method", f, m.type) end
    end
end

local function record(item)
    local r = store.to_record(E, item)
    if r and r.confirmed == nil then r.confirmed = false end
    return r
end

-- oldest first, then by id: list order, and the pick among several methods of one credential id
local function older(a, b)
    if a.created_at ~= b.created_at then return tostring(a.created_at) < tostring(b.created_at) end
    return util.byte_lt(a.id, b.id)
end

-- The guard item of a credential id, with the fields its key is built from (store.check_key names them).
local function guard_item(t, credential_id, id, now)
    local g = keys.authentication_method_credential_guard(t, credential_id)
    g.entityType = GUARD.entity_type
    g.tenant_id, g.authentication_method_id, g.credential_id = t, id, credential_id
    g.created_at, g.updated_at = now, now
    return g
end

return function(ctx)
    local function get_raw(t, id)
        return ctx:get_valid(keys.authentication_method(t, id), record)
    end

    -- Does method owner_id (read consistently) still have this credential id? (drop_stale_guard)
    local function holder_of(t, credential_id)
        return function(owner_id)
            local it = get_raw(t, owner_id)
            return it ~= nil and it.credential_id == credential_id
        end
    end

    local M = {}

    -- create(t, method, options?) -> method. id: importMetadata's, the caller's, or generated.
    function M.create(t, method, options)
        store.need_string(t, "tenant_id")
        store.need_table(method, "authentication method")
        check(method)
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id or method.id
        if not present(id) then id = ctx.new_id() end
        store.need_string(id, "id")
        local rec = {}
        for k, v in pairs(method) do
            if FIELDS[k] and v ~= null then rec[k] = v end
        end
        if rec.confirmed == nil then rec.confirmed = false end
        rec.id, rec.tenant_id, rec.created_at, rec.updated_at = id, t, created, updated
        local k = keys.authentication_method(t, id)
        for a, v in pairs(schema.index_attrs(E, rec)) do k[a] = v end
        local item = ctx:to_item(E, rec, k)
        if rec.credential_id == nil then
            ctx:put_new(item, EXISTS)
            return record(item)
        end
        return record(ctx:create_guarded({ item = item, guard = guard_item(t, rec.credential_id, id, created),
            owner_attr = "authentication_method_id", holds = holder_of(t, rec.credential_id), exists = EXISTS,
            taken = TAKEN }))
    end

    function M.get(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        return record(get_raw(t, id))
    end

    -- getByCredentialId(t, credential_id) -> method or nil: one Query of GSI2 (eventually
    -- consistent), re-checked for tenant and credential id; among several (items written without the
    -- guard) the oldest.
    function M.getByCredentialId(t, credential_id)
        store.need_string(t, "tenant_id")
        store.need_string(credential_id, "credential_id")
        local found = ctx:index_records(schema.templates.authentication_method_credential_index,
            { tenant_id = t, credential_id = credential_id }, record)
        table.sort(found, older)
        return found[1]
    end

    -- list(t, user_id) -> the user's methods, oldest first: one Query of GSI1 (by the kind's prefix).
    function M.list(t, user_id)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        local found = ctx:index_records(schema.templates.authentication_method_user_index,
            { tenant_id = t, user_id = user_id }, record)
        table.sort(found, older)
        return core.array(found)
    end

    -- update(t, id, patch) -> the updated method, or nil when there is none. user_id, type, id and
    -- created_at are not changed; a new credential_id moves GSI2 and the guard in one transaction
    -- (409 when another method has it). One UpdateItem otherwise.
    function M.update(t, id, patch)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        check_types(patch)
        for f in pairs(KEPT) do
            if patch[f] == null then errors.validation("%s cannot be removed; remove the method instead", f) end
        end
        local p = {}
        for k, v in pairs(patch) do
            if FIELDS[k] and k ~= "id" and k ~= "user_id" and k ~= "type" then p[k] = v end
        end
        if p.confirmed == null then p.confirmed = false end
        local set, remove = ctx:patch_sets(E, p)
        local k = keys.authentication_method(t, id)
        local cid = p.credential_id
        if cid ~= nil then
            -- keys too long for DynamoDB: a 400 before any read
            local ix = keys.authentication_method_credential_index(t, cid)
            local g = guard_item(t, cid, id, set.updated_at)
            g.GSI2PK, g.GSI2SK = ix.GSI2PK, ix.GSI2SK
            store.check_key(g)
            if schema.oversized(k) then return nil end
            set.GSI2PK, set.GSI2SK = ix.GSI2PK, ix.GSI2SK
            local function move()
                return ctx:move_guard({
                    key = k, field = "credential_id", value = cid, set = set, remove = remove,
                    valid = function(cur) return record(cur) ~= nil end,
                    guard_key = function(v) return keys.authentication_method_credential_guard(t, v) end,
                    guard_item = function(v) return guard_item(t, v, id, set.updated_at) end,
                    owned = store.owned_by("authentication_method_id", id), taken = TAKEN, busy = BUSY,
                })
            end
            local done, ok = pcall(move)
            if not done then
                -- taken by a left-over guard (its method is gone or has another credential): take it over
                if not (errors.is(ok, "Conflict") and ok.message == TAKEN and ctx:drop_stale_guard(
                    keys.authentication_method_credential_guard(t, cid), "authentication_method_id", id,
                    holder_of(t, cid))) then
                    error(ok, 0)
                end
                ok = move()
            end
            if not ok then return nil end
            return record(get_raw(t, id))
        end
        if schema.oversized(k) then return nil end
        local req = ctx:update_request(k, set, remove, function(st)
            return "attribute_exists(" .. st.name("PK") .. ") AND " .. st.name("entityType") .. " = "
                .. st.value(E.entity_type)
        end)
        req.ReturnValues = "ALL_NEW"
        local ok, res = pcall(ctx.client.call, ctx.client, "UpdateItem", req)
        if not ok then
            if errors.is(res, "ConditionalCheckFailedException") then return nil end
            error(res, 0)
        end
        return record(res.Attributes)
    end

    -- remove(t, id) -> true when it was there; its credential guard goes with it (if it is its own).
    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local cur = get_raw(t, id)
        if not cur then return false end
        local guard
        if type(cur.credential_id) == "string" and cur.credential_id ~= "" then
            guard = keys.authentication_method_credential_guard(t, cur.credential_id)
            if schema.oversized(guard) then guard = nil end
        end
        return ctx:remove_guarded(keys.authentication_method(t, id), guard,
            store.owned_by("authentication_method_id", id))
    end

    return store.adapter(M)
end
