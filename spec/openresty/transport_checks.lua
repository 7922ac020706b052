-- Checks of the cosocket transport inside a real nginx worker, against the fixture locations of
-- spec/openresty/servers.conf (same worker, so connection reuse is observable) and DynamoDB Local
-- behind a TLS proxy. GET /_t/transport?test_port=&tls_port=&closed_port=&table= answers
-- {"checks": [{"name", "ok", "error"}]}; scripts/openresty-test counts each entry.
-- /_t/untrusted runs first: afterwards the TLS pool holds connections verified under the trusted CA.
-- luacheck: globals ngx
local cjson = require "cjson"
local cosocket = require "authhero.aws.transport.cosocket"
local aws = require "authhero.aws"

local _M = {}

local function fails(reason, retryable, f)
    local ok, err = pcall(f)
    assert(not ok, "no error raised")
    assert(aws.errors.is(err, "TransportError"), "not a TransportError: " .. tostring(err))
    assert(err.status == 0, "status " .. tostring(err.status))
    assert(err.reason == reason, "reason " .. tostring(err.reason) .. ", wanted " .. reason .. ": " .. tostring(err))
    assert(err.retryable == retryable, "retryable " .. tostring(err.retryable) .. ": " .. tostring(err))
    return err
end

local function eq(want, got, what)
    if want ~= got then
        error(string.format("%s: wanted %s, got %s", what, tostring(want), tostring(got)), 2)
    end
end

local function run_checks(checks)
    local out = {}
    for _, c in ipairs(checks) do
        local ok, err = pcall(c[2])
        out[#out + 1] = { name = c[1], ok = ok, error = (not ok) and tostring(err) or nil }
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode({ checks = out }))
end

local function args()
    local a = ngx.req.get_uri_args()
    return {
        plain = "http://127.0.0.1:" .. a.test_port,
        tls = "https://127.0.0.1:" .. a.tls_port,
        closed = "http://127.0.0.1:" .. a.closed_port .. "/",
        table = a.table,
    }
end

function _M.untrusted()
    local a = args()
    run_checks({
        { "TLS: a certificate from a CA nginx does not trust is refused, finally", function()
            local t = cosocket.new()
            local err = fails("tls", false, function() t:request({ method = "GET", url = a.tls .. "/fx/ok" }) end)
            assert(err.message:find("TLS handshake failed", 1, true), err.message)
        end },
        { "TLS: verify = false accepts it (and pools it apart from verified connections)", function()
            local t = cosocket.new({ verify = false })
            eq("tls ok", t:request({ method = "GET", url = a.tls .. "/fx/ok" }).body, "body")
            local v = cosocket.new()
            fails("tls", false, function() v:request({ method = "GET", url = a.tls .. "/fx/ok" }) end)
        end },
    })
end

