-- users (contract §4.2): PK TENANT#{t} / SK USER#{u}; GSI1 TENANT#{t}#EMAIL#{lower(email)} / USER (email
-- lookup); GSI2 TENANT#{t}#LINKED_TO#{primary} / USER#{u} (linked accounts); guard items
-- USER_EMAIL#{email}#{provider} and USER_USERNAME#{username}#{provider} in the tenant partition keep
-- (email, provider) and (username, provider) unique. `identities` is computed on read, never stored.
-- remove cascades to linked users and, through the registry, to everything a user owns: the user
-- partition (passwords, roles, permissions) and the records indexed under GSI1 TENANT#{t}#USER#{u}
-- (sessions, refresh tokens, memberships, ...), each with its helper items.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys, prefix = schema.keys, schema.prefix
local null = core.null

local E = schema.entity("users")
local GUARD = { entity_type = "USER_GUARD" }

-- patch fields that never reach the item
local IGNORE = { user_id = true, identities = true, created_at = true, tenant_id = true, password = true }
-- fields whose change moves an index key or a guard
local KEYED = { "email", "username", "provider", "linked_to" }
local STRINGS = { "user_id", "provider", "email", "username", "linked_to", "connection", "phone_number" }
local BOOLEANS = { "email_verified", "phone_verified", "is_social", "blocked", "verify_email" }
local TIMES = { "last_login", "registration_completed_at" }

local function present(v)
    return v ~= nil and v ~= null and v ~= ""
end

local function value(v)
    if v == null then return nil end
    return v
end

-- "auth0|abc|def" -> "abc|def" (everything after the first '|'; the whole id without one)
local function identity_user_id(user_id)
    return user_id:match("^[^|]*|(.*)$") or user_id
end

local function provider_of(user_id)
    local p = type(user_id) == "string" and user_id:match("^([^|]*)|") or nil
    if p == "" then return nil end
    return p
end

-- oldest first, then smallest user_id
local function older(a, b)
    local x, y = a.created_at or "", b.created_at or ""
    if x ~= y then return x < y end
    return a.user_id < b.user_id
end

local function by_user_id(a, b)
    return a.user_id < b.user_id
end

local function check_types(u)
    for _, f in ipairs(STRINGS) do store.opt_string(u[f], f) end
    for _, f in ipairs(BOOLEANS) do
        local v = u[f]
        if v ~= nil and v ~= null and type(v) ~= "boolean" then errors.validation("%s must be a boolean", f) end
    end
    local lc = u.login_count
    if lc ~= nil and lc ~= null and (type(lc) ~= "number" or lc ~= math.floor(lc)) then
        errors.validation("login_count must be an integer")
    end
end

