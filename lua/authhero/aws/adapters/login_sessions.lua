-- loginSessions (contract §5.1): PK TENANT#{t} / SK LOGIN_SESSION#{id}, TTL from expires_at (rewritten
-- whenever expires_at is). Also owns the bump rule (`_bump`) that sessions and refresh tokens call to
-- keep a login session alive as long as what was issued from it: one conditional UpdateItem that
-- only ever extends a live login session, best effort (it never raises).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("loginSessions")

local STATES = {
    pending = true, authenticated = true, awaiting_email_verification = true, awaiting_mfa = true,
    awaiting_hook = true, awaiting_continuation = true, awaiting_consent = true, completed = true,
    failed = true, expired = true,
}
local TIME_FIELDS = { "expires_at", "authenticated_at", "deleted_at" }
local STRING_FIELDS = { "csrf_token", "auth0Client", "ip", "useragent", "session_id", "authorization_url",
    "state_data", "failure_reason", "user_id", "auth_connection" }
-- fields a login session cannot lose (AuthHero's schema requires them)
local REQUIRED = { csrf_token = true, authParams = true, expires_at = true, state = true }

local function is_object(v)
    return type(v) == "table" and v ~= null and not core.is_array(v)
end

-- Checks and normalizes the fields of a record or patch in place (400 on a bad one); `creating`
-- requires what create requires. null (remove) is refused for required fields.
local function check(r, creating)
    if creating then
        store.need_string(r.csrf_token, "csrf_token")
        if r.authParams == nil then errors.validation("authParams is required") end
        store.need_string(r.expires_at, "expires_at")
    else
        for f in pairs(REQUIRED) do
            if r[f] == null then errors.validation("%s cannot be removed", f) end
        end
    end
    for _, f in ipairs(STRING_FIELDS) do store.opt_string(r[f], f) end
    if r.csrf_token ~= nil then store.need_string(r.csrf_token, "csrf_token") end
    if r.authParams ~= nil then
        if not is_object(r.authParams) then errors.validation("authParams must be an object") end
        if creating or r.authParams.client_id ~= nil then
            store.need_string(r.authParams.client_id, "authParams.client_id")
        end
    end
    if r.state ~= nil and not STATES[r.state] then
        errors.validation("state must be one of the login session states, got %s", tostring(r.state))
    end
    local s = r.auth_strategy
    if s ~= nil and s ~= null then
        if not is_object(s) then errors.validation("auth_strategy must be an object") end
        store.need_string(s.strategy, "auth_strategy.strategy")
        store.need_string(s.strategy_type, "auth_strategy.strategy_type")
    end
    util.normalize_times(r, TIME_FIELDS)
end

local function record(item)
    local r = store.to_record(E, item)
    if r and r.state == nil then r.state = "pending" end
    return r
end

-- Bump failures are logged, never raised (contract §5.1). No shared logger exists yet.
local function warn(msg)
    if ngx and ngx.log then
        ngx.log(ngx.WARN, msg)
    else
        io.stderr:write("authhero.aws: ", msg, "\n")
    end
end

return function(ctx)
    local M = {}

    function M.create(tenant_id, login_session)
        store.need_string(tenant_id, "tenant_id")
        store.need_table(login_session, "login_session")
        local rec = util.shallow_copy(login_session)
        check(rec, true)
        local id = rec.id
        if id == nil or id == null then id = ctx.new_id() end
        store.need_string(id, "id")
        local now = ctx:now_iso()
        rec.id, rec.created_at, rec.updated_at = id, now, now
        if rec.state == nil then rec.state = "pending" end
        local k = keys.login_session(tenant_id, id)
        k.tenant_id = tenant_id
        k.ttl = schema.ttl(E, rec)
        local item = ctx:to_item(E, rec, k)
        ctx:put_new(item, "Login session already exists")
        return record(item)
    end

    function M.get(tenant_id, id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(id, "id")
        local k = keys.login_session(tenant_id, id)
        return record(ctx:get_item(k.PK, k.SK, true))
    end

    -- One conditional UpdateItem; ttl follows expires_at in the same write. A patch carrying
    -- authParams is merged into the stored object (AuthHero's SQL adapters do the same, so a partial
    -- { authParams = { username = ... } } keeps the other parameters): that needs the stored value,
    -- so such a patch reads first and writes on the condition that authParams is still what was read
    -- (a lost race reads again, up to three times, then 409).
    function M.update(tenant_id, id, patch)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        local p = util.shallow_copy(patch)
        check(p, false)
        local set, remove = ctx:patch_sets(E, p, { id = true, created_at = true, tenant_id = true, authParams = true })
        if p.expires_at ~= nil then set.ttl = store.ttl_from(p.expires_at) end
        local k = keys.login_session(tenant_id, id)
        if p.authParams == nil then return ctx:update_item(k, set, remove) end

        for _ = 1, 3 do
            local old = ctx:get_item(k.PK, k.SK, true)
            if not record(old) then return false end
            local params = util.read_json_field(old.authParams, "object")
            if not is_object(params) then params = {} end
            for key, v in pairs(p.authParams) do
                if v == null then params[key] = nil else params[key] = v end
            end
            if type(params.client_id) ~= "string" or params.client_id == "" then
                errors.validation("authParams.client_id is required")
            end
            set.authParams = util.json_field(params, "object")
            local ok = ctx:update_item(k, set, remove, function(st)
                if old.authParams == nil then return "attribute_not_exists(" .. st.name("authParams") .. ")" end
                return st.name("authParams") .. " = " .. st.value(old.authParams)
            end)
            if ok then return true end
        end
        store.conflict("Login session was modified concurrently")
    end

    function M.remove(tenant_id, id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(id, "id")
        local k = keys.login_session(tenant_id, id)
        local old = ctx:delete_item(k.PK, k.SK)
        return old ~= nil and ctx:live(old)
    end

    -- The bump rule: extend login session `id` to `expires_at` (ISO text). One UpdateItem that sets
    -- expires_at, ttl and updated_at on the condition that the login session exists, is live, and
    -- its ttl is absent or earlier than the new one. -> true when extended; false when it was long
    -- enough already, missing, expired (never resurrected: an expired item is absent, §2.9), the
    -- arguments are unusable, or the write failed (logged). Raises only what is not a storage
    -- failure (a bug, an interrupt). Never shortens.
    function M._bump(tenant_id, id, expires_at)
        if type(tenant_id) ~= "string" or tenant_id == "" or type(id) ~= "string" or id == "" then return false end
        local ms = util.parse_iso(expires_at)
        if not ms then return false end
        local ttl = math.floor(ms / 1000)
        local now_s = ctx:now_s()
        if ttl <= now_s then return false end -- a time already past extends nothing
        local ok, res = pcall(function()
            local k = keys.login_session(tenant_id, id)
            local req = ctx:update_request(k, { expires_at = util.iso(ms), ttl = ttl, updated_at = ctx:now_iso() },
                nil, function(st)
                    local t = st.name("ttl")
                    return "attribute_exists(" .. st.name("PK") .. ") AND (attribute_not_exists(" .. t .. ") OR (" .. t
                        .. " > " .. st.value(now_s) .. " AND " .. t .. " < " .. st.value(ttl) .. "))"
                end)
            return ctx.client:call("UpdateItem", req)
        end)
        if ok then return true end
        if errors.is(res, "ConditionalCheckFailedException") then return false end
        -- a storage failure is logged; anything else (a bug, Ctrl-C's "interrupted!") is not ours to eat
        if not errors.is(res) then error(res, 0) end
        warn(string.format("login session %s of tenant %s was not extended: %s", id, tenant_id, tostring(res)))
        return false
    end

    return store.adapter(M)
end
