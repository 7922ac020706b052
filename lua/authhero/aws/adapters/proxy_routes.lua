-- proxyRoutes (contract §6): TENANT#{t} / PROXY_ROUTE#{id} (the caller's id honoured), GSI1
-- TENANT#{t}#CUSTOM_DOMAIN#{custom_domain_id} / PROXY_ROUTE#{id}; the record carries tenant_id
-- (AuthHero's ProxyRoute has it); match and handlers stored as JSON text. match.path defaults to
-- "/*", each handler's options to {}, priority to 100; at least one handler. list reads the
-- tenant's routes (or one custom domain's, through GSI1) and orders them by priority, then
-- created_at, then id, in memory. Routes stay when their custom domain is removed (the contract
-- makes only the tenant their parent).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("proxyRoutes")
local DEFAULT_PRIORITY = 100

local present = util.present

local is_object = util.is_json_object

local is_array = util.is_json_array

local function string_array(v, name)
    if not present(v) then return end
    if not is_array(v) then errors.validation("%s must be an array of strings", name) end
    for _, s in ipairs(v) do
        if type(s) ~= "string" then errors.validation("%s must be an array of strings", name) end
    end
end

local function string_map(v, name)
    if not present(v) then return end
    if not is_object(v) then errors.validation("%s must be an object of strings", name) end
    for k, s in pairs(v) do
        if type(k) ~= "string" or type(s) ~= "string" then errors.validation("%s must be an object of strings", name) end
    end
end

-- AuthHero's matchSchema, with path's default applied: a copy.
local function normalize_match(m)
    if not is_object(m) then errors.validation("match is required (an object)") end
    string_array(m.hosts, "match.hosts")
    string_array(m.methods, "match.methods")
    string_map(m.headers, "match.headers")
    string_map(m.query, "match.query")
    if present(m.path) and type(m.path) ~= "string" then errors.validation("match.path must be a string") end
    local out = {}
    for _, f in ipairs({ "hosts", "methods", "path", "headers", "query" }) do
        if present(m[f]) then out[f] = m[f] end
    end
    if out.path == nil then out.path = "/*" end
    return out
end

-- AuthHero's handlers: at least one { type, options = {} }: a copy.
local function normalize_handlers(h)
    if not is_array(h) or #h == 0 then errors.validation("handlers must be an array of at least one handler") end
    local out = core.array({})
    for i, x in ipairs(h) do
        if not is_object(x) then errors.validation("handlers[%d] must be an object", i) end
        if type(x.type) ~= "string" then errors.validation("handlers[%d].type is required", i) end
        local o = x.options
        if present(o) and not is_object(o) then errors.validation("handlers[%d].options must be an object", i) end
        out[i] = { type = x.type, options = present(o) and o or {} }
    end
    return out
end

local function check_priority(p)
    if present(p) and (type(p) ~= "number" or p ~= p or p == math.huge or p == -math.huge) then
        errors.validation("priority must be a number")
    end
end

local function record(item)
    local r = store.to_record(E, item)
    if r == nil then return nil end
    local m = is_object(r.match) and r.match or {}
    if type(m.path) ~= "string" then m.path = "/*" end
    return { id = r.id, tenant_id = r.tenant_id, custom_domain_id = r.custom_domain_id,
        priority = type(r.priority) == "number" and r.priority or DEFAULT_PRIORITY, match = m,
        handlers = is_array(r.handlers) and r.handlers or core.array({}), created_at = r.created_at,
        updated_at = r.updated_at }
end

-- priority ascending, then created_at, then id
local function before(a, b)
    if a.priority ~= b.priority then return a.priority < b.priority end
    local ca, cb = tostring(a.created_at or ""), tostring(b.created_at or "")
    if ca ~= cb then return util.byte_lt(ca, cb) end
    return util.byte_lt(tostring(a.id), tostring(b.id))
end

return function(ctx)
    local M = {}

    function M.create(t, route, options)
        store.need_string(t, "tenant_id")
        store.need_table(route, "proxy route")
        store.need_string(route.custom_domain_id, "custom_domain_id")
        check_priority(route.priority)
        local match = normalize_match(route.match)
        local handlers = normalize_handlers(route.handlers)
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id
        if id == nil and route.id ~= null then id = route.id end
        if id == nil then id = ctx.new_id() end
        store.need_string(id, "id")
        local rec = { id = id, tenant_id = t, custom_domain_id = route.custom_domain_id,
            priority = present(route.priority) and route.priority or DEFAULT_PRIORITY, match = match,
            handlers = handlers, created_at = created, updated_at = updated }
        local k = keys.proxy_route(t, id)
        for a, v in pairs(schema.index_attrs(E, rec)) do k[a] = v end
        local item = ctx:to_item(E, rec, k)
        ctx:put_new(item, "Proxy route already exists")
        return record(item)
    end

    function M.get(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.proxy_route(t, id)
        return record(ctx:get_item(k.PK, k.SK))
    end

    -- list(t, { page, per_page, custom_domain_id }?) -> { proxy_routes, start, limit, length }:
    -- every route of the tenant (or of one custom domain, through GSI1) in priority order, paged in
    -- memory (keyset from/take and include_totals work as elsewhere). q is not supported.
    function M.list(t, params)
        store.need_string(t, "tenant_id")
        local q
        params, q = store.list_params(params)
        if q then errors.validation("q is not supported when listing proxy_routes") end
        local cd = params.custom_domain_id
        store.opt_string(cd, "custom_domain_id")
        if cd == null or cd == "" then cd = nil end -- no filter, as AuthHero's SQL adapter
        local page = ctx:pager(params, "proxy_routes", "proxy_routes\0" .. t .. "\0" .. (cd or ""))
        local out
        if cd then
            out = ctx:index_records(schema.templates.proxy_route_domain_index,
                { tenant_id = t, custom_domain_id = cd }, record)
        else
            out = {}
            for _, it in ipairs(ctx:query_all({ pk = keys.tenant_partition(t), prefix = schema.prefix.proxy_route })) do
                local r = record(it)
                if r then out[#out + 1] = r end
            end
        end
        table.sort(out, before)
        return page(out)
    end

    -- update(t, id, { priority?, match?, handlers? }) -> boolean, one conditional UpdateItem; the
    -- custom domain does not change. priority null resets it to 100.
    function M.update(t, id, patch)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        store.need_table(patch, "proxy route")
        check_priority(patch.priority)
        local p = {}
        if patch.priority ~= nil then p.priority = present(patch.priority) and patch.priority or DEFAULT_PRIORITY end
        if patch.match ~= nil then p.match = normalize_match(patch.match) end
        if patch.handlers ~= nil then p.handlers = normalize_handlers(patch.handlers) end
        local set, remove = ctx:patch_sets(E, p)
        return ctx:update_item(keys.proxy_route(t, id), set, remove)
    end

    function M.remove(t, id)
        store.need_string(t, "tenant_id")
        store.need_string(id, "id")
        local k = keys.proxy_route(t, id)
        return ctx:delete_item(k.PK, k.SK) ~= nil
    end

    return store.adapter(M)
end
