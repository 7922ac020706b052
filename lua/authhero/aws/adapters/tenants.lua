-- tenants (contract §4.1): PK TENANT#{t} / SK TENANT, listed through GSI1 TENANTS / TENANT#{t}.
-- remove cascades: the tenant partition, the sub-partitions of its users, roles and
-- organizations, and the global items pointing at it (client-id pointers, domain claims).
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys

local E = {
    entity_type = "TENANT",
    json = {
        session_cookie = "object", allowed_logout_urls = "array", enabled_locales = "array",
        error_page = "object", flags = "object", sandbox_versions_available = "array",
        change_password = "object", guardian_mfa_page = "object", device_flow = "object",
        default_token_quota = "object", sessions = "object", oidc_logout = "object",
        acr_values_supported = "array", mtls = "object", attack_protection = "object", mfa = "object",
    },
    drop = { is_control_plane = true },
}

local Q = {
    fields = {
        id = { type = "string" }, friendly_name = { type = "string" }, audience = { type = "string" },
        sender_email = { type = "string" }, sender_name = { type = "string" },
        support_email = { type = "string" }, deployment_type = { type = "string" },
        provisioning_state = { type = "string" }, created_at = { type = "string" },
        updated_at = { type = "string" },
    },
    search = { { field = "friendly_name", mode = "substring" } },
}
local SORTABLE = { id = true, friendly_name = true, created_at = true }

return function(ctx)
    local function to_record(item) return store.to_record(E, item) end

    local M = {}

    function M.create(params, options)
        store.need_table(params, "tenant")
        store.need_string(params.friendly_name, "friendly_name")
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id or params.id or ctx.new_id()
        store.need_string(id, "id")
        local rec = {}
        for k, v in pairs(params) do rec[k] = v end
        rec.id, rec.created_at, rec.updated_at = id, created, updated
        local k = keys.tenant(id)
        local idx = keys.tenant_index(id)
        k.GSI1PK, k.GSI1SK = idx.GSI1PK, idx.GSI1SK
        local item = ctx:to_item(E, rec, k)
        ctx:put_new(item, "Tenant already exists")
        return to_record(item)
    end

    function M.get(id)
        store.need_string(id, "id")
        local k = keys.tenant(id)
        local item = ctx:get_item(k.PK, k.SK, true)
        return item and to_record(item) or nil
    end

    function M.list(params)
        params = params or {}
        local res = ctx:list({
            params = params, spec = Q, index = "GSI1", pk = "TENANTS", prefix = schema.prefix.tenant,
            to_record = to_record, items_key = "tenants", sortable = SORTABLE,
            fast_paths = { id = function(v)
                local r = M.get(v)
                return { r }
            end },
        })
        local out = { tenants = res.tenants }
        if params.include_totals or params.from ~= nil or params.take ~= nil then
            out.totals = { start = res.start, limit = res.limit, length = res.length, total = res.total, next = res.next }
        end
        return out
    end

    function M.update(id, patch)
        store.need_string(id, "id")
        store.need_table(patch, "patch")
        local set, remove = ctx:patch_sets(E, patch, { id = true, created_at = true })
        return ctx:update_item(keys.tenant(id), set, remove)
    end

    -- Deletes the tenant and everything it owns; true when the tenant existed.
    function M.remove(id)
        store.need_string(id, "id")
        local k = keys.tenant(id)
        local existed = ctx:get_item(k.PK, k.SK, true) ~= nil
        local tpk = keys.tenant_partition(id)
        local items = ctx:query_all({ pk = tpk, consistent = true, include_expired = true })
        local dels = {}
        local function del(key) dels[#dels + 1] = key end
        for _, it in ipairs(items) do
            local et = it.entityType
            if et == "CLIENT" and it.client_id then
                del(keys.client_id_pointer(it.client_id))
            elseif et == "CUSTOM_DOMAIN" and it.domain then
                local claim = keys.domain_claim(it.domain)
                local c = ctx:get_item(claim.PK, claim.SK, true)
                if c and c.tenant_id == id then del(claim) end
            end
            local sub
            if et == "USER" then sub = keys.user_partition(id, it.user_id)
            elseif et == "ROLE" then sub = keys.role_partition(id, it.id)
            elseif et == "ORGANIZATION" then sub = keys.organization_partition(id, it.id) end
            if sub then
                for _, s in ipairs(ctx:query_all({ pk = sub, consistent = true, include_expired = true })) do del(s) end
            end
            del(it)
        end
        ctx:delete_items(dels, "tenant " .. id)
        return existed
    end

    return store.adapter(M)
end