-- copy of a user/patch with emails lower-cased (Unicode, as JavaScript's toLowerCase: contract §2.4)
-- and timestamps normalized
local function normalized(u, skip)
    local r = {}
    for k, v in pairs(u) do
        if not (skip and skip[k]) then r[k] = v end
    end
    if type(r.email) == "string" then r.email = core.lower(r.email, "email") end
    for _, f in ipairs(TIMES) do
        if type(r[f]) == "string" then r[f] = util.normalize_time(r[f], f) end
    end
    return r
end

local function profile_data(v)
    if type(v) == "table" then return v end
    if type(v) == "string" and v ~= "" then
        local ok, d = pcall(core.json_decode, v)
        if ok and type(d) == "table" then return d end
    end
    return nil
end

return function(ctx, adapters)
    -- records whose item carries hasLinked: only these need the linked-users query
    local maybe_linked = setmetatable({}, { __mode = "k" })

    local function to_record(item)
        local r = store.to_record(E, item)
        if r == nil then return nil end
        if item.hasLinked then maybe_linked[r] = true end
        if r.app_metadata == nil then r.app_metadata = {} end
        if r.user_metadata == nil then r.user_metadata = {} end
        if r.email_verified == nil then r.email_verified = false end
        if r.is_social == nil then r.is_social = false end
        if r.login_count == nil then r.login_count = 0 end
        return r
    end

    -- users of tenant t whose linked_to is primary (GSI2; eventually consistent), as items
    local function linked_items(t, primary)
        local out = {}
        local pk = keys.user_linked_index(t, primary, "").GSI2PK
        for _, it in ipairs(ctx:query_all({ index = "GSI2", pk = pk, prefix = prefix.user })) do
            if it.entityType == E.entity_type and it.tenant_id == t and it.linked_to == primary then
                out[#out + 1] = it
            end
        end
        return out
    end

    local function linked_records(t, primary)
        local out = {}
        for _, it in ipairs(linked_items(t, primary)) do out[#out + 1] = to_record(it) end
        return out
    end

    local function own_identity(u)
        local id = {
            connection = u.connection, provider = u.provider, user_id = identity_user_id(u.user_id),
            isSocial = u.is_social == true,
        }
        for _, f in ipairs({ "email", "email_verified", "phone_number", "phone_verified", "username" }) do
            id[f] = value(u[f])
        end
        return id
    end

    -- record.identities: its own identity, then one per linked user, oldest first
    local function with_identities(t, rec, linked)
        if linked == nil then
            linked = maybe_linked[rec] and linked_records(t, rec.user_id) or {}
        end
        table.sort(linked, older)
        local ids = core.array({ own_identity(rec) })
        for _, l in ipairs(linked) do
            local id = own_identity(l)
            local pd = { email = value(l.email), email_verified = value(l.email_verified) }
            for k, v in pairs(profile_data(l.profileData) or {}) do pd[k] = v end
            id.profileData = pd
            ids[#ids + 1] = id
        end
        rec.identities = ids
        return rec
    end

    local function guard_item(key, t, user_id, now)
        return ctx:to_item(GUARD, { user_id = user_id, tenant_id = t, created_at = now, updated_at = now }, key)
    end

    local function email_guard(t, email, provider)
        if present(email) and present(provider) then return keys.user_email_guard(t, email, provider) end
        return nil
    end

    local function username_guard(t, username, provider)
        if present(username) and present(provider) then return keys.user_username_guard(t, username, provider) end
        return nil
    end

    local function get_record(t, user_id)
        local k = keys.user(t, user_id)
        local item = ctx:get_item(k.PK, k.SK, true)
        return item and to_record(item) or nil
    end

    local M = {}

    -- Marks the primary a user is being linked to (in the same transaction); the primary must
    -- exist. Returns the operation's index in tx.
    local function mark_primary(tx, t, primary)
        tx:update(keys.user(t, primary), { hasLinked = true }, nil, function(st)
            return "attribute_exists(" .. st.name("PK") .. ") AND " .. st.name("entityType") .. " = "
                .. st.value(E.entity_type)
        end)
        return tx:size()
    end

    local function primary_missing(reasons, at, primary)
        local r = at and reasons and reasons[at]
        if r and r.Code == "ConditionalCheckFailed" then
            errors.validation("linked_to: no user %s in this tenant", tostring(primary))
        end
    end

    function M.create(t, user, options)
        store.need_string(t, "tenant_id")
        store.need_table(user, "user")
        store.need_string(user.connection, "connection")
        check_types(user)
        local u = normalized(user)
        for k, v in pairs(u) do
            if v == null then u[k] = nil end
        end
        local created, updated, import_id = ctx:stamps(options)
        local user_id = import_id or u.user_id
        local provider = u.provider or provider_of(user_id)
        if not present(provider) then errors.validation("provider is required (or a user_id of the form provider|id)") end
        user_id = user_id or (provider .. "|" .. ctx.new_id())
        store.need_string(user_id, "user_id")

        local pw = user.password
        if pw ~= nil and pw ~= null then
            if type(pw) ~= "table" then errors.validation("password must be a table { hash, algorithm }") end
            store.need_string(pw.hash, "password.hash")
        end

        u.user_id, u.provider, u.tenant_id = user_id, provider, t
        u.created_at, u.updated_at = created, updated
        if u.email_verified == nil then u.email_verified = false end
        if u.is_social == nil then u.is_social = false end
        if u.login_count == nil then u.login_count = 0 end
        if u.app_metadata == nil then u.app_metadata = {} end
        if u.user_metadata == nil then u.user_metadata = {} end

        local k = keys.user(t, user_id)
        if present(u.email) then
            local g = keys.user_email_index(t, u.email)
            k.GSI1PK, k.GSI1SK = g.GSI1PK, g.GSI1SK
        end
        if present(u.linked_to) then
            local g = keys.user_linked_index(t, u.linked_to, user_id)
            k.GSI2PK, k.GSI2SK = g.GSI2PK, g.GSI2SK
        end
        local item = ctx:to_item(E, u, k)

        local tx = ctx:tx()
        tx:put_new(item)
        local eg = email_guard(t, u.email, provider)
        if eg then tx:put_new(guard_item(eg, t, user_id, created)) end
        local ug = username_guard(t, u.username, provider)
        if ug then tx:put_new(guard_item(ug, t, user_id, created)) end
        if pw ~= nil and pw ~= null then
            tx:put_new(adapters.passwords._item(t, {
                user_id = user_id, password = pw.hash, algorithm = value(pw.algorithm), is_current = true,
            }, { importMetadata = { created_at = created, updated_at = updated } }))
        end
        local at = present(u.linked_to) and mark_primary(tx, t, u.linked_to) or nil
        local ok, reasons = tx:run(nil)
        if not ok then
            primary_missing(reasons, at, u.linked_to)
            store.conflict("User already exists")
        end
        -- a new user has no linked users (remove takes them along with their primary)
        return with_identities(t, to_record(item), {})
    end

    M.rawCreate = M.create

    function M.get(t, user_id)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        local rec = get_record(t, user_id)
        return rec and with_identities(t, rec) or nil
    end

    -- getByEmail(t, email): the user with that email (case-insensitive) in tenant t, preferring a
    -- primary (unlinked) user, then the oldest, then the smallest user_id. Eventually consistent.
    function M.getByEmail(t, email)
        store.need_string(t, "tenant_id")
        store.need_string(email, "email")
        local want = core.lower(email, "email")
        local best
        local pk = keys.user_email_index(t, want).GSI1PK
        for _, it in ipairs(ctx:query_all({ index = "GSI1", pk = pk })) do
            if it.entityType == E.entity_type and it.tenant_id == t and type(it.email) == "string"
                and core.lower(it.email, "email") == want then
                local r = to_record(it)
                if best == nil then
                    best = r
                else
                    local a, b = r.linked_to == nil, best.linked_to == nil
                    if (a and not b) or (a == b and older(r, best)) then best = r end
                end
            end
        end
        return best and with_identities(t, best) or nil
    end

    -- fast paths for list: the candidates an index gives for `field:value` (filtered again by q)
    local function by_email(t, email)
        local out = {}
        local pk = keys.user_email_index(t, email).GSI1PK
        for _, it in ipairs(ctx:query_all({ index = "GSI1", pk = pk })) do
            if it.entityType == E.entity_type and it.tenant_id == t then out[#out + 1] = to_record(it) end
        end
        table.sort(out, by_user_id)
        return out
    end

    -- username guards of every provider (USER_USERNAME#{lower(username)}#...), then the users
    local function by_username(t, username)
        local out, seen = {}, {}
        local pfx = keys.user_username_guard(t, username, "").SK
        for _, g in ipairs(ctx:query_all({ pk = keys.tenant_partition(t), prefix = pfx, consistent = true })) do
            if g.entityType == GUARD.entity_type and type(g.user_id) == "string" and not seen[g.user_id] then
                seen[g.user_id] = true
                local r = get_record(t, g.user_id)
                if r then out[#out + 1] = r end
            end
        end
        table.sort(out, by_user_id)
        return out
    end

    function M.list(t, params)
        store.need_string(t, "tenant_id")
        local res = ctx:list({
            params = params, spec = E.q, pk = keys.tenant_partition(t), prefix = prefix.user,
            to_record = to_record, items_key = "users", sortable = E.sortable,
            fast_paths = {
                user_id = function(v)
                    local r = get_record(t, v)
                    return { r }
                end,
                email = function(v) return by_email(t, v) end,
                username = function(v) return by_username(t, v) end,
                linked_to = function(v)
                    local out = linked_records(t, v)
                    table.sort(out, by_user_id)
                    return out
                end,
            },
            -- keyset mode lists primary users only (AuthHero's SQL adapter does the same)
            keep = function(rec, keyset) return not keyset or rec.linked_to == nil end,
        })
        for _, rec in ipairs(res.users) do with_identities(t, rec) end
        return res
    end

    -- update(t, user_id, patch) -> boolean. A change of email, username, provider or linked_to is
    -- one TransactWriteItems: the user item (conditioned on the old values) with its GSI keys, the
    -- old guards deleted and the new ones put; a taken email/username raises 409.
    function M.update(t, user_id, patch, options) -- luacheck: no unused args
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        store.need_table(patch, "patch")
        check_types(patch)
        local p = normalized(patch, IGNORE)
        if p.provider ~= nil and not present(p.provider) then errors.validation("provider cannot be removed") end
        local k = keys.user(t, user_id)
        local touches = false
        for _, f in ipairs(KEYED) do
            if p[f] ~= nil then touches = true end
        end
        if not touches then
            local set, remove = ctx:patch_sets(E, p, IGNORE)
            return ctx:update_item(k, set, remove)
        end

        for _ = 1, 2 do
            local old = ctx:get_item(k.PK, k.SK, true)
            if not old or old.entityType ~= E.entity_type then return false end
            local new = {}
            for _, f in ipairs(KEYED) do
                if p[f] == nil then new[f] = old[f] else new[f] = value(p[f]) end
            end
            local set, remove = ctx:patch_sets(E, p, IGNORE)
            if present(new.email) then
                local g = keys.user_email_index(t, new.email)
                set.GSI1PK, set.GSI1SK = g.GSI1PK, g.GSI1SK
            else
                remove[#remove + 1] = "GSI1PK"
                remove[#remove + 1] = "GSI1SK"
            end
            if present(new.linked_to) then
                local g = keys.user_linked_index(t, new.linked_to, user_id)
                set.GSI2PK, set.GSI2SK = g.GSI2PK, g.GSI2SK
            else
                remove[#remove + 1] = "GSI2PK"
                remove[#remove + 1] = "GSI2SK"
            end

            local tx = ctx:tx()
            tx:update(k, set, remove, function(st)
                local c = { ctx:cond_exists_live(st) }
                for _, f in ipairs(KEYED) do
                    if old[f] == nil then
                        c[#c + 1] = "attribute_not_exists(" .. st.name(f) .. ")"
                    else
                        c[#c + 1] = st.name(f) .. " = " .. st.value(old[f])
                    end
                end
                return "(" .. table.concat(c, ") AND (") .. ")"
            end)
            local now = set.updated_at
            local function owned(st)
                return "attribute_not_exists(" .. st.name("PK") .. ") OR " .. st.name("user_id") .. " = "
                    .. st.value(user_id)
            end
            local function move(old_key, new_key)
                if old_key and new_key and old_key.SK == new_key.SK then return end
                if old_key then tx:delete(old_key, owned) end
                if new_key then tx:put_new(guard_item(new_key, t, user_id, now)) end
            end
            move(email_guard(t, old.email, old.provider), email_guard(t, new.email, new.provider))
            move(username_guard(t, old.username, old.provider), username_guard(t, new.username, new.provider))
            local at
            if present(new.linked_to) and new.linked_to ~= old.linked_to then at = mark_primary(tx, t, new.linked_to) end
            local ok, reasons = tx:run(nil)
            if ok then return true end
            primary_missing(reasons, at, new.linked_to)
            local first = reasons[1]
            if not (first and first.Code == "ConditionalCheckFailed") then store.conflict("User already exists") end
            -- the user changed (or went away) between the read and the write: read again
        end
        store.conflict("User was modified concurrently; try again")
    end

    -- remove(t, user_id) -> boolean. Deletes the user and the users linked to it, each with all it
    -- owns (store.removal_items: partitions, GSI1-indexed records, guards, membership pointers);
    -- every user goes after what it owns, so a failure part-way leaves something to retry.
    function M.remove(t, user_id, options) -- luacheck: no unused args
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        local k = keys.user(t, user_id)
        local primary = ctx:get_item(k.PK, k.SK, true)
        if not primary or primary.entityType ~= E.entity_type then return false end
        local victims = linked_items(t, user_id)
        victims[#victims + 1] = primary
        local dels = {}
        for _, v in ipairs(victims) do
            for _, it in ipairs(ctx:removal_items(E, v)) do dels[#dels + 1] = it end
        end
        ctx:delete_items(dels, "user " .. user_id)
        return true
    end

    -- unlink(t, user_id, provider, linked_user_id) -> boolean: detaches "{provider}|{linked_user_id}"
    -- from primary user_id (only if it is linked to it); the secondary user is kept.
    function M.unlink(t, user_id, provider, linked_user_id)
        store.need_string(t, "tenant_id")
        store.need_string(user_id, "user_id")
        store.need_string(provider, "provider")
        store.need_string(linked_user_id, "linked_user_id")
        return ctx:update_item(keys.user(t, provider .. "|" .. linked_user_id), { updated_at = ctx:now_iso() },
            { "GSI2PK", "GSI2SK", "linked_to" }, function(st)
                return st.name("linked_to") .. " = " .. st.value(user_id)
            end)
    end

    return store.adapter(M)
end