-- GET /_t/recovered?faultd_port=&case=recovered|final: the DynamoDB client against spec/support/faultd.py, which resets
-- the connection (RST) under the first request and then answers: the call succeeds after one
-- retry. scripts/openresty-test then checks that this left no error-level line in nginx's log
-- (a fault the client recovered from is not an error), and that a fault it did not recover from
-- still is one (the example's handler logs it).
function _M.recovered()
    local a = ngx.req.get_uri_args()
    local base = "http://127.0.0.1:" .. a.faultd_port
    local ctl = cosocket.new()
    local function script(faults)
        local res = ctl:request({ url = base .. "/_control",
            body = cjson.encode({ reset_stats = true, clear = true, faults = faults }) })
        eq(200, res.status, "faultd /_control")
    end
    local function client(max_attempts)
        return aws.client.new({ endpoint = base, region = "us-east-1", sleep = ngx.sleep, max_attempts = max_attempts,
            credentials = { accessKeyId = "AKIDFAKE", secretAccessKey = "fake-secret" } })
    end
    local cases = {
        { "a connection reset under a request is retried, and the call succeeds", function()
            script({ "reset" })
            local c = client()
            c:call("PutItem", { TableName = "faults", Item = { PK = "recovered", SK = "1" } })
            eq(1, c.stats.retries, "retries")
            local got = c:call("GetItem", { TableName = "faults", Key = { PK = "recovered", SK = "1" } })
            eq("recovered", got.Item and got.Item.PK, "the item")
        end },
        { "resets on every attempt: a final TransportError (reason reset)", function()
            script({ "reset", "reset", "reset" })
            local c = client(2)
            fails("reset", true, function()
                c:call("GetItem", { TableName = "faults", Key = { PK = "recovered", SK = "1" } })
            end)
        end },
    }
    run_checks({ cases[a.case == "final" and 2 or 1] })
end

function _M.run()
    local a = args()
    local base = a.plain
    local t = cosocket.new({ timeout_ms = 3000 })
    local function get(url, tr) return (tr or t):request({ method = "GET", url = url }) end
    run_checks({
        { "fixed-length reply; the second request reuses the pooled connection", function()
            eq("ok", get(base .. "/fx/ok").body, "body")
            local c = t:info().connects
            local r = get(base .. "/fx/ok")
            eq("ok", r.body, "body")
            eq("2", r.headers["content-length"], "content-length")
            eq(c, t:info().connects, "connects after a reuse")
        end },
        { "chunked reply, several chunks", function()
            local r = get(base .. "/fx/chunked")
            eq("chunked", r.headers["transfer-encoding"], "transfer-encoding")
            eq("hello chunked world", r.body, "body")
        end },
        { "1 MiB bodies, chunked and fixed-length", function()
            local want = string.rep("0123456789abcdef", 65536)
            eq(want, get(base .. "/fx/big").body, "chunked body")
            local r = get(base .. "/fx/bigfixed")
            eq(tostring(#want), r.headers["content-length"], "content-length")
            eq(want, r.body, "fixed body")
        end },
        { "request framing: method, Content-Length, headers, empty bodies", function()
            local r = t:request({ url = base .. "/fx/echo", headers = { { "X-Test", "a b" } }, body = "hello" })
            local e = cjson.decode(r.body)
            eq("POST", e.method, "method")
            eq("hello", e.body, "body")
            eq("5", e.content_length, "content-length")
            eq("a b", e.x_test, "x-test")
            eq("127.0.0.1:" .. base:match(":(%d+)$"), e.host, "host")
            e = cjson.decode(t:request({ url = base .. "/fx/echo" }).body)
            eq("0", e.content_length, "empty POST content-length")
            e = cjson.decode(get(base .. "/fx/echo?x=1").body)
            eq("GET", e.method, "method")
            eq(nil, e.content_length, "GET content-length")
            eq("x=1", e.args, "query")
        end },
        { "Connection: close from the server is honoured (not pooled)", function()
            local r = get(base .. "/fx/close")
            eq("close", r.headers["connection"], "connection header")
            local c = t:info().connects
            get(base .. "/fx/ok")
            eq(c + 1, t:info().connects, "connects after a closed connection")
        end },
        { "a pooled connection the server drops before replying is 'stale'; a fresh one is 'reset'", function()
            get(base .. "/fx/ok") -- leaves a connection in the pool
            fails("stale", true, function() get(base .. "/fx/drop") end)
            fails("reset", true, function() get(base .. "/fx/drop") end)
        end },
        { "timeout_ms bounds the whole request", function()
            local quick = cosocket.new({ timeout_ms = 200 })
            local t0 = ngx.now()
            fails("timeout", true, function() get(base .. "/fx/slow", quick) end)
            ngx.update_time()
            local took = ngx.now() - t0
            assert(took >= 0.15 and took < 0.5, "took " .. took .. " s")
        end },
        { "req.timeout_ms bounds one request instead of the transport's timeout_ms", function()
            local t0 = ngx.now()
            fails("timeout", true, function() t:request({ method = "GET", url = base .. "/fx/slow", timeout_ms = 200 }) end)
            ngx.update_time()
            local took = ngx.now() - t0
            assert(took >= 0.15 and took < 0.45, "took " .. took .. " s")
            eq("late", get(base .. "/fx/slow").body, "the transport's own 3 s bound after it")
        end },
        { "the client's deadline_ms over cosockets: a TransportError with reason deadline, on time", function()
            local events = {}
            local client = aws.client.new({ endpoint = base .. "/fx/slow", region = "us-east-1", sleep = ngx.sleep,
                credentials = { accessKeyId = "AKIDFAKE", secretAccessKey = "fake-secret" },
                on_request = function(ev) events[#events + 1] = ev end })
            ngx.update_time()
            local t0 = ngx.now()
            local err = fails("deadline", false, function()
                client:call("GetItem", { TableName = "t", Key = { PK = "a" } }, { deadline_ms = 250 })
            end)
            ngx.update_time()
            local took = ngx.now() - t0
            assert(took >= 0.2 and took < 0.45, "took " .. took .. " s")
            eq("timeout", err.last_error and err.last_error.reason, "the last attempt's reason")
            eq(1, #events, "hook events")
            eq("TransportError", events[1].code, "event code")
            eq(false, events[1].retry, "event retry")
        end },
        { "connection refused is 'connect'", function()
            fails("connect", true, function() get(a.closed) end)
        end },
        { "a host name with no resolver configured is a final 'dns'", function()
            local err = fails("dns", false, function() get("http://dynamodb.invalid/") end)
            assert(err.message:find("resolver", 1, true), err.message)
        end },
        { "x-amz-crc32: a right value passes, a wrong one is a retryable 'crc32'", function()
            eq("body", get(base .. "/fx/goodcrc").body, "body")
            fails("crc32", true, function() get(base .. "/fx/badcrc") end)
        end },
        { "two slow requests in one worker overlap", function()
            local t0 = ngx.now()
            local th1 = ngx.thread.spawn(get, base .. "/fx/slow")
            local th2 = ngx.thread.spawn(get, base .. "/fx/slow")
            local ok1, r1 = ngx.thread.wait(th1)
            local ok2, r2 = ngx.thread.wait(th2)
            ngx.update_time()
            local took = ngx.now() - t0
            assert(ok1 and ok2, tostring(r1) .. " / " .. tostring(r2))
            eq("late", r1.body, "body 1")
            eq("late", r2.body, "body 2")
            assert(took < 0.9, "took " .. took .. " s for two 0.5 s replies: serialised")
        end },
        { "TLS with a verified certificate; the pooled TLS connection is reused", function()
            local tt = cosocket.new()
            eq("tls ok", get(a.tls .. "/fx/ok", tt).body, "body")
            local c = tt:info().connects
            eq("tls ok", get(a.tls .. "/fx/ok", tt).body, "body")
            eq(c, tt:info().connects, "connects after a reuse")
        end },
        { "the DynamoDB client over TLS (DynamoDB Local behind nginx's TLS proxy)", function()
            local client = aws.client.new({ endpoint = a.tls, sleep = ngx.sleep })
            local d = client:call("DescribeTable", { TableName = a.table })
            eq(a.table, d.Table.TableName, "table name")
            local ok, err = pcall(client.call, client, "DescribeTable", { TableName = "no-such-table-here" })
            assert(not ok and aws.errors.is(err, "ResourceNotFoundException"), tostring(err))
            eq(400, err.status, "status")
        end },
        { "the client picked the cosocket transport by itself; libcurl never loaded in this worker", function()
            local client = aws.client.new({ endpoint = a.tls })
            eq(getmetatable(cosocket.new()), getmetatable(client._transport), "transport type")
            if os.getenv("TRANSPORT") ~= "curl" then
                eq(nil, package.loaded["authhero.aws.transport.curl"], "curl transport module")
            end
        end },
    })
end

return _M
