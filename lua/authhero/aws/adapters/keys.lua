-- keys (contract §5.3): signing and encryption keys in one global partition, PK KEYS / SK KEY#{kid},
-- with tenant_id stored when given (absent = a shared control-plane key). list never returns a key
-- whose revoked_at is at or before now and reads the partition consistently (it decides which key
-- signs). AuthHero has no get/remove here; a tenant's keys go with it (tenants.remove, registry).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("keys")
local TYPES = { jwt_signing = true, saml_encryption = true }
local REQUIRED = { "cert", "fingerprint", "thumbprint" }
local STRINGS = { "pkcs7", "connection" }
local BOOLEANS = { "current", "next", "previous", "revoked" }
local TIMES = { "current_since", "current_until", "revoked_at" }

-- Field checks shared by create and update (patch = true: absent fields are fine, null removes
-- what may be removed); times are normalized in place.
local function check(r, patch)
    for _, f in ipairs(REQUIRED) do
        if not patch or r[f] ~= nil then store.need_string(r[f], f) end
    end
    if not patch or r.type ~= nil then
        if not TYPES[r.type] then errors.validation("type must be jwt_signing or saml_encryption") end
    end
    local t = r.tenant_id
    if t ~= nil and t ~= null and (type(t) ~= "string" or t == "") then
        errors.validation("tenant_id must be a non-empty string")
    end
    for _, f in ipairs(STRINGS) do store.opt_string(r[f], f) end
    for _, f in ipairs(BOOLEANS) do
        local v = r[f]
        if v ~= nil and v ~= null and type(v) ~= "boolean" then errors.validation("%s must be a boolean", f) end
    end
    util.normalize_times(r, TIMES)
end

return function(ctx)
    local function to_record(item) return store.to_record(E, item) end

    -- revoked_at at or before now: revoked (an unparsable value compares as text, as SQL does)
    local function revoked(rec)
        local at = rec.revoked_at
        if type(at) ~= "string" then return false end
        local ms = util.parse_iso(at)
        if ms then return ms <= ctx.now_ms() end
        return at <= ctx:now_iso()
    end

    local M = {}

    -- Returns nothing (AuthHero's void); 409 when the kid exists.
    function M.create(key, options)
        store.need_table(key, "key")
        local rec = util.shallow_copy(key)
        local created, updated, import_id = ctx:stamps(options)
        if import_id ~= nil then rec.kid = import_id end
        store.need_string(rec.kid, "kid")
        check(rec, false)
        local k = keys.signing_key(rec.kid)
        rec.created_at, rec.updated_at = created, updated
        ctx:put_new(ctx:to_item(E, rec, k), "Key already exists")
    end

    local function by_kid(kid)
        local k = keys.signing_key(kid)
        return { to_record(ctx:get_item(k.PK, k.SK, true)) }
    end

    function M.list(params)
        return ctx:list({
            params = params, spec = E.q, pk = keys.signing_key("").PK, prefix = schema.prefix.signing_key,
            consistent = true, to_record = to_record, items_key = "signingKeys", sortable = E.sortable,
            keep = function(rec) return not revoked(rec) end,
            fast_paths = { kid = by_kid },
        })
    end

    -- true when the key existed and was updated, false when there is none. kid and created_at
    -- cannot change; tenant_id may (null makes the key a shared one).
    function M.update(kid, patch)
        store.need_string(kid, "kid")
        store.need_table(patch, "patch")
        local p = util.shallow_copy(patch)
        check(p, true)
        local set, remove = ctx:patch_sets(E, p, { kid = true, created_at = true })
        local k = keys.signing_key(kid)
        return ctx:update_item(k, set, remove)
    end

    return store.adapter(M)
end
