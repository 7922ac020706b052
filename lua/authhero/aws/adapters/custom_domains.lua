-- customDomains (contract §4.12): PK TENANT#{t} / SK CUSTOM_DOMAIN#{id}, GSI2 DOMAIN#{domain} /
-- CUSTOM_DOMAIN, and the global claim DOMAIN#{domain} / CLAIM written in the same transaction, so
-- one host belongs to one tenant and getByDomain reads consistently. Domains are stored normalized
-- (trimmed, lower-cased, without a trailing '.' or ':port'). uploadCertificate is not provided.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys

local E = schema.entity("customDomains")
local TYPES = { auth0_managed_certs = true, self_managed_certs = true }
local STATUSES = { disabled = true, pending = true, pending_verification = true, ready = true }
local TAKEN = "Custom domain already exists"

-- " Auth.Example.COM.:443 " -> "auth.example.com"; raises 400 when nothing is left.
local function normalize(domain)
    if domain == core.null or type(domain) ~= "string" then errors.validation("domain is required") end
    local d = core.lower(domain:match("^%s*(.-)%s*$"), "domain") -- as JavaScript's toLowerCase (§2.4)
    d = d:gsub(":%d*$", "")
    d = d:gsub("%.+$", "")
    if d == "" then errors.validation("domain is required") end
    return d
end

local function record(item)
    local r = store.to_record(E, item)
    if r == nil then return nil end
    if r.primary == nil then r.primary = false end
    if r.status == nil then r.status = "pending" end
    return r
end

local function check_fields(r, creating)
    if creating or r.type ~= nil then
        if not TYPES[r.type] then errors.validation("type must be auth0_managed_certs or self_managed_certs") end
    end
    if r.status ~= nil and not STATUSES[r.status] then
        errors.validation("status must be disabled, pending, pending_verification or ready")
    end
    if r.primary ~= nil and type(r.primary) ~= "boolean" then errors.validation("primary must be a boolean") end
    for _, f in ipairs({ "origin_domain_name", "verification_method", "tls_policy", "custom_client_ip_header" }) do
        store.opt_string(r[f], f)
    end
end

return function(ctx)
    -- "the claim is absent, or it is this domain's"
    local function claim_owned(t, id)
        return function(st)
            return "attribute_not_exists(" .. st.name("PK") .. ") OR (" .. st.name("tenant_id") .. " = " .. st.value(t)
                .. " AND " .. st.name("custom_domain_id") .. " = " .. st.value(id) .. ")"
        end
    end

    local function claim_item(t, id, domain, now)
        local c = keys.domain_claim(domain)
        c.entityType = "CUSTOM_DOMAIN_CLAIM"
        c.tenant_id, c.custom_domain_id, c.domain, c.created_at, c.updated_at = t, id, domain, now, now
        return c
    end

    local function get_by_id(t, id)
        local k = keys.custom_domain(t, id)
        return ctx:get_item(k.PK, k.SK, true)
    end

    local M = {}

    function M.create(t, params, options)
        store.need_string(t, "tenant_id")
        store.need_table(params, "custom domain")
        local domain = normalize(params.domain)
        check_fields(params, true)
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id or params.custom_domain_id or ctx.new_id()
        store.need_string(id, "custom_domain_id")
        local rec = {}
        for k, v in pairs(params) do rec[k] = v end
        rec.custom_domain_id, rec.domain, rec.tenant_id = id, domain, t
        rec.created_at, rec.updated_at = created, updated
        if rec.primary == nil then rec.primary = false end
        if rec.status == nil then rec.status = "pending" end
        local k = keys.custom_domain(t, id)
        local idx = keys.custom_domain_index(domain)
        k.GSI2PK, k.GSI2SK = idx.GSI2PK, idx.GSI2SK
        local item = ctx:to_item(E, rec, k)
        local tx = ctx:tx()
        tx:put_new(item)
        tx:put_new(claim_item(t, id, domain, created))
        tx:run(TAKEN)
        return record(item)
    end

    -- The domain record with its tenant_id, found through the claim (strongly consistent).
    function M.getByDomain(domain)
        local d = normalize(domain)
        local c = keys.domain_claim(d)
        local claim = ctx:get_item(c.PK, c.SK, true)
        if not claim or type(claim.tenant_id) ~= "string" or type(claim.custom_domain_id) ~= "string" then
            return nil
        end
        local item = get_by_id(claim.tenant_id, claim.custom_domain_id)
        if not item or item.domain ~= d or item.tenant_id ~= claim.tenant_id then return nil end
        local r = record(item)
        if r then r.tenant_id = claim.tenant_id end
        return r
    end

    -- get(t, id); get(domain) with a single argument is getByDomain (AuthHero's documented form).
    function M.get(t, ...)
        if select("#", ...) == 0 then return M.getByDomain(t) end
        local id = ...
        store.need_string(t, "tenant_id")
        store.need_string(id, "custom_domain_id")
        return record(get_by_id(t, id))
    end

    function M.list(t, params)
        store.need_string(t, "tenant_id")
        if params ~= nil then
            store.need_table(params, "params")
            if type(params.q) == "string" and not params.q:match("^%s*$") then
                errors.validation("q is not supported when listing custom domains")
            end
        end
        local out = core.array({})
        for _, it in ipairs(ctx:query_all({ pk = keys.tenant_partition(t), prefix = schema.prefix.custom_domain,
            consistent = true })) do
            local r = record(it)
            if r then out[#out + 1] = r end
        end
        return out
    end

    -- A new domain moves the claim and the GSI2 keys in one transaction (store.move_guard); 409
    -- when the new domain is claimed.
    local function move(t, id, set, remove, domain)
        local idx = keys.custom_domain_index(domain)
        set.GSI2PK, set.GSI2SK = idx.GSI2PK, idx.GSI2SK
        return ctx:move_guard({
            key = keys.custom_domain(t, id), field = "domain", value = domain, set = set, remove = remove,
            valid = function(cur) return record(cur) ~= nil end,
            guard_key = keys.domain_claim,
            guard_item = function(d) return claim_item(t, id, d, set.updated_at) end,
            owned = claim_owned(t, id),
            taken = TAKEN, busy = "Custom domain was modified concurrently; try again",
        })
    end

    function M.update(t, id, patch)
        store.need_string(t, "tenant_id")
        store.need_string(id, "custom_domain_id")
        store.need_table(patch, "patch")
        local domain = patch.domain ~= nil and normalize(patch.domain) or nil
        if patch.type == core.null then errors.validation("type is required") end
        if patch.status == core.null or patch.primary == core.null then
            errors.validation("status and primary cannot be removed")
        end
        check_fields(patch, false)
        local set, remove = ctx:patch_sets(E, patch, { custom_domain_id = true, tenant_id = true, created_at = true,
            domain = true })
        if domain == nil then return ctx:update_item(keys.custom_domain(t, id), set, remove) end
        set.domain = domain
        return move(t, id, set, remove, domain)
    end

    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "custom_domain_id")
        local cur = get_by_id(t, id)
        if not record(cur) then return false end
        local claim = type(cur.domain) == "string" and keys.domain_claim(cur.domain) or nil
        return ctx:remove_guarded(keys.custom_domain(t, id), claim, claim_owned(t, id))
    end

    return store.adapter(M)
end
