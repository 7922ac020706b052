-- refreshTokens adapter (contract §5.2) against DynamoDB Local: create/get/getByLookup/list/update/
-- remove, the GSI1/GSI2 keys and the family/login index items kept true on every write (ttl too),
-- TTL expiry under the injected clock, the login-session bumps, revokeFamily / revokeByLoginSession
-- (cost and races), cascades from users and tenants, validation before any request, hostile ids.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local keys = schema.keys
local T0 = math.floor(core.now()) * 1000 -- real time, so DynamoDB Local's clock agrees with ours
local HOUR = 3600 * 1000

local function iso(ms) return util.iso(ms) end
local function secs(ms) return math.floor(ms / 1000) end
local function raw_item(t, id) return fx.raw_get(keys.refresh_token(t, id)) end
local function family_item(t, family, id) return fx.raw_get(keys.refresh_token_family_item(t, family, id)) end
local function login_item(t, login, id) return fx.raw_get(keys.refresh_token_login_item(t, login, id)) end

local DEVICE = { initial_user_agent = "ua/1", initial_ip = "1.1.1.1", initial_asn = "AS1", last_user_agent = "ua/2",
    last_ip = "2.2.2.2", last_asn = "AS2" }

local function token(id, extra)
    local r = { id = id, login_id = "login-1", user_id = "auth2|u1", client_id = "app", device = DEVICE,
        resource_servers = { { audience = "https://api.example.com", scopes = "openid offline_access" } },
        rotating = true, expires_at = iso(T0 + 24 * HOUR), family_id = "fam-1", token_lookup = "lk-" .. tostring(id),
        token_hash = "hash-" .. tostring(id) }
    for k, v in pairs(extra or {}) do
        if v == core.null then r[k] = nil else r[k] = v end
    end
    return r
end

