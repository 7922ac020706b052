-- The import line format and how one line becomes table items. A line is a JSON object
--   {"entity": "users", "tenant_id": "acme", "record": { ...AuthHero record... }}
-- Items come from the adapters' own create/assign, run against a client that captures the writes
-- instead of sending them, so an imported record is stored exactly as create stores it (keys,
-- guards, pointers, index attributes, defaults); ids and timestamps come from the record. Also
-- here: the within-file uniqueness ledger and the ownership rules of guard/pointer items.
-- Nothing here talks to DynamoDB.
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local util = require "authhero.aws.util"

local _M = {}

-- AuthHero adapter names, in the order export writes them (and a sensible import order).
_M.ENTITIES = { "tenants", "connections", "clients", "roles", "rolePermissions", "organizations",
    "customDomains", "users", "passwords", "userOrganizations", "sessions", "codes" }
local KNOWN = {}
for _, e in ipairs(_M.ENTITIES) do KNOWN[e] = e end
-- snake_case spellings (SQL table names) are accepted too
KNOWN.user_organizations, KNOWN.role_permissions, KNOWN.custom_domains = "userOrganizations", "rolePermissions",
    "customDomains"

-- entity -> the record field that names it (required on import, so a re-import writes the same keys)
_M.ID_FIELD = {
    tenants = "id", users = "user_id", sessions = "id", clients = "client_id", connections = "id",
    codes = "code_id", organizations = "id", roles = "id", customDomains = "custom_domain_id",
    passwords = "id", userOrganizations = "id",
}

-- Guard / pointer items: another record may not take them over. entityType -> the attributes that
-- say whom the item belongs to (an existing item with other values there is a conflict).
_M.OWNERS = {
    USER_GUARD = { "tenant_id", "user_id" },
    CLIENT_ID_POINTER = { "tenant_id", "client_id" },
    CUSTOM_DOMAIN_CLAIM = { "tenant_id", "custom_domain_id" },
    ORGANIZATION_NAME = { "tenant_id", "organization_id" },
    ROLE_NAME = { "tenant_id", "role_id" },
    USER_ORGANIZATION = { "tenant_id", "id" },
}

local null = core.null

local function present(v)
    return v ~= nil and v ~= null
end

local function is_object(v)
    return type(v) == "table" and v ~= null and not core.is_array(v)
end

-- parse(text) -> { entity, tenant_id, record } or { skip = reason }
function _M.parse(text)
    if text:byte(-1) == 13 then text = text:sub(1, -2) end -- CRLF files
    local ok, v = pcall(core.json_decode, text)
    if not ok then
        local msg = errors.is(v) and v.message or tostring(v)
        return { skip = "bad JSON: " .. tostring(msg):gsub("^malformed JSON: ", "") }
    end
    if not is_object(v) then return { skip = "not a JSON object" } end
    local entity = v.entity
    if type(entity) ~= "string" or entity == "" then return { skip = "missing \"entity\"" } end
    local name = KNOWN[entity]
    if not name then return { skip = string.format("unknown entity %q", entity) } end
    local record = v.record
    if not is_object(record) then return { skip = name .. ": missing \"record\" (a JSON object)" } end
    local t = v.tenant_id
    if t == null then t = nil end
    if t ~= nil and (type(t) ~= "string" or t == "") then return { skip = name .. ": tenant_id must be a string" } end
    local rt = record.tenant_id
    if name == "tenants" then
        if present(record.id) and t and record.id ~= t then
            return { skip = string.format("tenants: tenant_id %q differs from record.id %q", t, tostring(record.id)) }
        end
        t = t or (type(record.id) == "string" and record.id or nil)
    elseif present(rt) then
        if t and rt ~= t then
            return { skip = string.format("%s: tenant_id %q differs from record.tenant_id %q", name, t, tostring(rt)) }
        end
        t = t or rt
    end
    if name ~= "tenants" and (type(t) ~= "string" or t == "") then
        return { skip = name .. ": missing required field: tenant_id" }
    end
    return { entity = name, tenant_id = t, record = record }
end

-- a 21-character id (nanoid alphabet) derived from text: the same input, the same id
local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
local function derived_id(text)
    local hex = core.sha256_hex(text)
    local out = {}
    for i = 1, 21 do
        local b = tonumber(hex:sub(2 * i - 1, 2 * i), 16) % 64 + 1
        out[i] = ALPHABET:sub(b, b)
    end
    return table.concat(out)
end
_M.derived_id = derived_id

local function skip(fmt, ...)
    error({ skip = string.format(fmt, ...) }, 0)
end

local function need(v, entity, name)
    if type(v) ~= "string" or v == "" then skip("%s: missing required field: %s", entity, name) end
    return v
end

-- "2024-01-01T00:00:00Z" -> epoch ms, or a skip when malformed
local function time_ms(v, entity, name)
    if not present(v) then return nil end
    local ms = type(v) == "string" and util.parse_iso(v) or nil
    if not ms then skip("%s: %s must be an ISO-8601 timestamp", entity, name) end
    return ms
end

