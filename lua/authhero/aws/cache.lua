-- The read cache for configuration entities (README "Caching configuration"): AuthHero reads its
-- tenant, client, connections, branding, prompt settings, hooks, ... on every HTTP request; with a
-- cache those reads are answered from memory for `ttl` seconds.
--
--   local cache = require("authhero.aws.cache").new({ ttl = 300, max_entries = 10000, shared_dict = nil })
--   local adapters = aws.create_adapters(client, { tableName = "authhero", cache = cache })
--   -- or cache = { ttl = ... } (create_adapters makes the cache), or cache = true (the defaults)
--
-- What is cached: the reads listed in CACHED below, by adapter, method and arguments; a nil answer
-- too. Never users, passwords, sessions, codes, tokens, logs or anything else (their adapters are
-- left as they are). A method of a cached adapter that is not a listed read is a write.
--
-- Invalidation by generations. Every entry depends on one scope, and records that scope's generation
-- (and the cache's epoch) when its read began:
--   "t:<tenant>"   a tenant's configuration (every tenant-scoped read: clients.get, connections.list, ...)
--   "e:<adapter>"  an adapter's global reads (clients.getByClientId, customDomains.getByDomain,
--                  keys.list, tenants.list)
-- A write through the adapters bumps its tenant's scope and its adapter's global scope when the write
-- returns (or raises: it may have acted); tenants.remove (a cascade across every entity) and a write
-- whose scope cannot be told bump the epoch, which invalidates everything. A hit is an entry younger
-- than ttl whose generations are still current, so a read after a write through the same process
-- never sees the old value; a read begun before the write and finished after it is not stored as
-- current either (its generation is the old one). With `shared_dict` (an OpenResty lua_shared_dict)
-- the generations live in the dict, so every worker of the nginx instance sees every invalidation;
-- the entries themselves stay in each worker's memory. Other machines and processes (and writes that
-- bypass the adapters) are seen only when an entry's ttl runs out.
--
-- Size: at most max_entries entries, by generational eviction (two tables of up to max_entries/2:
-- when the young one fills, the old one is dropped and the young one becomes old; a hit in the old
-- one moves the entry back to the young one), so memory stays flat however many keys are read.
--
-- Values are copies (see copier below): a caller changing a returned record never changes the cache.
--
-- Concurrent misses: inside nginx (ngx.semaphore), a miss for a key whose load is already under way in
-- this worker, at the same generations, waits for that load instead of sending its own request (at
-- most 30 s, and never past the waiter's aws.within() deadline: then it raises that deadline's
-- TransportError). Plain Lua with the blocking libcurl transport never runs two calls at once.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local client_mod = require "authhero.aws.client" -- scope_left: a request's within() deadline

local _M = {}
local mt = { __index = _M }

local DEFAULT_TTL, DEFAULT_MAX_ENTRIES = 300, 10000
local WAIT_S = 30 -- how long a miss waits for another coroutine's load of the same key

-- adapter -> { method = "tenant" | "global" }: the cached reads and the scope each depends on.
-- tenants.get(id) is scoped by its own id; every other "tenant" read by its first argument.
local CACHED = {
    tenants = { get = "tenant", list = "global" },
    clients = { get = "tenant", list = "tenant", getByClientId = "global" },
    connections = { get = "tenant", list = "tenant" },
    clientConnections = { listByClient = "tenant", listByConnection = "tenant" },
    branding = { get = "tenant" },
    promptSettings = { get = "tenant" },
    themes = { get = "tenant" },
    hooks = { get = "tenant", list = "tenant" },
    resourceServers = { get = "tenant", list = "tenant" },
    keys = { list = "global" },
    customDomains = { get = "tenant", list = "tenant", getByDomain = "global" },
    customText = { get = "tenant", list = "tenant", listEntries = "tenant" },
    universalLoginTemplates = { get = "tenant" },
    emailProviders = { get = "tenant" },
    emailTemplates = { get = "tenant", list = "tenant" },
    forms = { get = "tenant", list = "tenant" },
    flows = { get = "tenant", list = "tenant" },
}
_M.CACHED = CACHED

-- Adapters with no tenant argument: every write bumps only the adapter's global scope.
local GLOBAL_ONLY = { keys = true }

local EPOCH = "*"

