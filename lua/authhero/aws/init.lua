-- require "authhero.aws": the library's front door: the client, table setup, errors, the `q`
-- filter, and create_adapters (AuthHero's data adapters over the single table).
local _M = {
    _VERSION = "0.1.0",
}

local core = require "authhero.aws.core"
_M.client = require "authhero.aws.client"
_M.errors = require "authhero.aws.errors"
_M.schema = require "authhero.aws.schema"

-- AuthHero adapter name -> module under authhero.aws.adapters
local ADAPTERS = {
    { "tenants", "tenants" }, { "users", "users" }, { "sessions", "sessions" }, { "clients", "clients" },
    { "connections", "connections" }, { "codes", "codes" }, { "passwords", "passwords" },
    { "organizations", "organizations" }, { "userOrganizations", "user_organizations" },
    { "roles", "roles" }, { "rolePermissions", "role_permissions" }, { "customDomains", "custom_domains" },
}

-- create_adapters(client, { tableName, now, new_id, max_page_size }) -> { tenants = ..., users = ..., ... }
-- Methods are called with a dot (adapters.users.get(tenant_id, user_id)); a colon call works too.
function _M.create_adapters(client, opts)
    local store = require "authhero.aws.store"
    local ctx = store.new(client, opts)
    local adapters = {}
    for _, a in ipairs(ADAPTERS) do
        local modname = "authhero.aws.adapters." .. a[2]
        local ok, mod = pcall(require, modname)
        if ok then
            adapters[a[1]] = mod(ctx, adapters)
        elseif not tostring(mod):find("module '" .. modname .. "' not found", 1, true) then
            error(mod, 0) -- a broken adapter is a bug, not a missing one
        end
    end
    return adapters
end

-- Values Lua cannot say on its own (see README "Types").
_M.null = core.null
_M.array = core.array
_M.set = core.set
_M.binary = core.binary

-- The `q` language, for filtering your own record lists the way the adapters do.
_M.filter = setmetatable({}, { __index = function(_, k) return require("authhero.aws.filter")[k] end })

return _M
