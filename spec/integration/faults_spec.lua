-- The client against spec/support/faultd.py, a python3 DynamoDB stand-in on loopback that answers
-- from a script of faults: every fault ends in the specified retry or a clean error (never a hang
-- or a crash), backoff stays inside the full-jitter bounds, the retry quota drains and refills, and
-- a write reported as success is really stored. Sleeps are injected, so backoff costs no time.
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local curl = require "authhero.aws.transport.curl"

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local FAULTD = here .. "../support/faultd.py"
local TABLE = "faults"
local TIMEOUT_MS = 300
local BASE, THROTTLE_BASE, CAP = 0.05, 1.0, 20.0
local CREDENTIALS = { accessKeyId = "AKIDFAKE", secretAccessKey = "fake-secret" }

local server = {}
local ctl -- a transport of its own for /_control and /_stats
local clients = {}
local seq = 0

local function control(body)
    local res = ctl:request({ method = "POST", url = server.base .. "/_control", body = body })
    assert(res.status == 200, "faultd /_control: " .. tostring(res.status))
end

-- Replaces the fault script and zeroes the server's counters.
local function script(faults)
    local parts = {}
    for i, f in ipairs(faults) do parts[i] = '"' .. f .. '"' end
    control('{"reset_stats":true,"faults":[' .. table.concat(parts, ",") .. "]}")
end

local function rep(fault, n)
    local t = {}
    for i = 1, n do t[i] = fault end
    return t
end

-- GET /_stats -> { requests = n, connections = n, ["op.PutItem"] = n, ["key.1"] = "AKID..", ... }
local function stats()
    local res = ctl:request({ method = "GET", url = server.base .. "/_stats" })
    local t = {}
    for name, value in res.body:gmatch("(%S+) (%S+)\n") do
        t[name] = tonumber(value) or value
    end
    return t
end

-- Slow faults keep a server thread sleeping after the client gave up; wait it out so a late
-- write does not land in the next spec's counters.
local function wait_idle()
    for _ = 1, 100 do
        if stats().inflight == 0 then return end
        core.sleep(0.05)
    end
    error("faultd: slow replies still in flight")
end

