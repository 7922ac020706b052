-- clients (contract §4.4): PK TENANT#{t} / SK CLIENT#{client_id}, plus the global client-id pointer
-- CLIENT_ID#{client_id} / CLIENT_ID written and deleted with the client in one transaction: it
-- makes client ids unique across tenants and answers getByClientId with consistent reads.
-- remove cascades through the registry to what the client owns.
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

-- object fields AuthHero's client schema defaults to {} (the others stay absent when not given)
local OBJECT_DEFAULTS = { "addons", "client_metadata", "mobile", "native_social_login" }

local E = schema.entity("clients")
local ARRAYS, OBJECTS = {}, {}
for f, kind in pairs(E.json) do
    local list = kind == "array" and ARRAYS or OBJECTS
    list[#list + 1] = f
end

local DEFAULTS = {
    global = false, app_type = "regular_web", is_first_party = true, oidc_conformant = true,
    auth0_conformant = true, sso = false, sso_disabled = false, cross_origin_authentication = false,
    custom_login_page_on = false, require_pushed_authorization_requests = false,
    require_proof_of_possession = false, hide_sign_up_disabled_error = false,
    token_endpoint_auth_method = "client_secret_basic", organization_usage = "deny",
    organization_require_behavior = "no_prompt",
}

local function absent(v)
    return v == nil or v == null
end

return function(ctx)
    local function to_record(item) return store.to_record(E, item) end

    -- A long secret from the CSPRNG; an injected new_id (tests) is used as it is.
    local function new_secret()
        if ctx.new_id == util.new_id then return util.new_id(64) end
        return ctx.new_id()
    end

    local M = {}

    function M.create(tenant_id, client, options)
        store.need_string(tenant_id, "tenant_id")
        store.need_table(client, "client")
        store.need_string(client.name, "name")
        local created, updated, import_id = ctx:stamps(options)
        local client_id = import_id or client.client_id
        if absent(client_id) then client_id = ctx.new_id() end
        store.need_string(client_id, "client_id")
        local rec = util.shallow_copy(client)
        for k, v in pairs(DEFAULTS) do
            if absent(rec[k]) then rec[k] = v end
        end
        for _, f in ipairs(ARRAYS) do
            if absent(rec[f]) then rec[f] = core.array({}) end
        end
        for _, f in ipairs(OBJECT_DEFAULTS) do
            if absent(rec[f]) then rec[f] = {} end
        end
        if absent(rec.client_secret) then rec.client_secret = new_secret() end
        rec.client_id, rec.created_at, rec.updated_at = client_id, created, updated
        local k = keys.client(tenant_id, client_id)
        k.tenant_id = tenant_id
        local item = ctx:to_item(E, rec, k)
        local pointer = keys.client_id_pointer(client_id)
        pointer.client_id, pointer.tenant_id, pointer.entityType = client_id, tenant_id, "CLIENT_ID_POINTER"
        pointer.created_at, pointer.updated_at = created, updated
        local tx = ctx:tx()
        tx:put_new(item)
        tx:put_new(pointer)
        tx:run("Client already exists")
        return to_record(item)
    end

    function M.get(tenant_id, client_id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(client_id, "client_id")
        local k = keys.client(tenant_id, client_id)
        local item = ctx:get_item(k.PK, k.SK, true)
        return item and to_record(item) or nil
    end

    -- The client behind a client id in whichever tenant owns it; the record carries tenant_id.
    function M.getByClientId(client_id)
        store.need_string(client_id, "client_id")
        local p = keys.client_id_pointer(client_id)
        local pointer = ctx:get_item(p.PK, p.SK, true)
        if not pointer or type(pointer.tenant_id) ~= "string" then return nil end
        local k = keys.client(pointer.tenant_id, client_id)
        local item = ctx:get_item(k.PK, k.SK, true)
        if not item or item.client_id ~= client_id then return nil end
        local r = to_record(item)
        if r then r.tenant_id = pointer.tenant_id end
        return r
    end

    function M.list(tenant_id, params)
        store.need_string(tenant_id, "tenant_id")
        params = params or {}
        local res = ctx:list({
            params = params, spec = E.q, pk = keys.tenant_partition(tenant_id), prefix = schema.prefix.client,
            to_record = to_record, items_key = "clients", sortable = E.sortable,
            fast_paths = { client_id = function(v) return { M.get(tenant_id, v) } end },
        })
        local out = { clients = res.clients }
        if params.include_totals or params.from ~= nil or params.take ~= nil then
            out.totals = { start = res.start, limit = res.limit, length = res.length, total = res.total, next = res.next }
        end
        return out
    end

    function M.update(tenant_id, client_id, patch)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(client_id, "client_id")
        store.need_table(patch, "patch")
        if patch.name ~= nil then store.need_string(patch.name, "name") end
        local set, remove = ctx:patch_sets(E, patch, { client_id = true, created_at = true })
        return ctx:update_item(keys.client(tenant_id, client_id), set, remove)
    end

    -- Deletes what the client owns per the registry (its grants, client connections, ...), then
    -- the client and its pointer in one transaction. A pointer that names another tenant (not
    -- written by this library) is left alone.
    function M.remove(tenant_id, client_id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(client_id, "client_id")
        local k = keys.client(tenant_id, client_id)
        local cur = ctx:get_item(k.PK, k.SK, true)
        if cur == nil then return false end
        ctx:delete_items(ctx:removal_items(E, cur, { without_self = true }), "client " .. client_id)
        local tx = ctx:tx()
        tx:delete(k, function(st) return "attribute_exists(" .. st.name("PK") .. ")" end)
        tx:delete(keys.client_id_pointer(client_id), function(st)
            return "attribute_not_exists(" .. st.name("PK") .. ") OR " .. st.name("tenant_id") .. " = "
                .. st.value(tenant_id)
        end)
        local ok, reasons = tx:run()
        if ok then return true end
        if reasons and reasons[1] and reasons[1].Code ~= "ConditionalCheckFailed" then
            -- only the pointer's condition failed: the client exists; delete it alone
            return ctx:delete_item(k.PK, k.SK) ~= nil
        end
        return false
    end

    return store.adapter(M)
end
