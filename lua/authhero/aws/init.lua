-- require "authhero.aws": the library's front door: the client, table setup, errors, the `q`
-- filter, and create_adapters (AuthHero's data adapters over the single table).
local _M = {
    _VERSION = "0.1.0",
}

local core = require "authhero.aws.core"
_M.client = require "authhero.aws.client"
-- within(ms, fn, ...): fn(...) with every DynamoDB call of this coroutine bounded by ms (client.lua)
_M.within = _M.client.within
_M.errors = require "authhero.aws.errors"
_M.schema = require "authhero.aws.schema"
_M.cache = setmetatable({}, { __index = function(_, k) return require("authhero.aws.cache")[k] end })

-- create_adapters(client, { tableName, now, new_id, max_page_size, log_retention_days, cache })
-- -> { tenants = ..., users = ..., ..., transaction = fn }: one adapter per entity of the registry
-- that has one (adapters/<module>.lua). Methods are called with a dot
-- (adapters.users.get(tenant_id, user_id)); a colon call works too. cache: nil (no cache), true,
-- { ttl, max_entries, shared_dict } or a cache from authhero.aws.cache.new: configuration reads go
-- through it (cache.lua).
function _M.create_adapters(client, opts)
    local store = require "authhero.aws.store"
    -- a safe client (authhero.aws.safe, nil-err calls) stands for the client it wraps, which raises
    local safe = package.loaded["authhero.aws.safe"]
    if safe then client = safe.raw(client) end
    local ctx = store.new(client, opts)
    local cache = opts and opts.cache
    if cache ~= nil and cache ~= false then
        local caches = require "authhero.aws.cache"
        if not caches.is_cache(cache) then cache = caches.new(cache) end
    else
        cache = nil
    end
    local adapters = {}
    for _, E in ipairs(_M.schema.entities) do
        if E.module then adapters[E.name] = require("authhero.aws.adapters." .. E.module)(ctx, adapters) end
    end
    -- actions, actionVersions, actionExecutions: nothing stored, every method raises 501 (contract §7)
    local unsupported = require "authhero.aws.adapters.unsupported"
    for name in pairs(unsupported.ADAPTERS) do adapters[name] = unsupported.adapter(name) end
    if cache then cache:wrap(adapters) end
    -- transaction(fn) -> fn(adapters)'s results (contract §7): DynamoDB cannot wrap an arbitrary
    -- sequence of reads and writes, so there is no atomicity and no rollback; the adapters that must
    -- keep several items in step use TransactWriteItems themselves.
    function adapters.transaction(fn, ...)
        if fn == adapters then fn = ... end
        if type(fn) ~= "function" then error("bad argument #1 to 'transaction' (function expected)", 2) end
        return fn(adapters)
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

-- Prometheus metrics from the client's on_request hook (metrics.lua), loaded on first use.
_M.metrics = setmetatable({}, { __index = function(_, k) return require("authhero.aws.metrics")[k] end })

-- The multi-Region router that stands in for the client (global.lua), loaded on first use.
_M.global = setmetatable({}, { __index = function(_, k) return require("authhero.aws.global")[k] end })

return _M
