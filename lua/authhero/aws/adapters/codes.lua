-- codes (contract §4.6): PK TENANT#{t} / SK CODE#{code_id} (the mission document's key, so a code
-- id names one code whatever its type), TTL from expires_at. consume() is one conditional
-- UpdateItem, so a code is consumed exactly once even under concurrent calls.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("codes")

local CODE_TYPES = {
    password_reset = true, email_verification = true, otp = true, mfa_otp = true,
    authorization_code = true, oauth2_state = true, ticket = true,
}
local CHALLENGE_METHODS = { plain = true, S256 = true }
local TIME_FIELDS = { "expires_at", "used_at" }

local function check_type(v)
    if not CODE_TYPES[v] then errors.validation("code_type must be one of the code types, got %s", tostring(v)) end
end

return function(ctx)
    local function to_record(item) return store.to_record(E, item) end

    local M = {}

    function M.create(tenant_id, code)
        store.need_string(tenant_id, "tenant_id")
        store.need_table(code, "code")
        store.need_string(code.code_id, "code_id")
        check_type(code.code_type)
        store.need_string(code.login_id, "login_id")
        store.need_string(code.expires_at, "expires_at")
        local m = code.code_challenge_method
        if m ~= nil and m ~= null and not CHALLENGE_METHODS[m] then
            errors.validation("code_challenge_method must be plain or S256, got %s", tostring(m))
        end
        local rec = util.shallow_copy(code)
        for _, f in ipairs(TIME_FIELDS) do
            if rec[f] ~= nil and rec[f] ~= null then
                store.need_string(rec[f], f)
                rec[f] = util.normalize_time(rec[f], f)
            end
        end
        local now = ctx:now_iso()
        rec.created_at, rec.updated_at = now, now
        local k = keys.code(tenant_id, rec.code_id)
        k.tenant_id = tenant_id
        k.ttl = store.ttl_from(rec.expires_at)
        local item = ctx:to_item(E, rec, k)
        ctx:put_new(item, "Code already exists")
        return to_record(item)
    end

    -- nil when missing, expired, or stored with another code_type.
    function M.get(tenant_id, code_id, code_type)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(code_id, "code_id")
        store.need_string(code_type, "code_type")
        local k = keys.code(tenant_id, code_id)
        local item = ctx:get_item(k.PK, k.SK, true)
        if not item or item.code_type ~= code_type then return nil end
        return to_record(item)
    end

    function M.list(tenant_id, params)
        store.need_string(tenant_id, "tenant_id")
        return ctx:list({
            params = params, spec = E.q, pk = keys.tenant_partition(tenant_id), prefix = schema.prefix.code,
            to_record = to_record, items_key = "codes", sortable = E.sortable,
            fast_paths = { code_id = function(v)
                local k = keys.code(tenant_id, v)
                local item = ctx:get_item(k.PK, k.SK, true)
                return { item and to_record(item) or nil }
            end },
        })
    end

    -- Marks a live code used (again, if it already was); false when missing or expired.
    function M.used(tenant_id, code_id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(code_id, "code_id")
        local now = ctx:now_iso()
        return ctx:update_item(keys.code(tenant_id, code_id), { used_at = now, updated_at = now })
    end

    -- true exactly once per live code: the condition "live and not used" is checked by DynamoDB.
    function M.consume(tenant_id, code_id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(code_id, "code_id")
        local now = ctx:now_iso()
        return ctx:update_item(keys.code(tenant_id, code_id), { used_at = now, updated_at = now }, nil,
            function(st)
                local u = st.name("used_at")
                return "attribute_not_exists(" .. u .. ") OR attribute_type(" .. u .. ", " .. st.value("NULL") .. ")"
            end)
    end

    function M.remove(tenant_id, code_id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(code_id, "code_id")
        local k = keys.code(tenant_id, code_id)
        local old = ctx:delete_item(k.PK, k.SK)
        return old ~= nil and ctx:live(old)
    end

    -- DynamoDB's TTL removes expired codes; nothing to do (as upstream).
    function M.cleanup()
        return 0
    end

    return store.adapter(M)
end
