-- sessions adapter (contract §4.3) against DynamoDB Local: create/get/list/update/remove, the GSI1
-- user index behind `q = "user_id:…"`, TTL from expires_at / idle_expires_at with the injected
-- clock, the login-session bump of create and update, validation before any request, hostile ids.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local T0 = math.floor(core.now()) * 1000 -- the fixed "now" of every test (real time, so DynamoDB Local's
local HOUR = 3600 * 1000                  -- own clock never expires what ours keeps live)

local function iso(ms) return util.iso(ms) end

local function raw_item(t, id) return fx.raw_get(schema.keys.session(t, id)) end

local function session(id, user_id, extra)
    local s = { id = id, user_id = user_id or "auth2|u1", login_session_id = "ls-" .. id,
        expires_at = iso(T0 + 24 * HOUR) }
    for k, v in pairs(extra or {}) do s[k] = v end
    return s
end

describe("sessions adapter", function()
    local adapters, sessions

    setup(function()
        adapters = fx.adapters()
        sessions = adapters.sessions
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create", function()
        it("stores a session and returns it as get does, with defaults", function()
            local t = fx.tenant()
            local s = sessions.create(t, { id = "s1", user_id = "auth2|u1", login_session_id = "ls1",
                expires_at = "2099-01-02T03:04:05Z" })
            assert.equal("s1", s.id)
            assert.equal("auth2|u1", s.user_id)
            assert.equal("ls1", s.login_session_id)
            assert.equal("2099-01-02T03:04:05.000Z", s.expires_at)
            assert.same({}, s.device)
            assert.same({}, s.clients)
            assert.is_true(core.is_array(s.clients))
            assert.equal(iso(T0), s.authenticated_at)
            assert.equal(iso(T0), s.last_interaction_at)
            assert.equal(iso(T0), s.created_at)
            assert.equal(iso(T0), s.updated_at)
            for _, k in ipairs({ "PK", "SK", "GSI1PK", "GSI1SK", "entityType", "ttl", "tenant_id" }) do
                assert.is_nil(s[k], k)
            end
            assert.same(s, sessions.get(t, "s1"))
        end)

        it("writes JSON strings, GSI1, tenant_id and ttl from expires_at", function()
            local t = fx.tenant()
            sessions.create(t, session("s1", "auth2|u1", {
                device = { initial_ip = "1.2.3.4", last_user_agent = "ua" }, clients = { "c1", "c2" },
                idle_expires_at = iso(T0 + HOUR),
            }))
            local it = raw_item(t, "s1")
            assert.equal("SESSION", it.entityType)
            assert.equal(t, it.tenant_id)
            assert.equal("string", type(it.device))
            assert.equal('["c1","c2"]', it.clients)
            assert.equal(math.floor((T0 + 24 * HOUR) / 1000), it.ttl)
            local idx = schema.keys.session_user_index(t, "auth2|u1", "s1")
            assert.equal(idx.GSI1PK, it.GSI1PK)
            assert.equal(idx.GSI1SK, it.GSI1SK)
            local s = sessions.get(t, "s1")
            assert.same({ initial_ip = "1.2.3.4", last_user_agent = "ua" }, s.device)
            assert.same({ "c1", "c2" }, s.clients)
        end)

        it("takes ttl from idle_expires_at when there is no expires_at, none without either", function()
            local t = fx.tenant()
            sessions.create(t, { id = "idle", user_id = "u", login_session_id = "l",
                idle_expires_at = iso(T0 + 2 * HOUR + 999) })
            sessions.create(t, { id = "none", user_id = "u", login_session_id = "l" })
            assert.equal(math.floor((T0 + 2 * HOUR + 999) / 1000), raw_item(t, "idle").ttl)
            assert.is_nil(raw_item(t, "none").ttl)
            assert.is_not_nil(sessions.get(t, "none"))
        end)

        it("refuses an existing id with 409 and keeps the first session", function()
            local t = fx.tenant()
            sessions.create(t, session("s1", "auth2|a"))
            fx.raises(409, "Conflict", sessions.create, t, session("s1", "auth2|b"))
            assert.equal("auth2|a", sessions.get(t, "s1").user_id)
        end)

        it("may overwrite an expired session with the same id", function()
            local t = fx.tenant()
            sessions.create(t, session("s1", "auth2|a", { expires_at = iso(T0 + 10 * 1000) }))
            fx.advance(11)
            local s = sessions.create(t, session("s1", "auth2|b"))
            assert.equal("auth2|b", s.user_id)
            assert.equal("auth2|b", sessions.get(t, "s1").user_id)
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            fx.rejects(sessions.create, t, { user_id = "u", login_session_id = "l" })
            fx.rejects(sessions.create, t, { id = "s", login_session_id = "l" })
            fx.rejects(sessions.create, t, { id = "s", user_id = "u" })
            fx.rejects(sessions.create, t, { id = "", user_id = "u", login_session_id = "l" })
            fx.rejects(sessions.create, t, session("s", "u", { expires_at = "tomorrow" }))
            fx.rejects(sessions.create, t, session("s", "u", { idle_expires_at = 12 }))
            fx.rejects(sessions.create, t, session("s", "u", { device = "not a table" }))
            fx.rejects(sessions.create, t, "nope")
            fx.rejects(sessions.create, nil, session("s"))
        end)
    end)

    describe("get", function()
        it("returns nil for a missing session and for another tenant's", function()
            local t, other = fx.tenant(), fx.tenant()
            sessions.create(t, session("s1"))
            assert.is_nil(sessions.get(t, "nope"))
            assert.is_nil(sessions.get(other, "s1"))
        end)

        it("treats a session whose expiry has passed as absent (injected clock)", function()
            local t = fx.tenant()
            sessions.create(t, session("s1", "u", { expires_at = iso(T0 + 60 * 1000) }))
            sessions.create(t, { id = "s2", user_id = "u", login_session_id = "l",
                idle_expires_at = iso(T0 + 30 * 1000) })
            fx.advance(29)
            assert.is_not_nil(sessions.get(t, "s1"))
            assert.is_not_nil(sessions.get(t, "s2"))
            fx.advance(1)
            assert.is_nil(sessions.get(t, "s2"))
            assert.is_not_nil(sessions.get(t, "s1"))
            fx.advance(30)
            assert.is_nil(sessions.get(t, "s1"))
            assert.equal(0, sessions.list(t).length)
        end)

        it("works with a colon call", function()
            local t = fx.tenant()
            sessions:create(t, session("s1"))
            assert.equal("s1", sessions:get(t, "s1").id)
        end)

        it("validates before sending anything", function()
            fx.rejects(sessions.get, fx.tenant(), nil)
            fx.rejects(sessions.get, "", "s1")
        end)
    end)

    describe("list", function()
        local t
        setup(function()
            t = fx.tenant()
            fx.set_now(T0)
            for i = 1, 12 do
                local user = i % 3 == 0 and "auth2|alice" or "auth2|bob"
                sessions.create(t, session(string.format("s%02d", i), user,
                    { login_session_id = i <= 6 and "ls-a" or "ls-b" }))
            end
            fx.reset_clock()
        end)

        it("pages in offset mode with a real total", function()
            local p0 = sessions.list(t, { page = 0, per_page = 5, include_totals = true })
            assert.same({ "s01", "s02", "s03", "s04", "s05" }, fx.ids(p0.sessions))
            assert.equal(0, p0.start)
            assert.equal(5, p0.limit)
            assert.equal(12, p0.length) -- the total, with include_totals (contract §9.3 #4)
            assert.equal(12, p0.total)
            local p2 = sessions.list(t, { page = 2, per_page = 5, include_totals = true })
            assert.same({ "s11", "s12" }, fx.ids(p2.sessions))
            assert.equal(10, p2.start)
            assert.equal(12, p2.length)
            assert.equal(12, p2.total)
            assert.is_nil(sessions.list(t, { page = 0, per_page = 5 }).total)
            assert.equal(12, sessions.list(t).length)
        end)

        it("walks every session exactly once in keyset mode", function()
            local walked = fx.keyset_walk(function(o) return sessions.list(t, o) end, "sessions", "id", 5)
            assert.equal(12, #walked)
        end)

        it("filters with q and counts the matches", function()
            local r = sessions.list(t, { q = "login_session_id:ls-b", include_totals = true })
            assert.equal(6, r.total)
            for _, s in ipairs(r.sessions) do assert.equal("ls-b", s.login_session_id) end
            local r2 = sessions.list(t, { q = "login_session_id:ls-b -user_id:auth2|bob" })
            assert.same({ "s09", "s12" }, fx.ids(r2.sessions))
            assert.same({ "s10" }, fx.ids(sessions.list(t, { q = "s10" }).sessions))
            assert.equal(4, sessions.list(t, { q = "auth2|alice" }).length)
        end)

        it("answers user_id: through the user index", function()
            local r = sessions.list(t, { q = "user_id:auth2|alice", include_totals = true })
            assert.same({ "s03", "s06", "s09", "s12" }, fx.ids(r.sessions))
            assert.equal(4, r.total)
            local quoted = sessions.list(t, { q = 'user_id:"auth2|alice" login_session_id:ls-a' })
            assert.same({ "s03", "s06" }, fx.ids(quoted.sessions))
            assert.equal(0, sessions.list(t, { q = "user_id:auth2|nobody" }).length)
        end)

        it("refuses an unknown q field before sending anything", function()
            fx.rejects(sessions.list, t, { q = "device:x" })
            fx.rejects(sessions.list, t, { q = "foo:bar" })
            fx.rejects(sessions.list, t, { per_page = "ten" })
        end)

        it("sorts by created_at when asked", function()
            local r = sessions.list(t, { sort = { sort_by = "created_at", sort_order = "desc" }, per_page = 3 })
            assert.equal(3, r.length)
        end)
    end)

    describe("revoking all of a user's sessions", function()
        it("lists them with q user_id: and updates each", function()
            local t = fx.tenant()
            for i = 1, 4 do sessions.create(t, session("a" .. i, "auth2|alice")) end
            sessions.create(t, session("b1", "auth2|bob"))
            sessions.create(t, session("a-expired", "auth2|alice", { expires_at = iso(T0 + 5000) }))
            fx.advance(10)
            local mine = sessions.list(t, { q = "user_id:auth2|alice", per_page = 1000 })
            assert.same({ "a1", "a2", "a3", "a4" }, fx.ids(mine.sessions))
            local when = iso(T0 + 10000)
            for _, s in ipairs(mine.sessions) do
                assert.is_true(sessions.update(t, s.id, { revoked_at = when }))
            end
            for i = 1, 4 do assert.equal(when, sessions.get(t, "a" .. i).revoked_at) end
            assert.is_nil(sessions.get(t, "b1").revoked_at)
            local live = sessions.list(t, { q = "user_id:auth2|alice -_exists_:revoked_at" })
            assert.equal(0, live.length)
        end)
    end)

    describe("update", function()
        it("patches fields, re-encodes JSON and stamps updated_at", function()
            local t = fx.tenant()
            sessions.create(t, session("s1"))
            fx.advance(5)
            assert.is_true(sessions.update(t, "s1", { device = { last_ip = "9.9.9.9" }, clients = { "c9" },
                last_interaction_at = "2099-05-05T05:05:05+01:00", id = "ignored", created_at = "2000-01-01" }))
            local s = sessions.get(t, "s1")
            assert.same({ last_ip = "9.9.9.9" }, s.device)
            assert.same({ "c9" }, s.clients)
            assert.equal("2099-05-05T04:05:05.000Z", s.last_interaction_at)
            assert.equal("s1", s.id)
            assert.equal(iso(T0), s.created_at)
            assert.equal(iso(T0 + 5000), s.updated_at)
            assert.equal("string", type(raw_item(t, "s1").device))
        end)

        it("rewrites ttl when the expiry fields change", function()
            local t = fx.tenant()
            sessions.create(t, session("s1", "u", { idle_expires_at = iso(T0 + HOUR) }))
            assert.is_true(sessions.update(t, "s1", { expires_at = iso(T0 + 48 * HOUR) }))
            assert.equal(math.floor((T0 + 48 * HOUR) / 1000), raw_item(t, "s1").ttl)
            -- idle changes while expires_at stays: ttl still follows expires_at
            assert.is_true(sessions.update(t, "s1", { idle_expires_at = iso(T0 + 3 * HOUR) }))
            assert.equal(math.floor((T0 + 48 * HOUR) / 1000), raw_item(t, "s1").ttl)
            -- expires_at removed: ttl falls back to idle_expires_at
            assert.is_true(sessions.update(t, "s1", { expires_at = core.null }))
            local it = raw_item(t, "s1")
            assert.is_nil(it.expires_at)
            assert.equal(math.floor((T0 + 3 * HOUR) / 1000), it.ttl)
            -- both removed: no ttl at all
            assert.is_true(sessions.update(t, "s1", { idle_expires_at = core.null }))
            assert.is_nil(raw_item(t, "s1").ttl)
            -- shortening makes it expire with the clock
            assert.is_true(sessions.update(t, "s1", { idle_expires_at = iso(T0 + 2000) }))
            fx.advance(2)
            assert.is_nil(sessions.get(t, "s1"))
        end)

        it("moves the user index when user_id changes", function()
            local t = fx.tenant()
            sessions.create(t, session("s1", "auth2|a"))
            assert.is_true(sessions.update(t, "s1", { user_id = "auth2|b" }))
            assert.equal(0, sessions.list(t, { q = "user_id:auth2|a" }).length)
            assert.same({ "s1" }, fx.ids(sessions.list(t, { q = "user_id:auth2|b" }).sessions))
        end)

        it("returns false for a missing or expired session", function()
            local t = fx.tenant()
            assert.is_false(sessions.update(t, "nope", { revoked_at = iso(T0) }))
            assert.is_false(sessions.update(t, "nope", { expires_at = iso(T0 + HOUR) }))
            sessions.create(t, session("s1", "u", { expires_at = iso(T0 + 1000) }))
            fx.advance(1)
            assert.is_false(sessions.update(t, "s1", { revoked_at = iso(T0) }))
            assert.is_false(sessions.update(t, "s1", { expires_at = iso(T0 + HOUR) }))
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            fx.rejects(sessions.update, t, "s1", nil)
            fx.rejects(sessions.update, t, "s1", { expires_at = "soon" })
            fx.rejects(sessions.update, t, "s1", { user_id = core.null })
            fx.rejects(sessions.update, t, "s1", { clients = "c1" })
            fx.rejects(sessions.update, t, nil, {})
        end)
    end)

    describe("remove", function()
        it("deletes once, then returns false; expired counts as absent", function()
            local t = fx.tenant()
            sessions.create(t, session("s1"))
            sessions.create(t, session("s2", "u", { expires_at = iso(T0 + 1000) }))
            assert.is_true(sessions.remove(t, "s1"))
            assert.is_nil(sessions.get(t, "s1"))
            assert.is_false(sessions.remove(t, "s1"))
            fx.advance(1)
            assert.is_false(sessions.remove(t, "s2"))
            assert.is_nil(raw_item(t, "s2"))
            assert.equal(0, sessions.list(t, { q = "user_id:auth2|u1" }).length)
        end)
    end)

    describe("bumping the login session (contract §5.1 bump rule)", function()
        local LS
        setup(function() LS = adapters.loginSessions end)

        local function login(t, expires_ms)
            return LS.create(t, { csrf_token = "c", authParams = { client_id = "app" }, expires_at = iso(expires_ms) }).id
        end
        local function ls_item(t, id) return fx.raw_get(schema.keys.login_session(t, id)) end

        it("create extends the login session to the later of expires_at / idle_expires_at", function()
            local t = fx.tenant()
            local ls = login(t, T0 + HOUR)
            fx.advance(2)
            local before = fx.requests()
            sessions.create(t, session("s1", "u", { login_session_id = ls, expires_at = iso(T0 + 7 * 24 * HOUR),
                idle_expires_at = iso(T0 + 3 * 24 * HOUR) }))
            assert.equal(2, fx.requests() - before) -- the session, then the bump
            local it = ls_item(t, ls)
            assert.equal(iso(T0 + 7 * 24 * HOUR), it.expires_at)
            assert.equal(math.floor((T0 + 7 * 24 * HOUR) / 1000), it.ttl)
            assert.equal(iso(T0 + 2000), it.updated_at)
            -- idle later than absolute: idle wins
            local ls2 = login(t, T0 + HOUR)
            sessions.create(t, session("s2", "u", { login_session_id = ls2, expires_at = iso(T0 + 2 * HOUR),
                idle_expires_at = iso(T0 + 5 * HOUR) }))
            assert.equal(iso(T0 + 5 * HOUR), LS.get(t, ls2).expires_at)
            -- only idle_expires_at
            local ls3 = login(t, T0 + HOUR)
            sessions.create(t, { id = "s3", user_id = "u", login_session_id = ls3, idle_expires_at = iso(T0 + 4 * HOUR) })
            assert.equal(iso(T0 + 4 * HOUR), LS.get(t, ls3).expires_at)
        end)

        it("create never shortens a longer login session, and without expiries leaves it alone", function()
            local t = fx.tenant()
            local ls = login(t, T0 + 30 * 24 * HOUR)
            sessions.create(t, session("s1", "u", { login_session_id = ls, expires_at = iso(T0 + HOUR),
                idle_expires_at = iso(T0 + HOUR) }))
            local before = fx.requests()
            sessions.create(t, { id = "s2", user_id = "u", login_session_id = ls })
            assert.equal(1, fx.requests() - before) -- no expiry: nothing to bump to
            local it = ls_item(t, ls)
            assert.equal(iso(T0 + 30 * 24 * HOUR), it.expires_at)
            assert.equal(math.floor((T0 + 30 * 24 * HOUR) / 1000), it.ttl)
            assert.equal(iso(T0), it.updated_at)
        end)

        it("create with a missing login session still creates the session, and no login session", function()
            local t = fx.tenant()
            local s = sessions.create(t, session("s1", "u", { login_session_id = "gone" }))
            assert.equal("gone", s.login_session_id)
            assert.is_not_nil(sessions.get(t, "s1"))
            assert.is_nil(ls_item(t, "gone"))
        end)

        it("does not resurrect an expired login session (§5.1: it must exist, and expired is absent)", function()
            local t = fx.tenant()
            local ls = login(t, T0 + 1000)
            fx.advance(2)
            sessions.create(t, session("s1", "u", { login_session_id = ls, expires_at = iso(T0 + 24 * HOUR) }))
            assert.is_not_nil(sessions.get(t, "s1"))
            assert.is_nil(LS.get(t, ls))
            local it = ls_item(t, ls)
            assert.equal(iso(T0 + 1000), it.expires_at)
            assert.equal(math.floor((T0 + 1000) / 1000), it.ttl)
            assert.is_true(sessions.update(t, "s1", { idle_expires_at = iso(T0 + 48 * HOUR) }))
            assert.is_nil(LS.get(t, ls))
        end)

        it("update bumps the stored login session when an expiry moves later", function()
            local t = fx.tenant()
            local ls = login(t, T0 + HOUR)
            sessions.create(t, session("s1", "u", { login_session_id = ls, expires_at = iso(T0 + HOUR),
                idle_expires_at = iso(T0 + HOUR) }))
            assert.is_true(sessions.update(t, "s1", { idle_expires_at = iso(T0 + 5 * 24 * HOUR) }))
            assert.equal(iso(T0 + 5 * 24 * HOUR), LS.get(t, ls).expires_at)
            assert.equal(math.floor((T0 + 5 * 24 * HOUR) / 1000), ls_item(t, ls).ttl)
            -- the later of the merged expiries, even when only the other one moved
            assert.is_true(sessions.update(t, "s1", { expires_at = iso(T0 + 2 * HOUR) }))
            assert.equal(iso(T0 + 5 * 24 * HOUR), LS.get(t, ls).expires_at)
        end)

        it("update bumps the login session the patch names", function()
            local t = fx.tenant()
            local old_ls, new_ls = login(t, T0 + HOUR), login(t, T0 + HOUR)
            sessions.create(t, session("s1", "u", { login_session_id = old_ls, expires_at = iso(T0 + HOUR) }))
            assert.is_true(sessions.update(t, "s1", { login_session_id = new_ls, expires_at = iso(T0 + 9 * HOUR) }))
            assert.equal(iso(T0 + 9 * HOUR), LS.get(t, new_ls).expires_at)
            assert.equal(iso(T0 + HOUR), LS.get(t, old_ls).expires_at)
        end)

        it("update never shortens, and an update that moves no expiry later sends no bump", function()
            local t = fx.tenant()
            local ls = login(t, T0 + 10 * HOUR)
            sessions.create(t, session("s1", "u", { login_session_id = ls, expires_at = iso(T0 + 10 * HOUR) }))
            local before = fx.requests()
            assert.is_true(sessions.update(t, "s1", { expires_at = iso(T0 + 2 * HOUR) }))
            assert.equal(2, fx.requests() - before) -- read + write, no bump
            before = fx.requests()
            assert.is_true(sessions.update(t, "s1", { revoked_at = iso(T0) }))
            assert.equal(1, fx.requests() - before)
            assert.is_true(sessions.update(t, "s1", { idle_expires_at = iso(T0 + 3 * HOUR) })) -- later, but shorter
            local it = ls_item(t, ls)
            assert.equal(iso(T0 + 10 * HOUR), it.expires_at)
            assert.equal(math.floor((T0 + 10 * HOUR) / 1000), it.ttl)
        end)

        it("a bump that fails (logged, swallowed) neither fails nor undoes the session write", function()
            local t = fx.tenant()
            local ls = login(t, T0 + HOUR)
            local broken = fx.adapters({ tableName = "no_such_table_" .. os.time() }).loginSessions
            local calls, real = 0, LS._bump
            LS._bump = function(...)
                calls = calls + 1
                return broken._bump(...) -- ResourceNotFoundException inside: logged, false
            end
            local ok, err = pcall(sessions.create, t, session("s1", "u", { login_session_id = ls,
                expires_at = iso(T0 + 9 * HOUR) }))
            LS._bump = real
            assert.is_true(ok, tostring(err))
            assert.equal(1, calls)
            assert.is_not_nil(sessions.get(t, "s1"))
            assert.equal(iso(T0 + HOUR), LS.get(t, ls).expires_at)
        end)
    end)

    describe("hostile ids", function()
        it("keeps tenants, users and ids with # % | and unicode apart", function()
            local base = fx.tenant()
            local evil = base .. "#USER#x"
            -- unescaped, (base, user "x#USER#y") and (evil, user "y") would share a GSI1 partition
            sessions.create(base, session("s-base", "x#USER#y"))
            sessions.create(evil, session("s-evil", "y"))
            assert.same({ "s-base" }, fx.ids(sessions.list(base, { q = 'user_id:"x#USER#y"' }).sessions))
            assert.same({ "s-evil" }, fx.ids(sessions.list(evil, { q = "user_id:y" }).sessions))
            assert.equal(0, sessions.list(base, { q = "user_id:y" }).length)
            assert.is_nil(sessions.get(base, "s-evil"))
            assert.is_nil(sessions.get(evil, "s-base"))
            assert.same({ "s-base" }, fx.ids(sessions.list(base).sessions))

            local odd = { "a#SESSION#b", "a%23SESSION%23b", "p|q", "ünï ✓", "%", "#" }
            for _, id in ipairs(odd) do sessions.create(base, session(id, "auth2|o")) end
            for _, id in ipairs(odd) do
                local s = sessions.get(base, id)
                assert.equal(id, s and s.id)
                assert.is_nil(sessions.get(evil, id))
            end
            assert.equal(#odd, sessions.list(base, { q = "user_id:auth2|o" }).length)
            assert.is_true(sessions.remove(base, "a#SESSION#b"))
            assert.is_not_nil(sessions.get(base, "a%23SESSION%23b"))
            -- nothing of tenant `base` landed in tenant `evil`'s partition or vice versa
            for _, it in ipairs(fx.raw_partition(schema.keys.tenant_partition(evil))) do
                assert.equal(evil, it.tenant_id)
            end
        end)
    end)
end)
