-- Property tests of the cosocket transport's reply parsers (status line, header block, chunked,
-- fixed-length and read-to-close bodies) on random and adversarial bytes, over a fake socket with
-- ngx_lua's receive rules: request() either returns a well-formed reply or raises a TransportError
-- (never another error), the parser never reads past the lengths a reply declares, and every valid
-- encoding of a random reply parses back to it. Seeded: AUTHHERO_FUZZ_SEED=N repeats a run, and a
-- failure names its seed and case.
local cosocket = require "authhero.aws.transport.cosocket"
local errors = require "authhero.aws.errors"

local SEED = tonumber(os.getenv("AUTHHERO_FUZZ_SEED") or "") or 20261204
local CASES = tonumber(os.getenv("AUTHHERO_FUZZ_CASES") or "") or 1500

local REASONS = { timeout = true, connect = true, reset = true, stale = true, dns = true, tls = true,
    crc32 = true, other = true }

-- A fake ngx.socket.tcp: the server sends `bytes`, then the connection ends with `eof`. As in
-- ngx_lua: receive("*l") returns a line without its LF and drops every CR in it; receive(n) returns
-- exactly n bytes; receive("*a") everything up to the close; receiveuntil(p)() the bytes before p.
-- On a short read they return nil, the error and the partial data.
local function fake(bytes, eof)
    eof = eof or "closed"
    local buf, pos = bytes, 1
    local s = { reads = 0 }
    local function take(n)
        local d = buf:sub(pos, pos + n - 1)
        pos = pos + #d
        return d
    end
    function s.left() return buf:sub(pos) end
    function s.settimeouts() end
    function s.settimeout() end
    function s.connect() return 1 end
    function s.getreusedtimes() return s.reused or 0 end
    function s.sslhandshake() return true end
    function s.send(_, data)
        local n = 0
        for _, v in ipairs(data) do n = n + #v end
        return n
    end
    function s.receive(_, pat)
        s.reads = s.reads + 1
        if pat == nil or pat == "*l" then
            local i = buf:find("\n", pos, true)
            if not i then return nil, eof, take(#buf) end
            local line = take(i - pos + 1)
            return (line:sub(1, -2):gsub("\r", ""))
        elseif pat == "*a" then
            if eof == "timeout" then return nil, "timeout", take(#buf) end
            return take(#buf)
        end
        assert(type(pat) == "number" and pat >= 0 and pat == math.floor(pat), "receive(" .. tostring(pat) .. ")")
        if #buf - pos + 1 < pat then return nil, eof, take(#buf) end
        return take(pat)
    end
    function s.receiveuntil(_, p)
        return function()
            local i = buf:find(p, pos, true)
            if not i then return nil, eof, take(#buf) end
            local d = take(i - pos)
            take(#p)
            return d
        end
    end
    function s.setkeepalive() s.kept = true return 1 end
    function s.close() s.closed = true return 1 end
    return s
end

local rnd = math.random

local function bytes(n, alphabet)
    local t = {}
    for i = 1, n do
        if alphabet then
            local k = rnd(#alphabet)
            t[i] = alphabet:sub(k, k)
        else
            t[i] = string.char(rnd(0, 255))
        end
    end
    return table.concat(t)
end

local TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~"
local VALUE = TOKEN .. " \t\"(),/:;<=>?@[]{}\\"

-- A random reply: status (one that has a body), headers (unique lowercase names, none the transport
-- interprets), body.
local function random_reply()
    local headers, names = {}, {}
    for _ = 1, rnd(0, 6) do
        local name = bytes(rnd(1, 12), TOKEN):lower()
        if not headers[name] and name ~= "content-length" and name ~= "transfer-encoding"
            and name ~= "connection" and name ~= "x-amz-crc32" then
            local v = bytes(rnd(0, 20), VALUE):gsub("^[ \t]+", ""):gsub("[ \t]+$", "")
            headers[name] = v
            names[#names + 1] = name
        end
    end
    local body = rnd(4) == 1 and "" or bytes(rnd(0, 300), rnd(2) == 1 and "0\r\n;ab\t " or nil)
    local status = rnd(200, 599)
    if status == 204 or status == 304 then status = 200 end -- those have no body (a case of its own)
    return { status = status, headers = headers, names = names, body = body }
end

-- The name in random letter case: names are case-insensitive.
local function recase(name)
    return (name:gsub("%a", function(c) return rnd(2) == 1 and c:upper() or c end))
end

local function head_of(r, framing)
    local out = { "HTTP/1.1 " .. r.status .. " Reason " .. bytes(rnd(0, 5), TOKEN) .. "\r\n" }
    for _, n in ipairs(r.names) do
        out[#out + 1] = recase(n) .. ":" .. string.rep(" ", rnd(0, 2)) .. r.headers[n] .. string.rep(" ", rnd(0, 2))
            .. "\r\n"
    end
    for _, l in ipairs(framing) do out[#out + 1] = l .. "\r\n" end
    out[#out + 1] = "\r\n"
    return table.concat(out)
end

-- The body as chunks of random sizes (hex in either case, zero padding, extensions), then
-- optional trailer fields.
local function chunked(body)
    local out, i = {}, 1
    while i <= #body do
        local n = math.min(#body - i + 1, rnd(1, 64))
        local size = string.format(rnd(2) == 1 and "%x" or "%X", n)
        if rnd(4) == 1 then size = "0" .. size end
        local ext = rnd(4) == 1 and (";name=" .. bytes(rnd(0, 5), TOKEN)) or ""
        out[#out + 1] = size .. ext .. "\r\n" .. body:sub(i, i + n - 1) .. "\r\n"
        i = i + n
    end
    out[#out + 1] = "0\r\n"
    if rnd(3) == 1 then out[#out + 1] = "Trailer-Field: " .. bytes(rnd(0, 8), TOKEN) .. "\r\n" end
    out[#out + 1] = "\r\n"
    return table.concat(out)
end

local function parse(bytes_, method, eof)
    local sock = fake(bytes_, eof)
    local status, body, headers, keep = cosocket._read_response(sock, method or "POST")
    return status, body, headers, keep, sock
end

local function same_headers(want, got, extra)
    for k, v in pairs(want) do assert.equals(v, got[k], "header " .. k) end
    for k in pairs(got) do
        assert.truthy(want[k] ~= nil or extra[k], "unexpected header " .. k)
        assert.equals(k:lower(), k)
    end
end

-- request() over the fake socket with `reply` as the server's bytes -> ok, result or error
local function request(reply, eof, reused)
    local t = cosocket.new({ _socket = function()
        local s = fake(reply, eof)
        s.reused = reused
        return s
    end, _now = function() return 1000 end })
    return pcall(t.request, t, { method = "POST", url = "http://127.0.0.1:9/", body = "{}" })
end

local function check_outcome(ok, res, what)
    if ok then
        assert.equals("table", type(res), what)
        assert.equals("number", type(res.status), what)
        assert.is_true(res.status >= 100 and res.status <= 999 and res.status == math.floor(res.status), what)
        assert.equals("string", type(res.body), what)
        for k, v in pairs(res.headers) do
            assert.equals("string", type(k), what)
            assert.equals("string", type(v), what)
            assert.equals(k:lower(), k, what)
        end
    else
        assert.is_true(errors.is(res, "TransportError"), what .. ": not a TransportError: " .. tostring(res))
        assert.equals(0, res.status, what)
        assert.is_true(REASONS[res.reason] == true, what .. ": reason " .. tostring(res.reason))
        assert.equals("boolean", type(res.retryable), what)
    end
end

describe("cosocket reply parsers under random input (seed " .. SEED .. ")", function()
    before_each(function() math.randomseed(SEED) end)

    it("round-trips random replies framed by Content-Length, leaving the next bytes unread", function()
        for case = 1, CASES do
            local r = random_reply()
            local after = bytes(rnd(0, 20))
            local wire = head_of(r, { "Content-Length: " .. #r.body }) .. r.body .. after
            local what = "case " .. case .. " (seed " .. SEED .. ")"
            local status, body, headers, keep, sock = parse(wire)
            assert.equals(r.status, status, what)
            assert.equals(r.body, body, what)
            same_headers(r.headers, headers, { ["content-length"] = true })
            assert.is_true(keep, what)
            assert.equals(after, sock.left(), what) -- not one byte past the declared length
        end
    end)

    it("round-trips random replies framed as chunked, leaving the next bytes unread", function()
        for case = 1, CASES do
            local r = random_reply()
            local after = bytes(rnd(0, 20))
            local te = ({ "chunked", "Chunked", "gzip, chunked", "chunked " })[rnd(4)]
            local wire = head_of(r, { "Transfer-Encoding: " .. te }) .. chunked(r.body) .. after
            local what = "case " .. case .. " (seed " .. SEED .. ")"
            local status, body, headers, keep, sock = parse(wire)
            assert.equals(r.status, status, what)
            assert.equals(r.body, body, what)
            same_headers(r.headers, headers, { ["transfer-encoding"] = true })
            assert.is_true(keep, what)
            assert.equals(after, sock.left(), what)
        end
    end)

    it("reads no body where there is none (HEAD, 204, 304) and skips interim 1xx replies", function()
        for case = 1, 200 do
            local r = random_reply()
            local after = bytes(rnd(0, 20))
            local what = "case " .. case
            local status, body, _, _, sock = parse(head_of(r, { "Content-Length: 50" }) .. after, "HEAD")
            assert.equals(r.status, status, what)
            assert.equals("", body, what)
            assert.equals(after, sock.left(), what)
            for _, st in ipairs({ 204, 304 }) do
                r.status = st
                status, body, _, _, sock = parse(head_of(r, {}) .. after)
                assert.equals(st, status, what)
                assert.equals("", body, what)
                assert.equals(after, sock.left(), what)
            end
            r.status = 200
            local interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX-A: 1\r\n\r\n"
            status, body = parse(interim .. head_of(r, { "Content-Length: " .. #r.body }) .. r.body)
            assert.equals(200, status, what)
            assert.equals(r.body, body, what)
        end
    end)

    it("cut anywhere, a valid reply is a retryable TransportError, never another error", function()
        for case = 1, CASES do
            local r = random_reply()
            local framing = rnd(2) == 1 and { "Content-Length: " .. #r.body } or { "Transfer-Encoding: chunked" }
            local wire = head_of(r, framing) .. (framing[1]:find("chunked") and chunked(r.body) or r.body)
            local cut = rnd(0, #wire - 1)
            local eof = ({ "closed", "timeout", "connection reset by peer" })[rnd(3)]
            local ok, res = request(wire:sub(1, cut), eof, rnd(2) - 1)
            local what = "case " .. case .. " cut at " .. cut .. "/" .. #wire .. " (seed " .. SEED .. ")"
            assert.is_false(ok, what)
            check_outcome(ok, res, what)
            assert.is_true(res.retryable, what .. ": " .. tostring(res))
            assert.truthy(res.reason == "reset" or res.reason == "stale" or res.reason == "timeout", what)
        end
    end)

    it("random bytes, and valid replies with random bytes changed, never raise anything but a TransportError",
        function()
            local specials = { "\r\n", "\r\n\r\n", ":", " ", "HTTP/1.1 ", "Content-Length: ", "Transfer-Encoding: ",
                "chunked", "0", "-1", "ffffffffffff", "Connection: close", "\n", ";", "1xx" }
            for case = 1, CASES * 2 do
                local wire
                if rnd(3) == 1 then
                    wire = bytes(rnd(0, 200))
                else
                    local r = random_reply()
                    local framing = rnd(2) == 1 and { "Content-Length: " .. #r.body }
                        or { "Transfer-Encoding: chunked" }
                    wire = head_of(r, framing) .. (framing[1]:find("chunked") and chunked(r.body) or r.body)
                    for _ = 1, rnd(1, 4) do
                        local at = rnd(1, #wire)
                        local what = rnd(3)
                        if what == 1 then
                            wire = wire:sub(1, at - 1) .. string.char(rnd(0, 255)) .. wire:sub(at + 1)
                        elseif what == 2 then
                            wire = wire:sub(1, at - 1) .. specials[rnd(#specials)] .. wire:sub(at)
                        else
                            wire = wire:sub(1, at - 1) .. wire:sub(at + rnd(1, 10))
                        end
                    end
                end
                local ok, res = request(wire, ({ "closed", "timeout" })[rnd(2)], rnd(2) - 1)
                check_outcome(ok, res, "case " .. case .. " (seed " .. SEED .. "): " .. string.format("%q", wire))
            end
        end)

    it("a chunk-size line is hex digits, then only an extension or blanks", function()
        local head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        for _, line in ipairs({ "0x5", "5g", "5 5", "+5", "-5", "", " ", "5,", "fffffffffffff" }) do
            local ok, res = request(head .. line .. "\r\nhello\r\n0\r\n\r\n")
            assert.is_false(ok, line)
            assert.is_true(errors.is(res, "TransportError"), line)
            assert.equals("other", res.reason, line)
            assert.truthy(res.message:find("malformed reply: bad chunk size line", 1, true), res.message)
        end
        for _, line in ipairs({ "5", "05", " 5 ", "5;x=y", "5 ; x", "5\t" }) do
            local ok, res = request(head .. line .. "\r\nhello\r\n0\r\n\r\n")
            assert.is_true(ok, line .. ": " .. tostring(res))
            assert.equals("hello", res.body, line)
        end
    end)

    it("logs each fault it raises at info level only, without query or credentials", function()
        local logged = {}
        local saved = rawget(_G, "ngx")
        _G.ngx = { INFO = 7, ERR = 4, WARN = 5, log = function(level, ...)
            logged[#logged + 1] = { level = level, text = table.concat({ ... }) }
        end }
        local ok, res = pcall(function()
            local t = cosocket.new({ _socket = function() return fake("HTTP/1.1 200 OK\r\nContent-Le") end,
                _now = function() return 1000 end })
            return t:request({ url = "http://127.0.0.1:9/path?token=abc", body = "{}",
                headers = { { "Authorization", "AWS4-HMAC-SHA256 Credential=AKIDSECRET" } } })
        end)
        _G.ngx = saved
        assert.is_false(ok)
        assert.equals("reset", res.reason)
        assert.equals(1, #logged)
        assert.equals(7, logged[1].level)
        assert.truthy(logged[1].text:find("(reset, retryable): POST http://127.0.0.1:9/path: ", 1, true), logged[1].text)
        assert.falsy(logged[1].text:find("token", 1, true))
        assert.falsy(logged[1].text:find("AKIDSECRET", 1, true))
    end)

    it("a status below 100, or of more than three digits, is malformed, not an interim reply", function()
        for _, st in ipairs({ "000", "099", "042", "2000", "20", "2x0" }) do
            local ok, res = request("HTTP/1.1 " .. st .. " X\r\nContent-Length: 0\r\n\r\n")
            assert.is_false(ok, st)
            assert.equals("other", res.reason, st)
            assert.truthy(res.message:find("bad status line", 1, true), res.message)
        end
        for _, line in ipairs({ "HTTP/1.1 200", "HTTP/1.1 200 ", "HTTP/1.0 599 Whatever it says" }) do
            local ok, res = request(line .. "\r\nContent-Length: 2\r\n\r\nok")
            assert.is_true(ok, line .. ": " .. tostring(res))
            assert.equals("ok", res.body, line)
        end
    end)
end)