local function shallow(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
end

-- builder({ table, now_ms }) -> builder with :items(entity, tenant_id, record) -> items, info
-- (raises { skip = reason } for a record create would refuse). now_ms stands in for "now" where a
-- record has no timestamp, so one run stamps all such records alike.
function _M.builder(opts)
    local sink = {}
    local cap = {}
    function cap.call(_, op, p)
        if op == "PutItem" then
            sink[#sink + 1] = p.Item
        elseif op == "TransactWriteItems" then
            -- Update/Delete/ConditionCheck touch other records (e.g. the primary a linked user
            -- points at); the importer handles those itself.
            for _, ti in ipairs(p.TransactItems) do
                if ti.Put then sink[#sink + 1] = ti.Put.Item end
            end
        elseif op == "Query" or op == "Scan" then
            return { Items = {} }
        end
        return {}
    end
    function cap.batch_write(_, _, reqs)
        for _, r in ipairs(reqs) do
            if r.PutRequest then sink[#sink + 1] = r.PutRequest.Item end
        end
        return {}
    end
    function cap.batch_get()
        return core.array({}), {}
    end

    local clock = opts.now_ms
    local seed, n = "", 0
    local function new_id()
        n = n + 1
        return derived_id(seed .. "\0" .. n)
    end
    local A = aws.create_adapters(cap, { tableName = opts.table or "authhero", now = function() return clock end,
        new_id = new_id })

    -- importMetadata from the record's timestamps (create validates and normalizes them)
    local function stamps(r)
        return { created_at = present(r.created_at) and r.created_at or nil,
            updated_at = present(r.updated_at) and r.updated_at or nil }
    end

    local B = {}
    function B.tenants(_, r)
        need(r.id, "tenants", "id")
        A.tenants.create(r, { importMetadata = stamps(r) })
    end
    function B.users(t, r)
        local u = need(r.user_id, "users", "user_id")
        seed = "users\0" .. t .. "\0" .. u -- the id of an embedded password
        A.users.create(t, r, { importMetadata = stamps(r) })
    end
    function B.passwords(t, r)
        need(r.user_id, "passwords", "user_id")
        need(r.password, "passwords", "password")
        local im = stamps(r)
        im.id = present(r.id) and r.id or derived_id("passwords\0" .. t .. "\0" .. r.user_id .. "\0" .. r.password)
        A.passwords.create(t, r, { importMetadata = im })
    end
    -- sessions and codes take no importMetadata: "now" is their created_at
    local function now_from(r, entity)
        local ms = time_ms(r.created_at, entity, "created_at")
        if present(r.updated_at) then time_ms(r.updated_at, entity, "updated_at") end
        clock = ms or opts.now_ms
    end
    local function fix_updated(items, r)
        if present(r.updated_at) and items[1] then items[1].updated_at = util.normalize_time(r.updated_at) end
    end
    function B.sessions(t, r, items)
        need(r.id, "sessions", "id")
        now_from(r, "sessions")
        A.sessions.create(t, r)
        fix_updated(items, r)
    end
    function B.codes(t, r, items)
        need(r.code_id, "codes", "code_id")
        now_from(r, "codes")
        A.codes.create(t, r)
        fix_updated(items, r)
    end
    function B.clients(t, r, items)
        need(r.client_id, "clients", "client_id")
        A.clients.create(t, r, { importMetadata = stamps(r) })
        -- create makes up a secret when none is given; an import stores what the source had
        if not present(r.client_secret) then
            for _, it in ipairs(items) do
                if it.entityType == "CLIENT" then it.client_secret = nil end
            end
        end
    end
    function B.connections(t, r)
        need(r.id, "connections", "id")
        A.connections.create(t, r, { importMetadata = stamps(r) })
    end
    function B.organizations(t, r)
        need(r.id, "organizations", "id")
        A.organizations.create(t, r, { importMetadata = stamps(r) })
    end
    function B.userOrganizations(t, r)
        need(r.user_id, "userOrganizations", "user_id")
        need(r.organization_id, "userOrganizations", "organization_id")
        local im = stamps(r)
        im.id = present(r.id) and r.id or derived_id("userOrganizations\0" .. t .. "\0" .. r.organization_id .. "\0"
            .. r.user_id)
        need(im.id, "userOrganizations", "id")
        A.userOrganizations.create(t, r, { importMetadata = im })
    end
    function B.roles(t, r)
        need(r.id, "roles", "id")
        A.roles.create(t, r, { importMetadata = stamps(r) })
    end
    function B.rolePermissions(t, r)
        need(r.role_id, "rolePermissions", "role_id")
        local p = shallow(r)
        -- reads default the name to the identifier: store it only when it says something else
        if p.resource_server_name == p.resource_server_identifier then p.resource_server_name = nil end
        p.created_at, p.updated_at, p.role_id = nil, nil, nil
        A.rolePermissions.assign(t, r.role_id, { p }, { importMetadata = stamps(r) })
    end
    function B.customDomains(t, r)
        need(r.custom_domain_id, "customDomains", "custom_domain_id")
        A.customDomains.create(t, r, { importMetadata = stamps(r) })
    end

    local self = {}

    -- items(entity, t, record) -> items (the entity's own item first), linked_to (users only)
    function self.items(_, entity, t, record)
        sink = {}
        seed, n = entity .. "\0" .. tostring(t), 0
        clock = opts.now_ms
        local ok, err = pcall(B[entity], t, record, sink)
        if not ok then
            if type(err) == "table" and err.skip then error(err, 0) end
            local msg = errors.is(err) and err.message or tostring(err)
            skip("%s: %s", entity, msg)
        end
        if #sink == 0 then skip("%s: nothing to write", entity) end
        local linked
        if entity == "users" and type(record.linked_to) == "string" and record.linked_to ~= "" then
            linked = record.linked_to
        end
        return sink, linked
    end

    return self
end

-- key of an item, as one string
function _M.key(item)
    return item.PK .. "\0" .. item.SK
end

-- A readable name for an item, for duplicate and conflict messages.
function _M.describe(it)
    local et = it.entityType
    local parts = core.key_parts(it.SK)
    if et == "USER_GUARD" then
        local kind = parts[1] == "USER_USERNAME" and "username" or "email"
        return string.format("user %s %q (provider %s)", kind, tostring(parts[2]), tostring(parts[3]))
    elseif et == "CLIENT_ID_POINTER" then
        return string.format("client_id %q (client ids are unique across tenants)", tostring(it.client_id))
    elseif et == "CUSTOM_DOMAIN_CLAIM" then
        return string.format("custom domain %q (domains are unique across tenants)", tostring(it.domain))
    elseif et == "ORGANIZATION_NAME" then
        return string.format("organization name %q", tostring(parts[2]))
    elseif et == "ROLE_NAME" then
        return string.format("role name %q", tostring(parts[2]))
    elseif et == "USER_ORGANIZATION" then
        return string.format("membership of user %q in organization %q", tostring(it.user_id),
            tostring(it.organization_id))
    elseif et == "USER_ORGANIZATION_ID" then
        return string.format("membership id %q", tostring(it.id))
    elseif et == "ROLE_PERMISSION" then
        return string.format("permission %q of %q on role %q", tostring(it.permission_name),
            tostring(it.resource_server_identifier), tostring(it.role_id))
    elseif et == "TENANT" then
        return string.format("tenant %q", tostring(it.id))
    elseif et == "USER" then
        return string.format("user %q", tostring(it.user_id))
    elseif et == "CLIENT" then
        return string.format("client %q", tostring(it.client_id))
    elseif et == "CODE" then
        return string.format("code %q", tostring(it.code_id))
    elseif et == "CUSTOM_DOMAIN" then
        return string.format("custom domain id %q", tostring(it.custom_domain_id))
    end
    return string.format("%s %q", tostring(et):lower(), tostring(it.id or parts[#parts]))
end

-- Ledger of what a file has claimed so far: item keys, and the one current password per user.
-- ledger:claim(items, line) -> nil when the record is new, else the reason to skip it.
function _M.ledger()
    local seen, current = {}, {}
    local L = {}
    function L.claim(_, items, line)
        for _, it in ipairs(items) do
            local first = seen[_M.key(it)]
            if first then
                return string.format("duplicate %s (first seen at line %d)", _M.describe(it), first)
            end
            if it.entityType == "PASSWORD" and it.is_current == true then
                local c = current[it.PK]
                if c then
                    return string.format("a second current password for user %q (the first one is at line %d)",
                        tostring(it.user_id), c)
                end
            end
        end
        for _, it in ipairs(items) do
            seen[_M.key(it)] = line
            if it.entityType == "PASSWORD" and it.is_current == true then current[it.PK] = line end
        end
        return nil
    end
    function L.line_of(_, key)
        return seen[key]
    end
    return L
end

-- conflict(new_item, stored_item) -> reason, or nil when the stored guard/pointer is this record's
function _M.conflict(new, stored)
    local owners = _M.OWNERS[new.entityType]
    if not owners or stored == nil then return nil end
    for _, f in ipairs(owners) do
        if stored[f] ~= new[f] then
            local whose
            if new.entityType == "USER_GUARD" then
                whose = string.format("user %q", tostring(stored.user_id))
            elseif new.entityType == "CLIENT_ID_POINTER" or new.entityType == "CUSTOM_DOMAIN_CLAIM" then
                whose = string.format("tenant %q", tostring(stored.tenant_id))
            elseif new.entityType == "ORGANIZATION_NAME" then
                whose = string.format("organization %q", tostring(stored.organization_id))
            elseif new.entityType == "ROLE_NAME" then
                whose = string.format("role %q", tostring(stored.role_id))
            else
                whose = string.format("membership %q", tostring(stored.id))
            end
            return string.format("%s already belongs to %s in the table", _M.describe(new), whose)
        end
    end
    return nil
end

-- true when an item with a ttl is already expired at now_s (sessions, codes)
function _M.expired(items, now_s)
    local ttl = items[1] and items[1].ttl
    return type(ttl) == "number" and ttl <= now_s
end

return _M
