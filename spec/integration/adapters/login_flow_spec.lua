-- End to end: a password login the way an auth server runs it, through the adapters only, then the
-- user's deletion, checked against the raw table: nothing of the user may be left.
local fx = require "support.adapters"
local aws = require "authhero.aws"
local util = require "authhero.aws.util"

describe("password login, end to end", function()
    local adapters, t

    setup(function()
        adapters = fx.adapters()
        t = fx.tenant("login")
    end)

    it("signs up, logs in, opens a session and a code, revokes, and deletes without a trace", function()
        -- the tenant, its application and its database connection
        local tenant = adapters.tenants.create({ id = t, friendly_name = "Login Flow Inc." })
        assert.equals(t, tenant.id)
        local client = adapters.clients.create(t, { name = "Web App", callbacks = { "https://app.example/cb" } })
        assert.is_string(client.client_id)
        local found_client = adapters.clients.getByClientId(client.client_id)
        assert.equals(t, found_client.tenant_id)
        local conn = adapters.connections.create(t, { name = "Username-Password-Authentication",
            strategy = "Username-Password-Authentication" })

        -- sign up with a password hash: user + guards + password in one transaction
        local email = "Ada.Lovelace@Example.com"
        local hash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
        local user = adapters.users.create(t, {
            email = email, connection = conn.name, provider = "auth2",
            password = { hash = hash, algorithm = "argon2id" },
        })
        assert.matches("^auth2|", user.user_id)
        assert.equals("ada.lovelace@example.com", user.email)
        -- signing up twice is a conflict
        fx.raises(409, "Conflict", adapters.users.create, t, { email = email, connection = conn.name, provider = "auth2" })

        -- log in: the query AuthHero's login code sends, then the current password
        local page = adapters.users.list(t, { q = "email:" .. email:lower() .. " provider:auth2", per_page = 10 })
        assert.equals(1, #page.users)
        local u = page.users[1]
        assert.equals(user.user_id, u.user_id)
        local byemail = adapters.users.getByEmail(t, email)
        assert.equals(user.user_id, byemail and byemail.user_id)
        local pw = adapters.passwords.get(t, u.user_id)
        assert.equals(hash, pw.password)
        assert.is_true(pw.is_current)

        -- a session, and an authorization code consumed exactly once
        local now = fx.now_ms()
        local session = adapters.sessions.create(t, {
            id = "sess-" .. math.random(1e9), user_id = u.user_id, login_session_id = "ls-1",
            clients = { client.client_id }, expires_at = util.iso(now + 3600 * 1000),
        })
        assert.equals(u.user_id, adapters.sessions.get(t, session.id).user_id)
        local code = adapters.codes.create(t, {
            code_id = "code-" .. math.random(1e9), code_type = "authorization_code", login_id = "ls-1",
            user_id = u.user_id, expires_at = util.iso(now + 300 * 1000),
        })
        assert.is_true(adapters.codes.consume(t, code.code_id))
        assert.is_false(adapters.codes.consume(t, code.code_id))

        -- revoke every session of the user, found through the user index
        local sessions = adapters.sessions.list(t, { q = "user_id:" .. u.user_id }).sessions
        assert.equals(1, #sessions)
        for _, s in ipairs(sessions) do
            assert.is_true(adapters.sessions.update(t, s.id, { revoked_at = util.iso(fx.now_ms()) }))
        end
        assert.is_string(adapters.sessions.get(t, session.id).revoked_at)

        -- delete the user: nothing of it is left
        assert.is_true(adapters.users.remove(t, u.user_id))
        assert.is_nil(adapters.users.get(t, u.user_id))
        assert.is_nil(adapters.users.getByEmail(t, email))
        assert.is_nil(adapters.passwords.get(t, u.user_id))
        assert.same({}, fx.raw_partition(aws.schema.keys.user_partition(t, u.user_id)))
        for _, it in ipairs(fx.raw_partition(aws.schema.keys.tenant_partition(t))) do
            local kind = it.entityType
            assert.is_false((kind == "USER" or kind == "USER_GUARD" or kind == "PASSWORD" or kind == "SESSION")
                and it.user_id == u.user_id, "left behind: " .. tostring(it.SK))
        end
        -- and the same email can sign up again as a new user
        local again = adapters.users.create(t, { email = email, connection = conn.name, provider = "auth2" })
        assert.are_not.equal(u.user_id, again.user_id)
        assert.is_nil(adapters.passwords.get(t, again.user_id))
    end)
end)