-- every index item of a partition (for "exactly these ids" checks)
local function partition_ids(pk)
    local out = {}
    for _, it in ipairs(fx.raw_partition(pk)) do out[#out + 1] = it.id end
    table.sort(out)
    return out
end

describe("refreshTokens adapter", function()
    local adapters, rt, LS

    setup(function()
        adapters = fx.adapters()
        rt = adapters.refreshTokens
        LS = adapters.loginSessions
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create", function()
        it("stores the token and returns it as get does", function()
            local t = fx.tenant()
            local r = rt.create(t, token("r1", { idle_expires_at = iso(T0 + 2 * HOUR), last_exchanged_at = iso(T0) }))
            assert.equal("r1", r.id)
            assert.equal("login-1", r.login_id)
            assert.equal("auth2|u1", r.user_id)
            assert.equal("app", r.client_id)
            assert.same(DEVICE, r.device)
            assert.same({ { audience = "https://api.example.com", scopes = "openid offline_access" } }, r.resource_servers)
            assert.is_true(r.rotating)
            assert.equal(iso(T0 + 24 * HOUR), r.expires_at)
            assert.equal(iso(T0 + 2 * HOUR), r.idle_expires_at)
            assert.equal("lk-r1", r.token_lookup)
            assert.equal("hash-r1", r.token_hash)
            assert.equal("fam-1", r.family_id)
            assert.equal(iso(T0), r.created_at)
            assert.is_nil(r.revoked_at)
            for _, k in ipairs({ "PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "entityType", "ttl", "tenant_id" }) do
                assert.is_nil(r[k], k)
            end
            assert.same(r, rt.get(t, "r1"))
        end)

        it("writes JSON strings, GSI1, GSI2, ttl and the family and login index items", function()
            local t = fx.tenant()
            rt.create(t, token("r1", { idle_expires_at = iso(T0 + 2 * HOUR) }))
            local it = raw_item(t, "r1")
            assert.equal("REFRESH_TOKEN", it.entityType)
            assert.equal(t, it.tenant_id)
            assert.equal("string", type(it.device))
            assert.equal("string", type(it.resource_servers))
            assert.same({ { audience = "https://api.example.com", scopes = "openid offline_access" } },
                core.json_decode(it.resource_servers))
            assert.equal("[", it.resource_servers:sub(1, 1))
            assert.equal(secs(T0 + 24 * HOUR), it.ttl)
            local g1 = keys.refresh_token_user_index(t, "auth2|u1", "r1")
            assert.equal(g1.GSI1PK, it.GSI1PK)
            assert.equal("REFRESH_TOKEN#r1", it.GSI1SK)
            assert.equal(keys.refresh_token_lookup_index(t, "lk-r1").GSI2PK, it.GSI2PK)
            assert.equal("REFRESH_TOKEN", it.GSI2SK)
            local f = family_item(t, "fam-1", "r1")
            assert.same({ PK = keys.refresh_token_family_item(t, "fam-1", "r1").PK, SK = "REFRESH_TOKEN#r1",
                entityType = "REFRESH_TOKEN_FAMILY", tenant_id = t, id = "r1", ttl = secs(T0 + 24 * HOUR) }, f)
            local l = login_item(t, "login-1", "r1")
            assert.same({ PK = keys.refresh_token_login_item(t, "login-1", "r1").PK, SK = "REFRESH_TOKEN#r1",
                entityType = "REFRESH_TOKEN_LOGIN", tenant_id = t, id = "r1", ttl = secs(T0 + 24 * HOUR) }, l)
        end)

        it("takes ttl from idle_expires_at without expires_at; none and no index keys without them", function()
            local t = fx.tenant()
            rt.create(t, token("idle", { expires_at = core.null, idle_expires_at = iso(T0 + 3 * HOUR + 999) }))
            assert.equal(secs(T0 + 3 * HOUR + 999), raw_item(t, "idle").ttl)
            assert.equal(secs(T0 + 3 * HOUR + 999), family_item(t, "fam-1", "idle").ttl)
            assert.equal(secs(T0 + 3 * HOUR + 999), login_item(t, "login-1", "idle").ttl)
            rt.create(t, token("bare", { expires_at = core.null, token_lookup = core.null, family_id = core.null,
                rotating = false }))
            local it = raw_item(t, "bare")
            assert.is_nil(it.ttl)
            assert.is_nil(it.GSI2PK)
            assert.is_nil(it.GSI2SK)
            assert.is_nil(family_item(t, "fam-1", "bare"))
            assert.is_nil(login_item(t, "login-1", "bare").ttl)
            assert.is_false(rt.get(t, "bare").rotating)
        end)

        it("refuses an existing id with 409 and keeps the first token and its index items", function()
            local t = fx.tenant()
            rt.create(t, token("r1"))
            local err = fx.raises(409, "Conflict", rt.create, t, token("r1", { user_id = "auth2|other",
                family_id = "fam-2", login_id = "login-2" }))
            assert.equal("Refresh token already exists", err.message)
            assert.equal("auth2|u1", rt.get(t, "r1").user_id)
            assert.is_nil(family_item(t, "fam-2", "r1"))
            assert.is_nil(login_item(t, "login-2", "r1"))
            assert.is_not_nil(family_item(t, "fam-1", "r1"))
        end)

        it("allows only one of several processes to create the same id", function()
            local t = fx.tenant()
            local out = fx.race(4, string.format([[function(a, i)
                local tok = { id = "same", login_id = "login-" .. i, user_id = "u" .. i, client_id = "app",
                    device = { initial_user_agent = "", initial_ip = "", initial_asn = "", last_user_agent = "",
                        last_ip = "", last_asn = "" }, resource_servers = {}, rotating = false, family_id = "f" .. i }
                return a.refreshTokens.create(%q, tok).user_id
            end]], t))
            local winner
            for i, o in ipairs(out) do
                if o == "u" .. i then
                    assert.is_nil(winner, "two winners")
                    winner = i
                else
                    assert.equal("error: Conflict", o)
                end
            end
            assert.is_not_nil(winner)
            assert.equal("u" .. winner, rt.get(t, "same").user_id)
            for i = 1, 4 do
                assert.equal(i == winner, family_item(t, "f" .. i, "same") ~= nil)
                assert.equal(i == winner, login_item(t, "login-" .. i, "same") ~= nil)
            end
        end)

        it("bumps the login session to the later of expires_at / idle_expires_at, never shorter", function()
            local t = fx.tenant()
            local ls = LS.create(t, { csrf_token = "c", authParams = { client_id = "app" }, expires_at = iso(T0 + HOUR) }).id
            rt.create(t, token("r1", { login_id = ls, expires_at = iso(T0 + 5 * HOUR), idle_expires_at = iso(T0 + 9 * HOUR) }))
            assert.equal(iso(T0 + 9 * HOUR), LS.get(t, ls).expires_at)
            assert.equal(secs(T0 + 9 * HOUR), fx.raw_get(keys.login_session(t, ls)).ttl)
            rt.create(t, token("r2", { login_id = ls, expires_at = iso(T0 + 2 * HOUR) }))
            assert.equal(iso(T0 + 9 * HOUR), LS.get(t, ls).expires_at)
            -- a token of a missing login session is still created
            assert.equal("r3", rt.create(t, token("r3", { login_id = "gone" })).id)
            assert.is_nil(fx.raw_get(keys.login_session(t, "gone")))
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            fx.rejects(rt.create, t, token(nil))
            fx.rejects(rt.create, t, token(""))
            for _, f in ipairs({ "login_id", "user_id", "client_id", "device", "resource_servers", "rotating" }) do
                fx.rejects(rt.create, t, token("r", { [f] = core.null }))
            end
            fx.rejects(rt.create, t, token("r", { rotating = "yes" }))
            fx.rejects(rt.create, t, token("r", { device = { initial_ip = "1.1.1.1" } }))
            fx.rejects(rt.create, t, token("r", { device = "ua" }))
            fx.rejects(rt.create, t, token("r", { resource_servers = { audience = "a", scopes = "s" } }))
            fx.rejects(rt.create, t, token("r", { resource_servers = { { audience = "a" } } }))
            fx.rejects(rt.create, t, token("r", { expires_at = "soon" }))
            fx.rejects(rt.create, t, token("r", { idle_expires_at = 5 }))
            fx.rejects(rt.create, t, token("r", { token_lookup = 5 }))
            fx.rejects(rt.create, t, token("r", { family_id = {} }))
            fx.rejects(rt.create, t, "nope")
            fx.rejects(rt.create, nil, token("r"))
        end)
    end)

    describe("get and getByLookup", function()
        it("return nil for a missing token, another tenant's, and an expired one", function()
            local t, other = fx.tenant(), fx.tenant()
            rt.create(t, token("r1", { expires_at = iso(T0 + 60 * 1000) }))
            rt.create(t, token("r2", { expires_at = core.null, idle_expires_at = iso(T0 + 30 * 1000) }))
            assert.is_nil(rt.get(t, "nope"))
            assert.is_nil(rt.get(other, "r1"))
            assert.equal("r1", rt.getByLookup(t, "lk-r1").id)
            assert.equal("r2", rt.getByLookup(t, "lk-r2").id)
            assert.is_nil(rt.getByLookup(other, "lk-r1"))
            assert.is_nil(rt.getByLookup(t, "lk-nope"))
            fx.advance(30)
            assert.is_nil(rt.get(t, "r2"))
            assert.is_nil(rt.getByLookup(t, "lk-r2"))
            assert.equal("r1", rt.get(t, "r1").id)
            fx.advance(30)
            assert.is_nil(rt.get(t, "r1"))
            assert.is_nil(rt.getByLookup(t, "lk-r1"))
        end)

        it("getByLookup returns the whole record with its hash", function()
            local t = fx.tenant()
            local r = rt.create(t, token("r1"))
            assert.same(r, rt.getByLookup(t, "lk-r1"))
            assert.equal("hash-r1", rt.getByLookup(t, "lk-r1").token_hash)
        end)

        it("getByLookup drops a GSI2 hit of another tenant or with another lookup (§2.10)", function()
            local t = fx.tenant()
            local pk = keys.refresh_token_lookup_index(t, "planted").GSI2PK
            fx.raw_put({ PK = "TENANT#elsewhere", SK = "REFRESH_TOKEN#x1", entityType = "REFRESH_TOKEN",
                tenant_id = "elsewhere", token_lookup = "planted", id = "x1", GSI2PK = pk, GSI2SK = "REFRESH_TOKEN" })
            fx.raw_put({ PK = keys.tenant_partition(t), SK = "REFRESH_TOKEN#x2", entityType = "REFRESH_TOKEN",
                tenant_id = t, token_lookup = "other", id = "x2", GSI2PK = pk, GSI2SK = "REFRESH_TOKEN" })
            assert.is_nil(rt.getByLookup(t, "planted"))
        end)

        it("work with a colon call and validate before sending anything", function()
            local t = fx.tenant()
            rt:create(t, token("r1"))
            assert.equal("r1", rt:get(t, "r1").id)
            assert.equal("r1", rt:getByLookup(t, "lk-r1").id)
            fx.rejects(rt.get, t, nil)
            fx.rejects(rt.get, "", "r1")
            fx.rejects(rt.getByLookup, t, "")
            fx.rejects(rt.getByLookup, nil, "lk")
        end)
    end)

    describe("list", function()
        local t
        setup(function()
            t = fx.tenant()
            fx.set_now(T0)
            for i = 1, 12 do
                local user = i % 3 == 0 and "auth2|alice" or "auth2|bob"
                rt.create(t, token(string.format("r%02d", i), { user_id = user, login_id = i <= 6 and "la" or "lb",
                    family_id = "f" .. (i % 2), client_id = i <= 4 and "app1" or "app2" }))
            end
            rt.create(t, token("gone", { expires_at = iso(T0 + 1000), user_id = "auth2|alice" }))
            fx.reset_clock()
        end)
        before_each(function() fx.set_now(T0 + 2000) end) -- "gone" has expired

        it("pages in offset mode with a real total, skipping expired tokens", function()
            local p0 = rt.list(t, { page = 0, per_page = 5, include_totals = true })
            assert.same({ "r01", "r02", "r03", "r04", "r05" }, fx.ids(p0.refresh_tokens))
            assert.equal(0, p0.start)
            assert.equal(5, p0.limit)
            assert.equal(12, p0.length)
            assert.equal(12, p0.total)
            local p2 = rt.list(t, { page = 2, per_page = 5, include_totals = true })
            assert.same({ "r11", "r12" }, fx.ids(p2.refresh_tokens))
            assert.equal(10, p2.start)
            local plain = rt.list(t, { page = 0, per_page = 5 })
            assert.is_nil(plain.total)
            assert.equal(5, plain.length)
            assert.equal(12, rt.list(t).length)
        end)

        it("walks every live token exactly once in keyset mode", function()
            local walked, pages = fx.keyset_walk(function(o) return rt.list(t, o) end, "refresh_tokens", "id", 5)
            assert.same({ "r01", "r02", "r03", "r04", "r05", "r06", "r07", "r08", "r09", "r10", "r11", "r12" }, walked)
            assert.equal(3, pages)
        end)

        it("filters with q fields and free text", function()
            local r = rt.list(t, { q = "login_id:lb", include_totals = true })
            assert.equal(6, r.total)
            assert.same({ "r07", "r08", "r09", "r10", "r11", "r12" }, fx.ids(r.refresh_tokens))
            assert.same({ "r02", "r04" }, fx.ids(rt.list(t, { q = "family_id:f0 client_id:app1" }).refresh_tokens))
            assert.same({ "r01", "r02", "r04" }, fx.ids(rt.list(t, { q = "client_id:app1 -user_id:auth2|alice" }).refresh_tokens))
            assert.same({ "r10" }, fx.ids(rt.list(t, { q = "r10" }).refresh_tokens))
            assert.equal(6, rt.list(t, { q = "la" }).length) -- free text: login_id exact
            assert.equal(0, rt.list(t, { q = "l" }).length)
            assert.equal(12, rt.list(t, { q = "_exists_:expires_at -_exists_:revoked_at" }).length)
        end)

        it("answers user_id: through GSI1", function()
            local r = rt.list(t, { q = "user_id:auth2|alice", include_totals = true })
            assert.same({ "r03", "r06", "r09", "r12" }, fx.ids(r.refresh_tokens))
            assert.equal(4, r.total)
            assert.same({ "r03", "r06" }, fx.ids(rt.list(t, { q = 'user_id:"auth2|alice" login_id:la' }).refresh_tokens))
            assert.equal(0, rt.list(t, { q = "user_id:auth2|nobody" }).length)
            local walked = fx.keyset_walk(function(o)
                o.q = "user_id:auth2|bob"
                return rt.list(t, o)
            end, "refresh_tokens", "id", 3)
            assert.equal(8, #walked)
        end)

        it("sorts by an allowed field and refuses unknown q fields before sending anything", function()
            local r = rt.list(t, { sort = { sort_by = "created_at", sort_order = "desc" }, per_page = 3 })
            assert.equal(3, r.length)
            fx.rejects(rt.list, t, { q = "token_hash:x" })
            fx.rejects(rt.list, t, { q = "device:x" })
            fx.rejects(rt.list, t, { per_page = "ten" })
            fx.rejects(rt.list, nil, {})
        end)
    end)

    describe("update", function()
        it("patches plain fields in one request and stamps updated_at", function()
            local t = fx.tenant()
            rt.create(t, token("r1"))
            fx.advance(5)
            local before = fx.requests()
            assert.is_true(rt.update(t, "r1", { rotated_to = "r2", rotated_at = "2030-01-01T00:00:00+01:00",
                device = { initial_user_agent = "a", initial_ip = "b", initial_asn = "c", last_user_agent = "d",
                    last_ip = "e", last_asn = "f" }, rotating = false, id = "ignored", created_at = "2000-01-01" }))
            assert.equal(1, fx.requests() - before)
            local r = rt.get(t, "r1")
            assert.equal("r2", r.rotated_to)
            assert.equal("2029-12-31T23:00:00.000Z", r.rotated_at)
            assert.equal("d", r.device.last_user_agent)
            assert.is_false(r.rotating)
            assert.equal("r1", r.id)
            assert.equal(iso(T0), r.created_at)
            local it = raw_item(t, "r1")
            assert.equal(iso(T0 + 5000), it.updated_at)
            assert.equal("string", type(it.device))
        end)

        it("AuthHero's refresh (idle slides, expires_at stored) is one request; ttl keeps following expires_at", function()
            local t = fx.tenant()
            rt.create(t, token("r1", { idle_expires_at = iso(T0 + HOUR) }))
            local before = fx.requests()
            assert.is_true(rt.update(t, "r1", { idle_expires_at = iso(T0 + 5 * HOUR), last_exchanged_at = iso(T0),
                family_id = "fam-1" }))
            assert.equal(1, fx.requests() - before)
            local it = raw_item(t, "r1")
            assert.equal(iso(T0 + 5 * HOUR), it.idle_expires_at)
            assert.equal(secs(T0 + 24 * HOUR), it.ttl)
            assert.equal(secs(T0 + 24 * HOUR), family_item(t, "fam-1", "r1").ttl)
        end)

        it("rewrites ttl on the token and its index items when an expiry changes", function()
            local t = fx.tenant()
            rt.create(t, token("r1", { expires_at = core.null, idle_expires_at = iso(T0 + HOUR) }))
            assert.is_true(rt.update(t, "r1", { idle_expires_at = iso(T0 + 6 * HOUR) }))
            for _, it in ipairs({ raw_item(t, "r1"), family_item(t, "fam-1", "r1"), login_item(t, "login-1", "r1") }) do
                assert.equal(secs(T0 + 6 * HOUR), it.ttl)
            end
            assert.is_true(rt.update(t, "r1", { expires_at = iso(T0 + 48 * HOUR) }))
            for _, it in ipairs({ raw_item(t, "r1"), family_item(t, "fam-1", "r1"), login_item(t, "login-1", "r1") }) do
                assert.equal(secs(T0 + 48 * HOUR), it.ttl)
            end
            assert.is_true(rt.update(t, "r1", { expires_at = core.null, idle_expires_at = core.null }))
            for _, it in ipairs({ raw_item(t, "r1"), family_item(t, "fam-1", "r1"), login_item(t, "login-1", "r1") }) do
                assert.is_nil(it.ttl)
            end
            assert.is_nil(raw_item(t, "r1").expires_at)
            assert.is_true(rt.update(t, "r1", { idle_expires_at = iso(T0 + 2000) }))
            fx.advance(2)
            assert.is_nil(rt.get(t, "r1"))
            assert.equal(0, rt.revokeFamily(t, "fam-1", iso(T0)))
        end)

        it("moves GSI1, GSI2 and the index items when their fields change", function()
            local t = fx.tenant()
            rt.create(t, token("r1"))
            assert.is_true(rt.update(t, "r1", { user_id = "auth2|u2", token_lookup = "lk-new", family_id = "fam-2",
                login_id = "login-2" }))
            local it = raw_item(t, "r1")
            assert.equal(keys.refresh_token_user_index(t, "auth2|u2", "r1").GSI1PK, it.GSI1PK)
            assert.equal(keys.refresh_token_lookup_index(t, "lk-new").GSI2PK, it.GSI2PK)
            assert.is_nil(family_item(t, "fam-1", "r1"))
            assert.is_nil(login_item(t, "login-1", "r1"))
            assert.equal(secs(T0 + 24 * HOUR), family_item(t, "fam-2", "r1").ttl)
            assert.equal(secs(T0 + 24 * HOUR), login_item(t, "login-2", "r1").ttl)
            assert.is_nil(rt.getByLookup(t, "lk-r1"))
            assert.equal("r1", rt.getByLookup(t, "lk-new").id)
            assert.equal(0, rt.list(t, { q = "user_id:auth2|u1" }).length)
            assert.same({ "r1" }, fx.ids(rt.list(t, { q = "user_id:auth2|u2" }).refresh_tokens))
            -- removing token_lookup and family_id leaves GSI2 and the family item
            assert.is_true(rt.update(t, "r1", { token_lookup = core.null, family_id = core.null }))
            it = raw_item(t, "r1")
            assert.is_nil(it.GSI2PK)
            assert.is_nil(it.GSI2SK)
            assert.is_nil(it.token_lookup)
            assert.is_nil(family_item(t, "fam-2", "r1"))
            assert.is_nil(rt.getByLookup(t, "lk-new"))
            -- and setting them again brings both back (the legacy upgrade of AuthHero's refresh)
            assert.is_true(rt.update(t, "r1", { token_lookup = "lk-up", token_hash = "h2", family_id = "r1" }))
            assert.equal("r1", rt.getByLookup(t, "lk-up").id)
            assert.equal(secs(T0 + 24 * HOUR), family_item(t, "r1", "r1").ttl)
        end)

        it("returns false for a missing or expired token and writes nothing", function()
            local t = fx.tenant()
            assert.is_false(rt.update(t, "nope", { rotated_to = "x" }))
            assert.is_false(rt.update(t, "nope", { family_id = "f", idle_expires_at = iso(T0 + HOUR) }))
            assert.is_nil(raw_item(t, "nope"))
            assert.same({}, fx.raw_partition(keys.refresh_token_family_item(t, "f", "").PK))
            rt.create(t, token("r1", { expires_at = iso(T0 + 1000) }))
            fx.advance(1)
            assert.is_false(rt.update(t, "r1", { rotated_to = "x" }))
            assert.is_false(rt.update(t, "r1", { expires_at = iso(T0 + HOUR) }))
            assert.equal(secs(T0 + 1000), raw_item(t, "r1").ttl)
        end)

        it("applies options.loginSessionBump after the write (never shortening), not for a missing token", function()
            local t = fx.tenant()
            local ls = LS.create(t, { csrf_token = "c", authParams = { client_id = "app" }, expires_at = iso(T0 + HOUR) }).id
            rt.create(t, token("r1", { login_id = ls, expires_at = iso(T0 + 30 * 60 * 1000) }))
            local before = fx.requests()
            assert.is_true(rt.update(t, "r1", { last_exchanged_at = iso(T0) },
                { loginSessionBump = { login_id = ls, expires_at = iso(T0 + 3 * HOUR) } }))
            assert.equal(2, fx.requests() - before)
            assert.equal(iso(T0 + 3 * HOUR), LS.get(t, ls).expires_at)
            assert.equal(secs(T0 + 3 * HOUR), fx.raw_get(keys.login_session(t, ls)).ttl)
            assert.is_true(rt.update(t, "r1", { last_exchanged_at = iso(T0) },
                { loginSessionBump = { login_id = ls, expires_at = iso(T0 + 2 * HOUR) } }))
            assert.equal(iso(T0 + 3 * HOUR), LS.get(t, ls).expires_at)
            assert.is_false(rt.update(t, "nope", { last_exchanged_at = iso(T0) },
                { loginSessionBump = { login_id = ls, expires_at = iso(T0 + 9 * HOUR) } }))
            assert.equal(iso(T0 + 3 * HOUR), LS.get(t, ls).expires_at)
            -- a bump of a missing login session does not fail the update
            assert.is_true(rt.update(t, "r1", { last_exchanged_at = iso(T0) },
                { loginSessionBump = { login_id = "gone", expires_at = iso(T0 + 9 * HOUR) } }))
            assert.is_nil(fx.raw_get(keys.login_session(t, "gone")))
        end)

        it("re-reads after a lost race and then writes on the new values", function()
            local t = fx.tenant()
            rt.create(t, token("r1"))
            local c = fx.client()
            local real = c.call
            local raced = false
            c.call = function(self, op, p)
                if op == "TransactWriteItems" and not raced then
                    raced = true -- another writer moves the family between our read and our write
                    assert(rt.update(t, "r1", { family_id = "fam-x" }))
                end
                return real(self, op, p)
            end
            local ok, res = pcall(rt.update, t, "r1", { login_id = "login-2" })
            c.call = real
            assert.is_true(ok, tostring(res))
            assert.is_true(res)
            assert.is_true(raced)
            local it = raw_item(t, "r1")
            assert.equal("login-2", it.login_id)
            assert.equal("fam-x", it.family_id)
            assert.is_not_nil(login_item(t, "login-2", "r1"))
            assert.is_nil(login_item(t, "login-1", "r1"))
            assert.is_not_nil(family_item(t, "fam-x", "r1"))
            assert.is_nil(family_item(t, "fam-1", "r1"))
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            fx.rejects(rt.update, t, "r1", nil)
            fx.rejects(rt.update, t, nil, {})
            for _, f in ipairs({ "login_id", "user_id", "client_id", "device", "resource_servers", "rotating" }) do
                fx.rejects(rt.update, t, "r1", { [f] = core.null })
            end
            fx.rejects(rt.update, t, "r1", { expires_at = "soon" })
            fx.rejects(rt.update, t, "r1", { device = { last_ip = "x" } })
            fx.rejects(rt.update, t, "r1", { resource_servers = { { scopes = "x" } } })
            fx.rejects(rt.update, t, "r1", { rotating = 1 })
            fx.rejects(rt.update, t, "r1", {}, "options")
            fx.rejects(rt.update, t, "r1", {}, { loginSessionBump = { login_id = "ls" } })
            fx.rejects(rt.update, t, "r1", {}, { loginSessionBump = { login_id = "ls", expires_at = "later" } })
            fx.rejects(rt.update, t, "r1", {}, { loginSessionBump = { expires_at = iso(T0) } })
        end)
    end)

    describe("remove", function()
        it("deletes the token with its index items, then returns false; expired counts as absent", function()
            local t = fx.tenant()
            rt.create(t, token("r1"))
            rt.create(t, token("r2", { expires_at = iso(T0 + 1000) }))
            assert.is_true(rt.remove(t, "r1"))
            assert.is_nil(raw_item(t, "r1"))
            assert.is_nil(family_item(t, "fam-1", "r1"))
            assert.is_nil(login_item(t, "login-1", "r1"))
            assert.is_nil(rt.getByLookup(t, "lk-r1"))
            assert.is_false(rt.remove(t, "r1"))
            fx.advance(1)
            assert.is_false(rt.remove(t, "r2"))
            assert.is_nil(raw_item(t, "r2"))
            assert.same({}, fx.raw_partition(keys.refresh_token_family_item(t, "fam-1", "").PK))
            assert.same({}, fx.raw_partition(keys.refresh_token_login_item(t, "login-1", "").PK))
            fx.rejects(rt.remove, t, "")
        end)
    end)

    describe("revokeFamily and revokeByLoginSession", function()
        it("revoke every live, unrevoked token of the family and count them", function()
            local t = fx.tenant()
            for i = 1, 5 do rt.create(t, token("a" .. i, { family_id = "fa", login_id = i <= 3 and "l1" or "l2" })) end
            rt.create(t, token("b1", { family_id = "fb", login_id = "l1" }))
            rt.create(t, token("a-expired", { family_id = "fa", expires_at = iso(T0 + 1000) }))
            assert.is_true(rt.update(t, "a5", { revoked_at = iso(T0 - HOUR) }))
            fx.advance(10)
            assert.equal(4, rt.revokeFamily(t, "fa", "2030-01-01T00:00:00+02:00"))
            for i = 1, 4 do
                local r = rt.get(t, "a" .. i)
                assert.equal("2029-12-31T22:00:00.000Z", r.revoked_at)
                assert.equal(iso(T0 + 10000), raw_item(t, "a" .. i).updated_at)
            end
            assert.equal(iso(T0 - HOUR), rt.get(t, "a5").revoked_at)
            assert.is_nil(rt.get(t, "b1").revoked_at)
            assert.is_nil(raw_item(t, "a-expired").revoked_at)
            assert.equal(0, rt.revokeFamily(t, "fa", iso(T0)))
            assert.equal(0, rt.revokeFamily(t, "nope", iso(T0)))
            assert.equal(0, rt.revokeFamily(fx.tenant(), "fb", iso(T0)))
            assert.is_nil(rt.get(t, "b1").revoked_at)
        end)

        it("revokeByLoginSession revokes the login session's tokens only", function()
            local t = fx.tenant()
            for i = 1, 4 do rt.create(t, token("a" .. i, { login_id = i <= 3 and "l1" or "l2" })) end
            assert.equal(3, rt.revokeByLoginSession(t, "l1", iso(T0)))
            assert.same({ "a1", "a2", "a3" }, fx.ids(rt.list(t, { q = "_exists_:revoked_at" }).refresh_tokens))
            assert.equal(0, rt.revokeByLoginSession(t, "l1", iso(T0)))
            assert.equal(1, rt.revokeByLoginSession(t, "l2", iso(T0)))
            assert.equal(0, rt.revokeByLoginSession(fx.tenant(), "l2", iso(T0)))
        end)

        it("follow the index: a token that moved to another family or login is not revoked by the old one", function()
            local t = fx.tenant()
            rt.create(t, token("r1", { family_id = "old", login_id = "lold" }))
            assert.is_true(rt.update(t, "r1", { family_id = "new", login_id = "lnew" }))
            assert.equal(0, rt.revokeFamily(t, "old", iso(T0)))
            assert.equal(0, rt.revokeByLoginSession(t, "lold", iso(T0)))
            assert.same({ "r1" }, partition_ids(keys.refresh_token_family_item(t, "new", "").PK))
            assert.equal(1, rt.revokeFamily(t, "new", iso(T0)))
            -- a stale index item (planted) pointing at a token of another family revokes nothing
            rt.create(t, token("r2", { family_id = "other" }))
            fx.raw_put({ PK = keys.refresh_token_family_item(t, "new", "r2").PK, SK = "REFRESH_TOKEN#r2",
                entityType = "REFRESH_TOKEN_FAMILY", tenant_id = t, id = "r2" })
            assert.equal(0, rt.revokeFamily(t, "new", iso(T0)))
            assert.is_nil(rt.get(t, "r2").revoked_at)
        end)

        it("cost what the family holds, not what the tenant holds", function()
            local t = fx.tenant()
            for i = 1, 25 do rt.create(t, token(string.format("x%02d", i), { family_id = "big", login_id = "lx" })) end
            for i = 1, 3 do rt.create(t, token("s" .. i, { family_id = "small", login_id = "ls" })) end
            local before = fx.requests()
            assert.equal(3, rt.revokeFamily(t, "small", iso(T0)))
            assert.equal(4, fx.requests() - before) -- one Query of the family index, one write per token
            before = fx.requests()
            assert.equal(0, rt.revokeByLoginSession(t, "ls", iso(T0)))
            assert.equal(4, fx.requests() - before)
        end)

        it("count each token once when processes revoke the same family at once", function()
            local t = fx.tenant()
            for i = 1, 12 do rt.create(t, token(string.format("r%02d", i), { family_id = "hot", login_id = "lhot" })) end
            local out = fx.race(4, string.format([[function(a, i)
                if i %% 2 == 0 then return a.refreshTokens.revokeFamily(%q, "hot", "2030-01-01T00:00:00.00" .. i .. "Z") end
                return a.refreshTokens.revokeByLoginSession(%q, "lhot", "2030-01-01T00:00:00.00" .. i .. "Z")
            end]], t, t))
            local sum = 0
            for _, o in ipairs(out) do
                local n = tonumber(o)
                assert.is_not_nil(n, o)
                sum = sum + n
            end
            assert.equal(12, sum)
            local stamps = {}
            for i = 1, 12 do
                local r = rt.get(t, string.format("r%02d", i))
                assert.is_truthy(r.revoked_at:match("^2030%-01%-01T00:00:00%.00[1-4]Z$"), r.revoked_at)
                stamps[r.revoked_at] = (stamps[r.revoked_at] or 0) + 1
            end
            -- each racer's count is exactly how many tokens carry its timestamp
            for i, o in ipairs(out) do
                assert.equal(tonumber(o), stamps["2030-01-01T00:00:00.00" .. i .. "Z"] or 0)
            end
        end)

        it("validate before sending anything", function()
            local t = fx.tenant()
            fx.rejects(rt.revokeFamily, t, "", iso(T0))
            fx.rejects(rt.revokeFamily, t, "f", nil)
            fx.rejects(rt.revokeFamily, t, "f", "now")
            fx.rejects(rt.revokeFamily, nil, "f", iso(T0))
            fx.rejects(rt.revokeByLoginSession, t, nil, iso(T0))
            fx.rejects(rt.revokeByLoginSession, t, "l", "later")
        end)
    end)

    describe("cascades", function()
        it("users.remove takes the user's tokens and their index items along, nobody else's", function()
            local t = fx.tenant()
            local u = adapters.users.create(t, { user_id = "auth2|gone", email = "gone@example.com",
                connection = "Username-Password-Authentication", provider = "auth2" })
            rt.create(t, token("mine1", { user_id = u.user_id, family_id = "fm", login_id = "lm" }))
            rt.create(t, token("mine2", { user_id = u.user_id, family_id = "fm", login_id = "lm",
                expires_at = iso(T0 + 1000) }))
            rt.create(t, token("theirs", { user_id = "auth2|stays", family_id = "fm", login_id = "lm" }))
            fx.advance(2) -- mine2 has expired but is still stored: it goes too
            assert.is_true(adapters.users.remove(t, u.user_id))
            assert.is_nil(raw_item(t, "mine1"))
            assert.is_nil(raw_item(t, "mine2"))
            assert.same({ "theirs" }, partition_ids(keys.refresh_token_family_item(t, "fm", "").PK))
            assert.same({ "theirs" }, partition_ids(keys.refresh_token_login_item(t, "lm", "").PK))
            assert.equal("theirs", rt.get(t, "theirs").id)
        end)

        it("tenants.remove leaves no token and no index item", function()
            local t = fx.tenant()
            adapters.tenants.create({ id = t, friendly_name = "Doomed" })
            for i = 1, 3 do rt.create(t, token("r" .. i, { family_id = "f" .. i, login_id = "l" })) end
            assert.is_true(adapters.tenants.remove(t))
            assert.same({}, fx.raw_partition(keys.tenant_partition(t)))
            for i = 1, 3 do assert.same({}, fx.raw_partition(keys.refresh_token_family_item(t, "f" .. i, "").PK)) end
            assert.same({}, fx.raw_partition(keys.refresh_token_login_item(t, "l", "").PK))
        end)
    end)

    describe("hostile ids", function()
        it("keep tenants, families, logins and lookups with # and % apart", function()
            local base = fx.tenant()
            local evil = base .. "#RT_FAMILY#f"
            -- unescaped, (base, family "f#RT_FAMILY#x") and (evil... ) would share index partitions
            rt.create(base, token("a#REFRESH_TOKEN#b", { family_id = "f#x", login_id = "l%23x", token_lookup = "k#1" }))
            rt.create(base, token("a%23REFRESH_TOKEN%23b", { family_id = "f%23x", login_id = "l#x", token_lookup = "k%231" }))
            rt.create(evil, token("x", { family_id = "x", login_id = "l#x", token_lookup = "k#1" }))
            assert.equal("f#x", rt.get(base, "a#REFRESH_TOKEN#b").family_id)
            assert.equal("f%23x", rt.get(base, "a%23REFRESH_TOKEN%23b").family_id)
            assert.equal("a#REFRESH_TOKEN#b", rt.getByLookup(base, "k#1").id)
            assert.equal("a%23REFRESH_TOKEN%23b", rt.getByLookup(base, "k%231").id)
            assert.equal("x", rt.getByLookup(evil, "k#1").id)
            assert.is_nil(rt.get(evil, "a#REFRESH_TOKEN#b"))
            assert.equal(1, rt.revokeFamily(base, "f#x", iso(T0)))
            assert.is_nil(rt.get(base, "a%23REFRESH_TOKEN%23b").revoked_at)
            assert.equal(1, rt.revokeByLoginSession(base, "l#x", iso(T0)))
            assert.is_nil(rt.get(evil, "x").revoked_at)
            assert.is_true(rt.remove(base, "a#REFRESH_TOKEN#b"))
            assert.is_not_nil(rt.get(base, "a%23REFRESH_TOKEN%23b"))
            assert.same({}, fx.raw_partition(keys.refresh_token_family_item(base, "f#x", "").PK))
            for _, it in ipairs(fx.raw_partition(keys.tenant_partition(evil))) do assert.equal(evil, it.tenant_id) end
        end)
    end)
end)
