-- The properties the libFuzzer targets in fuzz/ check, one function per target. Each gets the
-- fuzzer's bytes (the HTTP target also what the C code made of them) and raises only when an
-- invariant breaks; fuzz_lua.h then aborts, and libFuzzer keeps the input as a crash file.
-- References here are written independently of csrc/ (plain Lua, slow and obvious), so a target
-- compares two implementations rather than the C code with itself.
local core = require "authhero.aws.core"

local P = {}

local function fail(fmt, ...)
    error(string.format(fmt, ...), 0)
end

-- A raised error must be the core's MarshalError object, never a string or another code.
local function marshal_error(err, what)
    if type(err) ~= "table" or err.code ~= "MarshalError" or type(err.message) ~= "string"
        or type(err.status) ~= "number" then
        fail("%s raised something other than a MarshalError: %s", what, tostring(err))
    end
end

local function show(v)
    if type(v) == "string" then return string.format("%q", v) end
    return tostring(v)
end

-- Deep equality of decoded values: the same marks (array/set/binary metatables), the same keys,
-- numbers of the same value (JSON and DynamoDB do not tell 1 from 1.0, so neither does this).
local function same(a, b, path)
    path = path or "$"
    if type(a) ~= type(b) then fail("%s: %s vs %s", path, show(a), show(b)) end
    if type(a) == "number" then
        if a ~= b then fail("%s: %s vs %s", path, show(a), show(b)) end
        return
    end
    if type(a) ~= "table" then
        if a ~= b then fail("%s: %s vs %s", path, show(a), show(b)) end
        return
    end
    if getmetatable(a) ~= getmetatable(b) then fail("%s: different marks", path) end
    for k, v in pairs(a) do
        if b[k] == nil then fail("%s.%s: missing on the right", path, tostring(k)) end
        same(v, b[k], path .. "." .. tostring(k))
    end
    for k in pairs(b) do
        if a[k] == nil then fail("%s.%s: missing on the left", path, tostring(k)) end
    end
end

-- decode: replies from DynamoDB ------------------------------------------------------------------

function P.decode(s)
    local ok, v = pcall(core.decode_reply, s)
    if not ok then
        marshal_error(v, "decode_reply")
    elseif type(v) == "table" then -- a request body is an object; a reply may be any JSON
        local eok, err = pcall(core.encode_request, v)
        if not eok then marshal_error(err, "encode_request of a decoded reply") end
    end
    ok, v = pcall(core.unmarshal_item, s)
    if not ok then
        marshal_error(v, "unmarshal_item")
    else
        local eok, text = pcall(core.marshal_item, v)
        if not eok then
            marshal_error(text, "marshal_item of a decoded item")
        else
            local dok, again = pcall(core.unmarshal_item, text)
            if not dok then fail("unmarshal_item refused marshal_item's own output %s: %s", show(text), tostring(again)) end
            same(v, again)
        end
    end
    ok, v = pcall(core.unmarshal_value, s)
    if not ok then marshal_error(v, "unmarshal_value") end
end

-- json: import lines -----------------------------------------------------------------------------

function P.json(s)
    local ok, v = pcall(core.json_decode, s)
    if not ok then
        marshal_error(v, "json_decode")
        return
    end
    local eok, text = pcall(core.json_encode, v)
    if not eok then fail("json_encode refused what json_decode returned for %s: %s", show(s), tostring(text)) end
    local dok, again = pcall(core.json_decode, text)
    if not dok then fail("json_decode refused json_encode's own output %s: %s", show(text), tostring(again)) end
    same(v, again)
end

-- base64 -----------------------------------------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_VALUE = {}
for i = 1, 64 do B64_VALUE[B64:byte(i)] = i - 1 end

