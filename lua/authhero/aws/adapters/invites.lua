-- invites (contract §6): PK TENANT#{t} / SK INVITE#{id}, GSI1 TENANT#{t}#ORG#{organization_id} /
-- INVITE#{id} (an organization's invites, `q = organization_id:…`, organization removal). An invite
-- expires ttl_sec (default 7 days, at most 30) after it is made: expires_at = created_at + ttl_sec,
-- and `ttl` follows expires_at. A new ttl_sec on update counts from the update (SQL parity).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("invites")

local DEFAULT_TTL, MAX_TTL = 604800, 2592000
local OBJECTS = { "inviter", "invitee", "app_metadata", "user_metadata" }
-- the fields of an invite record (anything else in an input is left out, as AuthHero's schema does)
local FIELDS = { id = true, organization_id = true, inviter = true, invitee = true, invitation_url = true,
    client_id = true, connection_id = true, app_metadata = true, user_metadata = true, ttl_sec = true, roles = true,
    send_invitation_email = true, ticket_id = true }

local present = util.present

local function is_object(v)
    return type(v) == "table" and v ~= null and not core.is_array(v) and (next(v) == nil or v[1] == nil)
end

-- ttl_sec: nil -> nil; 0 -> the default (SQL: `ttl_sec || 604800`); else an integer 1..MAX_TTL.
local function ttl_of(v)
    if v == nil or v == null then return nil end
    if type(v) ~= "number" or v ~= math.floor(v) or v < 0 or v > MAX_TTL then
        errors.validation("ttl_sec must be an integer from 0 to %d", MAX_TTL)
    end
    if v == 0 then return DEFAULT_TTL end
    return math.floor(v) -- an integer on 5.4
end

-- Checks an invite (patch: only what it carries; required fields may not be removed).
local function check(r, patch)
    for _, f in ipairs({ "organization_id", "client_id", "invitation_url" }) do
        if not patch or r[f] ~= nil then store.need_string(r[f], f) end
    end
    for _, f in ipairs({ "connection_id", "ticket_id", "id" }) do store.opt_string(r[f], f) end
    for _, f in ipairs(OBJECTS) do
        if present(r[f]) and not is_object(r[f]) then errors.validation("%s must be an object", f) end
    end
    if patch and (r.inviter == null or r.invitee == null) then errors.validation("inviter and invitee are required") end
    local roles = r.roles
    if present(roles) then
        if type(roles) ~= "table" then errors.validation("roles must be an array of strings") end
        local n = 0
        for k, v in pairs(roles) do
            n = n + 1
            if type(k) ~= "number" or type(v) ~= "string" then errors.validation("roles must be an array of strings") end
        end
        if n ~= #roles then errors.validation("roles must be an array of strings") end
    end
    if present(r.send_invitation_email) and type(r.send_invitation_email) ~= "boolean" then
        errors.validation("send_invitation_email must be a boolean")
    end
    ttl_of(r.ttl_sec)
end

local function fill_defaults(r)
    if r.inviter == nil then r.inviter = {} end
    if r.invitee == nil then r.invitee = {} end
    if r.app_metadata == nil then r.app_metadata = {} end
    if r.user_metadata == nil then r.user_metadata = {} end
    if r.roles == nil then r.roles = core.array({}) end
    if r.send_invitation_email == nil then r.send_invitation_email = true end
    if r.ttl_sec == nil then r.ttl_sec = DEFAULT_TTL end
end

local function record(item)
    local r = store.to_record(E, item)
    if r then fill_defaults(r) end
    return r
end

return function(ctx)
    local M = {}

    function M.create(t, invite, options)
        store.need_string(t, "tenant_id")
        store.need_table(invite, "invite")
        check(invite, false)
        local created, _, import_id = ctx:stamps(options)
        local id = import_id or invite.id
        if not present(id) then id = ctx.new_id() end
        store.need_string(id, "id")
        local rec = {}
        for k, v in pairs(invite) do
            if FIELDS[k] and v ~= null then rec[k] = v end
        end
        rec.ttl_sec = ttl_of(invite.ttl_sec)
        fill_defaults(rec)
        rec.id, rec.tenant_id, rec.created_at, rec.updated_at = id, t, created, created
        rec.expires_at = util.iso(util.parse_iso(created) + rec.ttl_sec * 1000)
        local k = keys.invite(t, id)
        for a, v in pairs(schema.index_attrs(E, rec)) do k[a] = v end
        k.ttl = schema.ttl(E, rec)
        local item = ctx:to_item(E, rec, k)
        ctx:put_new(item, "Invite already exists")
        return record(item)
    end

    function M.get(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.invite(t, id)
        return record(ctx:get_item(k.PK, k.SK, true))
    end

    -- list(t, params?) -> { invites, start, limit, length, total?, next? } in id order; q fields
    -- organization_id (answered by GSI1), client_id, connection_id.
    function M.list(t, params)
        store.need_string(t, "tenant_id")
        return ctx:list({
            params = params, spec = E.q, pk = keys.tenant_partition(t), prefix = schema.prefix.invite,
            consistent = true, to_record = record, items_key = "invites", sortable = E.sortable,
            fast_paths = {
                organization_id = function(v)
                    if v == "" then return {} end
                    return ctx:index_records(schema.templates.invite_organization_index,
                        { tenant_id = t, organization_id = v }, record)
                end,
            },
        })
    end

    -- update(t, id, patch) -> true, or false when there is no live invite. A new organization_id
    -- moves GSI1 and a new ttl_sec sets expires_at (from now) and ttl, in the same UpdateItem.
    function M.update(t, id, patch)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        check(patch, true)
        local p = {}
        for k, v in pairs(patch) do
            if FIELDS[k] and k ~= "id" then p[k] = v end
        end
        if p.app_metadata == null then p.app_metadata = {} end
        if p.user_metadata == null then p.user_metadata = {} end
        if p.roles == null then p.roles = core.array({}) end
        if p.send_invitation_email == null then p.send_invitation_email = true end
        if p.ttl_sec == null then p.ttl_sec = DEFAULT_TTL end
        local set, remove = ctx:patch_sets(E, p)
        if p.ttl_sec ~= nil then
            set.ttl_sec = ttl_of(p.ttl_sec)
            set.expires_at = util.iso(ctx.now_ms() + set.ttl_sec * 1000)
            set.ttl = schema.ttl(E, set)
        end
        if p.organization_id ~= nil then
            local ix = keys.invite_organization_index(t, p.organization_id, id)
            store.check_key({ GSI1PK = ix.GSI1PK, GSI1SK = ix.GSI1SK, tenant_id = t, id = id,
                organization_id = p.organization_id }, E)
            set.GSI1PK, set.GSI1SK = ix.GSI1PK, ix.GSI1SK
        end
        return ctx:update_item(keys.invite(t, id), set, remove, function(st)
            return st.name("entityType") .. " = " .. st.value(E.entity_type)
        end)
    end

    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.invite(t, id)
        local old = ctx:delete_item(k.PK, k.SK)
        return old ~= nil and old.entityType == E.entity_type and ctx:live(old)
    end

    return store.adapter(M)
end
