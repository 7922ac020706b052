-- hooks (contract §5.10): PK TENANT#{t} / SK HOOK#{hook_id}. A hook is exactly one variant (url,
-- form_id, template_id, code_id or page_id) on a trigger that variant allows (AuthHero's hook
-- schema); every field is stored, metadata as JSON text. list reads the tenant's hooks with one
-- Query and orders them in memory (priority descending, absent last, then created_at ascending).
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local errors = require "authhero.aws.errors"
local filter = require "authhero.aws.filter"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys
local null = core.null

local E = schema.entity("hooks")

-- The variant fields in AuthHero's order (allowedTriggersForHook picks the first one present),
-- each with the triggers its member of the hook union allows.
local VARIANTS = { "url", "form_id", "template_id", "code_id", "page_id" }
local function set_of(list)
    local s = {}
    for _, v in ipairs(list) do s[v] = true end
    return s
end
local TRIGGERS = {
    url = set_of({ "pre-user-registration", "post-user-registration", "post-user-login", "post-user-update",
        "validate-registration-username", "pre-user-deletion", "post-user-deletion" }),
    form_id = set_of({ "post-user-login" }),
    template_id = set_of({ "post-user-registration", "post-user-login", "post-user-update", "credentials-exchange" }),
    code_id = set_of({ "post-user-login", "credentials-exchange", "pre-user-registration", "post-user-registration" }),
    page_id = set_of({ "post-user-login" }),
}
local ENUMS = {
    template_id = set_of({ "ensure-username", "set-preferred-username", "account-linking" }),
    page_id = set_of({ "impersonate" }),
}
-- Fields of a hook record; anything else in an input is left out (as AuthHero's schema strips it).
local FIELDS = set_of({ "hook_id", "trigger_id", "enabled", "synchronous", "priority", "metadata", "url", "form_id",
    "template_id", "code_id", "page_id", "permission_required", "created_at", "updated_at" })

local present = util.present

-- Type checks of the fields a record or patch carries (null passes: the callers decide what it means).
local function check_types(r)
    for _, f in ipairs({ "trigger_id", "url", "form_id", "template_id", "code_id", "page_id" }) do
        local v = r[f]
        if present(v) and (type(v) ~= "string" or v == "") then errors.validation("%s must be a non-empty string", f) end
    end
    for f, allowed in pairs(ENUMS) do
        if present(r[f]) and not allowed[r[f]] then errors.validation("%s %s is not supported", f, r[f]) end
    end
    store.opt_string(r.permission_required, "permission_required")
    for _, f in ipairs({ "enabled", "synchronous" }) do
        if present(r[f]) and type(r[f]) ~= "boolean" then errors.validation("%s must be a boolean", f) end
    end
    local p = r.priority
    if present(p) and (type(p) ~= "number" or p ~= p or p == math.huge or p == -math.huge) then
        errors.validation("priority must be a number")
    end
    local m = r.metadata
    if present(m) and (type(m) ~= "table" or core.is_array(m) or m[1] ~= nil) then
        errors.validation("metadata must be an object")
    end
end

-- The variant fields a record or patch sets (non-null), in VARIANTS order.
local function variants_set(r)
    local out = {}
    for _, f in ipairs(VARIANTS) do
        if present(r[f]) then out[#out + 1] = f end
    end
    return out
end

local function check_trigger(trigger_id, variant)
    if variant and not TRIGGERS[variant][trigger_id] then
        errors.validation("trigger_id %s is not allowed for a hook with %s", tostring(trigger_id), variant)
    end
end

local function check_permission(r, variant)
    if present(r.permission_required) and variant ~= "page_id" then
        errors.validation("permission_required is only allowed on a hook with page_id")
    end
end

local function to_record(item)
    local r = store.to_record(E, item)
    if not r then return nil end
    r.enabled = r.enabled == true
    r.synchronous = r.synchronous == true
    return r
end

-- The default order: priority descending (hooks without one after all that have one, as SQLite
-- orders NULLs in a descending sort), then created_at ascending, then hook_id.
local function num(v)
    if type(v) == "number" then return v end
    return nil
end
local function default_before(a, b)
    local x, y = num(a.priority), num(b.priority)
    if x ~= y then
        if x == nil then return false end
        if y == nil then return true end
        return x > y
    end
    local ca, cb = tostring(a.created_at or ""), tostring(b.created_at or "")
    if ca ~= cb then return ca < cb end
    return tostring(a.hook_id) < tostring(b.hook_id)
end

-- sort_by (a sortable field) in either direction; absent values last, ties in the default order.
local function field_before(field, desc)
    return function(a, b)
        local x, y = a[field], b[field]
        if x == null then x = nil end
        if y == null then y = nil end
        if x ~= nil and y ~= nil and type(x) ~= type(y) then x, y = tostring(x), tostring(y) end
        if x == y then return default_before(a, b) end
        if x == nil then return false end
        if y == nil then return true end
        if desc then return x > y end
        return x < y
    end
end

return function(ctx)
    local M = {}

    function M.create(t, hook, options)
        store.need_string(t, "tenant_id")
        store.need_table(hook, "hook")
        store.need_string(hook.trigger_id, "trigger_id")
        check_types(hook)
        local vs = variants_set(hook)
        if #vs ~= 1 then
            errors.validation("a hook has exactly one of url, form_id, template_id, code_id, page_id (got %d)", #vs)
        end
        check_trigger(hook.trigger_id, vs[1])
        check_permission(hook, vs[1])
        store.opt_string(hook.hook_id, "hook_id")
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id
        if id == nil and present(hook.hook_id) then id = hook.hook_id end
        if id == nil then id = ctx.new_id() end
        store.need_string(id, "hook_id")
        local k = keys.hook(t, id)
        local rec = {}
        for f, v in pairs(hook) do
            if FIELDS[f] and v ~= null then rec[f] = v end
        end
        rec.hook_id, rec.created_at, rec.updated_at = id, created, updated
        rec.enabled, rec.synchronous = rec.enabled == true, rec.synchronous == true
        k.tenant_id = t
        local item = ctx:to_item(E, rec, k)
        ctx:put_new(item, "Hook already exists")
        return to_record(item)
    end

    function M.get(t, hook_id)
        store.need_string(t, "tenant_id")
        store.need_string(hook_id, "hook_id")
        local k = keys.hook(t, hook_id)
        return to_record(ctx:get_item(k.PK, k.SK))
    end

    -- Setting a variant field removes the other four (and permission_required unless the new
    -- variant is page_id) in the same write; a variant cannot be removed without setting another.
    -- A patch that changes the trigger or the variant without the other (or sets
    -- permission_required alone) is checked against the stored hook: a consistent read, then an
    -- update conditioned on the trigger and variant that were read (a lost race re-reads once,
    -- then 409). Every other patch is one conditional UpdateItem.
    function M.update(t, hook_id, patch)
        store.need_string(t, "tenant_id")
        store.need_string(hook_id, "hook_id")
        store.need_table(patch, "patch")
        check_types(patch)
        if patch.trigger_id == null then errors.validation("trigger_id cannot be removed") end
        local p = {}
        for f, v in pairs(patch) do
            if FIELDS[f] and f ~= "hook_id" and f ~= "created_at" and f ~= "updated_at" then p[f] = v end
        end
        local vs = variants_set(p)
        if #vs > 1 then errors.validation("a hook has exactly one of url, form_id, template_id, code_id, page_id") end
        local variant = vs[1]
        for _, f in ipairs(VARIANTS) do
            if p[f] == null and not variant then
                errors.validation("%s cannot be removed without setting another variant field", f)
            end
        end
        for _, f in ipairs({ "enabled", "synchronous" }) do
            if p[f] == null then p[f] = false end -- back to the default
        end
        if variant and p.trigger_id ~= nil then check_trigger(p.trigger_id, variant) end
        if variant then check_permission(p, variant) end
        local k = keys.hook(t, hook_id)

        local set, remove = ctx:patch_sets(E, p, { tenant_id = true })
        if variant then
            for _, f in ipairs(VARIANTS) do
                if f ~= variant then remove[#remove + 1] = f end
            end
            if variant ~= "page_id" then remove[#remove + 1] = "permission_required" end
        end
        -- a field named in both lists (e.g. a variant set to null next to another one) is removed once
        local seen, r = {}, {}
        for _, f in ipairs(remove) do
            if not seen[f] and set[f] == nil then
                seen[f] = true
                r[#r + 1] = f
            end
        end
        table.sort(r)

        local needs_read = (p.trigger_id ~= nil and not variant) or (variant and p.trigger_id == nil)
            or (present(p.permission_required) and not variant)
        if not needs_read then return ctx:update_item(k, set, r) end

        for _ = 1, 2 do
            local cur = ctx:get_item(k.PK, k.SK, true)
            if not to_record(cur) then return false end
            local stored = variants_set(cur)[1]
            local v = variant or stored
            check_trigger(p.trigger_id or cur.trigger_id, v)
            check_permission(p, v)
            local ok = ctx:update_item(k, set, r, function(st)
                local c = {}
                if cur.trigger_id == nil then
                    c[1] = "attribute_not_exists(" .. st.name("trigger_id") .. ")"
                else
                    c[1] = st.name("trigger_id") .. " = " .. st.value(cur.trigger_id)
                end
                for _, f in ipairs(VARIANTS) do
                    c[#c + 1] = (cur[f] ~= nil and "attribute_exists(" or "attribute_not_exists(") .. st.name(f) .. ")"
                end
                return table.concat(c, " AND ")
            end)
            if ok then return true end
        end
        store.conflict("Hook was modified concurrently; try again")
    end

    function M.remove(t, hook_id)
        store.need_string(t, "tenant_id")
        store.need_string(hook_id, "hook_id")
        local k = keys.hook(t, hook_id)
        return ctx:delete_item(k.PK, k.SK) ~= nil
    end

    -- One Query over the tenant's HOOK# range (more only past 1 MB of hooks), then q, order and
    -- paging in memory. Keyset cursors are offsets bound to the tenant and q.
    function M.list(t, params)
        store.need_string(t, "tenant_id")
        local q
        params, q = store.list_params(params)
        local pred = q and filter.compile(filter.parse(q, E.q)) or nil
        local page = ctx:pager(params, "hooks", "hooks\0" .. t .. "\0" .. (q or ""))
        local keyset = params.from ~= nil or params.take ~= nil

        local out = {}
        for _, it in ipairs(ctx:query_all({ pk = keys.tenant_partition(t), prefix = schema.prefix.hook })) do
            local rec = to_record(it)
            if rec and (pred == nil or pred(rec)) then out[#out + 1] = rec end
        end
        local before = default_before
        local sort = params.sort
        if not keyset and type(sort) == "table" and E.sortable[sort.sort_by] then
            before = field_before(sort.sort_by, sort.sort_order == "desc" or sort.sort_order == -1)
        end
        table.sort(out, before)
        return page(out)
    end

    return store.adapter(M)
end
