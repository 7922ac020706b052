-- The cosocket transport outside nginx: URL parsing, the request it writes, the reply parser
-- (fixed-length, chunked, read-to-close, interim 1xx, keep-alive rules) and the whole request()
-- path with its error reasons, all over a fake socket with ngx_lua's receive/receiveuntil rules.
-- The same code runs for real inside nginx in spec/openresty (scripts/openresty-test).
local cosocket = require "authhero.aws.transport.cosocket"
local errors = require "authhero.aws.errors"

-- A fake ngx.socket.tcp object. `script` fields:
--   reply      bytes the server sends (string); after them the peer `eof` ("closed" or "timeout")
--   connect    nil or an error text for connect(); handshake: nil or an error text
--   reused     what getreusedtimes() says (0)
--   send_err   nil or an error text for send()
local function fake_socket(script)
    local buf = script.reply or ""
    local eof = script.eof or "closed"
    local s = { sent = nil, log = {}, script = script }
    local function take(n)
        local d = buf:sub(1, n)
        buf = buf:sub(n + 1)
        return d
    end
    function s.settimeouts(_, c, w, r) s.log[#s.log + 1] = ("timeouts %d %d %d"):format(c, w, r) end
    function s.settimeout(_, ms) s.last_timeout = ms end
    function s.connect(_, host, port, opts)
        s.host, s.port, s.opts = host, port, opts
        if script.connect then return nil, script.connect end
        return 1
    end
    function s.getreusedtimes() return script.reused or 0 end
    function s.sslhandshake(_, sess, name, verify)
        s.handshake = { sess = sess, name = name, verify = verify }
        if script.handshake then return nil, script.handshake end
        return true
    end
    function s.send(_, data)
        local function flat(t, out)
            for _, v in ipairs(t) do
                if type(v) == "table" then flat(v, out) else out[#out + 1] = tostring(v) end
            end
            return out
        end
        s.sent = type(data) == "table" and table.concat(flat(data, {})) or data
        if script.send_err then return nil, script.send_err end
        return #s.sent
    end
    function s.receive(_, pat)
        pat = pat or "*l"
        if pat == "*l" then
            local i = buf:find("\n", 1, true)
            if not i then
                local partial = take(#buf)
                return nil, eof, partial
            end
            return (take(i):sub(1, -2):gsub("\r", ""))
        elseif pat == "*a" then
            if eof == "timeout" then return nil, "timeout", take(#buf) end
            return take(#buf)
        end
        if #buf < pat then return nil, eof, take(#buf) end
        return take(pat)
    end
    function s.receiveuntil(_, pattern)
        return function()
            local i = buf:find(pattern, 1, true)
            if not i then return nil, eof, take(#buf) end
            local d = take(i - 1)
            take(#pattern)
            return d
        end
    end
    function s.setkeepalive(_, idle, size) s.kept = { idle, size } return 1 end
    function s.close() s.closed = true return 1 end
    s.rest = function() return buf end
    return s
end

local function transport(script, opts)
    local socks = {}
    local o = { _socket = function()
        local sk = fake_socket(script)
        socks[#socks + 1] = sk
        return sk
    end, _now = script.now or function() return 1000 end }
    for k, v in pairs(opts or {}) do o[k] = v end
    return cosocket.new(o), socks
end

local function raises_transport(reason, retryable, f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok)
    assert.is_true(errors.is(err, "TransportError"), "not a TransportError: " .. tostring(err))
    assert.equals(0, err.status)
    assert.equals(reason, err.reason, tostring(err))
    assert.equals(retryable, err.retryable, tostring(err))
    return err
end

local function parse(reply, method, eof)
    return cosocket._read_response(fake_socket({ reply = reply, eof = eof }), method or "POST")
end

describe("cosocket transport", function()
    describe("crc32", function()
        it("matches zlib's CRC-32 (the x-amz-crc32 value)", function()
            assert.equals(0, cosocket._crc32(""))
            assert.equals(3421780262, cosocket._crc32("123456789")) -- 0xCBF43926, the check value
            assert.equals(1315925753, cosocket._crc32('{"TableNames":[]}'))
        end)
    end)

    describe("new", function()
        it("rejects unknown options, ca_file and bad timeouts as bugs", function()
            assert.has_error(function() cosocket.new({ timeout = 5 }) end,
                "bad argument #1 to 'new' (unknown option 'timeout')")
            assert.has_error(function() cosocket.new({ ca_file = "/x.pem" }) end)
            assert.has_error(function() cosocket.new({ timeout_ms = 0 }) end)
            assert.has_error(function() cosocket.new({ timeout_ms = 1.5 }) end)
            assert.has_error(function() cosocket.new({ verify = "yes" }) end)
            assert.has_error(function() cosocket.new(5) end)
        end)

        it("does no I/O: builds without ngx", function()
            local t = cosocket.new({ connect_timeout_ms = 100, timeout_ms = 500, verify = false })
            assert.same({ requests = 0, connects = 0, last_ms = 0 }, t:info())
            t:close()
            t:close()
            assert.has_error(function() t:request({ url = "http://x/" }) end, "transport is closed")
        end)
    end)

    describe("URLs", function()
        it("splits scheme, host, port, target and the pool key", function()
            local u = cosocket._parse_url("https://DynamoDB.us-east-1.amazonaws.com")
            assert.same({ true, "dynamodb.us-east-1.amazonaws.com", 443, "/", "dynamodb.us-east-1.amazonaws.com:443:tls" },
                { u.tls, u.host, u.port, u.target, u.pool })
            u = cosocket._parse_url("http://127.0.0.1:8000/a/b?x=1&token=secret")
            assert.same({ false, "127.0.0.1", 8000, "/a/b?x=1&token=secret", "127.0.0.1:8000" },
                { u.tls, u.host, u.port, u.target, u.pool })
            assert.equals("http://127.0.0.1:8000/a/b", u.safe)
            u = cosocket._parse_url("http://[::1]:9000?q")
            assert.same({ "::1", "[::1]", 9000, "/?q" }, { u.host, u.connect_host, u.port, u.target })
        end)

        it("refuses what it cannot speak", function()
            assert.is_nil(cosocket._parse_url("ftp://x/"))
            assert.is_nil(cosocket._parse_url("http://user:pw@host/"))
            assert.is_nil(cosocket._parse_url("http:///"))
            assert.is_nil(cosocket._parse_url("http://host:70000/"))
            local t = transport({})
            local err = raises_transport("other", false, t.request, t, { url = "gopher://x/?secret" })
            assert.is_nil(err.message:find("secret", 1, true))
        end)
    end)

    describe("the request it writes", function()
        local u = cosocket._parse_url("http://localhost:8000/")

        it("is HTTP/1.1 with the caller's headers, Host and Content-Length", function()
            local out = table.concat(cosocket._build_request("POST", u, {
                { "host", "localhost:8000" }, { "x-amz-target", "DynamoDB_20120810.ListTables" },
                { "Content-Length", "999" },
            }, "{}"))
            assert.equals("POST / HTTP/1.1\r\nhost: localhost:8000\r\nx-amz-target: DynamoDB_20120810.ListTables\r\n"
                .. "Content-Length: 2\r\n\r\n{}", out)
        end)

        it("adds Host (without a default port) and sends Content-Length: 0 for an empty POST", function()
            local out = table.concat(cosocket._build_request("POST", cosocket._parse_url("http://h:80/p?a=1"), nil, nil))
            assert.equals("POST /p?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", out)
            out = table.concat(cosocket._build_request("GET", cosocket._parse_url("https://h:8443/"), {}, nil))
            assert.equals("GET / HTTP/1.1\r\nHost: h:8443\r\n\r\n", out)
        end)

        it("rejects bad headers as bugs, without quoting the value", function()
            local function build(h) return function() cosocket._build_request("POST", u, h, "") end end
            assert.has_error(build({ { "bad name", "v" } }))
            assert.has_error(build({ "x" }))
            assert.has_error(build({ { "transfer-encoding", "chunked" } }))
            local ok, msg = pcall(build({ { "authorization", "AWS4 secret\r\nInjected: 1" } }))
            assert.is_false(ok)
            assert.is_nil(tostring(msg):find("secret", 1, true))
            assert.has_error(build({ { "x", "a\0b" } }))
        end)
    end)

    describe("the reply parser", function()
        it("reads a fixed-length body and lowercases header names (last repeat wins)", function()
            local sock = fake_socket({ reply = "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
                .. "X-Amz-Crc32: 1\r\nx-amz-crc32: 2\r\nContent-Length: 5\r\n\r\nhelloEXTRA" })
            local status, body, headers, keep = cosocket._read_response(sock, "POST")
            assert.same({ 200, "hello", true }, { status, body, keep })
            assert.equals("application/x-amz-json-1.0", headers["content-type"])
            assert.equals("2", headers["x-amz-crc32"])
            assert.equals("EXTRA", sock.rest())
        end)

        it("decodes chunked bodies (extensions, trailers, chunk boundaries anywhere)", function()
            local status, body, headers, keep = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                .. "5;ext=1\r\nhello\r\n1\r\n \r\nA\r\nchunked!!!\r\n0\r\nX-Trailer: t\r\n\r\n")
            assert.same({ 200, "hello chunked!!!", true }, { status, body, keep })
            assert.equals("chunked", headers["transfer-encoding"])
            status, body = parse("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
            assert.same({ 200, "" }, { status, body })
        end)

        it("throws protocol failures for malformed framing", function()
            local function proto(reply)
                local ok, f = pcall(parse, reply)
                assert.is_false(ok)
                assert.equals("protocol", f._fail, tostring(f.detail))
            end
            proto("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            proto("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n")
            proto("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")
            proto("HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n")
            proto("SSH-2.0-OpenSSH_9.2\r\n\r\n")
            proto("HTTP/2 200\r\n\r\n")
            proto("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n")
        end)

        it("reads to the close when there is no length, and then keeps nothing alive", function()
            local status, body, _, keep = parse("HTTP/1.1 200 OK\r\n\r\nall of it", "GET")
            assert.same({ 200, "all of it", false }, { status, body, keep })
        end)

        it("honours Connection: close and HTTP/1.0 keep-alive rules", function()
            local _, _, _, keep = parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            assert.is_false(keep)
            _, _, _, keep = parse("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 0\r\n\r\n")
            assert.is_false(keep)
            _, _, _, keep = parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
            assert.is_false(keep)
            _, _, _, keep = parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
            assert.is_true(keep)
        end)

        it("skips interim 1xx replies; HEAD, 204 and 304 have no body", function()
            local status, body = parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            assert.same({ 200, "ok" }, { status, body })
            status, body = parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD")
            assert.same({ 200, "" }, { status, body })
            status, body = parse("HTTP/1.1 204 No Content\r\n\r\n", "DELETE")
            assert.same({ 204, "" }, { status, body })
        end)

        it("joins obsolete folded header lines", function()
            local _, _, headers = parse("HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\nContent-Length: 0\r\n\r\n")
            assert.equals("a b", headers["x-long"])
        end)

        it("tells a close before any reply byte from one mid-reply", function()
            local ok, f = pcall(parse, "")
            assert.is_false(ok)
            assert.same({ "io", "closed", false }, { f._fail, f.detail, f.got })
            ok, f = pcall(parse, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
            assert.is_false(ok)
            assert.same({ "io", "closed", true }, { f._fail, f.detail, f.got })
            ok, f = pcall(parse, "HTTP/1.1 2")
            assert.is_false(ok)
            assert.same({ "io", "closed", true }, { f._fail, f.detail, f.got })
        end)
    end)

    describe("request()", function()
        local URL = "http://127.0.0.1:8000/"
        local OK = "HTTP/1.1 200 OK\r\nx-amzn-RequestId: r1\r\nContent-Length: 17\r\n\r\n"
            .. '{"TableNames":[]}'

        it("returns status, body and lowercased headers, and pools the connection", function()
            local t, socks = transport({ reply = OK }, { pool_size = 7, keepalive_timeout_ms = 1234 })
            local res = t:request({ url = URL, headers = { { "x-amz-target", "DynamoDB_20120810.ListTables" } },
                body = "{}" })
            assert.same({ 200, '{"TableNames":[]}', "r1" }, { res.status, res.body, res.headers["x-amzn-requestid"] })
            local s = socks[1]
            assert.same({ "127.0.0.1", 8000, "127.0.0.1:8000", 7 }, { s.host, s.port, s.opts.pool, s.opts.pool_size })
            assert.same({ 1234, 7 }, s.kept)
            assert.is_nil(s.closed)
            assert.matches("^POST / HTTP/1.1\r\n", s.sent)
            assert.is_nil(s.handshake)
            assert.same({ requests = 1, connects = 1, last_ms = 0 }, t:info())
        end)

        it("counts only new connections as connects", function()
            local t = transport({ reply = OK, reused = 3 })
            t:request({ url = URL })
            assert.equals(0, t:info().connects)
        end)

        it("closes instead of pooling after Connection: close", function()
            local t, socks = transport({ reply = "HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" })
            local res = t:request({ url = URL })
            assert.equals(500, res.status) -- any status is a reply
            assert.is_true(socks[1].closed)
            assert.is_nil(socks[1].kept)
        end)

        it("does TLS with the host name and verification on a new connection only", function()
            local t, socks = transport({ reply = OK })
            t:request({ url = "https://dynamodb.eu-west-1.amazonaws.com/" })
            assert.same({ false, "dynamodb.eu-west-1.amazonaws.com", true }, {
                socks[1].handshake.sess, socks[1].handshake.name, socks[1].handshake.verify })
            assert.equals("dynamodb.eu-west-1.amazonaws.com:443:tls", socks[1].opts.pool)
            t, socks = transport({ reply = OK, reused = 1 }, { verify = false })
            t:request({ url = "https://h/" })
            assert.is_nil(socks[1].handshake) -- a pooled TLS connection is already through it
            t, socks = transport({ reply = OK }, { verify = false })
            t:request({ url = "https://h/" })
            assert.is_false(socks[1].handshake.verify)
            -- an unverified connection goes to a pool of its own, never to one that verifies
            assert.equals("h:443:tls:noverify", socks[1].opts.pool)
        end)

        it("checks x-amz-crc32", function()
            local body = '{"TableNames":[]}'
            local good = "HTTP/1.1 200 OK\r\nx-amz-crc32: " .. cosocket._crc32(body) .. "\r\nContent-Length: 17\r\n\r\n" .. body
            local t = transport({ reply = good })
            assert.equals(body, t:request({ url = URL }).body)
            local bad = "HTTP/1.1 200 OK\r\nx-amz-crc32: 12345\r\nContent-Length: 17\r\n\r\n" .. body
            t = transport({ reply = bad })
            local err = raises_transport("crc32", true, t.request, t, { url = URL })
            assert.matches("x%-amz%-crc32", err.message)
            t = transport({ reply = "HTTP/1.1 200 OK\r\nx-amz-crc32: nope\r\nContent-Length: 0\r\n\r\n" })
            raises_transport("crc32", true, t.request, t, { url = URL })
        end)

        it("names a kept-alive connection that died before any reply byte 'stale'", function()
            local t, socks = transport({ reply = "", reused = 2 })
            local err = raises_transport("stale", true, t.request, t, { url = URL .. "?token=secret" })
            assert.is_true(socks[1].closed)
            assert.is_nil(err.message:find("secret", 1, true))
            t = transport({ reply = "", reused = 2, send_err = "broken pipe" })
            raises_transport("stale", true, t.request, t, { url = URL })
        end)

        it("names a fresh connection that died, or any that died mid-reply, 'reset'", function()
            local t = transport({ reply = "" })
            raises_transport("reset", true, t.request, t, { url = URL })
            t = transport({ reply = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", reused = 1 })
            raises_transport("reset", true, t.request, t, { url = URL })
            t = transport({ reply = "", send_err = "connection reset by peer" })
            raises_transport("reset", true, t.request, t, { url = URL })
        end)

        it("maps socket timeouts and an exhausted deadline to 'timeout'", function()
            local t = transport({ reply = "HTTP/1.1 200 OK\r\n", eof = "timeout", reused = 1 })
            raises_transport("timeout", true, t.request, t, { url = URL })
            t = transport({ connect = "timeout" })
            raises_transport("timeout", true, t.request, t, { url = URL })
            t = transport({ reply = OK, send_err = "timeout" })
            raises_transport("timeout", true, t.request, t, { url = URL })
            local clock = 0
            t = transport({ reply = OK, now = function() clock = clock + 0.3 return clock end }, { timeout_ms = 1000 })
            raises_transport("timeout", true, t.request, t, { url = URL })
        end)

        it("gives read timeouts from what is left of the request's deadline", function()
            local clock = 0
            local t, socks = transport({ reply = OK, now = function() return clock end },
                { timeout_ms = 5000, connect_timeout_ms = 300 })
            t:request({ url = URL })
            assert.equals("timeouts 300 300 300", socks[1].log[1])
            assert.equals("timeouts 300 5000 5000", socks[1].log[2])
            assert.equals(5000, socks[1].last_timeout)
        end)

        it("takes a request's own timeout_ms (the client's per-call timeouts and deadlines)", function()
            local clock = 0
            local t, socks = transport({ reply = OK, now = function() return clock end },
                { timeout_ms = 5000, connect_timeout_ms = 300 })
            t:request({ url = URL, timeout_ms = 120 })
            assert.equals("timeouts 120 120 120", socks[1].log[1]) -- connect: min(300, what is left)
            assert.equals(120, socks[1].last_timeout)
            t:request({ url = URL })
            assert.equals(5000, socks[2].last_timeout)
            clock = 0
            local tt = transport({ reply = OK, now = function() clock = clock + 0.05 return clock end }, { timeout_ms = 5000 })
            local err = raises_transport("timeout", true, tt.request, tt, { url = URL, timeout_ms = 100 })
            assert.truthy(err.message:find("100 ms", 1, true), err.message)
            for _, bad in ipairs({ 0, 1.5, "100", 3600001 }) do
                assert.has_error(function() t:request({ url = URL, timeout_ms = bad }) end)
            end
        end)

        it("maps connect and DNS failures", function()
            local t = transport({ connect = "connection refused" })
            raises_transport("connect", true, t.request, t, { url = URL })
            t = transport({ connect = 'no resolver defined to resolve "dynamodb.example"' })
            raises_transport("dns", false, t.request, t, { url = URL })
            t = transport({ connect = 'dynamodb.example could not be resolved (3: Host not found)' })
            raises_transport("dns", true, t.request, t, { url = URL })
        end)

        it("makes an untrusted certificate final and a broken handshake retryable", function()
            local t = transport({ handshake = "18: self-signed certificate" })
            raises_transport("tls", false, t.request, t, { url = "https://localhost:8443/" })
            t = transport({ handshake = "certificate host mismatch" })
            raises_transport("tls", false, t.request, t, { url = "https://localhost:8443/" })
            t = transport({ handshake = "handshake failed" })
            raises_transport("tls", true, t.request, t, { url = "https://localhost:8443/" })
        end)

        it("reports a malformed reply as a final 'other'", function()
            local t = transport({ reply = "garbage\r\n\r\n" })
            raises_transport("other", false, t.request, t, { url = URL })
        end)

        it("says what is wrong when run outside nginx with no socket factory", function()
            local t = cosocket.new()
            assert.has_error(function() t:request({ url = URL }) end)
        end)
    end)
end)
