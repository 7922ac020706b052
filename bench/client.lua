-- Client benchmark: client:call("GetItem") and client:call("Query") (25 user-shaped items) against
-- a stub DynamoDB (nginx answering canned replies, see bench/stub-nginx.conf), each next to the
-- bare loop measured in the same run: the same C transport handle (core.http_new) POSTing the same
-- bytes (pre-built signed headers, pre-encoded body) to the same stub, no signing, no decoding.
-- Then memory over BENCH_CALLS GetItem calls (default 1,000,000): RSS and the Lua heap.
--
-- Run it through scripts/bench-client, which starts and stops the stub. By hand:
--   lua5.4 bench/client.lua gen DIR URL   writes DIR/html/{getitem,query}.json (the canned replies),
--                                         DIR/req/{getitem,query}.{headers,body} (for the C loop),
--                                         prints "GETITEM_CRC=n QUERY_CRC=n" (x-amz-crc32 values)
--   BENCH_ENDPOINT=URL lua5.4 bench/client.lua
--   BENCH_ENDPOINT=URL luajit bench/client.lua   (loads build/jit; BENCH_CPATH overrides)
-- Environment: BENCH_N calls per measurement (20000), BENCH_ROUNDS (3, best of), BENCH_CALLS
-- (1000000; 0 skips the memory run), BENCH_BARE_C (path of the built bench/bare-curl.c: adds the
-- pure-C loop as a second baseline), BENCH_REQ (DIR/req from gen, for the C loop), BENCH_LIB (a
-- folder searched before lua/, to compare a modified client.lua against the checked-in one),
-- BENCH_FLOOR_CPATH (where bench/floor.c's build is: adds the materialisation floor to Query).
local script = arg and arg[0] or "bench/client.lua"
local dir = script:match("^(.*)/[^/]*$") or "."
local flavour = rawget(_G, "jit") and "jit" or "5.4"
local lib = os.getenv("BENCH_LIB") -- another lua/ folder first, e.g. a client.lua being tried out
if lib == "" then lib = nil end
package.path = (lib and (lib .. "/?.lua;" .. lib .. "/?/init.lua;") or "") .. dir .. "/../lua/?.lua;" .. dir
    .. "/../lua/?/init.lua;" .. dir .. "/?.lua;" .. package.path
package.cpath = (os.getenv("BENCH_CPATH") or (dir .. "/../build/" .. flavour .. "/?.so")) .. ";"
    .. package.cpath
local core = require "authhero.aws.core"

local aws_client = require "authhero.aws.client"

-- bench/floor.c, built by scripts/bench-client (optional)
local floor_cpath = os.getenv("BENCH_FLOOR_CPATH")
local floor
if floor_cpath and floor_cpath ~= "" then
    local path = package.searchpath("floor", floor_cpath)
    local open = path and package.loadlib(path, "luaopen_floor")
    floor = open and open()
end

local ITEMS = 25
local TABLE = "authhero"
local TENANT = "TENANT#tenant-0001"

local user = require "user_item" -- the AuthHero user of bench/codec.lua

-- The requests the client sends, and the replies the stub gives back.
local function getitem_params()
    return { TableName = TABLE, Key = { PK = TENANT, SK = "USER#" .. user(1).user_id }, ConsistentRead = true }
end

local function query_params()
    return {
        TableName = TABLE,
        KeyConditionExpression = "PK = :pk AND begins_with(SK, :sk)",
        ExpressionAttributeValues = { [":pk"] = TENANT, [":sk"] = "USER#" },
        Limit = ITEMS,
    }
end

local function replies()
    local items = {}
    for i = 1, ITEMS do items[i] = user(i) end
    local getitem = core.encode_request({ Item = items[1] })
    local query = core.encode_request({ Items = items, Count = ITEMS, ScannedCount = ITEMS,
        LastEvaluatedKey = { PK = items[ITEMS].PK, SK = items[ITEMS].SK } })
    return getitem, query, items
end

local function new_client(endpoint)
    return aws_client.new({
        region = "us-east-1",
        endpoint = endpoint,
        credentials = { accessKeyId = "AKIDFAKE", secretAccessKey = "fake" },
    })
end

local function write(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
end

if arg[1] == "gen" then
    local out, endpoint = assert(arg[2], "gen DIR URL"), assert(arg[3], "gen DIR URL")
    local getitem, query = replies()
    os.execute("mkdir -p '" .. out .. "/html' '" .. out .. "/req'")
    write(out .. "/html/getitem.json", getitem)
    write(out .. "/html/query.json", query)
    -- The C loop sends what the client sends: these signed headers and bodies.
    local client = new_client(endpoint)
    for name, params in pairs({ GetItem = getitem_params(), Query = query_params() }) do
        local body = core.encode_request(params)
        local lines = {}
        for _, h in ipairs(client:_signed_headers(name, body)) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
        write(out .. "/req/" .. name:lower() .. ".headers", table.concat(lines, "\n") .. "\n")
        write(out .. "/req/" .. name:lower() .. ".body", body)
    end
    print(string.format("GETITEM_CRC=%d QUERY_CRC=%d", core.crc32(getitem), core.crc32(query)))
    os.exit(0)
end

---------------------------------------------------------------------------------------------------

local ENDPOINT = assert(os.getenv("BENCH_ENDPOINT"), "set BENCH_ENDPOINT (see scripts/bench-client)")
local N = tonumber(os.getenv("BENCH_N")) or 20000
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS")) or 3
local CALLS = tonumber(os.getenv("BENCH_CALLS")) or 1000000
local BARE_C = os.getenv("BENCH_BARE_C")
local REQ_DIR = os.getenv("BENCH_REQ")
if BARE_C == "" then BARE_C = nil end

local now = core.now
local clock = os.clock

local function rss_kb()
    local f = io.open("/proc/self/status", "r")
    if not f then return 0 end
    local s = f:read("a")
    f:close()
    return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local getitem_reply, query_reply, items = replies()
local client = new_client(ENDPOINT)
local handle = core.http_new()

-- The bare loop's fixed request: the headers the client would sign for this op, built once.
local function bare_request(op, params)
    local body = core.encode_request(params)
    return client:_signed_headers(op, body), body
end

local cases = {
    {
        name = "GetItem", params = getitem_params(), reply = getitem_reply,
        check = function(r) assert(r.Item and r.Item.user_id == items[1].user_id and r.Item.linked_to == core.null) end,
    },
    {
        name = "Query", params = query_params(), reply = query_reply,
        check = function(r)
            assert(r.Count == ITEMS and #r.Items == ITEMS, "Query: wrong item count")
            assert(r.Items[ITEMS].user_id == items[ITEMS].user_id and r.Items[7].login_count == 1007)
        end,
    },
}

-- Runs f n times; returns wall and CPU seconds per call.
local function measure(f, n)
    collectgarbage("collect")
    local c0, w0 = clock(), now()
    f(n)
    local w1, c1 = now(), clock()
    return (w1 - w0) / n, (c1 - c0) / n
end

-- The C loop, as a child process: wall and CPU seconds per call, reply bytes. mode "read" sends the
-- body through a read callback as csrc/http.c does (two send() calls), nil through POSTFIELDS (one).
local function measure_c(op, mode)
    local cmd = string.format("'%s' '%s' '%s/%s.headers' '%s/%s.body' %d %s", BARE_C, ENDPOINT, REQ_DIR,
        op:lower(), REQ_DIR, op:lower(), N, mode or "")
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    p:close()
    local w, c, len = out:match("^(%S+) (%S+) (%d+)")
    assert(w, "bare C loop failed: " .. cmd)
    return tonumber(w) / 1e6, tonumber(c) / 1e6, tonumber(len)
end

local us = 1e6
local function info()
    return string.format("%s%s, %d calls per measurement, best of %d", _VERSION,
        rawget(_G, "jit") and (" / " .. jit.version) or "", N, ROUNDS)
end
local function loadavg()
    local f = io.open("/proc/loadavg", "r")
    local s = f and f:read("l")
    if f then f:close() end
    return s and s:match("^(%S+ %S+ %S+)") or "?"
end
print("client bench: " .. info() .. ", stub " .. ENDPOINT .. ", load average " .. loadavg())
print(string.format("replies: GetItem %d bytes, Query %d bytes (%d items, ~%d bytes each)", #getitem_reply,
    #query_reply, ITEMS, #core.marshal_item(items[1])))

local targets = { GetItem = { wall = 1.3, cpu = 1.6 }, Query = { wall = 1.5 } }
for _, case in ipairs(cases) do
    local op, params, reply = case.name, case.params, case.reply
    local headers, body = bare_request(op, params)
    local url = client.endpoint
    local function bare(n)
        for _ = 1, n do
            local status, b = handle:request("POST", url, headers, body)
            if status ~= 200 then error(op .. ": bare loop got HTTP " .. status .. ": " .. b) end
        end
    end
    local function call(n)
        for _ = 1, n do client:call(op, params) end
    end
    -- sanity: both see the canned reply (its key order is the generating process's, so compare
    -- lengths and the decoded reply)
    local status, b, reply_headers = handle:request("POST", url, headers, body)
    case.crc = reply_headers["x-amz-crc32"] ~= nil
    assert(status == 200 and #b == #reply, op .. ": bare loop did not get the canned reply (status " .. status .. ")")
    case.check(core.decode_reply(b))
    case.check(client:call(op, params))
    bare(math.max(1, math.floor(N / 10))) -- warm up both (connections, JIT, buffers)
    call(math.max(1, math.floor(N / 10)))

    local inf = math.huge
    local bw, bc, cw, cc, xw, xc, rw, rc = inf, inf, inf, inf, inf, inf, inf, inf
    for round = 1, ROUNDS do
        local w, c
        if round % 2 == 1 then
            w, c = measure(bare, N); bw, bc = math.min(bw, w), math.min(bc, c)
            w, c = measure(call, N); cw, cc = math.min(cw, w), math.min(cc, c)
        else
            w, c = measure(call, N); cw, cc = math.min(cw, w), math.min(cc, c)
            w, c = measure(bare, N); bw, bc = math.min(bw, w), math.min(bc, c)
        end
        if BARE_C and REQ_DIR then
            local len
            w, c, len = measure_c(op)
            assert(len == #reply, op .. ": the C loop got " .. len .. " reply bytes")
            xw, xc = math.min(xw, w), math.min(xc, c)
            w, c = measure_c(op, "read")
            rw, rc = math.min(rw, w), math.min(rc, c)
        end
    end
    local t = targets[op]
    local line = string.format("%s: bare %.1f us/call, client %.1f us/call, wall ratio %.2f (target <= %.1f)",
        op, bw * us, cw * us, cw / bw, t.wall)
    line = line .. string.format(", cpu ratio %.2f", cc / bc) .. (t.cpu and string.format(" (target <= %.1f)", t.cpu) or "")
    print(line)
    print(string.format("  %s cpu: bare %.1f us/call, client %.1f us/call; requests/s: bare %.0f, client %.0f",
        op, bc * us, cc * us, 1 / bw, 1 / cw))
    -- where the client's extra time goes: the reply decode alone, timed here on the same bytes
    local decode_n, dc = math.max(1000, math.floor(N / 10)), inf
    for _ = 1, 3 do
        local _, c = measure(function(n) for _ = 1, n do core.decode_reply(b) end end, decode_n)
        dc = math.min(dc, c)
    end
    print(string.format("  %s client extra per call: wall %+.1f us, cpu %+.1f us, of which core.decode_reply %.1f us",
        op, (cw - bw) * us, (cc - bc) * us, dc * us))
    -- the floor of any decoder returning plain tables (bench/floor.c): the same items built with no
    -- JSON at all; with it, the best wall ratio an eager decoder could reach next to this client
    local reply_items = op == "Query" and floor and core.decode_reply(b).Items
    if reply_items then
        local f = floor.new(reply_items)
        local fc, tc = inf, inf
        for _ = 1, 3 do
            fc = math.min(fc, select(2, measure(function(n) for _ = 1, n do f:build() end end, decode_n)))
            tc = math.min(tc, select(2, measure(function(n) for _ = 1, n do f:build(true) end end, decode_n)))
        end
        local other = (cw - bw) - dc -- the client's work besides decoding (signing, encoding, Lua)
        print(string.format("  %s floor: the %d items as plain tables with no JSON %.1f us (tables alone %.1f us);"
            .. " decode over the floor %.1f us; best wall ratio for any eager decoder here: %.2f", op, #reply_items,
            fc * us, tc * us, (dc - fc) * us, (bw + other + fc) / bw))
    end
    if xw < inf then
        print(string.format("  %s pure C libcurl loop: %.1f us/call wall, %.1f us/call cpu, %.0f requests/s;"
            .. " Lua bare loop / C: wall %.2f, cpu %.2f", op, xw * us, xc * us, 1 / xw, bw / xw, bc / xc))
        print(string.format("  %s pure C, body by read callback as csrc/http.c: %.1f us/call wall, %.1f us/call cpu;"
            .. " Lua bare loop / C: wall %.2f, cpu %.2f%s", op, rw * us, rc * us, bw / rw, bc / rc,
            case.crc and " (only the Lua loop checks x-amz-crc32)" or ""))
    end
end

local tinfo = client._transport:info()
print(string.format("connections: client %d for %d requests, bare handle %d for %d requests; the stub's replies %s"
    .. " x-amz-crc32",
    tinfo.connects, tinfo.requests, handle:info().connects, handle:info().requests,
    cases[1].crc and "carry" or "without"))

-- Memory: GetItem over CALLS calls after a 10k warm-up; RSS and the Lua heap every tenth.
if CALLS > 0 then
    local params = cases[1].params
    for _ = 1, 10000 do client:call("GetItem", params) end
    local rss0, heap0 = rss_kb(), collectgarbage("count")
    print(string.format("memory: %d GetItem calls after a 10k warm-up: RSS %d KB, Lua heap %.0f KB", CALLS, rss0,
        heap0))
    local step = math.max(1, math.floor(CALLS / 10))
    local done, w0, c0 = 0, now(), clock()
    local rss_max = rss0
    while done < CALLS do
        local n = math.min(step, CALLS - done)
        for _ = 1, n do client:call("GetItem", params) end
        done = done + n
        local rss = rss_kb()
        if rss > rss_max then rss_max = rss end
        print(string.format("  after %7d calls: RSS %d KB, Lua heap %.0f KB", done, rss, collectgarbage("count")))
    end
    local w, c = now() - w0, clock() - c0
    local rss1, heap1 = rss_kb(), collectgarbage("count")
    collectgarbage("collect")
    local heap_gc = collectgarbage("count")
    tinfo = client._transport:info()
    print(string.format("memory: RSS before %d KB, after %d KB (delta %+d KB, peak %d KB); Lua heap before %.0f KB,"
        .. " after %.0f KB, after a full GC %.0f KB", rss0, rss1, rss1 - rss0, rss_max, heap0, heap1, heap_gc))
    print(string.format("memory run: %d calls in %.1f s wall, %.1f s cpu (%.1f us/call, %.0f requests/s), %d connections",
        CALLS, w, c, w / CALLS * us, CALLS / w, tinfo.connects))
end
client:close()
handle:close()
