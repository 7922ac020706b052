-- Multi-Region through the REAL adapters on two real DynamoDB Locals (spec/support/two_regions.lua:
-- stream replication with last writer wins, a fault proxy in front of each Region), with one
-- aws.global router per Region (local_region r1 and r2; every tenant's home is r1 unless moved):
-- the MREC hazards happen with "warn"; "refuse" and "forward" prevent them; replication converges;
-- a home-Region outage (port refused, blackhole, 503) opens the breaker in a measured time, reads go
-- on from the other Region and security writes fail closed; an evacuation (freeze, wait, set_home,
-- unfreeze) loses nothing; client:changes in r2 carries r1's replicated writes and resumes from a
-- checkpoint.
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"
local two = require "support.two_regions"

local TABLE = "multi_region_spec_" .. os.time() .. "_" .. math.random(1000000)
local FUTURE = "2099-01-01T00:00:00.000Z"
-- small client and breaker settings, so that outages are detected in about a second
local CLIENT = { max_attempts = 2, timeout_ms = 300 }
local BREAKER = { threshold = 3, window_ms = 10000, cooldown_ms = 400 }

describe("multi-Region through the adapters (two DynamoDB Locals)", function()
    local sim
    local lag -- the replicator's lag_ms over ordinary writes (the replication spec)
    local figures = {}

    setup(function()
        sim = two.start({ table = TABLE })
    end)

    teardown(function()
        if sim then
            if lag then
                print(("\nmulti_region: replication lag (replicator stamp -> applied) p50 %.1f ms, p95 %.1f ms,"
                    .. " max %.1f ms (n %d)"):format(lag.p50, lag.p95, lag.max, lag.n))
            end
            for _, f in ipairs(figures) do print("multi_region: " .. f) end
            sim:stop()
        end
    end)

    after_each(function()
        sim:heal()
        sim:fault("r1", "pass")
        sim:fault("r2", "pass")
    end)

    -- A router in Region `where`, over its own clients through the fault proxies.
    local function router(where, foreign, extra)
        local logged = {}
        local conf = {
            local_region = where,
            regions = { r1 = sim:client("r1", CLIENT), r2 = sim:client("r2", CLIENT) },
            home = { default = "r1" },
            foreign_security_write = foreign,
            breaker = BREAKER,
            tableName = TABLE,
            log = function(event, info) logged[#logged + 1] = { event = event, info = info } end,
        }
        for k, v in pairs(extra or {}) do conf[k] = v end
        local r = aws.global.new(conf)
        return r, aws.create_adapters(r, { tableName = TABLE }), logged
    end

    local raises = require "support.raises"

    local function requests(name) return sim:proxy_stats(name).requests end

    -- the items of a tenant (every partition of it) in a Region, straight from DynamoDB Local
    local function tenant_items(name, tenant)
        local prefix = "TENANT#" .. tenant
        local out = {}
        for _, it in ipairs(sim:scan(name)) do
            if it.PK == prefix or it.PK:sub(1, #prefix + 1) == prefix .. "#" then out[#out + 1] = it end
        end
        return out
    end

    local function find(name, pk, sk)
        for _, it in ipairs(sim:scan(name)) do
            if it.PK == pk and it.SK == sk then return it end
        end
        return nil
    end

    -- USER items and GSI1 email entries of an email in a Region
    local function accounts(name, tenant, email)
        local gsi1 = schema.keys.user_email_index(tenant, email).GSI1PK
        local users, entries = 0, 0
        for _, it in ipairs(tenant_items(name, tenant)) do
            if it.entityType == "USER" and it.email == email then users = users + 1 end
            if it.GSI1PK == gsi1 then entries = entries + 1 end
        end
        return users, entries
    end

    local function user(id, email)
        return { user_id = id, email = email, provider = "auth2", connection = "Username-Password-Authentication",
            is_social = false }
    end

    local function code(id)
        return { code_id = id, code_type = "otp", login_id = "login-1", expires_at = FUTURE }
    end

    local DEVICE = { initial_user_agent = "ua", initial_ip = "192.0.2.1", initial_asn = "AS1", last_user_agent = "ua",
        last_ip = "192.0.2.1", last_asn = "AS1" }

    local function token(id, family)
        return { id = id, login_id = "login-1", user_id = "auth2|rt", client_id = "app", expires_at = FUTURE,
            device = DEVICE, resource_servers = core.array({ { audience = "https://api", scopes = "openid" } }),
            rotating = true, token_lookup = "lookup-" .. id, token_hash = "hash-" .. id, family_id = family }
    end

    -- AuthHero's rotation (refresh_token grant, rotating): the successor is created in the family,
    -- then the old token is updated with rotated_to / rotated_at / family_id; touching family_id
    -- makes the adapter's update conditional (the stored family_id must equal it). `old` is the
    -- token as the exchange read it.
    local function rotate(a, tenant, old, new_id)
        local family = old.family_id or old.id
        a.refreshTokens.create(tenant, token(new_id, family))
        return a.refreshTokens.update(tenant, old.id, { rotated_to = new_id,
            rotated_at = old.rotated_at or "2026-06-01T00:00:00.000Z", family_id = family })
    end

    local function family_size(name, tenant, family)
        local n = 0
        for _, it in ipairs(tenant_items(name, tenant)) do
            if it.entityType == "REFRESH_TOKEN" and it.family_id == family then n = n + 1 end
        end
        return n
    end

    describe("replication", function()
        it("ordinary writes through both Regions' routers replicate within a bounded lag", function()
            local g1, a1 = router("r1")
            local g2, a2 = router("r2")
            sim:drain()
            sim:reset_stats()
            for i = 1, 30 do
                a1.branding.set("lag-" .. i, { colors = { primary = "#000000" } })
                a2.branding.set("lag-r2-" .. i, { colors = { primary = "#ffffff" } })
            end
            sim:drain()
            local s = sim:stats()
            assert.equals(30, s.applied["r1->r2"])
            assert.equals(30, s.applied["r2->r1"])
            assert.equals(60, s.lag_ms.n)
            assert.is_true(s.lag_ms.p95 < 1000, "p95 " .. s.lag_ms.p95 .. " ms")
            lag = s.lag_ms
            -- an ordinary write stays in the router's own Region
            local before1, before2 = g1.clients.r2.stats.requests, g2.clients.r1.stats.requests
            a1.branding.set("lag-local", { colors = { primary = "#111111" } })
            a2.branding.set("lag-local-2", { colors = { primary = "#222222" } })
            assert.equals(before1, g1.clients.r2.stats.requests)
            assert.equals(before2, g2.clients.r1.stats.requests)
        end)
    end)

    describe("with foreign_security_write = \"warn\", the MREC hazards happen", function()
        local T = "hz-warn"
        local a1, a2, logged2

        before_each(function()
            a1 = select(2, router("r1", "warn"))
            a2, logged2 = select(2, router("r2", "warn"))
        end)

        it("the same email signs up in both Regions during a partition: two accounts after heal", function()
            sim:pause()
            a1.users.create(T, user("auth2|a", "ann@example.com"))
            a2.users.create(T, user("auth2|b", "ann@example.com"))
            assert.equals("warn", logged2[#logged2].event)
            sim:heal()
            sim:drain()
            for _, name in ipairs({ "r1", "r2" }) do
                local users, entries = accounts(name, T, "ann@example.com")
                assert.equals(2, users, name)
                assert.equals(2, entries, name)
            end
            assert.same({}, sim:diff())
            -- in one Region the guard holds: a third sign-up is refused
            assert.equals(409, raises(a1.users.create, T, user("auth2|c", "ann@example.com")).status)
        end)

        it("a one-time code is consumed in both Regions during a partition", function()
            a1.codes.create(T, code("otp-1"))
            sim:drain()
            sim:pause()
            assert.is_true(a1.codes.consume(T, "otp-1"))
            assert.is_true(a2.codes.consume(T, "otp-1"))
            sim:heal()
            sim:drain()
            assert.same({}, sim:diff())
            -- and in one Region, a second consume is refused by the condition
            assert.is_false(a1.codes.consume(T, "otp-1"))
        end)

        it("a conditional refresh-token rotation succeeds in both Regions: one successor silently lost", function()
            a1.refreshTokens.create(T, token("rt0", "rt0"))
            sim:drain()
            local seen1, seen2 = a1.refreshTokens.get(T, "rt0"), a2.refreshTokens.get(T, "rt0")
            sim:pause()
            assert.is_true(rotate(a1, T, seen1, "rt1-r1"))
            assert.is_true(rotate(a2, T, seen2, "rt1-r2"))
            sim:heal()
            sim:drain()
            assert.same({}, sim:diff())
            local to1, to2 = find("r1", "TENANT#" .. T, "REFRESH_TOKEN#rt0"), find("r2", "TENANT#" .. T, "REFRESH_TOKEN#rt0")
            assert.equals(to1.rotated_to, to2.rotated_to)
            assert.is_truthy(to1.rotated_to == "rt1-r1" or to1.rotated_to == "rt1-r2", tostring(to1.rotated_to))
            -- both successors live in the family, but rt0 names only one of them
            assert.equals(3, family_size("r1", T, "rt0"))
            assert.equals(3, family_size("r2", T, "rt0"))
            assert.is_not_nil(a1.refreshTokens.get(T, "rt1-r1"))
            assert.is_not_nil(a1.refreshTokens.get(T, "rt1-r2"))
        end)
    end)

    describe("with the default \"refuse\", none of them can happen", function()
        local T = "hz-refuse"
        local a1, f2, a2

        before_each(function()
            a1 = select(2, router("r1"))
            f2, a2 = router("r2")
        end)

        -- f() in the r2 router must raise WrongRegion naming r1 and send nothing to r2
        local function refused_in_r2(f, ...)
            local proxy, client = requests("r2"), f2.clients.r2.stats.requests
            local err = raises(f, ...)
            assert.equals("WrongRegion", err.code, tostring(err))
            assert.equals(421, err.status)
            assert.equals("r1", err.home_region)
            assert.equals("r2", err.region)
            assert.equals(T, err.tenant)
            assert.equals(proxy, requests("r2"), "requests reached r2")
            assert.equals(client, f2.clients.r2.stats.requests)
            return err
        end

        it("sign-up: r2 gets WrongRegion, r1 creates the account; one account after heal", function()
            sim:pause()
            refused_in_r2(a2.users.create, T, user("auth2|b", "bob@example.com"))
            a1.users.create(T, user("auth2|a", "bob@example.com"))
            sim:heal()
            sim:drain()
            for _, name in ipairs({ "r1", "r2" }) do
                local users, entries = accounts(name, T, "bob@example.com")
                assert.equals(1, users, name)
                assert.equals(1, entries, name)
            end
            assert.is_nil(find("r2", "TENANT#" .. T, "USER#auth2|b"))
        end)

        it("a one-time code is consumed once", function()
            a1.codes.create(T, code("otp-1"))
            sim:drain()
            sim:pause()
            refused_in_r2(a2.codes.consume, T, "otp-1")
            assert.is_true(a1.codes.consume(T, "otp-1"))
            sim:heal()
            sim:drain()
            assert.is_false(a1.codes.consume(T, "otp-1"))
            local c1, c2 = find("r1", "TENANT#" .. T, "CODE#otp-1"), find("r2", "TENANT#" .. T, "CODE#otp-1")
            assert.is_string(c1.used_at)
            assert.equals(c1.used_at, c2.used_at)
        end)

        it("the rotation happens once", function()
            a1.refreshTokens.create(T, token("rt0", "rt0"))
            sim:drain()
            local seen1, seen2 = a1.refreshTokens.get(T, "rt0"), a2.refreshTokens.get(T, "rt0")
            sim:pause()
            refused_in_r2(rotate, a2, T, seen2, "rt1-r2")
            refused_in_r2(a2.refreshTokens.update, T, "rt0",
                { rotated_to = "rt1-r2", rotated_at = "2026-06-01T00:00:00.000Z", family_id = "rt0" })
            assert.is_true(rotate(a1, T, seen1, "rt1-r1"))
            sim:heal()
            sim:drain()
            for _, name in ipairs({ "r1", "r2" }) do
                assert.equals("rt1-r1", find(name, "TENANT#" .. T, "REFRESH_TOKEN#rt0").rotated_to, name)
                assert.equals(2, family_size(name, T, "rt0"), name)
            end
        end)

        it("\"forward\": the r2 router sends the write to r1, where it is applied once", function()
            local g, a, logged = router("r2", "forward")
            local TF = "hz-forward"
            local before1, before2 = requests("r1"), requests("r2")
            a.users.create(TF, user("auth2|f", "fay@example.com"))
            a.codes.create(TF, code("otp-f"))
            assert.is_true(a.codes.consume(TF, "otp-f"))
            assert.equals(before2, requests("r2"), "nothing was written in r2")
            assert.equals(before1 + 3, requests("r1"))
            assert.equals(0, g.clients.r2.stats.requests)
            assert.equals("forward", logged[#logged].event)
            assert.equals("r1", logged[#logged].info.to)
            -- applied in r1: its conditions hold there
            assert.is_false(a1.codes.consume(TF, "otp-f"))
            assert.is_false(a.codes.consume(TF, "otp-f"))
            assert.equals(409, raises(a1.users.create, TF, user("auth2|g", "fay@example.com")).status)
            sim:drain()
            assert.equals(1, (accounts("r2", TF, "fay@example.com")))
        end)
    end)

    describe("a home-Region outage", function()
        local T = "outage"

        for _, mode in ipairs({ "refuse", "blackhole", "503" }) do
            it(mode .. ": the breaker opens in bounded time, reads go on from r2, security writes fail closed",
                function()
                    local g, a = router("r1")
                    local id, cid = "auth2|o-" .. mode, "otp-" .. mode
                    a.users.create(T, user(id, mode .. "@example.com"))
                    a.codes.create(T, code(cid))
                    sim:drain()
                    assert.equals("closed", (g:breaker("r1")))
                    sim:fault("r1", mode)
                    local served = requests("r2")
                    local t0 = core.now()
                    local reads, opened = 0, nil
                    repeat
                        local got = a.users.get(T, id) -- consistent: home r1 first, then r2
                        assert.equals(mode .. "@example.com", got.email)
                        reads = reads + 1
                        if g:breaker("r1") == "open" then opened = core.now() - t0 end
                    until opened or core.now() - t0 > 10
                    assert.is_number(opened, "the breaker did not open")
                    -- threshold failed calls, each max_attempts x timeout_ms at most (blackhole)
                    local bound = BREAKER.threshold * CLIENT.max_attempts * CLIENT.timeout_ms / 1000 + 1
                    assert.is_true(opened < bound, ("opened after %.2f s"):format(opened))
                    assert.equals(BREAKER.threshold, reads)
                    assert.equals(served + reads, requests("r2"), "each read was served by r2")
                    figures[#figures + 1] = ("home Region %s: breaker open after %.3f s (%d reads, all answered"
                        .. " from r2; threshold %d, max_attempts %d, timeout_ms %d)"):format(mode, opened, reads,
                        BREAKER.threshold, CLIENT.max_attempts, CLIENT.timeout_ms)
                    -- open: reads skip r1 (not even tried), security writes fail closed: never made in r2
                    local tried = g.clients.r1.stats.requests
                    assert.equals(mode .. "@example.com", a.users.get(T, id).email)
                    local before = requests("r2")
                    for _, f in ipairs({
                        function() return a.codes.consume(T, cid) end,
                        function() return a.users.create(T, user(id .. "-2", "two-" .. mode .. "@example.com")) end,
                    }) do
                        local err = raises(f)
                        assert.equals("RegionUnavailable", err.code, tostring(err))
                        assert.equals(503, err.status)
                        assert.equals("r1", err.region)
                        assert.equals("r1", err.home_region)
                    end
                    assert.equals(before, requests("r2"), "a security write reached r2")
                    assert.equals(tried, g.clients.r1.stats.requests, "an open Region was tried")
                    assert.is_nil(find("r2", "TENANT#" .. T, "USER#" .. id .. "-2"))
                    assert.is_nil(find("r2", "TENANT#" .. T, "CODE#" .. cid).used_at)
                    -- back: after the cool-down one probe closes the breaker
                    sim:fault("r1", "pass")
                    core.sleep(BREAKER.cooldown_ms / 1000 + 0.05)
                    assert.equals("half_open", (g:breaker("r1")))
                    local before1 = requests("r1")
                    assert.equals(mode .. "@example.com", a.users.get(T, id).email)
                    assert.equals(before1 + 1, requests("r1"), "the probe went to r1")
                    assert.equals("closed", (g:breaker("r1")))
                    assert.is_true(a.codes.consume(T, cid))
                    sim:drain()
                    assert.is_string(find("r2", "TENANT#" .. T, "CODE#" .. cid).used_at)
                end)
        end
    end)

    describe("evacuation", function()
        it("freeze, wait 10x the maximum lag, set_home r2, unfreeze: nothing is lost", function()
            local T = "evac"
            local e1, a1 = router("r1")
            local e2, a2 = router("r2")
            sim:drain()
            sim:reset_stats()
            -- the tenant's life in r1 (its home) and some ordinary writes in r2
            for i = 1, 5 do
                a1.users.create(T, user("auth2|e" .. i, "e" .. i .. "@example.com"))
                a1.codes.create(T, code("otp-" .. i))
            end
            a1.refreshTokens.create(T, token("rt-e", "rt-e"))
            assert.is_true(a1.codes.consume(T, "otp-1"))
            a2.branding.set(T, { colors = { primary = "#123456" } })
            a1.logs.create(T, { type = "s", date = "2026-01-01T00:00:00.000Z", description = "before", ip = "192.0.2.1",
                isMobile = false })
            -- 1. freeze in every Region's router
            e1:freeze(T)
            e2:freeze(T)
            local b1, b2 = requests("r1"), requests("r2")
            for _, f in ipairs({ function() return a1.codes.consume(T, "otp-2") end,
                function() return a2.codes.consume(T, "otp-2") end,
                function() return a1.users.create(T, user("auth2|x", "x@example.com")) end }) do
                local err = raises(f)
                assert.equals("RegionFrozen", err.code, tostring(err))
                assert.equals(503, err.status)
            end
            assert.equals(b1, requests("r1"))
            assert.equals(b2, requests("r2"))
            -- 2. the runbook's wait (no drain): every item of the old home has reached the new one;
            -- the recent maximum lag: this test's applies so far and the replication spec's
            local max = math.max(sim:stats().lag_ms.max or 0, lag and lag.max or 0)
            if max == 0 then max = 100 end
            local wait = 10 * max / 1000
            core.sleep(wait)
            figures[#figures + 1] = ("evacuation: waited %.0f ms (10 x max lag %.1f ms)"):format(wait * 1000, max)
            local old_home = tenant_items("r1", T)
            assert.is_true(#old_home >= 12, #old_home .. " items")
            local in_r2 = {}
            for _, it in ipairs(tenant_items("r2", T)) do in_r2[it.PK .. "\0" .. it.SK] = two.render(it) end
            for _, it in ipairs(old_home) do
                assert.equals(two.render(it), in_r2[it.PK .. "\0" .. it.SK], it.PK .. " " .. it.SK)
            end
            -- 3. move, 4. unfreeze
            e1:set_home(T, "r2")
            e2:set_home(T, "r2")
            e1:unfreeze(T)
            e2:unfreeze(T)
            assert.is_true(a2.codes.consume(T, "otp-2"))
            a2.users.create(T, user("auth2|e6", "e6@example.com"))
            assert.equals(409, raises(a2.users.create, T, user("auth2|e7", "e1@example.com")).status)
            assert.is_false(a2.codes.consume(T, "otp-1"), "consumed in r1 before the move")
            local err = raises(a1.codes.consume, T, "otp-3")
            assert.equals("WrongRegion", err.code)
            assert.equals("r2", err.home_region)
            assert.equals("r1", err.region)
            sim:drain()
            assert.same({}, sim:diff())
            assert.is_not_nil(find("r1", "TENANT#" .. T, "USER#auth2|e6"))
            assert.is_string(find("r1", "TENANT#" .. T, "CODE#otp-2").used_at)
        end)
    end)

    describe("change streams", function()
        it("r2's changes carry r1's replicated writes and resume from a checkpoint", function()
            local T = "changes"
            local _, a1 = router("r1")
            local g2 = router("r2")
            sim:drain()
            local function read(opts)
                local out = {}
                local next_change, feed = g2:changes(TABLE, opts)
                for ev in next_change do out[#out + 1] = ev end
                return out, feed
            end
            local _, start = read() -- everything so far
            for i = 1, 4 do a1.users.create(T, user("auth2|c" .. i, "c" .. i .. "@example.com")) end
            sim:drain()
            local expect = {}
            for _, it in ipairs(tenant_items("r1", T)) do expect[it.PK .. "\0" .. it.SK] = true end
            local n = 0
            for _ in pairs(expect) do n = n + 1 end
            assert.equals(8, n) -- a user and its email guard each
            -- read part, keep the checkpoint, resume with a new iterator
            local seen = {}
            local next_change, feed = g2:changes(TABLE, { checkpoint = start:checkpoint_copy(), limit = 3 })
            for _ = 1, 3 do seen[#seen + 1] = next_change() end
            local rest = read({ checkpoint = feed:checkpoint_copy(), limit = 2 })
            for _, ev in ipairs(rest) do seen[#seen + 1] = ev end
            local got, seqs = {}, {}
            for _, ev in ipairs(seen) do
                assert.is_nil(seqs[ev.sequence], "repeated " .. ev.sequence)
                seqs[ev.sequence] = true
                assert.equals("INSERT", ev.event)
                local k = ev.keys.PK .. "\0" .. ev.keys.SK
                assert.is_nil(got[k], "repeated " .. k)
                got[k] = true
            end
            assert.same(expect, got)
        end)
    end)

    describe("convergence", function()
        it("after all of the above, every item is equal in both Regions", function()
            sim:drain()
            assert.same({}, sim:diff())
            local s = sim:stats()
            assert.equals(0, s.errors, tostring(s.last_error))
            assert.equals(0, s.backlog)
            assert.is_true(#sim:scan("r1") > 100)
        end)
    end)
end)