local copy = core.copy
local null = core.null
local find, concat, sort, tostring, type, select = string.find, table.concat, table.sort, tostring, type, select

-- One argument -> its part of a cache key, or nil when it cannot be part of one (a function, a
-- userdata other than null). Strings are tagged and made unambiguous; tables are canonical (keys
-- sorted), so { a = 1, b = 2 } and { b = 2, a = 1 } are the same key.
local arg_key

local function mixed_order(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    return a < b
end

local function table_key(t, depth)
    if depth > 8 then return nil end
    local ks, n, strings = {}, 0, true
    for k in pairs(t) do
        n = n + 1
        ks[n] = k
        if strings and type(k) ~= "string" then strings = false end
    end
    if strings then
        sort(ks)
    elseif not pcall(sort, ks, mixed_order) then
        return nil -- keys that do not order (booleans, tables): not cached
    end
    for i = 1, n do
        local k = ks[i]
        local kk, vk = arg_key(k, depth + 1), arg_key(t[k], depth + 1)
        if kk == nil or vk == nil then return nil end
        ks[i] = kk .. "=" .. vk
    end
    return (core.is_array(t) and "[" or "{") .. concat(ks, ",") .. "}"
end

arg_key = function(v, depth)
    local tv = type(v)
    if tv == "string" then
        if find(v, "[%z\1-\3,={}%[]") then return "s" .. v:gsub("[%z\1-\3,={}%[]", "\1%0") end
        return "s" .. v
    elseif tv == "nil" then
        return "~"
    elseif tv == "number" then
        return "n" .. tostring(v)
    elseif tv == "boolean" then
        return v and "T" or "F"
    elseif v == null then
        return "N"
    elseif tv == "table" then
        return table_key(v, depth or 0)
    end
    return nil
end

-- prefix, args -> the cache key, or nil (an argument that cannot be keyed: the call is not cached)
local function key_of(prefix, n, a, b, ...)
    if n <= 2 and type(a) == "string" and (b == nil or type(b) == "string")
        and not find(a, "[%z\1-\3]") and (b == nil or not find(b, "[%z\1-\3]")) then
        if n <= 1 then return prefix .. "\2s" .. a end
        return prefix .. "\2s" .. a .. "\2" .. (b == nil and "~" or "s" .. b)
    end
    local parts = { prefix }
    local args = { a, b, ... }
    for i = 1, n do
        local k = arg_key(args[i])
        if k == nil then return nil end
        parts[i + 1] = k
    end
    return concat(parts, "\2")
end
_M._key_of = key_of

local function check_opts(opts)
    if opts == true or opts == nil then opts = {} end
    if type(opts) ~= "table" then errors.validation("cache must be a table, true, or a cache object") end
    local ttl = opts.ttl
    if ttl == nil then ttl = DEFAULT_TTL end
    if type(ttl) ~= "number" or ttl <= 0 or ttl ~= ttl then
        errors.validation("cache.ttl must be a positive number of seconds")
    end
    local max = opts.max_entries
    if max == nil then max = DEFAULT_MAX_ENTRIES end
    if type(max) ~= "number" or max < 2 or max ~= math.floor(max) then
        errors.validation("cache.max_entries must be an integer of at least 2")
    end
    local dict = opts.shared_dict
    if dict ~= nil then
        if type(dict) == "string" then
            local shared = type(ngx) == "table" and ngx.shared
            if not shared then errors.validation("cache.shared_dict needs OpenResty (ngx.shared)") end
            local d = shared[dict]
            if not d then
                errors.validation("cache.shared_dict: no lua_shared_dict named %q", dict)
            end
            dict = d
        elseif type(dict) ~= "table" and type(dict) ~= "userdata" then
            errors.validation("cache.shared_dict must be the name of a lua_shared_dict")
        end
    end
    if opts.now ~= nil and type(opts.now) ~= "function" then errors.validation("cache.now must be a function") end
    return ttl, max, dict, opts.now
end

-- new([opts]) -> cache. opts: ttl (seconds, default 300), max_entries (default 10000), shared_dict
-- (name of a lua_shared_dict: generations shared by the nginx workers), now (seconds, for tests).
function _M.new(opts)
    local ttl, max, dict, now = check_opts(opts)
    local ngx_now = type(ngx) == "table" and ngx.now
    local self = setmetatable({
        ttl = ttl,
        max_entries = max,
        _half = math.floor(max / 2),
        _young = {},
        _old = {},
        _count = 0,
        _gens = { [EPOCH] = 0 }, -- without shared_dict: scope -> generation
        _dict = dict,
        _now = now or ngx_now or core.now,
        _flights = {},
        stats = { hits = 0, misses = 0, loads = 0, waits = 0, evictions = 0, invalidations = 0 },
    }, mt)
    if type(ngx) == "table" and ngx.get_phase then
        local ok, semaphore = pcall(require, "ngx.semaphore")
        if ok then self._semaphore = semaphore end
    end
    return self
end

function _M.is_cache(v)
    return getmetatable(v) == mt
end

-- A generation never used before for a scope of the shared dict: the dict may have evicted the scope
-- (under memory pressure), and a recreated scope must not match entries that recorded its old value.
-- Milliseconds * 1024 (+ a random part for workers starting one in the same millisecond) stays below
-- 2^53, so +1 is exact in a double; an old value catches up only after 1024 writes per millisecond.
local function fresh_gen(self)
    return math.floor(self._now() * 1000) * 1024 + math.random(0, 1023)
end

-- scope -> its current generation; for_load: create it (shared dict) so an entry can record it.
local function gen_of(self, scope, for_load)
    local dict = self._dict
    if not dict then return self._gens[scope] or 0 end
    local g = dict:get(scope)
    if g == nil and for_load then
        dict:add(scope, fresh_gen(self))
        g = dict:get(scope)
    end
    return g
end

local function bump(self, scope)
    self.stats.invalidations = self.stats.invalidations + 1
    local dict = self._dict
    if dict then
        local _, err = dict:incr(scope, 1, fresh_gen(self))
        if err then
            -- the dict is full and cannot keep the scope: drop it (readers then load afresh)
            dict:delete(scope)
        end
        return
    end
    local gens = self._gens
    gens[scope] = (gens[scope] or 0) + 1
end

-- flush(): every entry is invalid from now on (in every worker, with shared_dict).
function _M.flush(self)
    bump(self, EPOCH)
    self._young, self._old, self._count = {}, {}, 0
end

local function store(self, key, entry)
    local young = self._young
    if young[key] == nil then
        if self._count >= self._half then
            -- the young table is full: it becomes the old one, the old one's entries are dropped
            local dropped = 0
            for _ in pairs(self._old) do dropped = dropped + 1 end
            self.stats.evictions = self.stats.evictions + dropped
            self._old = young
            young = {}
            self._young = young
            self._count = 0
        end
        self._count = self._count + 1
    end
    young[key] = entry
end

-- The entry for key if it is still current, else nil.
local function lookup(self, key, now)
    local e = self._young[key]
    if e == nil then
        e = self._old[key]
        if e == nil then return nil end
        self._old[key] = nil
        if e.expires > now then store(self, key, e) end
    end
    if e.expires <= now then return nil end
    if self._dict then
        local dict = self._dict
        if dict:get(e.scope) ~= e.gen or dict:get(EPOCH) ~= e.epoch then return nil end
    else
        local gens = self._gens
        if (gens[e.scope] or 0) ~= e.gen or gens[EPOCH] ~= e.epoch then return nil end
    end
    return e
end

-- Copies. An entry keeps not the value but a maker of copies: a Lua function, generated from the
-- value when it is stored, whose table constructors rebuild it (every string %q-quoted, numbers
-- exact, metatables and null passed in as upvalues, no globals). Constructors with constant keys are
-- what the VM builds tables fastest with: about half core.copy's time on Lua 5.4 and a ninth on
-- LuaJIT, for ~15 us once per miss. Values it cannot write (functions, userdata, table keys, deep or
-- huge tables) fall back to core.copy.
local MAX_DEPTH, MAX_PARTS = 40, 20000
local fmt, getmetatable, setmetatable, pairs = string.format, getmetatable, setmetatable, pairs
local exact_numbers = rawget(math, "type") ~= nil -- Lua 5.3+: %q writes a number exactly, integer or float

local function number_text(v)
    if v ~= v then return "(0/0)" end
    if v == math.huge then return "(1/0)" end
    if v == -math.huge then return "(-1/0)" end
    if exact_numbers then return fmt("%q", v) end
    return fmt("%.17g", v)
end

local function key_text(k)
    local tk = type(k)
    if tk == "string" then return "[" .. fmt("%q", k) .. "]=" end
    if tk == "number" then return "[" .. number_text(k) .. "]=" end
    if tk == "boolean" then return k and "[true]=" or "[false]=" end
    return nil
end

local function write_value(v, out, mts, depth)
    local t = type(v)
    if t == "string" then
        out[#out + 1] = fmt("%q", v)
    elseif t == "number" then
        out[#out + 1] = number_text(v)
    elseif t == "boolean" then
        out[#out + 1] = v and "true" or "false"
    elseif v == null then
        out[#out + 1] = "N"
    elseif t == "table" then
        if depth > MAX_DEPTH or #out > MAX_PARTS then return false end
        local vmt = getmetatable(v)
        local mi
        if vmt ~= nil then
            mi = mts[vmt]
            if not mi then
                mi = #mts.list + 1
                mts.list[mi], mts[vmt] = vmt, mi
            end
            out[#out + 1] = "S({"
        else
            out[#out + 1] = "{"
        end
        local n = #v -- the array part, written positionally when it has no holes
        for i = 1, n do
            if v[i] == nil then
                n = 0
                break
            end
        end
        for i = 1, n do
            if not write_value(v[i], out, mts, depth + 1) then return false end
            out[#out + 1] = ","
        end
        for k, x in pairs(v) do
            if not (type(k) == "number" and k >= 1 and k <= n and k == math.floor(k)) then
                local kt = key_text(k)
                if kt == nil then return false end
                out[#out + 1] = kt
                if not write_value(x, out, mts, depth + 1) then return false end
                out[#out + 1] = ","
            end
        end
        out[#out + 1] = vmt ~= nil and ("},M[" .. mi .. "])") or "}"
    else
        return false
    end
    return true
end

local load_text
if rawget(_G, "setfenv") and rawget(_G, "loadstring") then -- Lua 5.1, LuaJIT
    load_text = function(src)
        local f = loadstring(src, "=cache copy") -- luacheck: ignore 113
        if f then setfenv(f, {}) end -- luacheck: ignore 113
        return f
    end
else
    load_text = function(src) return load(src, "=cache copy", "t", {}) end
end

local function nothing() return nil end

-- copier(v) -> a function returning a fresh copy of v at each call.
local function copier(v)
    if v == nil then return nothing end
    if type(v) ~= "table" then return function() return v end end
    local out, mts = { "local S,M,N=... return function() return " }, { list = {} }
    if write_value(v, out, mts, 0) then
        out[#out + 1] = " end"
        local chunk = load_text(concat(out))
        if chunk then
            local ok, make = pcall(chunk, setmetatable, mts.list, null)
            if ok and type(make) == "function" then return make end
        end
    end
    local kept = copy(v)
    return function() return copy(kept) end
end
_M._copier = copier

-- read(key, scope, load, ...) -> load(...)'s value, from the cache when it holds it.
function _M.read(self, key, scope, load, ...)
    local now = self._now()
    local e = lookup(self, key, now)
    local stats = self.stats
    if e then
        stats.hits = stats.hits + 1
        return e.value()
    end
    stats.misses = stats.misses + 1
    -- the generations are taken before the read: a write that lands during it makes the entry stale
    local gen, epoch = gen_of(self, scope, true), gen_of(self, EPOCH, true)
    local flights = self._flights
    local flight = flights[key]
    if flight and flight.gen == gen and flight.epoch == epoch then
        -- at most WAIT_S, and never past the waiter's within() scope, which then raises its deadline
        local wait_s, left = WAIT_S, client_mod.scope_left()
        if left and left < wait_s then
            if left <= 0 then error(client_mod._scope_error(0, "before waiting for a read under way"), 0) end
            wait_s = left
        end
        flight.waiting = flight.waiting + 1
        stats.waits = stats.waits + 1
        local ok = flight.sema:wait(wait_s)
        if ok then
            if not flight.ok then error(flight.value, 0) end
            return flight.value()
        end
        if wait_s < WAIT_S then error(client_mod._scope_error(wait_s, "waiting for a read under way"), 0) end
        -- waited too long: load it ourselves
    end
    flight = nil
    if self._semaphore and flights[key] == nil then
        flight = { gen = gen, epoch = epoch, waiting = 0, sema = self._semaphore.new(0) }
        flights[key] = flight
    end
    stats.loads = stats.loads + 1
    local ok, v = pcall(load, ...)
    local kept
    if ok then
        kept = copier(v)
        if gen ~= nil and epoch ~= nil then
            store(self, key, { value = kept, expires = now + self.ttl, scope = scope, gen = gen, epoch = epoch })
        end
    end
    if flight then
        flights[key] = nil
        flight.ok, flight.value = ok, ok and kept or v
        if flight.waiting > 0 then flight.sema:post(flight.waiting) end
    end
    if not ok then error(v, 0) end
    return v
end

-- invalidate(tenant_id, adapter_name): what a write through that adapter changes (nil tenant_id: the
-- adapter's global reads only; adapter_name "*": everything).
function _M.invalidate(self, tenant_id, adapter_name)
    if adapter_name == EPOCH then return bump(self, EPOCH) end
    if tenant_id ~= nil then bump(self, "t:" .. tenant_id) end
    if adapter_name ~= nil then bump(self, "e:" .. adapter_name) end
end

-- The tenant a write of adapter `name` changes, from its arguments; false when it cannot be told.
local function write_tenant(name, a1)
    if name == "tenants" then
        if type(a1) == "table" then
            local id = a1.id
            return type(id) == "string" and id or nil -- a new id: no entry can hold it yet
        end
    end
    if type(a1) == "string" then return a1 end
    return false
end

local function wrap_read(self, name, method, fn, adapter, kind)
    local prefix = name .. "." .. method
    local p1 = prefix .. "\2s"
    local stats, gens, now, dict = self.stats, self._gens, self._now, self._dict
    return function(...)
        local a1, a2 = ...
        if a1 == adapter then return adapter[method](select(2, ...)) end
        local n = select("#", ...)
        -- the usual get(tenant, id): key_of's own fast path, inlined (the same key)
        local key
        if n <= 2 and type(a1) == "string" and not find(a1, "[%z\1-\3]") then
            if n == 1 then
                key = p1 .. a1
            elseif type(a2) == "string" and not find(a2, "[%z\1-\3]") then
                key = p1 .. a1 .. "\2s" .. a2
            end
        end
        if key == nil then key = key_of(prefix, n, ...) end
        if key == nil or (kind == "tenant" and type(a1) ~= "string") then return fn(...) end
        if not dict then -- a hit in the young half, checked here (read() does the rest)
            local e = self._young[key]
            if e and e.expires > now() and (gens[e.scope] or 0) == e.gen and gens[EPOCH] == e.epoch then
                stats.hits = stats.hits + 1
                return e.value()
            end
        end
        return self:read(key, kind == "tenant" and "t:" .. a1 or "e:" .. name, fn, ...)
    end
end

local function wrap_write(self, name, method, fn, adapter)
    local global = GLOBAL_ONLY[name]
    local has_global = false
    for _, kind in pairs(CACHED[name]) do if kind == "global" then has_global = true end end
    local whole = name == "tenants" and method == "remove"
    local function after(a1, ok, ...)
        if whole then
            self:invalidate(nil, EPOCH)
        elseif global then
            self:invalidate(nil, name)
        else
            local t = write_tenant(name, a1)
            if t == false then
                self:invalidate(nil, EPOCH)
            else
                self:invalidate(t, has_global and name or nil)
            end
        end
        if not ok then error((...), 0) end
        return ...
    end
    return function(...)
        local a1 = ...
        if a1 == adapter then return adapter[method](select(2, ...)) end
        return after(a1, pcall(fn, ...))
    end
end

-- wrap(adapters): replaces each cached adapter by one whose listed reads go through the cache and whose
-- other methods invalidate; the rest of the adapters are left alone. Returns adapters.
function _M.wrap(self, adapters)
    for name, reads in pairs(CACHED) do
        local real = adapters[name]
        if real then
            local wrapped = {}
            for method, fn in pairs(real) do
                if type(fn) == "function" then
                    local kind = reads[method]
                    if kind then
                        wrapped[method] = wrap_read(self, name, method, fn, wrapped, kind)
                    else
                        wrapped[method] = wrap_write(self, name, method, fn, wrapped)
                    end
                else
                    wrapped[method] = fn
                end
            end
            adapters[name] = wrapped
        end
    end
    return adapters
end

return _M
