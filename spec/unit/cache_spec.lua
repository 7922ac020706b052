-- authhero.aws.cache without a database: keys, generations (in process and in a shared dict shaped
-- as ngx.shared.DICT, including a generation the dict evicted), ttl, copies, eviction, concurrent
-- misses joined through a semaphore, and which methods count as writes. The adapters here are
-- counting functions; spec/integration/adapters/cache_spec.lua runs the cache over the real ones.
local core = require "authhero.aws.core"
local cache_mod = require "authhero.aws.cache"

local key_of = cache_mod._key_of

-- A stand-in for ngx.shared.DICT with the calls cache.lua makes (get, add, incr with init, delete).
local function shared_dict()
    local d = { data = {} }
    function d:get(k) return self.data[k] end
    function d:add(k, v)
        if self.data[k] ~= nil then return false, "exists" end
        self.data[k] = v
        return true
    end
    function d:incr(k, n, init)
        local v = self.data[k]
        if v == nil then
            if init == nil then return nil, "not found" end
            v = init
        end
        self.data[k] = v + n
        return v + n
    end
    function d:delete(k) self.data[k] = nil end
    return d
end

-- adapters shaped like the real ones: tenants.get/update, clients.get/list/getByClientId/create,
-- keys.list/create, users.get; every call counted in calls[name.method]
local function fake_adapters(db)
    local calls = {}
    local function count(k) calls[k] = (calls[k] or 0) + 1 end
    local a = {
        tenants = {
            get = function(id) count("tenants.get"); return db.tenants[id] end,
            update = function(id, patch)
                count("tenants.update")
                for k, v in pairs(patch) do db.tenants[id][k] = v end
                return true
            end,
            remove = function(id) count("tenants.remove"); db.tenants[id] = nil; return true end,
        },
        clients = {
            get = function(t, id) count("clients.get"); return db.clients[t .. "/" .. id] end,
            getByClientId = function(id)
                count("clients.getByClientId")
                for k, c in pairs(db.clients) do if k:match("/(.*)$") == id then return c end end
                return nil
            end,
            list = function(t, params)
                count("clients.list")
                return { clients = core.array({}), params = params, t = t }
            end,
            create = function(t, c)
                count("clients.create")
                if db.clients[t .. "/" .. c.client_id] then error({ status = 409, code = "Conflict" }, 0) end
                db.clients[t .. "/" .. c.client_id] = c
                return c
            end,
        },
        keys = {
            list = function() count("keys.list"); return { signingKeys = core.array(db.keys) } end,
            create = function(k) count("keys.create"); db.keys[#db.keys + 1] = k; return k end,
        },
        users = { get = function(t, id) count("users.get"); return { user_id = id, tenant_id = t } end },
    }
    return a, calls
end

local function new_db()
    return {
        tenants = { t1 = { id = "t1", friendly_name = "One", tags = core.array({ "a" }) }, t2 = { id = "t2" } },
        clients = { ["t1/c1"] = { client_id = "c1", name = "C1", callbacks = core.array({ "https://x/cb" }) } },
        keys = {},
    }
end

local function setup_cache(opts)
    local clock = { t = 100 }
    local o = { now = function() return clock.t end }
    for k, v in pairs(opts or {}) do o[k] = v end
    local db = new_db()
    local a, calls = fake_adapters(db)
    local c = cache_mod.new(o)
    c:wrap(a)
    return a, calls, c, clock, db
end

describe("cache keys", function()
    it("are equal for equal arguments, tables in any key order", function()
        assert.equal(key_of("p", 2, "t", { a = 1, b = "x", c = { d = true } }),
            key_of("p", 2, "t", { c = { d = true }, b = "x", a = 1 }))
    end)

    it("tell apart what differs: values, types, arrays from objects, nil from absent", function()
        local seen = {}
        local cases = {
            { 1, "a" }, { 1, "b" }, { 2, "a", "b" }, { 2, "a", nil }, { 1, 1 }, { 1, "1" }, { 1, true },
            { 1, {} }, { 1, core.array({}) }, { 1, { x = 1 } }, { 1, { x = "1" } }, { 1, core.null },
            { 2, "a\2sb", nil }, { 2, "a", "b" }, { 1, "a,b" }, { 1, { "a,b" } }, { 1, { "a", "b" } },
            { 1, { a = "b=c" } }, { 1, { ["a=b"] = "c" } },
        }
        for i, c in ipairs(cases) do
            local k = key_of("p", c[1], c[2], c[3])
            assert.is_string(k, "case " .. i)
            if i ~= 14 then -- the same arguments as case 3
                assert.is_nil(seen[k], "case " .. i .. " collides with case " .. tostring(seen[k]))
            end
            seen[k] = seen[k] or i
        end
    end)

    it("are nil for arguments that cannot be keyed (then the call is not cached)", function()
        assert.is_nil(key_of("p", 1, function() end))
        assert.is_nil(key_of("p", 2, "t", { f = function() end }))
        assert.is_nil(key_of("p", 2, "t", { [{}] = 1, [{}] = 2 })) -- keys that do not order
    end)
end)

describe("cache", function()
    it("hits send nothing to the adapter and return copies that keep array marks", function()
        local a, calls = setup_cache()
        local r1 = a.tenants.get("t1")
        local r2 = a.tenants.get("t1")
        assert.equal(1, calls["tenants.get"])
        assert.same(r1, r2)
        assert.are_not.equal(r1, r2)
        assert.is_true(core.is_array(r2.tags))
        r2.tags[1] = "changed"
        r2.friendly_name = "changed"
        local r3 = a.tenants.get("t1")
        assert.equal("a", r3.tags[1])
        assert.equal("One", r3.friendly_name)
    end)

    it("the loader's own value is not the cached one either", function()
        local a, _, _, _, db = setup_cache()
        local first = a.clients.get("t1", "c1")
        assert.equal(db.clients["t1/c1"], first) -- a miss returns what the adapter returned
        first.name = "mutated by the caller"
        -- (the fake database's own record changed; the cache kept a copy of what was read)
        assert.equal("C1", a.clients.get("t1", "c1").name)
    end)

    it("writes invalidate their tenant's reads and the adapter's global lookups, even when they fail", function()
        local a, calls = setup_cache()
        a.clients.get("t1", "c1")
        a.clients.getByClientId("c1")
        a.tenants.get("t2")
        assert.has_error(function() a.clients.create("t1", { client_id = "c1" }) end)
        a.clients.get("t1", "c1")
        a.clients.getByClientId("c1")
        a.tenants.get("t2")
        assert.equal(2, calls["clients.get"])
        assert.equal(2, calls["clients.getByClientId"])
        assert.equal(1, calls["tenants.get"]) -- another tenant's entry stays
    end)

    it("tenants.remove invalidates everything; keys writes invalidate keys.list only", function()
        local a, calls = setup_cache()
        a.tenants.get("t2")
        a.keys.list({})
        a.keys.create({ kid = "k1" })
        assert.equal(1, #a.keys.list({}).signingKeys)
        a.tenants.get("t2")
        assert.equal(1, calls["tenants.get"])
        a.tenants.remove("t1")
        a.tenants.get("t2")
        a.keys.list({})
        assert.equal(2, calls["tenants.get"])
        assert.equal(3, calls["keys.list"])
    end)

    it("leaves uncached adapters alone", function()
        local a, calls = setup_cache()
        a.users.get("t1", "u1")
        a.users.get("t1", "u1")
        assert.equal(2, calls["users.get"])
    end)

    it("entries expire after ttl", function()
        local a, calls, _, clock = setup_cache({ ttl = 10 })
        a.tenants.get("t1")
        clock.t = clock.t + 9.9
        a.tenants.get("t1")
        assert.equal(1, calls["tenants.get"])
        clock.t = clock.t + 0.2
        a.tenants.get("t1")
        assert.equal(2, calls["tenants.get"])
    end)

    it("caches nil answers and not errors", function()
        local a, calls = setup_cache()
        assert.is_nil(a.clients.get("t1", "nope"))
        assert.is_nil(a.clients.get("t1", "nope"))
        assert.equal(1, calls["clients.get"])
        local c = cache_mod.new()
        local n = 0
        for _ = 1, 2 do
            assert.has_error(function()
                c:read("k", "t:x", function() n = n + 1; error("boom") end)
            end, "boom")
        end
        assert.equal(2, n)
    end)

    it("keeps at most max_entries and still answers every key right", function()
        local c = cache_mod.new({ max_entries = 10 })
        local loads = 0
        for round = 1, 3 do
            for i = 1, 50 do
                local v = c:read("k" .. i, "t:x", function() loads = loads + 1; return { i = i } end)
                assert.equal(i, v.i, "round " .. round)
            end
        end
        local n = 0
        for _ in pairs(c._young) do n = n + 1 end
        for _ in pairs(c._old) do n = n + 1 end
        assert.is_true(n <= 10, n .. " entries")
        assert.equal(150, loads)
        -- a small working set stays cached
        local before = loads
        for _ = 1, 10 do for i = 1, 4 do c:read("w" .. i, "t:x", function() loads = loads + 1; return i end) end end
        assert.equal(before + 4, loads)
    end)

    it("a read that overlapped a write is not stored as current", function()
        local c = cache_mod.new()
        local v = c:read("k", "t:x", function()
            c:invalidate("x") -- a write lands while the read is under way
            return "old"
        end)
        assert.equal("old", v)
        assert.equal("new", c:read("k", "t:x", function() return "new" end))
    end)
end)

describe("cache with a shared dict", function()
    it("an invalidation by one worker's cache is seen by another's", function()
        local dict = shared_dict()
        local db = new_db()
        local a1, calls1 = fake_adapters(db)
        local a2, calls2 = fake_adapters(db)
        cache_mod.new({ shared_dict = dict }):wrap(a1)
        cache_mod.new({ shared_dict = dict }):wrap(a2)
        assert.equal("One", a2.tenants.get("t1").friendly_name)
        assert.equal("One", a2.tenants.get("t1").friendly_name)
        assert.equal(1, calls2["tenants.get"])
        a1.tenants.update("t1", { friendly_name = "Uno" })
        assert.equal("Uno", a2.tenants.get("t1").friendly_name)
        assert.equal(2, calls2["tenants.get"])
        assert.is_nil(calls1["tenants.get"])
    end)

    it("a generation the dict evicted never validates an old entry", function()
        local dict = shared_dict()
        local clock = { t = 100 }
        local c = cache_mod.new({ shared_dict = dict, now = function() return clock.t end })
        local loads = 0
        local function read() return c:read("k", "t:x", function() loads = loads + 1; return loads end) end
        assert.equal(1, read())
        assert.equal(1, read())
        dict:delete("t:x") -- evicted under memory pressure
        clock.t = clock.t + 0.001
        assert.equal(2, read())
        c:invalidate("x")
        dict:delete("t:x")
        clock.t = clock.t + 0.001
        assert.equal(3, read())
        assert.equal(3, read())
    end)
end)

describe("concurrent misses", function()
    -- PUC Lua 5.1 cannot yield across pcall, which the cache's load runs in (LuaJIT and 5.2+ can;
    -- OpenResty is LuaJIT)
    local yieldable_pcall = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil
    local it_yieldable = yieldable_pcall and it or pending

    local fake_semaphore = require "support.fake_semaphore"

    it_yieldable("join the load already under way: one load, every caller gets its own copy", function()
        local c = cache_mod.new()
        c._semaphore = fake_semaphore()
        local loads = 0
        local function load()
            loads = loads + 1
            coroutine.yield("io") -- the request is on the wire
            return { v = "x" }
        end
        local results = {}
        local cos = {}
        for i = 1, 3 do
            cos[i] = coroutine.create(function() results[i] = c:read("k", "t:x", load) end)
            assert(coroutine.resume(cos[i]))
        end
        for _ = 1, 3 do
            for i = 1, 3 do
                if coroutine.status(cos[i]) == "suspended" then assert(coroutine.resume(cos[i])) end
            end
        end
        assert.equal(1, loads)
        for i = 1, 3 do assert.equal("x", results[i].v) end
        assert.are_not.equal(results[2], results[3])
        assert.equal(2, c.stats.waits)
    end)

    it_yieldable("a miss after a write does not join a load that began before it", function()
        local c = cache_mod.new()
        c._semaphore = fake_semaphore()
        local loads = 0
        local function load()
            loads = loads + 1
            local mine = loads
            coroutine.yield("io")
            return mine
        end
        local r = {}
        local co1 = coroutine.create(function() r[1] = c:read("k", "t:x", load) end)
        assert(coroutine.resume(co1))
        c:invalidate("x")
        local co2 = coroutine.create(function() r[2] = c:read("k", "t:x", load) end)
        assert(coroutine.resume(co2))
        assert(coroutine.resume(co1))
        assert(coroutine.resume(co2))
        assert.equal(2, loads)
        assert.equal(1, r[1])
        assert.equal(2, r[2])
    end)

    it_yieldable("waiters see the loader's error", function()
        local c = cache_mod.new()
        c._semaphore = fake_semaphore()
        local function load()
            coroutine.yield("io")
            error({ status = 500, code = "InternalServerError" }, 0)
        end
        local errs = {}
        local cos = {}
        for i = 1, 2 do
            cos[i] = coroutine.create(function()
                local ok, e = pcall(c.read, c, "k", "t:x", load)
                errs[i] = not ok and e
            end)
            assert(coroutine.resume(cos[i]))
        end
        assert(coroutine.resume(cos[1]))
        assert(coroutine.resume(cos[2]))
        assert.equal("InternalServerError", errs[1].code)
        assert.equal("InternalServerError", errs[2].code)
    end)
end)

describe("cache options", function()
    it("reject bad values with a ValidationError", function()
        for _, bad in ipairs({ { ttl = -1 }, { ttl = 0 }, { max_entries = 0 }, { max_entries = 1.5 },
            { now = 5 }, { shared_dict = "x" }, { shared_dict = 5 }, 7 }) do
            local ok, err = pcall(cache_mod.new, bad)
            assert.is_false(ok)
            assert.equal(400, err.status)
            assert.equal("ValidationError", err.code)
        end
    end)
end)

describe("the cache's copier", function()
    local copier = cache_mod._copier

    -- deep equality that also compares metatables, number subtypes (5.3+) and NaN
    local function same(a, b, path)
        path = path or "value"
        if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
        if type(a) == "number" then
            if a ~= a then return b ~= b, path .. ": NaN lost" end
            if math.type and math.type(a) ~= math.type(b) then return false, path .. ": number subtype" end
            if a == 0 and 1 / a ~= 1 / b then return false, path .. ": sign of zero" end
            return a == b, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
        end
        if type(a) ~= "table" then return a == b, path end
        if getmetatable(a) ~= getmetatable(b) then return false, path .. ": metatable" end
        for k, v in pairs(a) do
            local ok, why = same(v, b[k], path .. "." .. tostring(k))
            if not ok then return false, why end
        end
        for k in pairs(b) do if a[k] == nil then return false, path .. ": extra key " .. tostring(k) end end
        return true
    end

    local function all_bytes()
        local t = {}
        for i = 0, 255 do t[#t + 1] = string.char(i) end
        return table.concat(t)
    end

    it("rebuilds every value exactly, as a new table each time", function()
        local v = {
            bytes = all_bytes(), quotes = "\"'\\]]=]\n\r\0", empty = "",
            ints = core.array({ 0, 1, -1, 2 ^ 53, -(2 ^ 53), 123456789 }),
            floats = { 0.1, 1e308, -1e-308, 1 / 3, -0.0, math.huge, -math.huge, 0 / 0 },
            null = core.null, yes = true, no = false,
            arr = core.array({ core.array({}), { a = core.set({ "x", "y" }) }, "s" }),
            bin = core.binary("\0\1\2"),
            holes = { [1] = "a", [3] = "c" }, mixed = { "first", key = "v", [2.5] = "half", [true] = "t" },
            [1] = "positional", [-4] = "negative key",
        }
        if math.type then v.int_float = { 1, 1.0, 3, 3.5 } end
        local make = copier(v)
        local a, b = make(), make()
        local ok, why = same(v, a)
        assert(ok, why)
        assert.is_true((same(v, b)))
        assert.are_not.equal(a, b)
        assert.are_not.equal(a.arr[2], b.arr[2])
        a.arr[2].a[1] = "changed"
        a.ints[1] = 99
        assert.equal("x", make().arr[2].a[1])
        assert.equal(0, make().ints[1])
    end)

    it("falls back to a deep copy for what it cannot write", function()
        local f = function() end
        local deep = {}
        local cur = deep
        for _ = 1, 60 do cur.next = {}; cur = cur.next end
        for _, v in ipairs({ { fn = f }, { [{}] = 1 }, deep }) do
            local make = copier(v)
            local a = make()
            assert.is_true((same(v, a)))
            assert.are_not.equal(v, a)
            assert.are_not.equal(make(), a)
        end
        assert.equal(f, copier({ fn = f })().fn)
    end)

    it("keeps plain values as they are and nil as nil", function()
        assert.is_nil(copier(nil)())
        assert.equal("s", copier("s")())
        assert.equal(false, copier(false)())
        assert.equal(core.null, copier(core.null)())
    end)
end)

describe("core.copy", function()
    it("copies deeply, keeps metatables, passes other values through, refuses cycles", function()
        local t = { a = { b = { c = core.array({ 1, 2 }) } }, s = core.set({ "x" }), n = core.null, [1] = "one" }
        local c = core.copy(t)
        assert.same(t, c)
        assert.are_not.equal(t.a.b, c.a.b)
        assert.is_true(core.is_array(c.a.b.c))
        assert.is_true(core.is_set(c.s))
        assert.equal(core.null, c.n)
        assert.equal("x", core.copy("x"))
        assert.equal(5, core.copy(5))
        local cyc = {}
        cyc.self = cyc
        assert.has_error(function() core.copy(cyc) end)
    end)
end)
