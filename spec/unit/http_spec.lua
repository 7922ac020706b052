-- The libcurl transport (csrc/http.c through transport/curl.lua) against spec/support/httpd.py, a
-- python3 server this spec starts on loopback (no outside network): keep-alive and reconnects,
-- timeouts, refused and reset connections, x-amz-crc32, large and chunked bodies, TLS verification
-- (certificate made with the openssl command) and the closed-handle contract.
local core = require "authhero.aws.core"
local curl = require "authhero.aws.transport.curl"

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local HTTPD = here .. "../support/httpd.py"

local function sleep(seconds)
    os.execute("sleep " .. seconds)
end

-- pcall that returns the error value (the error object for transport failures).
local function catch(f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an error")
    return err
end

local function is_transport_error(err, reason, retryable)
    assert.equals("table", type(err), tostring(err))
    assert.equals(core.error_mt, getmetatable(err))
    assert.equals("TransportError", err.code)
    assert.equals(0, err.status)
    assert.equals(reason, err.reason, err.message)
    assert.equals(retryable, err.retryable)
    assert.equals("number", type(err.curl_code))
    assert.equals("string", type(err.message))
end

-- "METHOD PATH\nName: value...\n\nbody" from /echo -> method, path, { [lower name] = value }, n, body
local function parse_echo(text)
    local head, body = text:match("^(.-)\n\n(.*)$")
    local lines = {}
    for line in (head .. "\n"):gmatch("(.-)\n") do
        lines[#lines + 1] = line
    end
    local method, path = lines[1]:match("^(%S+) (%S+)$")
    local headers, count = {}, {}
    for i = 2, #lines do
        local name, value = lines[i]:match("^([^:]+): ?(.*)$")
        name = name:lower()
        headers[name] = value
        count[name] = (count[name] or 0) + 1
    end
    return method, path, headers, count, body
end

-- A transport with roomy timeouts: the server may be slow (e.g. run under valgrind
-- --trace-children=yes). Specs about timeouts pass their own.
local function new_transport(opts)
    opts = opts or {}
    opts.connect_timeout_ms = opts.connect_timeout_ms or 15000
    opts.timeout_ms = opts.timeout_ms or 30000
    return curl.new(opts)
end

-- Every byte value, repeated: 1 MiB + 1 (just past curl's 1 MiB Expect: 100-continue threshold).
local function big_body()
    local bytes = {}
    for i = 0, 255 do
        bytes[#bytes + 1] = string.char(i)
    end
    return string.rep(table.concat(bytes), 4096) .. "!"
end

describe("transport.curl", function()
    local server, base, tls_base, closed_base

    setup(function()
        local cert, key = os.tmpname(), os.tmpname()
        server = { files = { cert, key } }
        os.execute("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
            .. " -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost"
            .. " -keyout " .. key .. " -out " .. cert .. " 2>/dev/null")
        -- exec: python's parent is this process, so it exits by itself if we die without teardown.
        -- The read returns once it listens, or nil if it could not start (no wait loop needed).
        local pipe = assert(io.popen("exec " .. (os.getenv("PYTHON") or "python3") .. " "
            .. HTTPD .. " " .. cert .. " " .. key, "r"))
        server.pipe = pipe
        local line = pipe:read("*l")
        assert(line, "spec/support/httpd.py did not start (needs python3, and openssl for the certificate)")
        local pid, port, closed_port, tls_port = line:match("^(%d+) (%d+) (%d+) (%d+)$")
        assert(pid, "unexpected httpd.py banner: " .. line)
        server.pid = pid
        base = "http://127.0.0.1:" .. port
        closed_base = "http://127.0.0.1:" .. closed_port
        assert(tonumber(tls_port) > 0, "no TLS listener (openssl req failed?)")
        tls_base = "https://127.0.0.1:" .. tls_port
        server.cert = cert
    end)

    teardown(function()
        if server and server.pid then
            os.execute("kill " .. server.pid .. " 2>/dev/null")
        end
        if server and server.pipe then
            server.pipe:close()
        end
        for _, f in ipairs(server and server.files or {}) do
            os.remove(f)
        end
    end)

    describe("requests", function()
        local t
        before_each(function()
            t = new_transport()
        end)
        after_each(function()
            t:close()
        end)

        it("sends method, headers and body, and returns status, body and headers", function()
            local res = t:request({
                method = "POST",
                url = base .. "/echo",
                headers = {
                    { "Content-Type", "application/x-amz-json-1.0" },
                    { "X-Amz-Target", "DynamoDB_20120810.GetItem" },
                    { "X-Empty", "" },
                },
                body = '{"TableName":"authhero"}',
            })
            assert.equals(200, res.status)
            local method, path, h, count, body = parse_echo(res.body)
            assert.equals("POST", method)
            assert.equals("/echo", path)
            assert.equals("application/x-amz-json-1.0", h["content-type"])
            assert.equals(1, count["content-type"])
            assert.equals("DynamoDB_20120810.GetItem", h["x-amz-target"])
            assert.equals("", h["x-empty"])
            assert.equals("24", h["content-length"])
            assert.equals('{"TableName":"authhero"}', body)
            assert.equals("text/plain", res.headers["content-type"])
            assert.is_string(res.headers["x-conn-id"])
        end)

        it("adds no Expect, Accept, Accept-Encoding, User-Agent or form Content-Type", function()
            for _, body in ipairs({ "{}", big_body() }) do
                local res = t:request({ method = "POST", url = base .. "/echo", body = body })
                local _, _, h, _, echoed = parse_echo(res.body)
                assert.is_nil(h["expect"])
                assert.is_nil(h["accept"])
                assert.is_nil(h["accept-encoding"])
                assert.is_nil(h["user-agent"])
                assert.is_nil(h["content-type"])
                assert.equals(#body, #echoed)
            end
        end)

        it("sends an empty POST body as Content-Length: 0, and GET, DELETE, HEAD without one", function()
            local _, _, h = parse_echo(t:request({ url = base .. "/echo" }).body)
            assert.equals("0", h["content-length"])
            local m, _, g = parse_echo(t:request({ method = "GET", url = base .. "/echo" }).body)
            assert.equals("GET", m)
            assert.is_nil(g["content-length"])
            m = parse_echo(t:request({ method = "DELETE", url = base .. "/echo" }).body)
            assert.equals("DELETE", m)
            local res = t:request({ method = "HEAD", url = base .. "/echo" })
            assert.equals(200, res.status)
            assert.equals("", res.body)
            -- and POST works again after HEAD on the same handle
            assert.equals("POST", (parse_echo(t:request({ url = base .. "/echo", body = "x" }).body)))
        end)

        it("returns 500 as a reply, not an error", function()
            local res = t:request({ method = "POST", url = base .. "/status/500", body = "{}" })
            assert.equals(500, res.status)
            assert.truthy(res.body:find("InternalServerError", 1, true))
            assert.equals("application/x-amz-json-1.0", res.headers["content-type"])
        end)

        it("lowercases reply header names, trims values, last repeated header wins", function()
            local res = t:request({ method = "GET", url = base .. "/headers" })
            assert.equals("second", res.headers["x-dup"])
            assert.equals("REQ123", res.headers["x-amzn-requestid"])
            assert.equals("a b", res.headers["x-padded"])
            assert.is_nil(res.headers["X-Amzn-RequestId"])
        end)

        it("moves 1 MiB bodies both ways intact", function()
            local body = big_body()
            local res = t:request({ url = base .. "/raw?crc=1", body = body })
            assert.equals(200, res.status)
            assert.equals(#body, #res.body)
            assert.is_true(res.body == body)
            -- and again on the same handle (buffer reuse)
            res = t:request({ url = base .. "/raw", body = body:sub(1, 1000) })
            assert.is_true(res.body == body:sub(1, 1000))
        end)

        it("reads chunked replies and checks their crc32", function()
            local res = t:request({ method = "GET", url = base .. "/chunked" })
            assert.equals(200, res.status)
            assert.equals('{"Items":[{"n":{"N":"1"}},{"n":{"N":"2"}}]}', res.body)
        end)

        it("accepts a reply whose x-amz-crc32 matches", function()
            local res = t:request({ url = base .. "/crc-ok", body = "{}" })
            assert.equals(200, res.status)
            assert.equals('{"Item":{"pk":{"S":"TENANT#acme"}}}', res.body)
        end)

        describe("with req.decode", function()
            it("answers a 200 with the decoded reply and no body or headers", function()
                local items = {}
                for i = 1, 300 do
                    items[i] = { PK = "TENANT#t", SK = "USER#" .. i, n = i, on = i % 2 == 0, gone = core.null,
                        meta = '{"a":"\\"b\\""}' }
                end
                local body = core.encode_request({ Items = items, Count = #items })
                local res = t:request({ url = base .. "/raw?crc=1", body = body, decode = true })
                assert.equals(200, res.status)
                assert.is_nil(res.body)
                assert.is_nil(res.headers)
                assert.same(core.decode_reply(body), res.reply)
                assert.equals(300, #res.reply.Items)
                assert.equals("USER#300", res.reply.Items[300].SK)
                assert.equals(core.null, res.reply.Items[1].gone)
                -- the same handle again, without decode: the body as it came
                res = t:request({ url = base .. "/raw", body = body })
                assert.equals(body, res.body)
                assert.is_nil(res.reply)
            end)

            it("with req.meta also gives the body's size and x-amzn-requestid (the on_request hook's)", function()
                local body = '{"Count":2,"Items":[{"a":{"S":"x"}},{"a":{"S":"y"}}]}'
                local res = t:request({ url = base .. "/raw", body = body, decode = true, meta = true })
                assert.equals(#body, res.received)
                assert.is_nil(res.request_id) -- /raw sends none; DynamoDB Local's: client_hooks_spec
                assert.equals(2, res.reply.Count)
                res = t:request({ url = base .. "/raw", body = body, decode = true })
                assert.is_nil(res.received)
            end)

            it("still checks x-amz-crc32 first", function()
                local err = catch(t.request, t, { url = base .. "/crc-bad", body = "{}", decode = true })
                is_transport_error(err, "crc32", true)
                local res = t:request({ url = base .. "/crc-ok", decode = true })
                assert.same({ Item = { pk = "TENANT#acme" } }, res.reply)
            end)

            it("returns any other status as body and headers, undecoded", function()
                local res = t:request({ url = base .. "/status/400", decode = true })
                assert.equals(400, res.status)
                assert.is_nil(res.reply)
                assert.truthy(res.body:find("InternalServerError", 1, true))
                assert.equals("application/x-amz-json-1.0", res.headers["content-type"])
            end)

            it("raises the decoder's MarshalError for a 200 that is not DynamoDB JSON; the handle goes on", function()
                local err = catch(t.request, t, { url = base .. "/raw", body = '{"Items":[{"a":{"S":"x"}', decode = true })
                assert.equals(core.error_mt, getmetatable(err))
                assert.equals("MarshalError", err.code)
                assert.truthy(err.message:find("truncated", 1, true), err.message)
                local res = t:request({ url = base .. "/raw", body = '{"Count":1}', decode = true })
                assert.same({ Count = 1 }, res.reply)
            end)
        end)

        it("raises a retryable crc32 TransportError when x-amz-crc32 does not match", function()
            local err = catch(t.request, t, { url = base .. "/crc-bad", body = "{}" })
            is_transport_error(err, "crc32", true)
            assert.truthy(err.message:find("x-amz-crc32", 1, true))
            -- the handle is still fine
            assert.equals(200, t:request({ url = base .. "/crc-ok" }).status)
        end)
    end)

    describe("connections", function()
        it("reuses one connection for many requests", function()
            local t = new_transport()
            local ids = {}
            for i = 1, 50 do
                local res = t:request({ url = base .. "/echo", body = tostring(i) })
                ids[res.headers["x-conn-id"]] = true
            end
            local info = t:info()
            assert.equals(50, info.requests)
            assert.equals(1, info.connects)
            local n = 0
            for _ in pairs(ids) do
                n = n + 1
            end
            assert.equals(1, n)
            t:close()
        end)

        it("reconnects after the server says Connection: close", function()
            local t = new_transport()
            local a = t:request({ url = base .. "/close" })
            assert.equals("bye", a.body)
            local b = t:request({ url = base .. "/echo" })
            assert.equals(200, b.status)
            assert.not_equals(a.headers["x-conn-id"], b.headers["x-conn-id"])
            assert.equals(2, t:info().connects)
            t:close()
        end)

        -- Odd rounds reuse the dead connection and rely on curl's own retry on a fresh one; libcurl
        -- before 8.17 never reset that retry count between transfers, so the 6th such round failed
        -- ("Connection died, tried 5 times") until http.c reset the handle before each request.
        it("reconnects after the server closed an idle connection, and never replays a request", function()
            local t = new_transport()
            local stale = 0
            for i = 1, 20 do
                assert.equals("dropped", t:request({ url = base .. "/drop" }).body)
                if i % 2 == 0 then
                    sleep(0.05) -- let the FIN arrive first; odd rounds race it on purpose
                end
                local ok, res = pcall(t.request, t, { url = base .. "/echo", body = "after drop " .. i })
                if not ok then
                    -- the request went out on the dead connection: reported, not silently re-sent
                    -- (the client retries it under its own policy). "stale" when curl saw the
                    -- close before any reply byte; "reset" when the server's RST won the race.
                    is_transport_error(res, res.reason == "reset" and "reset" or "stale", true)
                    stale = stale + 1
                    res = t:request({ url = base .. "/echo", body = "after drop " .. i })
                end
                assert.equals(200, res.status)
                assert.equals("after drop " .. i, select(5, parse_echo(res.body)))
            end
            assert.equals(40 + stale, t:info().requests)
            assert.is_true(stale <= 10, stale .. " stale sends, even though half the rounds waited for the FIN")
            t:close()
        end)

        it("times out quickly with a retryable timeout TransportError", function()
            local t = curl.new({ timeout_ms = 1000 }) -- room for a slow server's later echo
            local started = os.time()
            local err = catch(t.request, t, { url = base .. "/slow?ms=6000", body = "{}" })
            is_transport_error(err, "timeout", true)
            assert.truthy(err.message:find("^POST http://127%.0%.0%.1:%d+/slow: "), err.message)
            assert.truthy(err.message:lower():find("timed out", 1, true), err.message)
            assert.is_true(t:info().last_ms < 2500, "took " .. t:info().last_ms .. " ms")
            assert.is_true(os.time() - started <= 3)
            -- the handle recovers
            assert.equals(200, t:request({ url = base .. "/echo" }).status)
            t:close()
        end)

        it("req.timeout_ms bounds one request instead of the handle's timeout_ms", function()
            local t = curl.new({ timeout_ms = 20000 })
            local t0 = core.now()
            local err = catch(t.request, t, { url = base .. "/slow?ms=3000", body = "{}", timeout_ms = 300 })
            is_transport_error(err, "timeout", true)
            assert.is_true(core.now() - t0 < 2, "took " .. (core.now() - t0) .. " s")
            -- the next request has the handle's bound again
            assert.equals("slow", t:request({ url = base .. "/slow?ms=600" }).body)
            assert.has_error(function() t:request({ url = base .. "/echo", timeout_ms = 0 }) end)
            assert.has_error(function() t:request({ url = base .. "/echo", timeout_ms = 2.5 }) end)
            t:close()
        end)

        it("raises a retryable connect TransportError when the port is closed", function()
            local t = new_transport()
            local err = catch(t.request, t, { url = closed_base .. "/", body = "{}" })
            is_transport_error(err, "connect", true)
            assert.truthy(err.message:find(closed_base .. "/", 1, true), err.message)
            t:close()
        end)

        it("raises a retryable reset TransportError on RST or an empty reply", function()
            local t = new_transport()
            is_transport_error(catch(t.request, t, { url = base .. "/reset", body = "{}" }), "reset", true)
            is_transport_error(catch(t.request, t, { url = base .. "/empty", body = "{}" }), "reset", true)
            assert.equals(200, t:request({ url = base .. "/echo" }).status)
            t:close()
        end)

        it("never puts request headers or URL credentials into the error", function()
            local t = curl.new({ timeout_ms = 200 })
            local secret = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/secret-signature"
            local err = catch(t.request, t, {
                url = base .. "/slow?ms=1000&X-Amz-Signature=qsecret",
                headers = { { "Authorization", secret }, { "X-Amz-Security-Token", "tok-secret" } },
                body = "{}",
            })
            is_transport_error(err, "timeout", true)
            err = catch(t.request, t, {
                url = closed_base:gsub("//", "//user:pw-secret@") .. "/",
                headers = { { "Authorization", secret } },
            })
            is_transport_error(err, "connect", true)
            for _, text in ipairs({ err.message, tostring(err) }) do
                assert.is_nil(text:find("secret", 1, true), text)
            end
            t:close()
        end)
    end)

    describe("TLS", function()
        it("verifies certificates by default: a self-signed one is a final tls error", function()
            local t = new_transport()
            local err = catch(t.request, t, { url = tls_base .. "/echo", body = "{}" })
            is_transport_error(err, "tls", false)
            t:close()
        end)

        it("trusts ca_file", function()
            local t = new_transport({ ca_file = server.cert })
            local res = t:request({ url = tls_base .. "/echo", body = "tls" })
            assert.equals(200, res.status)
            assert.equals("tls", select(5, parse_echo(res.body)))
            t:request({ url = tls_base .. "/echo" })
            assert.equals(1, t:info().connects)
            t:close()
        end)

        it("skips checks only when verify = false", function()
            local t = new_transport({ verify = false })
            assert.equals(200, t:request({ url = tls_base .. "/echo" }).status)
            t:close()
        end)

        it("fails for good when ca_file is missing", function()
            local t = new_transport({ ca_file = server.cert .. ".missing" })
            is_transport_error(catch(t.request, t, { url = tls_base .. "/echo" }), "tls", false)
            t:close()
        end)
    end)

    describe("handle", function()
        it("close is idempotent; a closed handle raises a clear error", function()
            local t = new_transport()
            t:close()
            t:close()
            local err = catch(t.request, t, { url = base .. "/echo" })
            assert.equals("string", type(err))
            assert.truthy(err:find("http handle is closed", 1, true))
            assert.truthy(catch(t.info, t):find("http handle is closed", 1, true))
            do
                local h = core.http_new()
                h:close()
                h:close()
                assert.truthy(catch(h.request, h, "GET", base .. "/echo"):find("http handle is closed", 1, true))
            end
            collectgarbage() -- __gc after close is a no-op
            collectgarbage()
        end)

        it("is collected without close", function()
            for _ = 1, 20 do
                local t = new_transport()
                t:request({ url = base .. "/echo" })
            end
            collectgarbage()
            collectgarbage()
        end)

        it("closes through <close> on Lua 5.4", function()
            if _VERSION ~= "Lua 5.4" then
                return -- nothing to check: no to-be-closed variables before 5.4
            end
            local chunk = assert(load([[
                local curl, url = ...
                local h
                do
                    local t <close> = curl.new()
                    h = t
                    t:request({ url = url })
                end
                return h
            ]]))
            local h = chunk(curl, base .. "/echo")
            assert.truthy(catch(h.request, h, { url = base .. "/echo" }):find("http handle is closed", 1, true))
        end)

        it("rejects bad options and bad requests with plain argument errors", function()
            assert.has_error(function() curl.new({ timeout = 5 }) end)
            assert.has_error(function() curl.new({ timeout_ms = 0 }) end)
            assert.has_error(function() curl.new({ timeout_ms = 1.5 }) end)
            assert.has_error(function() curl.new({ verify = "no" }) end)
            assert.has_error(function() curl.new({ ca_file = 1 }) end)
            local t = new_transport()
            for _, req in ipairs({
                { url = base .. "/echo", headers = { { "X-Bad", "a\r\nInjected: 1" } } },
                { url = base .. "/echo", headers = { { "Bad Name", "v" } } },
                { url = base .. "/echo", headers = { "X-Flat: v" } },
                { url = base .. "/echo", method = "GET /x" },
                { url = nil },
            }) do
                local err = catch(t.request, t, req)
                assert.equals("string", type(err))
                assert.is_nil(err:find("Injected", 1, true))
            end
            assert.has_error(function() t:request("http://x") end)
            -- a raise while building headers leaks nothing and leaves the handle usable
            assert.equals(200, t:request({ url = base .. "/echo" }).status)
            t:close()
        end)
    end)
end)