-- RFC 4648 with padding: length a multiple of 4, "=" only as the last one or two characters;
-- the unused bits of the last group are ignored (not required to be zero).
local function ref_b64_decode(s)
    if #s % 4 ~= 0 then return nil end
    local out = {}
    for i = 1, #s, 4 do
        local last = i + 4 > #s
        local v, pad = 0, 0
        for j = 0, 3 do
            local c = s:byte(i + j)
            if c == 61 and last and j >= 2 then
                pad = pad + 1
                v = v * 64
            else
                local x = B64_VALUE[c]
                if not x or pad > 0 then return nil end
                v = v * 64 + x
            end
        end
        local bytes = { v // 65536, v // 256 % 256, v % 256 }
        for k = 1, 3 - pad do out[#out + 1] = string.char(bytes[k]) end
    end
    return table.concat(out)
end

function P.base64(s)
    local got, want = core.base64_decode(s), ref_b64_decode(s)
    if got ~= want then fail("base64_decode(%s) = %s, reference %s", show(s), show(got), show(want)) end
    local e = core.base64_encode(s)
    if #e ~= (#s + 2) // 3 * 4 then fail("base64_encode length %d for %d bytes", #e, #s) end
    if ref_b64_decode(e) ~= s or core.base64_decode(e) ~= s then fail("base64 round trip of %s", show(s)) end
    if got then
        local again = core.base64_encode(got)
        if core.base64_decode(again) ~= got then fail("re-encoding %s", show(s)) end
    end
end

-- keys -------------------------------------------------------------------------------------------

local function ref_unescape(s)
    return (s:gsub("%%2([35])", function(c) return c == "5" and "%" or "#" end))
end

local function ref_parts(s)
    local out = {}
    for part in (s .. "#"):gmatch("([^#]*)#") do out[#out + 1] = ref_unescape(part) end
    return out
end

function P.keys(s)
    local u = core.key_unescape(s)
    if u ~= ref_unescape(s) then fail("key_unescape(%s) = %s, reference %s", show(s), show(u), show(ref_unescape(s))) end
    local parts, want = core.key_parts(s), ref_parts(s)
    if #parts ~= #want then fail("key_parts(%s): %d parts, reference %d", show(s), #parts, #want) end
    for i = 1, #want do
        if parts[i] ~= want[i] then fail("key_parts(%s)[%d] = %s, reference %s", show(s), i, show(parts[i]), show(want[i])) end
    end
    local e = core.key_escape(s)
    if e:find("#", 1, true) then fail("key_escape(%s) holds a separator", show(s)) end
    if core.key_unescape(e) ~= s then fail("key_unescape(key_escape(%s))", show(s)) end
    local half = #s // 2
    local a, b = s:sub(1, half), s:sub(half + 1)
    local k = core.key(a, b, s)
    local back = core.key_parts(k)
    if #back ~= 3 or back[1] ~= a or back[2] ~= b or back[3] ~= s then fail("key_parts(key(...)) of %s", show(s)) end
end

-- http: reply header lines and x-amz-crc32 (csrc/http_reply.c) -----------------------------------

local CRC_TABLE = {}
for i = 0, 255 do
    local c = i
    for _ = 1, 8 do
        if c & 1 == 1 then c = 0xEDB88320 ~ (c >> 1) else c = c >> 1 end
    end
    CRC_TABLE[i] = c
end

local function ref_crc32(s)
    local c = 0xFFFFFFFF
    for i = 1, #s do c = CRC_TABLE[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
    return c ~ 0xFFFFFFFF
end

local function ascii_lower(s)
    return (s:gsub("%u", function(c) return string.char(c:byte() + 32) end))
end

-- What the header callback keeps: the last response's "Name: value" lines.
local function ref_headers(head)
    local fields = {}
    local i = 1
    while i <= #head do
        local nl = head:find("\n", i, true)
        local line = head:sub(i, nl or #head)
        i = (nl or #head) + 1
        line = line:gsub("[\r\n]+$", "")
        if line:sub(1, 5) == "HTTP/" then
            fields = {}
        else
            local colon = line:find(":", 1, true)
            local first = line:sub(1, 1)
            if colon and colon > 1 and first ~= " " and first ~= "\t" then
                local value = line:sub(colon + 1):gsub("^[ \t]+", ""):gsub("[ \t]+$", "")
                fields[ascii_lower(line:sub(1, colon - 1))] = value
            end
        end
    end
    return fields
end

function P.http(head, body, headers, crc_ok, text)
    same(ref_headers(head), headers)
    local crc = ref_crc32(body)
    local want = headers["x-amz-crc32"]
    local ok = want == nil or (want:match("^%d+$") ~= nil and #want <= 10 and tonumber(want) == crc)
    if ok ~= crc_ok then fail("x-amz-crc32 %s on a body with CRC %d: C says %s", show(want), crc, tostring(crc_ok)) end
    if not ok then
        local shown = want:sub(1, 20):match("^[^%z]*")
        local msg = string.format("%s, body has %d", shown, crc)
        if text ~= msg then fail("crc message %s, wanted %s", show(text), show(msg)) end
    end
    -- both implementations, whole and continued from a split point
    local before = core.crc32_impl()
    for _, impl in ipairs({ "tables", "clmul" }) do
        core.crc32_impl(impl)
        if core.crc32(body) ~= crc then fail("core.crc32 (%s) of %d bytes", core.crc32_impl(), #body) end
        local cut = #head % (#body + 1)
        if core.crc32(body:sub(cut + 1), core.crc32(body:sub(1, cut))) ~= crc then
            fail("core.crc32 (%s) continued at %d of %d bytes", core.crc32_impl(), cut, #body)
        end
    end
    core.crc32_impl(before)
end

return P