-- A client whose backoff sleeps are recorded instead of slept. The retry mechanics are checked
-- with max_attempts = 3 (the default, 5, has a spec of its own below).
local function new_client(extra)
    local sleeps = {}
    local config = {
        region = "us-east-1",
        endpoint = server.base,
        credentials = CREDENTIALS,
        timeout_ms = TIMEOUT_MS,
        connect_timeout_ms = 2000,
        max_attempts = 3,
        sleep = function(s) sleeps[#sleeps + 1] = s end,
    }
    for k, v in pairs(extra or {}) do
        if v == "default" then v = nil end
        config[k] = v
    end
    local c = aws.client.new(config)
    clients[#clients + 1] = c
    return c, sleeps
end

local function new_key()
    seq = seq + 1
    return "TENANT#faults", "ITEM#" .. seq
end

local function item(pk, sk)
    return { PK = pk, SK = sk, n = 42, name = "Ada", tags = { "a", "b" }, meta = { ok = true } }
end

local function put(c, pk, sk, extra)
    local p = { TableName = TABLE, Item = item(pk, sk) }
    for k, v in pairs(extra or {}) do p[k] = v end
    return c:call("PutItem", p)
end

local function transact_put(c, pk, sk)
    return c:call("TransactWriteItems", { TransactItems = {
        { Put = { TableName = TABLE, Item = item(pk, sk) } },
    } })
end

local function get(c, pk, sk)
    return c:call("GetItem", { TableName = TABLE, Key = { PK = pk, SK = sk } }).Item
end

local raises = require "support.raises"

-- Full jitter: the delay before retry i lies in [0, min(cap, base * 2^(i-1))].
local function assert_backoff(sleeps, base, n)
    assert.equals(n, #sleeps)
    for i, d in ipairs(sleeps) do
        assert.is_number(d)
        assert.is_true(d >= 0, "delay " .. i .. " is negative: " .. d)
        local bound = math.min(CAP, base * 2 ^ (i - 1))
        assert.is_true(d <= bound, ("delay %d = %g exceeds %g"):format(i, d, bound))
    end
end

local function assert_stored(c, pk, sk)
    local got = get(c, pk, sk)
    assert.is_table(got, "item " .. sk .. " is not stored")
    assert.equals(pk, got.PK)
    assert.equals(sk, got.SK)
    assert.equals(42, got.n)
    assert.equals("Ada", got.name)
    assert.same({ "a", "b" }, { got.tags[1], got.tags[2] })
    assert.is_true(got.meta.ok)
end

-- Faults the client retries: the code and status they raise once attempts run out, the backoff
-- base, and whether the server applied the write before failing.
local RETRIED = {
    { fault = "throttle", code = "ThrottlingException", status = 400, base = THROTTLE_BASE },
    { fault = "pte", code = "ProvisionedThroughputExceededException", status = 400, base = THROTTLE_BASE },
    { fault = "http429", code = "TooManyRequestsException", status = 429, base = THROTTLE_BASE },
    { fault = "500", code = "InternalServerError", status = 500, base = BASE, message = "unknown error" },
    { fault = "503", code = "ServiceUnavailable", status = 503, base = BASE },
    { fault = "unknown_html", code = "UnknownError", status = 502, base = BASE, message = "^HTTP 502: <html>" },
    { fault = "reset", code = "TransportError", status = 0, reason = "reset", base = BASE },
    { fault = "truncated", code = "TransportError", status = 0, reason = "reset", base = BASE },
    { fault = "badcrc", code = "TransportError", status = 0, reason = "crc32", base = BASE, applied = true },
    { fault = "canceled_conflict", code = "TransactionCanceledException", status = 400, base = THROTTLE_BASE,
        transact = true },
}

describe("client under injected faults", function()
    setup(function()
        -- exec: python's parent is this process, so it exits by itself if we die without teardown.
        local pipe = assert(io.popen("exec " .. (os.getenv("PYTHON") or "python3") .. " " .. FAULTD, "r"))
        server.pipe = pipe
        local line = pipe:read("*l")
        assert(line, "spec/support/faultd.py did not start (needs python3)")
        local pid, port = line:match("^(%d+) (%d+)$")
        assert(pid, "unexpected faultd.py banner: " .. line)
        server.pid = pid
        server.base = "http://127.0.0.1:" .. port
        ctl = curl.new({ connect_timeout_ms = 5000, timeout_ms = 10000 })
    end)

    teardown(function()
        for _, c in ipairs(clients) do pcall(c.close, c) end
        if ctl then pcall(ctl.close, ctl) end
        if server.pid then os.execute("kill " .. server.pid .. " 2>/dev/null") end
        if server.pipe then server.pipe:close() end
    end)

    after_each(function()
        for _, c in ipairs(clients) do pcall(c.close, c) end
        clients = {}
    end)

    describe("retried faults", function()
        for _, case in ipairs(RETRIED) do
            local write = case.transact and transact_put or put
            local op = case.transact and "TransactWriteItems" or "PutItem"

            it(case.fault .. " once: retried once, then the write succeeds and is stored", function()
                local c, sleeps = new_client()
                local pk, sk = new_key()
                script({ case.fault })
                write(c, pk, sk)
                local s = stats()
                assert.equals(2, s.requests)
                assert.equals(2, s["op." .. op])
                assert.equals(0, s.script_left)
                assert.equals(2, c.stats.requests)
                assert.equals(1, c.stats.retries)
                assert_backoff(sleeps, case.base, 1)
                assert_stored(c, pk, sk)
            end)

            it(case.fault .. " three times: a clean error after exactly 3 requests", function()
                local c, sleeps = new_client()
                local pk, sk = new_key()
                script(rep(case.fault, 3))
                local err = raises(write, c, pk, sk)
                assert.equals(case.code, err.code, tostring(err))
                assert.equals(case.status, err.status)
                assert.is_true(err.retryable)
                assert.equals(3, err.attempts)
                assert.is_nil(err.quota_exhausted)
                assert.is_string(err.message)
                if case.reason then assert.equals(case.reason, err.reason) end
                if case.message then assert.matches(case.message, err.message) end
                assert.matches("^" .. case.code .. " %(" .. case.status .. "%): ", tostring(err))
                local s = stats()
                assert.equals(3, s.requests)
                assert.equals(3, c.stats.requests)
                assert.equals(2, c.stats.retries)
                assert_backoff(sleeps, case.base, 2)
                assert.equals(case.applied and 3 or nil, s["applied." .. op])
                -- and the same client works afterwards
                script({})
                write(c, pk, sk)
                assert_stored(c, pk, sk)
            end)
        end

        it("an error reply keeps the connection; a reset costs a reconnect", function()
            local c = new_client()
            local pk, sk = new_key()
            script({ "500", "throttle" })
            put(c, pk, sk)
            assert.equals(1, stats().connections) -- counted since the script was set
            script({ "500" })
            put(c, pk, sk)
            assert.equals(0, stats().connections)
            script({ "reset" })
            put(c, pk, sk)
            local n = stats().connections
            assert.is_true(n >= 1 and n <= 2, n .. " new connections") -- 2 when libcurl opens one it cannot use
        end)

        -- libcurl replays a request on a fresh connection, on its own, when a reused connection dies
        -- before any reply byte: the server sees a request the client never counted, sent with no
        -- backoff, past max_attempts and the quota; for a non-idempotent write that is a silent
        -- second write. The fix belongs in csrc/http.c (a body read callback that cannot rewind).
        it("a request lost on a reused connection is retried by the client, not replayed by libcurl", function()
            local c, sleeps = new_client()
            local pk, sk = new_key()
            put(c, pk, sk) -- opens the connection the next call reuses
            script({ "commit_then_reset" })
            put(c, pk, sk)
            local s = stats()
            assert.equals(2, s.requests)
            assert.equals(s.requests, c.stats.requests - 1, "the server saw requests the client never sent")
            assert.equals(1, c.stats.retries) -- counted, reconnected at once (no backoff)
            assert.same({}, sleeps)
            assert_stored(c, pk, sk)
        end)

        it("TransactionCanceled with a conflict keeps its reasons on the error", function()
            local c = new_client()
            local pk, sk = new_key()
            script(rep("canceled_conflict", 3))
            local err = raises(transact_put, c, pk, sk)
            assert.equals("TransactionConflict", err.cause.CancellationReasons[2].Code)
        end)
    end)

    describe("faults that are not retried", function()
        local cases = {
            { fault = "cond", code = "ConditionalCheckFailedException" },
            { fault = "validation", code = "ValidationException" },
            { fault = "canceled_cond", code = "TransactionCanceledException", transact = true },
        }
        for _, case in ipairs(cases) do
            it(case.fault .. ": raised after exactly 1 request", function()
                local c, sleeps = new_client()
                local pk, sk = new_key()
                script({ case.fault, "throttle", "throttle" })
                local err = raises(case.transact and transact_put or put, c, pk, sk)
                assert.equals(case.code, err.code, tostring(err))
                assert.equals(400, err.status)
                assert.is_false(err.retryable)
                assert.equals(1, err.attempts)
                assert.equals("FAULTD000001", err.request_id)
                assert.equals(1, stats().requests)
                assert.equals(1, c.stats.requests)
                assert.equals(0, c.stats.retries)
                assert.same({}, sleeps)
                if case.fault == "canceled_cond" then
                    assert.equals("ConditionalCheckFailed", err.cause.CancellationReasons[2].Code)
                end
                assert.is_nil(get(c, pk, sk)) -- not written, and the client still works
            end)
        end

        it("a malformed 200 reply is a clean MarshalError, not retried, and the client goes on", function()
            local c, sleeps = new_client()
            local pk, sk = new_key()
            script({ "malformed" })
            local err = raises(get, c, pk, sk)
            assert.equals("MarshalError", err.code, tostring(err))
            assert.is_false(err.retryable)
            assert.is_string(err.message)
            assert.equals(1, stats().requests)
            assert.same({}, sleeps)
            put(c, pk, sk)
            assert_stored(c, pk, sk)
        end)
    end)

    describe("attempts and backoff", function()
        it("max_attempts = 1 never retries", function()
            local c, sleeps = new_client({ max_attempts = 1 })
            script({ "500", "500" })
            local err = raises(put, c, new_key())
            assert.equals("InternalServerError", err.code)
            assert.is_true(err.retryable)
            assert.equals(1, stats().requests)
            assert.equals(0, c.stats.retries)
            assert.same({}, sleeps)
        end)

        it("throttling delays double from 1 s up to the 20 s cap", function()
            local c, sleeps = new_client({ max_attempts = 8, max_time_ms = 120000, random = function() return 1 end })
            local pk, sk = new_key()
            script(rep("throttle", 7))
            put(c, pk, sk)
            assert.equals(8, stats().requests)
            assert.equals(7, c.stats.retries)
            assert.same({ 1, 2, 4, 8, 16, 20, 20 }, sleeps)
            assert_stored(c, pk, sk)
        end)

        it("other retryable errors double from 50 ms", function()
            local c, sleeps = new_client({ max_attempts = 5, random = function() return 1 end })
            script({ "500", "truncated", "503", "badcrc" })
            put(c, new_key())
            assert.equals(5, stats().requests)
            assert.equals(4, #sleeps)
            for i, want in ipairs({ 0.05, 0.1, 0.2, 0.4 }) do
                assert.is_true(math.abs(sleeps[i] - want) < 1e-9, "delay " .. i .. " = " .. sleeps[i])
            end
        end)

        it("full jitter uses the whole range: random() = 0 retries at once", function()
            local c, sleeps = new_client({ random = function() return 0 end })
            script({ "throttle", "500" })
            put(c, new_key())
            assert.same({ 0, 0 }, sleeps)
        end)
    end)

    describe("retry quota", function()
        it("an endless stream of 500s drains it after 100 retries; then 1 request per call", function()
            local c, sleeps = new_client()
            script(rep("500", 200))
            local calls, exhausted_at = 0, nil
            for i = 1, 60 do
                local err = raises(put, c, new_key())
                assert.equals("InternalServerError", err.code)
                calls = i
                if err.attempts == 1 then
                    exhausted_at = i
                    assert.is_true(err.quota_exhausted)
                    break
                end
                assert.equals(3, err.attempts)
                -- (call 50 spends the last retries; whether it already says quota_exhausted is moot)
                if i < 50 then assert.is_nil(err.quota_exhausted) end
            end
            assert.equals(51, exhausted_at, "quota never ran out in " .. calls .. " calls")
            assert.equals(100, c.stats.retries)
            assert.equals(151, stats().requests)
            assert.equals(100, #sleeps)
            -- still drained: the next failure is not retried either
            local err = raises(put, c, new_key())
            assert.is_true(err.quota_exhausted)
            assert.equals(152, stats().requests)
            assert.equals(100, c.stats.retries)
        end)

        it("successes refill it, and it is per client", function()
            local c = new_client()
            script(rep("500", 153))
            for _ = 1, 51 do pcall(put, c, new_key()) end
            assert.equals(100, c.stats.retries)
            -- 5 successes refill one retry's worth (1 each, as the SDKs' NO_RETRY_INCREMENT)
            script({})
            for _ = 1, 4 do put(c, new_key()) end
            script({ "500" })
            assert.is_true(raises(put, c, new_key()).quota_exhausted)
            script({})
            put(c, new_key())
            script({ "500" })
            put(c, new_key())
            assert.equals(101, c.stats.retries)
            -- a fresh client has a full quota of its own
            local other = new_client()
            script({ "500", "500" })
            put(other, new_key())
            assert.equals(2, other.stats.retries)
        end)
    end)

    describe("slow replies", function()
        after_each(wait_idle)

        it("a reply slower than timeout_ms is a timeout, retried", function()
            local c, sleeps = new_client()
            local pk, sk = new_key()
            script({ "slow:1000" })
            local t0 = core.now()
            put(c, pk, sk)
            local elapsed = core.now() - t0
            assert.is_true(elapsed < 1.0, "took " .. elapsed .. " s")
            assert.equals(2, stats().requests)
            assert.equals(1, c.stats.retries)
            assert_backoff(sleeps, BASE, 1)
            assert_stored(c, pk, sk)
        end)

        it("slow on every attempt: TransportError timeout after 3 requests, in bounded time", function()
            local c, sleeps = new_client()
            script(rep("slow:1000", 3))
            local t0 = core.now()
            local err = raises(get, c, new_key())
            local elapsed = core.now() - t0
            assert.equals("TransportError", err.code)
            assert.equals("timeout", err.reason)
            assert.equals(0, err.status)
            assert.is_true(err.retryable)
            assert.equals(3, err.attempts)
            assert.equals(3, stats().requests)
            assert_backoff(sleeps, BASE, 2)
            -- 3 attempts of 300 ms, and backoff costs nothing here
            assert.is_true(elapsed >= 3 * TIMEOUT_MS / 1000 * 0.9, "took only " .. elapsed .. " s")
            assert.is_true(elapsed < 2.5, "took " .. elapsed .. " s")
        end)

        it("a reply slower than asked but within timeout_ms is just a reply", function()
            local c, sleeps = new_client()
            local pk, sk = new_key()
            script({ "slow:100" })
            put(c, pk, sk)
            assert.equals(1, stats().requests)
            assert.same({}, sleeps)
            assert_stored(c, pk, sk)
        end)
    end)

    describe("clock skew", function()
        it("a 'Signature expired' reply corrects the clock from Date and retries at once", function()
            local c, sleeps = new_client()
            local pk, sk = new_key()
            script({ "skew" })
            put(c, pk, sk)
            local s = stats()
            assert.equals(2, s.requests)
            assert.equals(1, s.skew_checked)
            assert.equals(1, s.skew_ok, "the retry's x-amz-date is not the server's clock")
            assert.same({}, sleeps)
            assert.equals(1, c.stats.retries) -- outside the attempt budget, but counted
            -- later calls keep the corrected clock
            script({})
            assert_stored(c, pk, sk)
            local offset = stats().date_offset
            assert.is_true(math.abs(offset - 3600) <= 60, "x-amz-date is off by " .. offset .. " s")
        end)

        it("is corrected once per call: a second skew reply raises", function()
            local c = new_client()
            script({ "skew", "skew" })
            local err = raises(put, c, new_key())
            assert.equals("InvalidSignatureException", err.code)
            assert.equals(400, err.status)
            assert.matches("^Signature expired", err.message)
            assert.equals(2, stats().requests)
        end)

        it("does not eat the attempt budget", function()
            local c = new_client()
            script({ "500", "skew", "500" })
            put(c, new_key())
            assert.equals(4, stats().requests)
            assert.equals(3, c.stats.retries)
        end)
    end)

    describe("expired credentials", function()
        local function provider()
            local p = { invalidated = 0, key = "AKIDSTALE" }
            function p.get() return { access_key_id = p.key, secret_access_key = "fake-secret" } end
            function p.invalidate()
                p.invalidated = p.invalidated + 1
                p.key = "AKIDFRESH"
            end
            return p
        end

        it("ExpiredToken: invalidates the credentials and retries once with fresh ones", function()
            local p = provider()
            local c, sleeps = new_client({ credentials_provider = p })
            local pk, sk = new_key()
            script({ "expired_token" })
            put(c, pk, sk)
            local s = stats()
            assert.equals(2, s.requests)
            assert.equals("AKIDSTALE", s["key.1"])
            assert.equals("AKIDFRESH", s["key.2"])
            assert.equals(1, p.invalidated)
            assert.same({}, sleeps)
            assert_stored(c, pk, sk)
        end)

        it("only once per call: a second ExpiredToken raises", function()
            local p = provider()
            local c = new_client({ credentials_provider = p })
            script({ "expired_token", "expired_token", "expired_token" })
            local err = raises(put, c, new_key())
            assert.equals("ExpiredTokenException", err.code)
            assert.equals(400, err.status)
            assert.equals(2, stats().requests)
            assert.equals(1, p.invalidated)
        end)

        it("works with configured static credentials too", function()
            local c = new_client()
            local pk, sk = new_key()
            script({ "expired_token" })
            put(c, pk, sk)
            local s = stats()
            assert.equals(2, s.requests)
            assert.equals("AKIDFAKE", s["key.2"])
            assert_stored(c, pk, sk)
        end)
    end)

    describe("writes that report success are stored", function()
        it("commit_then_reset: PutItem applied, reply lost, retried, stored once", function()
            local c, sleeps = new_client()
            local pk, sk = new_key()
            script({ "commit_then_reset" })
            put(c, pk, sk)
            local s = stats()
            assert.equals(2, s["op.PutItem"])
            assert.equals(2, s["applied.PutItem"]) -- PutItem is idempotent: same item twice
            assert.equals(2, s.connections)
            assert.equals(1, c.stats.retries)
            assert_backoff(sleeps, BASE, 1)
            assert_stored(c, pk, sk)
        end)

        it("commit_then_reset without retries: the error does not mean 'not written'", function()
            local c = new_client({ max_attempts = 1 })
            local pk, sk = new_key()
            script({ "commit_then_reset" })
            local err = raises(put, c, pk, sk)
            assert.equals("TransportError", err.code)
            assert.equals("reset", err.reason)
            assert_stored(c, pk, sk)
        end)

        it("every write reported as success is readable, through a mixed stream of faults", function()
            local c = new_client()
            local mix = { "throttle", "reset", "none", "500", "none", "commit_then_reset", "badcrc", "none",
                "truncated", "none", "http429", "commit_then_reset", "none", "unknown_html", "pte", "none" }
            local faults = {}
            for _ = 1, 4 do
                for _, f in ipairs(mix) do faults[#faults + 1] = f end
            end
            script(faults)
            local keys = {}
            for i = 1, 40 do
                local pk, sk = new_key()
                put(c, pk, sk)
                keys[i] = sk
            end
            assert.equals(0, stats().script_left)
            for _, sk in ipairs(keys) do assert_stored(c, "TENANT#faults", sk) end
        end)

        -- The hazard of issue 12: a conditional create whose reply is lost, retried, fails its
        -- condition against the caller's own write. A conditional write is not re-sent after a
        -- failure the server may have acted on, and the error says it may have been applied.
        it("a conditional create whose reply is lost is not re-sent, and says maybe_applied", function()
            local c, sleeps = new_client()
            local pk, sk = new_key()
            script({ "commit_then_reset" })
            local err = raises(put, c, pk, sk, { ConditionExpression = "attribute_not_exists(PK)" })
            assert.equals("TransportError", err.code)
            assert.equals("reset", err.reason)
            assert.is_true(err.sent)
            assert.equals(1, err.attempts)
            assert.is_true(err.maybe_applied)
            assert.is_false(err.retryable)
            assert.equals("not idempotent", err.gave_up)
            assert.equals("PutItem", err.op)
            assert.equals(TABLE, err.table)
            assert.matches("%(PutItem on faults; not re%-sent after 1 attempt: the write is not idempotent; "
                .. "may have been applied%)$", tostring(err))
            assert.same({}, sleeps)
            local s = stats()
            assert.equals(1, s["op.PutItem"])
            assert.equals(1, s["applied.PutItem"])
            assert_stored(c, pk, sk)
        end)

        it("a conditional write after a 500 is not re-sent; after throttling it is", function()
            local c = new_client()
            local pk, sk = new_key()
            local cond = { ConditionExpression = "attribute_not_exists(PK)" }
            script({ "500" })
            local err = raises(put, c, pk, sk, cond)
            assert.equals("InternalServerError", err.code)
            assert.is_true(err.maybe_applied)
            assert.equals(1, stats().requests)
            assert.is_nil(get(c, pk, sk)) -- faultd's 500 applies nothing: "maybe" was the honest answer
            script({ "throttle", "http429" })
            put(c, pk, sk, cond)
            assert.equals(3, stats().requests)
            assert_stored(c, pk, sk)
        end)

        it("declared idempotent: re-sent; the retry's condition failure carries the item and maybe_applied", function()
            local c = new_client()
            local pk, sk = new_key()
            script({ "commit_then_reset" })
            local ok, err = pcall(c.call, c, "PutItem", { TableName = TABLE, Item = item(pk, sk),
                ConditionExpression = "attribute_not_exists(PK)", ReturnValuesOnConditionCheckFailure = "ALL_OLD" },
                { idempotent = true })
            assert.is_false(ok)
            assert.equals("ConditionalCheckFailedException", err.code)
            assert.equals(2, err.attempts)
            assert.is_true(err.maybe_applied)
            assert.equals(sk, err.cause.Item.SK) -- what store.put_new compares with its own item
            assert.equals(1, stats()["applied.PutItem"])
            -- a condition failing on the first attempt is a plain conflict: no maybe_applied
            script({})
            err = raises(put, c, pk, sk, { ConditionExpression = "attribute_not_exists(PK)" })
            assert.equals("ConditionalCheckFailedException", err.code)
            assert.is_nil(err.maybe_applied)
            assert.equals(1, err.attempts)
        end)

        it("a truncated or bad-checksum reply to a conditional write is not re-sent either", function()
            for _, fault in ipairs({ "truncated", "badcrc" }) do
                local c = new_client()
                local pk, sk = new_key()
                script({ fault })
                local err = raises(put, c, pk, sk, { ConditionExpression = "attribute_not_exists(PK)" })
                assert.equals("TransportError", err.code, fault)
                assert.is_true(err.maybe_applied, fault)
                assert.equals(1, stats().requests, fault)
            end
        end)

        it("a transaction is re-sent after a lost reply (its ClientRequestToken makes that safe)", function()
            local c = new_client()
            local pk, sk = new_key()
            script({ "commit_then_reset" })
            transact_put(c, pk, sk)
            assert.equals(2, stats()["op.TransactWriteItems"])
            assert_stored(c, pk, sk)
        end)
    end)

    describe("defaults and limits", function()
        it("5 attempts by default", function()
            local c = new_client({ max_attempts = "default" })
            script(rep("500", 6))
            local err = raises(put, c, new_key())
            assert.equals(5, err.attempts)
            assert.equals("attempts", err.gave_up)
            assert.equals(5, stats().requests)
            assert.matches("%(PutItem on faults; gave up after 5 attempts; may have been applied%)$", tostring(err))
        end)

        it("max_time_ms: no backoff sleeps past it, and the error says so", function()
            local c = new_client({ max_attempts = 10, max_time_ms = 400, sleep = core.sleep,
                random = function() return 1 end })
            script(rep("throttle", 10))
            local t0 = core.now()
            local err = raises(put, c, new_key())
            local elapsed = core.now() - t0
            -- throttle delays 1 s, ...: the first already passes 400 ms, so one attempt and no sleep
            assert.equals(1, err.attempts)
            assert.equals("time", err.gave_up)
            assert.is_true(elapsed < 0.4, "took " .. elapsed .. " s")
            assert.matches("gave up after 1 attempt in 0%.%d s %(max_time_ms%)", tostring(err))
            -- 500s back off from 50 ms: 50 + 100 + 200 fit in 400 ms, 400 more do not
            script(rep("500", 10))
            err = raises(put, c, new_key())
            assert.equals(4, err.attempts)
            assert.equals("time", err.gave_up)
        end)
    end)
end)
