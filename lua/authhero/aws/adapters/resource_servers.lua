-- resourceServers (contract §5.5): PK TENANT#{t} / SK RESOURCE_SERVER#{id}, plus the guard
-- RESOURCE_SERVER_IDENTIFIER#{identifier} that keeps identifiers unique per tenant (written, moved
-- and deleted with the record in one transaction). verificationKey is stored as verification_key;
-- an update's options are merged into the stored ones (RFC 7396, as AuthHero's SQL adapters do).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("resourceServers")
local TAKEN = "A resource server with this identifier already exists"

-- What a record has when the item does not say (AuthHero's schema and SQL adapters).
local DEFAULTS = { token_lifetime = 86400, token_lifetime_for_web = 7200,
    skip_consent_for_verifiable_first_party_clients = false, allow_offline_access = false }
local OPTION_BOOLEANS = { "enforce_policies", "allow_skipping_userinfo", "skip_userinfo",
    "persist_client_authorization", "enable_introspection_endpoint" }
local DIALECTS = { access_token = true, access_token_authz = true }

local function absent(v)
    return v == nil or v == null
end

local function is_object(v)
    return type(v) == "table" and not core.is_array(v) and #v == 0
end

local function opt_boolean(v, name)
    if not absent(v) and type(v) ~= "boolean" then errors.validation("%s must be a boolean", name) end
end

local function check_scopes(v)
    if type(v) ~= "table" or (next(v) ~= nil and #v == 0) then errors.validation("scopes must be an array") end
    local n = 0
    for i, s in pairs(v) do
        n = n + 1
        if type(i) ~= "number" or not is_object(s) or type(s.value) ~= "string" then
            errors.validation("scopes must be an array of { value, description? }")
        end
        store.opt_string(s.description, "scopes.description")
    end
    if n ~= #v then errors.validation("scopes must be an array") end
end

local function check_options(o)
    if not is_object(o) then errors.validation("options must be an object") end
    if not absent(o.token_dialect) and not DIALECTS[o.token_dialect] then
        errors.validation("options.token_dialect must be access_token or access_token_authz")
    end
    for _, f in ipairs(OPTION_BOOLEANS) do opt_boolean(o[f], "options." .. f) end
    if not absent(o.mtls) then
        if not is_object(o.mtls) then errors.validation("options.mtls must be an object") end
        opt_boolean(o.mtls.bound_access_tokens, "options.mtls.bound_access_tokens")
    end
end

-- Checks a record or a patch (patch: absent fields are fine; null resets to the default).
local function check(r, patch)
    for _, f in ipairs({ "name", "identifier" }) do
        if not patch or r[f] ~= nil then store.need_string(r[f], f) end
    end
    for _, f in ipairs({ "signing_alg", "signing_secret", "verificationKey" }) do store.opt_string(r[f], f) end
    for _, f in ipairs({ "token_lifetime", "token_lifetime_for_web" }) do
        local v = r[f]
        if not absent(v) and (type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge) then
            errors.validation("%s must be a number", f)
        end
    end
    for _, f in ipairs({ "skip_consent_for_verifiable_first_party_clients", "allow_offline_access", "is_system" }) do
        opt_boolean(r[f], f)
    end
    if not absent(r.scopes) then check_scopes(r.scopes) end
    if not absent(r.options) then check_options(r.options) end
    if not absent(r.metadata) and not is_object(r.metadata) then errors.validation("metadata must be an object") end
end

-- A record or patch as stored: verificationKey -> verification_key, is_system only when true
-- (anything else removes it), defaults for what is null (and, with fill, for what is absent).
local function to_stored(r, fill)
    if r.verificationKey ~= nil then r.verification_key = r.verificationKey end
    r.verificationKey = nil
    if r.is_system ~= nil and r.is_system ~= true then r.is_system = fill and nil or null end
    for f, v in pairs(DEFAULTS) do
        if r[f] == null or (fill and r[f] == nil) then r[f] = v end
    end
    if r.scopes == null or (fill and r.scopes == nil) then r.scopes = core.array({}) end
    if r.options == null or (fill and r.options == nil) then r.options = {} end
end

local function record(item)
    local r = store.to_record(E, item)
    if r == nil then return nil end
    r.verificationKey, r.verification_key = r.verification_key, nil
    if r.is_system ~= true then r.is_system = nil end
    for f, v in pairs(DEFAULTS) do
        if r[f] == nil then r[f] = v end
    end
    if r.scopes == nil then r.scopes = core.array({}) end
    if r.options == nil then r.options = {} end
    return r
end

-- RFC 7396 merge patch: null removes a member, objects merge member by member, anything else
-- (arrays included) replaces.
local function merge(target, patch)
    if not is_object(patch) then return patch end
    local out = {}
    if is_object(target) then
        for k, v in pairs(target) do out[k] = v end
    end
    for k, v in pairs(patch) do
        if v == null then out[k] = nil else out[k] = merge(out[k], v) end
    end
    return out
end

-- The guard of a stored identifier, or nil when no guard can have that key (an item written by
-- other tools with an identifier too long for one): nothing to delete.
local function stored_guard_key(t, identifier)
    if type(identifier) ~= "string" then return nil end
    local g = keys.resource_server_guard(t, identifier)
    if schema.oversized(g) then return nil end
    return g
end

return function(ctx)
    local function guard_item(t, id, identifier, now)
        local g = keys.resource_server_guard(t, identifier)
        g.entityType = "RESOURCE_SERVER_IDENTIFIER"
        g.tenant_id, g.resource_server_id, g.identifier, g.created_at, g.updated_at = t, id, identifier, now, now
        return g
    end

    local function get_raw(t, id)
        return ctx:get_valid(keys.resource_server(t, id), record)
    end

    -- Does resource server `owner_id` still have this identifier? (store.drop_stale_guard)
    local function holder_of(t, identifier)
        return function(owner_id)
            local owner = get_raw(t, owner_id)
            return owner ~= nil and owner.identifier == identifier
        end
    end

    local function drop_stale_guard(t, identifier, self)
        return ctx:drop_stale_guard(keys.resource_server_guard(t, identifier), "resource_server_id", self,
            holder_of(t, identifier))
    end

    local M = {}

    function M.create(t, params, options)
        store.need_string(t, "tenant_id")
        store.need_table(params, "resource server")
        check(params, false)
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id or params.id
        if absent(id) then id = ctx.new_id() end
        store.need_string(id, "id")
        local rec = util.shallow_copy(params)
        rec.verification_key = nil
        to_stored(rec, true)
        rec.id, rec.tenant_id, rec.created_at, rec.updated_at = id, t, created, updated
        local item = ctx:to_item(E, rec, keys.resource_server(t, id))
        return record(ctx:create_guarded({ item = item, guard = guard_item(t, id, rec.identifier, created),
            owner_attr = "resource_server_id", holds = holder_of(t, rec.identifier),
            exists = "Resource server already exists", taken = TAKEN }))
    end

    function M.get(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        return record(get_raw(t, id))
    end

    function M.list(t, params)
        store.need_string(t, "tenant_id")
        return ctx:list({
            params = params, spec = E.q, pk = keys.tenant_partition(t), prefix = schema.prefix.resource_server,
            consistent = true, to_record = record, items_key = "resource_servers", sortable = E.sortable,
            fast_paths = { id = function(v)
                if v == "" then return {} end
                return { M.get(t, v) }
            end },
        })
    end

    -- Reads the item first when the write depends on it (options merged into the stored ones, a
    -- new identifier whose guard moves in the same transaction) and conditions the write on what
    -- was read; a lost race re-reads (a few times: every round one writer wins), a taken identifier
    -- is 409.
    local function update_read(t, id, k, set, remove, options_patch, identifier)
        local drop_old = true
        for _ = 1, 5 do
            local cur = get_raw(t, id)
            if not cur then return false end
            local s = util.shallow_copy(set)
            local watched = {}
            if options_patch ~= nil then
                s.options = util.json_field(merge(util.read_json_field(cur.options, "object"), options_patch), "object")
                watched[#watched + 1] = "options"
            end
            if identifier ~= nil then watched[#watched + 1] = "identifier" end
            local function unchanged(st)
                local c = {}
                for _, f in ipairs(watched) do
                    if cur[f] == nil then
                        c[#c + 1] = "attribute_not_exists(" .. st.name(f) .. ")"
                    else
                        c[#c + 1] = st.name(f) .. " = " .. st.value(cur[f])
                    end
                end
                return table.concat(c, " AND ")
            end
            if identifier == nil or identifier == cur.identifier then
                if ctx:update_item(k, s, remove, unchanged) then return true end
            else
                local tx = ctx:tx()
                tx:update(k, s, remove, function(st) return ctx:cond_exists_live(st) .. " AND " .. unchanged(st) end)
                local old = drop_old and stored_guard_key(t, cur.identifier) or nil
                if old then tx:delete(old, store.owned_by("resource_server_id", id)) end
                tx:put_new(guard_item(t, id, identifier, set.updated_at))
                local ok, reasons = tx:run()
                if ok then return true end
                if store.failed(reasons[#reasons]) and not drop_stale_guard(t, identifier, id) then
                    store.conflict(TAKEN)
                end
                if old and store.failed(reasons[2]) and not store.failed(reasons[1]) then
                    drop_old = false -- the old identifier's guard is another's (never expected): leave it
                end
            end
        end
        store.conflict("Resource server was modified concurrently; try again")
    end

    function M.update(t, id, patch)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        check(patch, true)
        -- a new identifier too long for its guard: a 400 naming it before the read
        if patch.identifier ~= nil then store.check_key(guard_item(t, id, patch.identifier)) end
        local p = util.shallow_copy(patch)
        p.verification_key = nil
        -- options: null resets them to {}; an object is merged into the stored ones ({}: nothing)
        local options_patch
        if p.options ~= nil and p.options ~= null then
            if next(p.options) ~= nil then options_patch = p.options end
            p.options = nil
        end
        to_stored(p, false)
        local set, remove = ctx:patch_sets(E, p, { id = true, tenant_id = true, created_at = true })
        local k = keys.resource_server(t, id)
        if options_patch == nil and p.identifier == nil then return ctx:update_item(k, set, remove) end
        return update_read(t, id, k, set, remove, options_patch, p.identifier)
    end

    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local cur = get_raw(t, id)
        if not cur then return false end
        -- what it owns per the registry (nothing yet), then it and its guard in one transaction
        ctx:delete_items(ctx:removal_items(E, cur, { without_self = true }), "resource server " .. id)
        return ctx:remove_guarded(keys.resource_server(t, id), stored_guard_key(t, cur.identifier),
            store.owned_by("resource_server_id", id))
    end

    return store.adapter(M)
end
