-- The two-Region simulator itself (spec/support/two_regions.lua): two real DynamoDB Locals, the
-- stream replicator between them (last writer wins) and a fault proxy in front of each, seen
-- through the library's own client. The multi-Region specs build on what this shows.
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local two = require "support.two_regions"

local TABLE = "two_regions_spec_" .. os.time() .. "_" .. math.random(1000000)
local TTL_TABLE = TABLE .. "_ttl" -- only items carrying every GSI key (DynamoDB Local's sweeper needs that)

describe("two-Region simulator", function()
    local sim, c1, c2
    local e2e = {} -- ms from a write's reply in one Region to the item read back in the other
    local lag -- the replicator's lag_ms over the lag spec's 40 writes

    setup(function()
        sim = two.start({ table = TABLE, more_tables = { TTL_TABLE } })
        c1, c2 = sim:client("r1"), sim:client("r2")
        -- already expired: DynamoDB Local's sweeper (every ~10 s) deletes it in one Region while the
        -- other specs run; the TTL spec at the end checks what came of it
        c1:call("PutItem", { TableName = TTL_TABLE, Item = { PK = "TENANT#ttl", SK = "CODE#1", GSI1PK = "CODE#x",
            GSI1SK = "CODE#1", GSI2PK = "T#ttl", GSI2SK = "CODE#1", ttl = os.time() - 60 } })
    end)

    teardown(function()
        if sim then
            table.sort(e2e)
            local function pct(p) return e2e[math.max(1, math.ceil(p * #e2e))] or -1 end
            if lag then
                print(("\ntwo_regions: replicator lag (stamp -> applied) p50 %.1f ms, p95 %.1f ms, max %.1f ms"
                    .. " (n %d); write -> visible in the other Region p50 %.1f ms, p95 %.1f ms (n %d)"):format(
                    lag.p50, lag.p95, lag.max, lag.n, pct(0.5), pct(0.95), #e2e))
            end
            sim:stop()
        end
    end)

    local function get(c, pk, sk)
        return c:call("GetItem", { TableName = TABLE, Key = { PK = pk, SK = sk }, ConsistentRead = true }).Item
    end

    local function put(c, item)
        c:call("PutItem", { TableName = TABLE, Item = item })
    end

    -- polls until f() is truthy; -> ms waited; fails after `seconds` (default 5)
    local function wait_for(what, f, seconds)
        local t0 = core.now()
        while not f() do
            if core.now() - t0 > (seconds or 5) then error("timed out waiting for " .. what, 2) end
            core.sleep(0.002)
        end
        return (core.now() - t0) * 1000
    end

    local raises = require "support.raises"

    -- waits until the replicator has read n more records from region than `before` says
    local function read_count(region) return sim:stats().read[region] or 0 end

    describe("replication", function()
        it("replicates each write within a bounded lag, both ways", function()
            sim:reset_stats()
            for i = 1, 40 do
                local from, to = c1, c2
                if i % 2 == 0 then from, to = c2, c1 end
                put(from, { PK = "TENANT#lag", SK = "ITEM#" .. i, v = i })
                e2e[#e2e + 1] = wait_for("item " .. i, function() return get(to, "TENANT#lag", "ITEM#" .. i) ~= nil end)
            end
            sim:drain()
            local s = sim:stats()
            assert.equals(20, s.by_table[TABLE]["r1->r2"])
            assert.equals(20, s.by_table[TABLE]["r2->r1"])
            assert.is_true(s.lag_ms.n >= 40) -- the TTL table's records may count too
            assert.is_true(s.lag_ms.p95 < 1000, "p95 " .. s.lag_ms.p95 .. " ms")
            lag = s.lag_ms
        end)

        it("Put, Update and Delete in one Region appear in the other, both ways", function()
            for _, dir in ipairs({ { c1, c2, "r1" }, { c2, c1, "r2" } }) do
                local from, to, name = dir[1], dir[2], dir[3]
                local pk = "TENANT#crud-" .. name
                -- every kind of value: the update's apply is conditional on all of them being equal
                put(from, { PK = pk, SK = "USER#1", email = "a@example.com", n = 1, tags = aws.set({ "x", "y" }),
                    m = { deep = { 1, 2 } }, z = aws.null, yes = true, b = aws.binary("\0\1") })
                e2e[#e2e + 1] = wait_for("the put", function() return get(to, pk, "USER#1") ~= nil end)
                local got = get(to, pk, "USER#1")
                assert.equals("a@example.com", got.email)
                assert.equals(1, got.n)
                assert.same({ 1, 2 }, got.m.deep)
                from:call("UpdateItem", {
                    TableName = TABLE, Key = { PK = pk, SK = "USER#1" },
                    UpdateExpression = "SET #n = #n + :one, #e = :e REMOVE #m",
                    ExpressionAttributeNames = { ["#n"] = "n", ["#e"] = "email", ["#m"] = "m" },
                    ExpressionAttributeValues = { [":one"] = 1, [":e"] = "b@example.com" },
                })
                e2e[#e2e + 1] = wait_for("the update", function()
                    local it = get(to, pk, "USER#1")
                    return it and it.n == 2
                end)
                got = get(to, pk, "USER#1")
                assert.equals("b@example.com", got.email)
                assert.is_nil(got.m)
                from:call("DeleteItem", { TableName = TABLE, Key = { PK = pk, SK = "USER#1" } })
                e2e[#e2e + 1] = wait_for("the delete", function() return get(to, pk, "USER#1") == nil end)
            end
            sim:drain()
            assert.same({}, sim:diff())
        end)

        it("a TransactWriteItems of 3 items arrives whole; a REMOVE of an item with GSI keys replicates", function()
            local pk = "TENANT#tx"
            c1:call("TransactWriteItems", { TransactItems = {
                { Put = { TableName = TABLE, Item = { PK = pk, SK = "USER#u1", GSI1PK = "EMAIL#x@example.com",
                    GSI1SK = "USER#u1", name = "x" }, ConditionExpression = "attribute_not_exists(PK)" } },
                { Put = { TableName = TABLE, Item = { PK = pk, SK = "UNIQUE#EMAIL#x@example.com", ref = "u1" },
                    ConditionExpression = "attribute_not_exists(PK)" } },
                { Put = { TableName = TABLE, Item = { PK = pk, SK = "UNIQUE#USERNAME#x", ref = "u1" },
                    ConditionExpression = "attribute_not_exists(PK)" } },
            } })
            sim:drain()
            for _, sk in ipairs({ "USER#u1", "UNIQUE#EMAIL#x@example.com", "UNIQUE#USERNAME#x" }) do
                assert.is_not_nil(get(c2, pk, sk), sk)
            end
            assert.equals("EMAIL#x@example.com", get(c2, pk, "USER#u1").GSI1PK)
            local byemail = c2:call("Query", { TableName = TABLE, IndexName = "GSI1",
                KeyConditionExpression = "GSI1PK = :p", ExpressionAttributeValues = { [":p"] = "EMAIL#x@example.com" } })
            assert.equals(1, #byemail.Items)
            -- deleted in r2: r2's REMOVE record carries GSI1PK/GSI1SK in Keys; the delete in r1 uses PK/SK
            c2:call("DeleteItem", { TableName = TABLE, Key = { PK = pk, SK = "USER#u1" } })
            sim:drain()
            assert.is_nil(get(c1, pk, "USER#u1"))
            assert.same({}, sim:diff())
        end)

        it("concurrent writes to the same keys in both Regions converge to the same items", function()
            for i = 1, 25 do
                local k = { PK = "TENANT#race", SK = "CODE#" .. i }
                put(c1, { PK = k.PK, SK = k.SK, by = "r1", i = i })
                put(c2, { PK = k.PK, SK = k.SK, by = "r2", i = i })
                if i % 5 == 0 then c1:call("DeleteItem", { TableName = TABLE, Key = { PK = k.PK, SK = "CODE#" .. (i - 1) } }) end
            end
            sim:drain()
            assert.same({}, sim:diff())
            local s = sim:stats()
            assert.equals(0, s.backlog)
            assert.is_true((s.echoes.r1 or 0) + (s.echoes.r2 or 0) > 0, "echoes are dropped, not re-applied")
        end)

        it("last writer wins by the replicator's order: the later write is kept in both Regions", function()
            sim:pause()
            local n1 = read_count("r1")
            put(c1, { PK = "TENANT#lww", SK = "S#1", v = "first, in r1" })
            wait_for("r1's record to be read", function() return read_count("r1") > n1 end)
            local n2 = read_count("r2")
            put(c2, { PK = "TENANT#lww", SK = "S#1", v = "second, in r2" })
            wait_for("r2's record to be read", function() return read_count("r2") > n2 end)
            -- and the other way round on a second key
            n2 = read_count("r2")
            put(c2, { PK = "TENANT#lww", SK = "S#2", v = "first, in r2" })
            wait_for("r2's record to be read", function() return read_count("r2") > n2 end)
            n1 = read_count("r1")
            c1:call("DeleteItem", { TableName = TABLE, Key = { PK = "TENANT#lww", SK = "S#2" } })
            put(c1, { PK = "TENANT#lww", SK = "S#2", v = "second, in r1" })
            wait_for("r1's records to be read", function() return read_count("r1") > n1 end)
            local before = sim:stats().superseded
            sim:heal()
            sim:drain()
            assert.equals("second, in r2", get(c1, "TENANT#lww", "S#1").v)
            assert.equals("second, in r2", get(c2, "TENANT#lww", "S#1").v)
            assert.equals("second, in r1", get(c1, "TENANT#lww", "S#2").v)
            assert.equals("second, in r1", get(c2, "TENANT#lww", "S#2").v)
            assert.is_true(sim:stats().superseded > before, "older records were skipped")
            assert.same({}, sim:diff())
        end)

        it("an apply never overwrites a newer write the replicator has not read yet", function()
            sim:stall("r1") -- r1's writes stay unread, applies to r1 go on
            put(c1, { PK = "TENANT#stall", SK = "K1", v = "r1, read last" })
            local before = sim:stats().superseded
            put(c2, { PK = "TENANT#stall", SK = "K1", v = "r2, read first" })
            -- r2's record reaches r1 as a put conditional on the item being absent: it fails
            wait_for("the failed apply", function() return sim:stats().superseded > before end)
            assert.equals("r1, read last", get(c1, "TENANT#stall", "K1").v)
            sim:unstall("r1")
            sim:drain()
            assert.equals("r1, read last", get(c2, "TENANT#stall", "K1").v)
            assert.same({}, sim:diff())
        end)

        it("an apply that met absent -> written -> deleted by chance is undone (repair)", function()
            sim:stall("r1")
            put(c1, { PK = "TENANT#stall", SK = "K2", v = "r1" })
            c1:call("DeleteItem", { TableName = TABLE, Key = { PK = "TENANT#stall", SK = "K2" } })
            local s0 = sim:stats()
            put(c2, { PK = "TENANT#stall", SK = "K2", v = "r2, older than r1's delete" })
            -- the condition (absent) holds in r1 again, so the apply goes through
            wait_for("the apply to r1", function()
                return (sim:stats().applied["r2->r1"] or 0) > (s0.applied["r2->r1"] or 0)
            end)
            assert.equals("r2, older than r1's delete", get(c1, "TENANT#stall", "K2").v)
            sim:unstall("r1")
            sim:drain()
            -- r1's put and delete are read after r2's put: the delete is the last write, in both Regions
            assert.is_nil(get(c1, "TENANT#stall", "K2"))
            assert.is_nil(get(c2, "TENANT#stall", "K2"))
            assert.equals(s0.repairs + 1, sim:stats().repairs)
            assert.same({}, sim:diff())
        end)

        it("drain refuses to wait on a stalled stream", function()
            sim:stall("r2")
            local ok, err = pcall(sim.drain, sim, 2000)
            sim:unstall("r2")
            assert.is_false(ok)
            assert.matches("stalled", tostring(err))
            sim:drain()
        end)

        it("pause -> both sides diverge -> heal -> drain -> every item equal in both Regions", function()
            sim:pause()
            for i = 1, 30 do
                put(c1, { PK = "TENANT#part", SK = "A#" .. i, v = i })
                put(c2, { PK = "TENANT#part", SK = "B#" .. i, v = i })
                put(i % 2 == 0 and c1 or c2, { PK = "TENANT#part", SK = "SHARED#" .. (i % 7), v = i })
            end
            wait_for("the replicator to read the writes", function() return sim:stats().backlog >= 60 end)
            assert.is_nil(get(c2, "TENANT#part", "A#1"), "nothing is applied during a partition")
            assert.is_nil(get(c1, "TENANT#part", "B#30"))
            assert.is_true(#sim:diff() >= 60)
            local ok, err = pcall(sim.drain, sim, 2000)
            assert.is_false(ok)
            assert.matches("paused", tostring(err))
            sim:heal()
            sim:drain()
            assert.same({}, sim:diff())
            local items = sim:scan("r1")
            local n = 0
            for _, it in ipairs(items) do if it.PK == "TENANT#part" then n = n + 1 end end
            assert.equals(67, n)
        end)

        it("delay holds each record back by the given time", function()
            sim:delay(200)
            local t0 = core.now()
            put(c1, { PK = "TENANT#delay", SK = "X", v = 1 })
            local waited = wait_for("the delayed apply", function() return get(c2, "TENANT#delay", "X") ~= nil end)
            sim:delay(0)
            assert.is_true((core.now() - t0) * 1000 >= 200, ("applied after %.0f ms"):format(waited))
            sim:drain()
        end)
    end)

    describe("fault proxies, through the client", function()
        after_each(function()
            sim:fault("r1", "pass")
            sim:fault("r2", "pass")
        end)

        it("refuse: connect errors, for new and kept-alive connections; pass listens again", function()
            local c = sim:client("r1", { max_attempts = 2 })
            assert.is_nil(get(c, "TENANT#none", "X")) -- a kept-alive connection now exists
            sim:fault("r1", "refuse")
            local t0 = core.now()
            local err = raises(get, c, "TENANT#none", "X")
            assert.equals("TransportError", err.code, tostring(err))
            assert.equals("connect", err.reason, tostring(err))
            assert.is_true(core.now() - t0 < 2)
            assert.is_true(sim:proxy_stats("r1").reset >= 1, "the kept-alive connection was reset")
            local fresh = sim:client("r1", { max_attempts = 1 })
            assert.equals("connect", raises(get, fresh, "TENANT#none", "X").reason)
            assert.is_nil(get(c2, "TENANT#none", "X"), "the other Region is unaffected")
            sim:fault("r1", "pass")
            assert.is_nil(get(c, "TENANT#none", "X"))
            assert.is_nil(get(fresh, "TENANT#none", "X"))
        end)

        it("blackhole: a client with timeout_ms times out", function()
            local c = sim:client("r2", { max_attempts = 1, timeout_ms = 300 })
            sim:fault("r2", "blackhole")
            local t0 = core.now()
            local err = raises(get, c, "TENANT#none", "X")
            local took = core.now() - t0
            assert.equals("TransportError", err.code, tostring(err))
            assert.equals("timeout", err.reason, tostring(err))
            assert.is_true(took >= 0.29 and took < 1.5, "took " .. took)
            assert.is_true(sim:proxy_stats("r2").blackholed >= 1)
        end)

        it("503: every request answered 503 with DynamoDB's error, nothing forwarded", function()
            local c = sim:client("r1", { max_attempts = 2 })
            sim:fault("r1", "503")
            local before = sim:proxy_stats("r1")
            local err = raises(put, c, { PK = "TENANT#503", SK = "X" })
            assert.equals(503, err.status, tostring(err))
            assert.equals("ServiceUnavailable", err.code)
            local after = sim:proxy_stats("r1")
            assert.equals(2, after.answered_503 - before.answered_503)
            assert.equals(before.forwarded, after.forwarded)
            sim:fault("r1", "pass")
            assert.is_nil(get(c, "TENANT#503", "X"), "the write never reached DynamoDB")
        end)

        it("delay: requests are forwarded late", function()
            local c = sim:client("r1")
            sim:fault("r1", "delay", 150)
            local t0 = core.now()
            assert.is_nil(get(c, "TENANT#none", "X"))
            assert.is_true(core.now() - t0 >= 0.15)
        end)

        it("bad modes are refused by the proxy", function()
            assert.has_error(function() sim:fault("r1", "melt") end)
        end)
    end)

    describe("TTL", function()
        it("a TTL delete replicates: its REMOVE's Keys carry the GSI keys, the delete uses PK/SK", function()
            local key = { PK = "TENANT#ttl", SK = "CODE#1" }
            local function gone(c)
                return c:call("GetItem", { TableName = TTL_TABLE, Key = key, ConsistentRead = true }).Item == nil
            end
            wait_for("a TTL sweep", function() return gone(c1) or gone(c2) end, 20)
            sim:drain()
            assert.is_true(gone(c1) and gone(c2))
            assert.same({}, sim:diff(TTL_TABLE))
            local s = sim:stats()
            assert.equals(0, s.errors, tostring(s.last_error)) -- a delete keyed by the REMOVE's Keys is a ValidationException
            assert.is_true(s.read.r1 > 0 and s.read.r2 > 0)
        end)
    end)
end)
