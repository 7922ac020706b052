-- loginSessions adapter (contract §5.1) against DynamoDB Local: create/get/update/remove, defaults,
-- TTL from expires_at (rewritten with it) under the injected clock, the authParams merge, the bump
-- rule (extends, never shortens, never resurrects, best effort), races, validation, hostile ids.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local T0 = math.floor(core.now()) * 1000 -- real time, so DynamoDB Local's clock agrees with ours
local HOUR = 3600 * 1000

local function iso(ms) return util.iso(ms) end
local function secs(ms) return math.floor(ms / 1000) end
local function raw_item(t, id) return fx.raw_get(schema.keys.login_session(t, id)) end

local function login(extra)
    local ls = { csrf_token = "csrf-1", expires_at = iso(T0 + HOUR),
        authParams = { client_id = "client-1", response_type = "code", scope = "openid", state = "st" } }
    for k, v in pairs(extra or {}) do ls[k] = v end
    return ls
end

describe("loginSessions adapter", function()
    local adapters, ls

    setup(function()
        adapters = fx.adapters()
        ls = adapters.loginSessions
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create", function()
        it("stores a login session with a generated id and defaults, returned as get returns it", function()
            local t = fx.tenant()
            local r = ls.create(t, login({ expires_at = "2099-01-02T03:04:05+01:00" }))
            assert.equal("string", type(r.id))
            assert.equal(21, #r.id)
            assert.is_truthy(r.id:match("^[%w_%-]+$"))
            assert.equal("pending", r.state)
            assert.equal("csrf-1", r.csrf_token)
            assert.same({ client_id = "client-1", response_type = "code", scope = "openid", state = "st" }, r.authParams)
            assert.equal("2099-01-02T02:04:05.000Z", r.expires_at)
            assert.equal(iso(T0), r.created_at)
            assert.equal(iso(T0), r.updated_at)
            for _, k in ipairs({ "PK", "SK", "entityType", "ttl", "tenant_id" }) do assert.is_nil(r[k], k) end
            assert.same(r, ls.get(t, r.id))
            local it = raw_item(t, r.id)
            assert.equal("LOGIN_SESSION", it.entityType)
            assert.equal("LOGIN_SESSION#" .. r.id, it.SK)
            assert.equal(schema.keys.tenant_partition(t), it.PK)
            assert.equal(t, it.tenant_id)
            assert.equal("string", type(it.authParams))
            assert.equal(secs(util.parse_iso("2099-01-02T02:04:05Z")), it.ttl)
        end)

        it("uses the id new_id gives", function()
            local n = 0
            local A = fx.adapters({ new_id = function() n = n + 1; return "fixed-" .. n end })
            local t = fx.tenant()
            assert.equal("fixed-1", A.loginSessions.create(t, login()).id)
            assert.equal("fixed-2", A.loginSessions.create(t, login()).id)
        end)

        it("stores every optional field as given: long authorization_url, state_data text, strategy", function()
            local t = fx.tenant()
            local url = "https://auth.example.com/authorize?" .. string.rep("scope=openid&", 500)
            local state_data = '{"step":2,"nested":{"a":[1,2]}}'
            local r = ls.create(t, login({
                id = "ls-given", state = "authenticated", state_data = state_data, failure_reason = "none",
                user_id = "auth2|u1", auth_connection = "Username-Password-Authentication",
                auth_strategy = { strategy = "auth2", strategy_type = "database" },
                authenticated_at = "2030-01-01T00:00:00Z", auth0Client = "eyJuYW1lIjoieCJ9", deleted_at = "2031-01-01T00:00:00Z",
                ip = "1.2.3.4", useragent = "ua/1", session_id = "s-1", authorization_url = url,
            }))
            assert.equal("ls-given", r.id)
            assert.equal(#url, #r.authorization_url)
            assert.equal(url, r.authorization_url)
            assert.equal(state_data, r.state_data)
            assert.equal("authenticated", r.state)
            assert.same({ strategy = "auth2", strategy_type = "database" }, r.auth_strategy)
            assert.equal("2030-01-01T00:00:00.000Z", r.authenticated_at)
            assert.equal("2031-01-01T00:00:00.000Z", r.deleted_at)
            assert.equal("Username-Password-Authentication", r.auth_connection)
            assert.equal("eyJuYW1lIjoieCJ9", r.auth0Client)
            assert.same(r, ls.get(t, "ls-given"))
            local it = raw_item(t, "ls-given")
            assert.equal(state_data, it.state_data)
            assert.equal("string", type(it.auth_strategy))
        end)

        it("refuses a live id with 409 and keeps the first; an expired one may be replaced", function()
            local t = fx.tenant()
            ls.create(t, login({ id = "dup", csrf_token = "first", expires_at = iso(T0 + 10 * 1000) }))
            fx.raises(409, "Conflict", ls.create, t, login({ id = "dup", csrf_token = "second" }))
            assert.equal("first", ls.get(t, "dup").csrf_token)
            fx.advance(10)
            assert.equal("third", ls.create(t, login({ id = "dup", csrf_token = "third" })).csrf_token)
            assert.equal("third", ls.get(t, "dup").csrf_token)
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            fx.rejects(ls.create, t, login({ csrf_token = "" }))
            fx.rejects(ls.create, t, login({ csrf_token = core.null }))
            fx.rejects(ls.create, t, login({ authParams = core.null }))
            fx.rejects(ls.create, t, login({ authParams = { scope = "openid" } }))
            fx.rejects(ls.create, t, login({ authParams = { client_id = 7 } }))
            fx.rejects(ls.create, t, login({ authParams = "client-1" }))
            fx.rejects(ls.create, t, login({ expires_at = "tomorrow" }))
            fx.rejects(ls.create, t, login({ expires_at = 12 }))
            local no_expiry = login()
            no_expiry.expires_at = nil
            fx.rejects(ls.create, t, no_expiry)
            fx.rejects(ls.create, t, login({ state = "dancing" }))
            fx.rejects(ls.create, t, login({ auth_strategy = { strategy = "auth2" } }))
            fx.rejects(ls.create, t, login({ state_data = { step = 1 } }))
            fx.rejects(ls.create, t, login({ authenticated_at = "yesterday" }))
            fx.rejects(ls.create, t, login({ id = "" }))
            fx.rejects(ls.create, t, "nope")
            fx.rejects(ls.create, nil, login())
        end)
    end)

    describe("get", function()
        it("returns nil for a missing login session and for another tenant's", function()
            local t = fx.tenant()
            local r = ls.create(t, login())
            assert.is_nil(ls.get(t, "nope"))
            assert.is_nil(ls.get(fx.tenant(), r.id))
        end)

        it("treats a login session whose expires_at has passed as absent", function()
            local t = fx.tenant()
            local r = ls.create(t, login({ expires_at = iso(T0 + 30 * 1000) }))
            fx.advance(29)
            assert.equal(r.id, ls.get(t, r.id).id)
            fx.advance(1)
            assert.is_nil(ls.get(t, r.id))
            assert.is_not_nil(raw_item(t, r.id)) -- still stored: DynamoDB deletes lazily
        end)

        it("works with a colon call", function()
            local t = fx.tenant()
            local r = ls:create(t, login())
            assert.equal(r.id, ls:get(t, r.id).id)
        end)

        it("validates before sending anything", function()
            fx.rejects(ls.get, fx.tenant(), nil)
            fx.rejects(ls.get, "", "x")
        end)
    end)

    describe("update", function()
        it("patches fields in one request and stamps updated_at", function()
            local t = fx.tenant()
            local r = ls.create(t, login())
            fx.advance(5)
            local before = fx.requests()
            assert.is_true(ls.update(t, r.id, { state = "authenticated", user_id = "auth2|u", session_id = "s9",
                auth_strategy = { strategy = "google-oauth2", strategy_type = "social" }, id = "ignored",
                created_at = "2000-01-01T00:00:00Z" }))
            assert.equal(1, fx.requests() - before)
            local g = ls.get(t, r.id)
            assert.equal("authenticated", g.state)
            assert.equal("auth2|u", g.user_id)
            assert.equal("s9", g.session_id)
            assert.same({ strategy = "google-oauth2", strategy_type = "social" }, g.auth_strategy)
            assert.equal(r.id, g.id)
            assert.equal(iso(T0), g.created_at)
            assert.equal(iso(T0 + 5000), g.updated_at)
            assert.equal(secs(T0 + HOUR), raw_item(t, r.id).ttl)
        end)

        it("rewrites ttl with expires_at, longer or shorter", function()
            local t = fx.tenant()
            local r = ls.create(t, login())
            assert.is_true(ls.update(t, r.id, { expires_at = iso(T0 + 48 * HOUR) }))
            local it = raw_item(t, r.id)
            assert.equal(iso(T0 + 48 * HOUR), it.expires_at)
            assert.equal(secs(T0 + 48 * HOUR), it.ttl)
            assert.is_true(ls.update(t, r.id, { expires_at = iso(T0 + 2000) }))
            assert.equal(secs(T0 + 2000), raw_item(t, r.id).ttl)
            fx.advance(2)
            assert.is_nil(ls.get(t, r.id))
        end)

        it("removes optional fields set to null", function()
            local t = fx.tenant()
            local r = ls.create(t, login({ failure_reason = "bad", auth_strategy = { strategy = "a", strategy_type = "b" } }))
            assert.is_true(ls.update(t, r.id, { failure_reason = core.null, auth_strategy = core.null }))
            local it = raw_item(t, r.id)
            assert.is_nil(it.failure_reason)
            assert.is_nil(it.auth_strategy)
        end)

        it("merges authParams into the stored object (null drops a key)", function()
            local t = fx.tenant()
            local r = ls.create(t, login())
            assert.is_true(ls.update(t, r.id, { authParams = { username = "ada@example.com", state = core.null } }))
            assert.same({ client_id = "client-1", response_type = "code", scope = "openid", username = "ada@example.com" },
                ls.get(t, r.id).authParams)
            assert.is_true(ls.update(t, r.id, { authParams = { client_id = "client-2", ui_locales = "sv" } }))
            assert.same({ client_id = "client-2", response_type = "code", scope = "openid", username = "ada@example.com",
                ui_locales = "sv" }, ls.get(t, r.id).authParams)
            assert.equal("string", type(raw_item(t, r.id).authParams))
        end)

        it("returns false for a missing or expired login session and writes nothing", function()
            local t = fx.tenant()
            assert.is_false(ls.update(t, "nope", { state = "failed" }))
            assert.is_false(ls.update(t, "nope", { authParams = { username = "x" } }))
            assert.is_nil(raw_item(t, "nope"))
            local r = ls.create(t, login({ expires_at = iso(T0 + 1000) }))
            fx.advance(1)
            assert.is_false(ls.update(t, r.id, { state = "failed" }))
            assert.is_false(ls.update(t, r.id, { expires_at = iso(T0 + HOUR) }))
            assert.is_false(ls.update(t, r.id, { authParams = { username = "x" } }))
            assert.equal("pending", raw_item(t, r.id).state)
            assert.equal(secs(T0 + 1000), raw_item(t, r.id).ttl)
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            fx.rejects(ls.update, t, "x", nil)
            fx.rejects(ls.update, t, "x", { expires_at = core.null })
            fx.rejects(ls.update, t, "x", { expires_at = "later" })
            fx.rejects(ls.update, t, "x", { csrf_token = core.null })
            fx.rejects(ls.update, t, "x", { authParams = core.null })
            fx.rejects(ls.update, t, "x", { authParams = { client_id = core.null } })
            fx.rejects(ls.update, t, "x", { state = "nope" })
            fx.rejects(ls.update, t, "x", { state = core.null })
            fx.rejects(ls.update, t, "x", { auth_strategy = { strategy_type = "x" } })
            fx.rejects(ls.update, t, nil, {})
        end)

        it("loses no authParams key when processes merge at once", function()
            local t = fx.tenant()
            local r = ls.create(t, login({ expires_at = iso(T0 + 24 * HOUR) }))
            local out = fx.race(4, string.format([[function(a, i)
                return tostring(a.loginSessions.update(%q, %q, { authParams = { ["k" .. i] = "v" .. i } }))
            end]], t, r.id))
            local params = ls.get(t, r.id).authParams
            local won = 0
            for i, o in ipairs(out) do
                assert.is_true(o == "true" or o == "error: Conflict", o)
                if o == "true" then
                    won = won + 1
                    assert.equal("v" .. i, params["k" .. i])
                end
            end
            assert.is_true(won >= 1)
            assert.equal("client-1", params.client_id)
            assert.equal("openid", params.scope)
        end)
    end)

    describe("remove", function()
        it("deletes once, then returns false; expired counts as absent", function()
            local t = fx.tenant()
            local a = ls.create(t, login())
            local b = ls.create(t, login({ expires_at = iso(T0 + 1000) }))
            assert.is_true(ls.remove(t, a.id))
            assert.is_nil(ls.get(t, a.id))
            assert.is_nil(raw_item(t, a.id))
            assert.is_false(ls.remove(t, a.id))
            fx.advance(1)
            assert.is_false(ls.remove(t, b.id))
            assert.is_nil(raw_item(t, b.id))
            fx.rejects(ls.remove, t, "")
        end)
    end)

    describe("the bump rule (_bump)", function()
        it("extends expires_at, ttl and updated_at in one request", function()
            local t = fx.tenant()
            local r = ls.create(t, login())
            fx.advance(3)
            local before = fx.requests()
            assert.is_true(ls._bump(t, r.id, iso(T0 + 5 * HOUR)))
            assert.equal(1, fx.requests() - before)
            local it = raw_item(t, r.id)
            assert.equal(iso(T0 + 5 * HOUR), it.expires_at)
            assert.equal(secs(T0 + 5 * HOUR), it.ttl)
            assert.equal(iso(T0 + 3000), it.updated_at)
            assert.equal("csrf-1", it.csrf_token)
            -- accepts any ISO form and stores it normalized
            assert.is_true(ls._bump(t, r.id, "2099-01-01T01:00:00+01:00"))
            assert.equal("2099-01-01T00:00:00.000Z", ls.get(t, r.id).expires_at)
        end)

        it("never shortens, also not to the same second", function()
            local t = fx.tenant()
            local r = ls.create(t, login({ expires_at = iso(T0 + 10 * HOUR) }))
            assert.is_false(ls._bump(t, r.id, iso(T0 + 2 * HOUR)))
            assert.is_false(ls._bump(t, r.id, iso(T0 + 10 * HOUR)))
            assert.is_false(ls:_bump(t, r.id, iso(T0 + HOUR)))
            local it = raw_item(t, r.id)
            assert.equal(iso(T0 + 10 * HOUR), it.expires_at)
            assert.equal(secs(T0 + 10 * HOUR), it.ttl)
            assert.equal(iso(T0), it.updated_at)
        end)

        it("does not create a missing login session, nor touch another tenant's", function()
            local t, other = fx.tenant(), fx.tenant()
            local r = ls.create(t, login())
            assert.is_false(ls._bump(t, "missing", iso(T0 + 5 * HOUR)))
            assert.is_nil(raw_item(t, "missing"))
            assert.is_false(ls._bump(other, r.id, iso(T0 + 5 * HOUR)))
            assert.is_nil(raw_item(other, r.id))
            assert.equal(iso(T0 + HOUR), ls.get(t, r.id).expires_at)
        end)

        it("does not resurrect an expired login session", function()
            local t = fx.tenant()
            local r = ls.create(t, login({ expires_at = iso(T0 + 1000) }))
            fx.advance(2)
            assert.is_false(ls._bump(t, r.id, iso(T0 + 5 * HOUR)))
            assert.is_nil(ls.get(t, r.id))
            assert.equal(secs(T0 + 1000), raw_item(t, r.id).ttl)
        end)

        it("extends a login session stored without ttl (the contract's 'ttl absent')", function()
            local t = fx.tenant()
            local r = ls.create(t, login())
            local it = raw_item(t, r.id)
            it.ttl = nil
            fx.raw_put(it)
            assert.is_true(ls._bump(t, r.id, iso(T0 + 3 * HOUR)))
            assert.equal(secs(T0 + 3 * HOUR), raw_item(t, r.id).ttl)
        end)

        it("sends nothing for a time already past or unusable arguments, and never raises", function()
            local t = fx.tenant()
            local r = ls.create(t, login())
            local before = fx.requests()
            assert.is_false(ls._bump(t, r.id, iso(T0 - 1000)))
            assert.is_false(ls._bump(t, r.id, iso(T0)))
            assert.is_false(ls._bump(t, r.id, "not a time"))
            assert.is_false(ls._bump(t, r.id, nil))
            assert.is_false(ls._bump(t, nil, iso(T0 + HOUR)))
            assert.is_false(ls._bump("", r.id, iso(T0 + HOUR)))
            assert.equal(0, fx.requests() - before)
        end)

        it("swallows a failing write (logged) and returns false", function()
            local broken = fx.adapters({ tableName = "no_such_table_" .. os.time() })
            local ok, res = pcall(broken.loginSessions._bump, fx.tenant(), "ls", iso(T0 + HOUR))
            assert.is_true(ok)
            assert.is_false(res)
        end)

        it("ends at the latest expiry when processes bump at once", function()
            local t = fx.tenant()
            local r = ls.create(t, login({ expires_at = iso(T0 + HOUR) }))
            local out = fx.race(5, string.format([[function(a, i)
                return tostring(a.loginSessions._bump(%q, %q, %q .. i))
            end]], t, r.id, iso(T0 + 2 * HOUR):sub(1, -2)))
            -- racer i bumps to T0 + 2h + 0.00i s: same second, so at most the first one to land wins
            local wins = 0
            for _, o in ipairs(out) do
                assert.is_true(o == "true" or o == "false", o)
                if o == "true" then wins = wins + 1 end
            end
            assert.equal(1, wins)
            assert.equal(secs(T0 + 2 * HOUR), raw_item(t, r.id).ttl)
            local out2 = fx.race(5, string.format([[function(a, i)
                return tostring(a.loginSessions._bump(%q, %q, require("authhero.aws.util").iso(%d + i * 3600000)))
            end]], t, r.id, T0 + 2 * HOUR))
            for _, o in ipairs(out2) do assert.is_true(o == "true" or o == "false", o) end
            local it = raw_item(t, r.id)
            assert.equal(iso(T0 + 7 * HOUR), it.expires_at)
            assert.equal(secs(T0 + 7 * HOUR), it.ttl)
        end)
    end)

    describe("hostile ids", function()
        it("keeps tenants and ids with # and % apart", function()
            local base = fx.tenant()
            local evil = base .. "#LOGIN_SESSION#x"
            local odd = { "a#LOGIN_SESSION#b", "a%23LOGIN_SESSION%23b", "%", "#", "ünï ✓" }
            for _, id in ipairs(odd) do ls.create(base, login({ id = id, csrf_token = "c-" .. id })) end
            ls.create(evil, login({ id = "x", csrf_token = "evil" }))
            for _, id in ipairs(odd) do
                assert.equal("c-" .. id, ls.get(base, id).csrf_token)
                assert.is_nil(ls.get(evil, id))
            end
            assert.is_nil(ls.get(base, "x"))
            assert.equal("evil", ls.get(evil, "x").csrf_token)
            assert.is_true(ls.update(base, "a#LOGIN_SESSION#b", { state = "failed" }))
            assert.equal("pending", ls.get(base, "a%23LOGIN_SESSION%23b").state)
            assert.is_true(ls._bump(base, "%", iso(T0 + 9 * HOUR)))
            assert.equal(iso(T0 + HOUR), ls.get(base, "#").expires_at)
            assert.is_true(ls.remove(base, "a#LOGIN_SESSION#b"))
            assert.is_not_nil(ls.get(base, "a%23LOGIN_SESSION%23b"))
            for _, it in ipairs(fx.raw_partition(schema.keys.tenant_partition(evil))) do
                assert.equal(evil, it.tenant_id)
            end
        end)
    end)
end)
