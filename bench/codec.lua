-- Codec benchmark: the C one-pass codec against lua-cjson + a straightforward pure-Lua
-- (un)marshal, on a 25-item Query reply of AuthHero-user-shaped items, measured in the same run.
-- Prints per-item times and the ratios the C core issue asks for (decode <= 0.15, encode <= 0.2).
-- Run from the repo root: lua5.4 bench/codec.lua   (or luajit, with BENCH_CPATH=build/jit/?.so)
package.path = "lua/?.lua;lua/?/init.lua;bench/?.lua;" .. package.path
package.cpath = (os.getenv("BENCH_CPATH") or "build/5.4/?.so") .. ";" .. package.cpath
local core = require "authhero.aws.core"
local cjson = require "cjson"

local ITEMS = 25

local user = require "user_item"

-- The baseline: what a Lua program does without this library.
local lua_marshal, lua_unmarshal
function lua_marshal(v)
    local t = type(v)
    if t == "string" then return { S = v } end
    if t == "number" then return { N = tostring(v) } end
    if t == "boolean" then return { BOOL = v } end
    if v == cjson.null then return { NULL = true } end
    if t == "table" then
        if #v > 0 then
            local l = {}
            for i = 1, #v do l[i] = lua_marshal(v[i]) end
            return { L = l }
        end
        local m = {}
        for k, x in pairs(v) do m[k] = lua_marshal(x) end
        return { M = m }
    end
    error("cannot marshal " .. t)
end

function lua_unmarshal(av)
    local tag, v = next(av)
    if tag == "S" then return v end
    if tag == "N" then return tonumber(v) end
    if tag == "BOOL" then return v end
    if tag == "NULL" then return cjson.null end
    if tag == "M" then
        local m = {}
        for k, x in pairs(v) do m[k] = lua_unmarshal(x) end
        return m
    end
    if tag == "L" then
        local l = {}
        for i = 1, #v do l[i] = lua_unmarshal(v[i]) end
        return l
    end
    if tag == "SS" then return v end
    if tag == "NS" then
        local l = {}
        for i = 1, #v do l[i] = tonumber(v[i]) end
        return l
    end
    error("unknown type " .. tostring(tag))
end

local function lua_marshal_item(item)
    local m = {}
    for k, v in pairs(item) do m[k] = lua_marshal(v) end
    return m
end

local function lua_unmarshal_item(m)
    local item = {}
    for k, v in pairs(m) do item[k] = lua_unmarshal(v) end
    return item
end

local items = {}
for i = 1, ITEMS do items[i] = user(i) end

-- The reply text both decoders read: exactly what DynamoDB sends for a Query.
local reply = core.encode_request({ Items = items, Count = ITEMS, ScannedCount = ITEMS,
    LastEvaluatedKey = { PK = items[ITEMS].PK, SK = items[ITEMS].SK } })
local per_item_bytes = #core.marshal_item(items[1])
assert(cjson.decode(reply).Count == ITEMS)

-- Time f over enough rounds; best of 5 batches, in seconds per call.
local function timeit(f, target)
    target = target or 0.25
    local n = 1
    while true do
        local t0 = os.clock()
        for _ = 1, n do f() end
        local dt = os.clock() - t0
        if dt > 0.05 then break end
        n = n * 2
    end
    local best = math.huge
    local rounds = math.max(3, math.floor(target / 0.05))
    for _ = 1, rounds do
        local t0 = os.clock()
        for _ = 1, n do f() end
        local dt = (os.clock() - t0) / n
        if dt < best then best = dt end
    end
    return best
end

-- sanity: both decoders see the same data
local mine = core.decode_reply(reply)
local theirs = cjson.decode(reply)
for i = 1, ITEMS do
    local a, b = mine.Items[i], lua_unmarshal_item(theirs.Items[i])
    for k, v in pairs(a) do
        assert(v == b[k], "attribute " .. k .. " differs")
    end
end

local base_dec = timeit(function()
    local r = cjson.decode(reply)
    local out = {} -- luacheck: ignore 241 (kept like a caller would)
    for i, it in ipairs(r.Items) do out[i] = lua_unmarshal_item(it) end
end)
local c_dec = timeit(function() core.decode_reply(reply) end)

local function batch(list)
    local reqs = {}
    for i, it in ipairs(list) do reqs[i] = { PutRequest = { Item = it } } end
    return { RequestItems = { authhero = reqs } }
end
local params = batch(items)
local base_enc = timeit(function()
    local reqs = {}
    for i, it in ipairs(items) do reqs[i] = { PutRequest = { Item = lua_marshal_item(it) } } end
    cjson.encode({ RequestItems = { authhero = reqs } })
end)
local c_enc = timeit(function() core.encode_request(params) end)
local c_item = timeit(function() core.marshal_item(items[1]) end)
local one = core.marshal_item(items[1])
local c_unitem = timeit(function() core.unmarshal_item(one) end)

local us = 1e6
print(string.format("codec: %s, %d items of %d attributes, %d bytes each as DynamoDB JSON",
    _VERSION .. (jit and (" / " .. jit.version) or ""), ITEMS, (function()
        local n = 0
        for _ in pairs(items[1]) do n = n + 1 end
        return n
    end)(), per_item_bytes))
print(string.format("decode+unmarshal per item: baseline (cjson + Lua) %.3f us, C %.3f us, ratio %.3f (target <= 0.15)",
    base_dec / ITEMS * us, c_dec / ITEMS * us, c_dec / base_dec))
print(string.format("marshal+encode per item:   baseline (Lua + cjson) %.3f us, C %.3f us, ratio %.3f (target <= 0.20)",
    base_enc / ITEMS * us, c_enc / ITEMS * us, c_enc / base_enc))
print(string.format("single item: marshal_item %.3f us, unmarshal_item %.3f us", c_item * us, c_unitem * us))
