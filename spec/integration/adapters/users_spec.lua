-- users (contract §4.2) against DynamoDB Local: create with guards and a first password in one
-- transaction (409 on every duplicate), defaults, identities of linked users, getByEmail, every q
-- query AuthHero sends, pagination, updates that move GSI keys and guards atomically, remove's
-- cascade (partition, guards, sessions, memberships, linked users), unlink, and hostile ids.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"

local keys = schema.keys
local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

-- the tenant partition's guard items (optionally only those of one user)
local function guards(t, user_id)
    local out = {}
    for _, it in ipairs(fx.raw_partition(keys.tenant_partition(t))) do
        if it.entityType == "USER_GUARD" and (user_id == nil or it.user_id == user_id) then out[#out + 1] = it end
    end
    return out
end

local function ids_of(list) return fx.ids(list, "user_id") end

local function sorted(t)
    local c = {}
    for i, v in ipairs(t) do c[i] = v end
    table.sort(c)
    return c
end


-- adapters whose client runs hook() once, just before the first TransactWriteItems: a concurrent
-- writer slipping in between an adapter's read and its write
local function racing_adapters(hook)
    local aws = require "authhero.aws"
    local real, fired = fx.client(), false
    local proxy = setmetatable({}, { __index = function(_, k)
        local v = real[k]
        if type(v) == "function" then return function(_, ...) return v(real, ...) end end
        return v
    end })
    proxy.call = function(_, op, req)
        if op == "TransactWriteItems" and not fired then
            fired = true
            hook()
        end
        return real:call(op, req)
    end
    return aws.create_adapters(proxy, { tableName = fx.table_name(), now = fx.now_ms })
end

describe("users adapter", function()
    local A, U, t
    local base = 1767225600000 -- 2026-01-01T00:00:00.000Z

    local function mk(tenant, fields)
        local u = { connection = "Username-Password-Authentication", provider = "auth2" }
        for k, v in pairs(fields or {}) do u[k] = v end
        return U.create(tenant, u)
    end

    before_each(function()
        A = fx.adapters()
        U = A.users
        t = fx.tenant("users")
        fx.set_now(base)
    end)

    after_each(function()
        fx.reset_clock()
    end)

    describe("create", function()
        it("applies the defaults and returns the record as get does", function()
            local u = U.create(t, { email = "Alice@Example.COM", connection = "Username-Password-Authentication",
                provider = "auth2" })
            assert.matches("^auth2|[%w_%-]+$", u.user_id)
            assert.equals(6 + 21, #u.user_id)
            assert.equals("alice@example.com", u.email)
            assert.equals("auth2", u.provider)
            assert.is_false(u.email_verified)
            assert.is_false(u.is_social)
            assert.equals(0, u.login_count)
            assert.same({}, u.app_metadata)
            assert.same({}, u.user_metadata)
            assert.equals(t, u.tenant_id)
            assert.matches(ISO, u.created_at)
            assert.equals(u.created_at, u.updated_at)
            for _, k in ipairs({ "PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "entityType", "ttl", "password" }) do
                assert.is_nil(u[k], k)
            end
            assert.same({ {
                connection = "Username-Password-Authentication", provider = "auth2",
                user_id = u.user_id:sub(7), isSocial = false, email = "alice@example.com", email_verified = false,
            } }, u.identities)
            assert.same(u, U.get(t, u.user_id))
        end)

        it("takes the provider from the user_id and stores the documented encodings", function()
            local u = U.create(t, { user_id = "google-oauth2|123", connection = "google-oauth2", is_social = true,
                email = "G@x.com", app_metadata = { plan = "pro" }, address = { country = "SE" } })
            assert.equals("google-oauth2", u.provider)
            assert.equals("123", u.identities[1].user_id)
            assert.is_true(u.identities[1].isSocial)
            local item = fx.raw_get(keys.user(t, "google-oauth2|123"))
            assert.equals("USER", item.entityType)
            assert.equals('{"plan":"pro"}', item.app_metadata)
            assert.equals("{}", item.user_metadata)
            assert.equals('{"country":"SE"}', item.address)
            assert.equals(keys.user_email_index(t, "g@x.com").GSI1PK, item.GSI1PK)
            assert.equals("USER", item.GSI1SK)
            assert.is_nil(item.GSI2PK)
            assert.is_nil(item.identities)
            assert.equals(1, #guards(t, "google-oauth2|123"))
            assert.same({ plan = "pro" }, u.app_metadata)
            assert.same({ country = "SE" }, U.get(t, u.user_id).address)
        end)

        it("stores every field AuthHero knows", function()
            local fields = {
                user_id = "auth2|full", email = "full@x.com", username = "Fully", phone_number = "+4670000",
                phone_verified = true, given_name = "F", family_name = "U", nickname = "fu", name = "Full User",
                picture = "https://p", locale = "sv", profileData = '{"k":1}', email_verified = true,
                last_ip = "10.0.0.1", last_login = "2025-12-31T23:00:00+01:00", login_count = 7, blocked = false,
                verify_email = true, registration_completed_at = "2025-12-01T00:00:00Z", middle_name = "M",
                preferred_username = "pu", profile = "https://prof", website = "https://w", gender = "x",
                birthdate = "2000-01-01", zoneinfo = "Europe/Stockholm", user_metadata = { a = { b = 1 } },
            }
            local u = mk(t, fields)
            local g = U.get(t, "auth2|full")
            assert.same(u, g)
            for k, v in pairs(fields) do
                if k == "last_login" then
                    assert.equals("2025-12-31T22:00:00.000Z", g.last_login)
                elseif k == "registration_completed_at" then
                    assert.equals("2025-12-01T00:00:00.000Z", g.registration_completed_at)
                else
                    assert.same(v, g[k], k)
                end
            end
            assert.equals("Fully", g.identities[1].username)
            assert.equals("+4670000", g.identities[1].phone_number)
            assert.is_true(g.identities[1].phone_verified)
        end)

        it("rawCreate is create; a colon call works too", function()
            local u = U.rawCreate(t, { user_id = "auth2|raw", connection = "c" })
            assert.same(u, U:get(t, "auth2|raw"))
            local v = U:create(t, { user_id = "auth2|colon", connection = "c" })
            assert.equals("auth2|colon", v.user_id)
        end)

        it("honours importMetadata (id and timestamps)", function()
            local u = U.create(t, { user_id = "auth2|given", connection = "c" }, {
                importMetadata = { id = "auth2|imported", created_at = "2020-05-05T05:05:05Z" },
            })
            assert.equals("auth2|imported", u.user_id)
            assert.equals("2020-05-05T05:05:05.000Z", u.created_at)
            assert.is_nil(U.get(t, "auth2|given"))
        end)

        it("writes the first password, current, in the same transaction", function()
            local u = mk(t, { user_id = "auth2|pw", email = "pw@x.com", password = { hash = "$argon2id$h", algorithm = "argon2id" } })
            assert.is_nil(u.password)
            local p = A.passwords.get(t, "auth2|pw")
            assert.equals("$argon2id$h", p.password)
            assert.equals("argon2id", p.algorithm)
            assert.is_true(p.is_current)
            assert.equals("auth2|pw", p.user_id)
            assert.equals(u.created_at, p.created_at)
            mk(t, { user_id = "auth2|pw2", password = { hash = "h2" } })
            assert.equals("argon2id", A.passwords.get(t, "auth2|pw2").algorithm)
            -- a failed create writes no password either
            fx.raises(409, "Conflict", mk, t, { user_id = "auth2|pw3", email = "pw@x.com", password = { hash = "h3" } })
            assert.is_nil(A.passwords.get(t, "auth2|pw3"))
            assert.same({}, fx.raw_partition(keys.user_partition(t, "auth2|pw3")))
        end)

        it("409 on a duplicate id, email+provider or username+provider", function()
            mk(t, { user_id = "auth2|a", email = "dup@x.com", username = "Dupe" })
            local err = fx.raises(409, "Conflict", mk, t, { user_id = "auth2|a", email = "other@x.com" })
            assert.equals("User already exists", err.message)
            fx.raises(409, "Conflict", mk, t, { user_id = "auth2|b", email = "dup@x.com" })
            fx.raises(409, "Conflict", mk, t, { user_id = "auth2|c", email = "DUP@X.COM" })
            fx.raises(409, "Conflict", mk, t, { user_id = "auth2|d", username = "Dupe" })
            fx.raises(409, "Conflict", mk, t, { user_id = "auth2|e", username = "dupe" })
            -- same email or username with another provider is another identity
            mk(t, { user_id = "email|b", provider = "email", email = "dup@x.com", username = "dupe" })
            -- nothing of the failed creates was written (atomic): their ids and other values are free
            assert.is_nil(U.get(t, "auth2|b"))
            mk(t, { user_id = "auth2|f", email = "f@x.com", username = "taken-f" })
            fx.raises(409, "Conflict", mk, t, { user_id = "auth2|g", email = "g@x.com", username = "taken-f" })
            mk(t, { user_id = "auth2|g", email = "g@x.com", username = "free-g" })
            -- the original is unchanged
            assert.equals("dup@x.com", U.get(t, "auth2|a").email)
        end)

        it("concurrent creates of one email: exactly one wins", function()
            local R = racing_adapters(function()
                mk(t, { user_id = "auth2|first", email = "race@x.com" })
            end)
            fx.raises(409, "Conflict", R.users.create, t, { user_id = "auth2|second", email = "race@x.com",
                connection = "c", password = { hash = "h" } })
            assert.equals("auth2|first", U.getByEmail(t, "race@x.com").user_id)
            assert.is_nil(U.get(t, "auth2|second"))
            assert.same({}, fx.raw_partition(keys.user_partition(t, "auth2|second")))
        end)

        it("the same email in another tenant is allowed", function()
            mk(t, { user_id = "auth2|a", email = "same@x.com" })
            local t2 = fx.tenant("users-other")
            mk(t2, { user_id = "auth2|a", email = "same@x.com" })
            assert.equals(t2, U.get(t2, "auth2|a").tenant_id)
        end)

        it("400 before any request on invalid input", function()
            fx.rejects(U.create, t, { provider = "auth2" })                      -- no connection
            fx.rejects(U.create, t, { connection = "c" })                        -- no provider, no user_id
            fx.rejects(U.create, t, { connection = "c", user_id = "nopipe" })    -- no provider in the id
            fx.rejects(U.create, t, { connection = "c", user_id = "|x" })
            fx.rejects(U.create, t, { connection = "c", provider = "auth2", email = 5 })
            fx.rejects(U.create, t, { connection = "c", provider = "auth2", email_verified = "yes" })
            fx.rejects(U.create, t, { connection = "c", provider = "auth2", login_count = "3" })
            fx.rejects(U.create, t, { connection = "c", provider = "auth2", password = "plain" })
            fx.rejects(U.create, t, { connection = "c", provider = "auth2", password = { algorithm = "bcrypt" } })
            fx.rejects(U.create, t, { connection = "c", provider = "auth2", last_login = "not a date" })
            fx.rejects(U.create, t, { connection = "c", provider = "auth2", app_metadata = "x" })
            fx.rejects(U.create, t, "user")
            fx.rejects(U.create, "", { connection = "c", provider = "auth2" })
            fx.rejects(U.create, t, { connection = "c", provider = "auth2", name = string.rep("x", 500 * 1024) })
        end)
    end)

    describe("get and getByEmail", function()
        it("get: nil when absent", function()
            assert.is_nil(U.get(t, "auth2|nobody"))
            fx.rejects(U.get, t, "")
            fx.rejects(U.get, nil, "auth2|x")
        end)

        it("getByEmail is case-insensitive", function()
            local u = mk(t, { user_id = "auth2|ci", email = "MiXeD@Example.com" })
            assert.equals(u.user_id, U.getByEmail(t, "mixed@example.com").user_id)
            assert.equals(u.user_id, U.getByEmail(t, "MIXED@EXAMPLE.COM").user_id)
            assert.same(u, U.getByEmail(t, "Mixed@Example.Com"))
            assert.is_nil(U.getByEmail(t, "nobody@example.com"))
            fx.rejects(U.getByEmail, t, "")
            fx.rejects(U.getByEmail, t, nil)
        end)

        it("getByEmail stays inside its tenant, also for hostile tenant ids", function()
            mk(t, { user_id = "auth2|mine", email = "shared@x.com" })
            local other = fx.tenant("users-other")
            mk(other, { user_id = "auth2|theirs", email = "shared@x.com" })
            assert.equals("auth2|mine", U.getByEmail(t, "shared@x.com").user_id)
            assert.equals("auth2|theirs", U.getByEmail(other, "shared@x.com").user_id)
            -- unescaped, TENANT#{t}#EMAIL#{a@x.com#EMAIL#b@x.com} and TENANT#{t#EMAIL#a@x.com}#EMAIL#{b@x.com}
            -- would be the same GSI1 partition
            local hostile = t .. "#EMAIL#a@x.com"
            mk(hostile, { user_id = "auth2|h", email = "b@x.com" })
            assert.equals("auth2|h", U.getByEmail(hostile, "b@x.com").user_id)
            assert.is_nil(U.getByEmail(t, "a@x.com#EMAIL#b@x.com"))
            assert.is_nil(U.getByEmail(t, "b@x.com"))
            local h2 = "a#EMAIL#x"
            mk(h2, { user_id = "auth2|h2", email = "shared@x.com" })
            assert.equals("auth2|h2", U.getByEmail(h2, "shared@x.com").user_id)
            assert.is_nil(U.getByEmail("a", "x#EMAIL#shared@x.com"))
            assert.equals("auth2|mine", U.getByEmail(t, "shared@x.com").user_id)
        end)

        it("getByEmail prefers a primary user, then the oldest, then the smallest user_id", function()
            mk(t, { user_id = "z|newest", provider = "z", email = "p@x.com" })
            fx.advance(-10)
            mk(t, { user_id = "y|linked-oldest", provider = "y", email = "p@x.com", linked_to = "z|newest" })
            assert.equals("z|newest", U.getByEmail(t, "p@x.com").user_id)
            fx.advance(5)
            mk(t, { user_id = "x|middle", provider = "x", email = "p@x.com" })
            assert.equals("x|middle", U.getByEmail(t, "p@x.com").user_id)
            -- same created_at: smallest user_id
            mk(t, { user_id = "b|same", provider = "b", email = "s@x.com" })
            mk(t, { user_id = "a|same", provider = "a", email = "s@x.com" })
            assert.equals("a|same", U.getByEmail(t, "s@x.com").user_id)
        end)

        it("identities: own first, then linked users oldest first, with profileData", function()
            local p = mk(t, { user_id = "auth2|primary", email = "prim@x.com" })
            fx.advance(10)
            mk(t, { user_id = "google-oauth2|g1", provider = "google-oauth2", connection = "google-oauth2",
                is_social = true, email = "g@x.com", email_verified = true, linked_to = p.user_id,
                profileData = '{"given_name":"G"}' })
            fx.advance(-5)
            mk(t, { user_id = "samlp|acme|bob", provider = "samlp", connection = "acme", email = "bob@acme.com",
                linked_to = p.user_id })
            local g = U.get(t, p.user_id)
            assert.equals(3, #g.identities)
            assert.equals("primary", g.identities[1].user_id)
            assert.is_nil(g.identities[1].profileData)
            local saml, google = g.identities[2], g.identities[3]
            assert.equals("acme|bob", saml.user_id)
            assert.equals("samlp", saml.provider)
            assert.same({ email = "bob@acme.com", email_verified = false }, saml.profileData)
            assert.equals("g1", google.user_id)
            assert.is_true(google.isSocial)
            assert.equals("google-oauth2", google.connection)
            assert.same({ email = "g@x.com", email_verified = true, given_name = "G" }, google.profileData)
            assert.equals('[', core.json_encode(g.identities):sub(1, 1))
            -- the secondary's own identities list only itself
            assert.equals(1, #U.get(t, "google-oauth2|g1").identities)
            -- getByEmail returns identities too
            assert.equals(3, #U.getByEmail(t, "prim@x.com").identities)
        end)
    end)

    describe("list", function()
        local T -- one populated tenant for the q tests
        local function L(params) return U.list(T, params) end
        local function q(s, extra)
            local p = { q = s, per_page = 100 }
            for k, v in pairs(extra or {}) do p[k] = v end
            return sorted(ids_of(L(p).users))
        end

        setup(function()
            A = fx.adapters()
            U = A.users
            T = fx.tenant("users-list")
            fx.set_now(base)
            local function add(f)
                f.connection = f.connection or "Username-Password-Authentication"
                U.create(T, f)
                fx.advance(1)
            end
            add({ user_id = "auth2|alice", email = "alice@example.com", username = "alice", name = "Alice Smith",
                phone_number = "+1555000", email_verified = true, login_count = 10, given_name = "Alice" })
            add({ user_id = "auth2|bob", email = "bob@example.com", username = "bob", name = "Bob Jones",
                login_count = 3, blocked = true })
            add({ user_id = "email|bob", email = "BOB@example.com", connection = "email", name = "Bob by mail" })
            add({ user_id = "sms|carol", phone_number = "+46700111", connection = "sms", phone_verified = true })
            add({ user_id = "google-oauth2|alice", email = "alice@example.com", connection = "google-oauth2",
                is_social = true, linked_to = "auth2|alice" })
            add({ user_id = "github|alice", email = "alice@gh.com", connection = "github", is_social = true,
                linked_to = "auth2|alice", username = "alice" })
            add({ user_id = "auth2|dave", email = "dave@other.org", username = "dave", connection = "db2",
                locale = "sv", nickname = "D", family_name = "Doe", picture = "https://pic", last_ip = "1.2.3.4",
                last_login = "2025-06-01T00:00:00Z" })
            fx.reset_clock()
        end)

        it("offset mode returns primary and linked users in user_id order, with identities", function()
            local r = L({ per_page = 100, include_totals = true })
            assert.same({ "auth2|alice", "auth2|bob", "auth2|dave", "email|bob", "github|alice",
                "google-oauth2|alice", "sms|carol" }, ids_of(r.users))
            assert.equals(7, r.total)
            assert.equals(7, r.length)
            assert.equals(0, r.start)
            assert.equals(100, r.limit)
            assert.equals(3, #r.users[1].identities)
            assert.equals("google-oauth2", r.users[1].identities[2].provider) -- older link first
            assert.equals("github", r.users[1].identities[3].provider)
            assert.is_nil(r.users[1].PK)
        end)

        it("the queries AuthHero sends", function()
            assert.same({ "auth2|alice", "google-oauth2|alice" }, q("email:alice@example.com"))
            assert.same({ "auth2|alice", "google-oauth2|alice" }, q('email:"alice@example.com"'))
            assert.same({ "auth2|alice", "google-oauth2|alice" }, q("email:ALICE@example.com"))
            assert.same({ "auth2|bob" }, q("email:bob@example.com provider:auth2"))
            assert.same({ "email|bob" }, q("email:bob@example.com provider:email"))
            assert.same({ "auth2|alice" }, q("username:alice provider:auth2"))
            assert.same({ "github|alice" }, q("username:alice provider:github"))
            assert.same({}, q("username:ALICE provider:auth2"))
            assert.same({ "sms|carol" }, q("phone_number:+46700111 provider:sms"))
            assert.same({ "github|alice", "google-oauth2|alice" }, q("linked_to:auth2|alice"))
            assert.same({ "github|alice" }, q("linked_to:auth2|alice provider:github"))
            assert.same({ "email|bob" }, q("email:bob@example.com connection:email"))
            assert.same({ "auth2|dave" }, q("username:dave connection:db2"))
            assert.same({ "auth2|alice" }, q("-_exists_:linked_to email:alice@example.com"))
            assert.same({ "auth2|alice", "auth2|bob", "auth2|dave", "email|bob", "sms|carol" },
                q("-_exists_:linked_to"))
            assert.same({}, q("email:nobody@example.com"))
            assert.same({}, q("linked_to:auth2|nobody"))
            local before = fx.requests()
            assert.same({ "auth2|bob" }, q("user_id:auth2|bob"))
            assert.equals(1, fx.requests() - before) -- GetItem only: bob has no linked users (no hasLinked)
            before = fx.requests()
            assert.same({ "auth2|bob", "email|bob" }, q("email:bob@example.com"))
            assert.equals(1, fx.requests() - before) -- one GSI1 query; no identities query without hasLinked
            before = fx.requests()
            assert.same({ "auth2|dave" }, q("username:dave"))
            assert.equals(2, fx.requests() - before) -- guard query + GetItem
            assert.same({ "auth2|bob" }, q('user_id:"auth2|bob"'))
            assert.same({}, q("user_id:auth2|bob provider:email"))
            assert.same({}, q("user_id:auth2|nobody"))
        end)

        it("every q field, types, defaults, negation, OR and free text", function()
            assert.same({ "auth2|alice" }, q("email_verified:true"))
            assert.equals(6, #q("email_verified:false"))
            assert.same({ "sms|carol" }, q("phone_verified:true"))
            assert.same({ "auth2|alice" }, q('name:"Alice Smith"'))
            assert.same({ "auth2|alice" }, q("given_name:Alice"))
            assert.same({ "auth2|dave" }, q("family_name:Doe"))
            assert.same({ "auth2|dave" }, q("nickname:D"))
            assert.same({ "auth2|dave" }, q("picture:https://pic"))
            assert.same({ "auth2|dave" }, q("locale:sv"))
            assert.same({ "auth2|dave" }, q("last_ip:1.2.3.4"))
            assert.same({ "auth2|dave" }, q("last_login:>=2025-01-01"))
            assert.same({ "github|alice", "google-oauth2|alice" }, q("is_social:true"))
            assert.same({ "auth2|bob" }, q("blocked:true"))
            assert.same({ "auth2|alice", "auth2|bob", "auth2|dave", "email|bob", "github|alice",
                "google-oauth2|alice", "sms|carol" }, q("_exists_:created_at"))
            assert.same({ "auth2|alice", "auth2|bob" }, q("login_count:>0"))
            assert.same({ "auth2|alice" }, q("login_count:>5"))
            assert.equals(5, #q("login_count:0"))
            assert.equals(5, #q("login_count:<3"))
            assert.same({ "auth2|alice", "auth2|bob", "auth2|dave" }, q("connection:Username-Password-Authentication OR connection:db2"))
            assert.same({ "auth2|bob", "email|bob" }, q("email:bob@example.com"))
            assert.same({ "auth2|alice", "sms|carol" }, q("provider:auth2 alice OR -_exists_:email"))
            assert.same({ "auth2|alice", "github|alice", "google-oauth2|alice", "sms|carol" },
                q("alice OR -_exists_:email"))
            assert.same({ "auth2|bob", "email|bob" }, q("bob"))                 -- free text: email / name substring
            assert.same({ "email|bob" }, q("mail"))                             -- "Bob by mail"
            assert.same({ "sms|carol" }, q("46700"))                            -- phone substring
            assert.same({ "sms|carol" }, q("sms|carol"))                        -- user_id exact
            assert.same({}, q("sms|car"))
            assert.same({ "auth2|alice", "auth2|bob", "auth2|dave", "email|bob", "sms|carol" },
                q("-is_social:true"))
            assert.equals(7, #q("created_at:>2020-01-01"))
            assert.equals(7, #q("updated_at:<2100-01-01"))
            assert.equals(0, #q("created_at:<2020-01-01"))
            assert.same({ "auth2|alice" }, q("-email:bob@example.com provider:auth2 login_count:>=10"))
        end)

        it("an unknown or malformed q is a 400 before any request", function()
            local err = fx.rejects(U.list, T, { q = "password:x" })
            assert.matches("password", err.message)
            fx.rejects(U.list, T, { q = "app_metadata:x" })
            fx.rejects(U.list, T, { q = "login_count:abc" })
            fx.rejects(U.list, T, { q = "email_verified:maybe" })
            fx.rejects(U.list, T, { q = "(email:a)" })
            fx.rejects(U.list, T, { q = 5 })
            fx.rejects(U.list, T, { per_page = "x" })
            fx.rejects(U.list, T, { page = -1 })
            fx.rejects(U.list, "", {})
        end)

        it("offset pages with totals, also filtered", function()
            local seen = {}
            for page = 0, 3 do
                local r = L({ page = page, per_page = 2, include_totals = true })
                assert.equals(7, r.total)
                assert.equals(page * 2, r.start)
                assert.equals(2, r.limit)
                assert.equals(page < 3 and 2 or 1, #r.users)
                assert.equals(7, r.length) -- the total, with include_totals (contract §9.3 #4)
                assert.is_nil(r.next)
                for _, u in ipairs(r.users) do seen[#seen + 1] = u.user_id end
            end
            assert.same(ids_of(L({ per_page = 100 }).users), seen)
            local r = L({ page = 1, per_page = 2, include_totals = true, q = "-_exists_:linked_to" })
            assert.equals(5, r.total)
            assert.same({ "auth2|dave", "email|bob" }, ids_of(r.users))
            local e = L({ page = 0, per_page = 1, include_totals = true, q = "email:alice@example.com" })
            assert.equals(2, e.total)
            assert.equals(2, e.length)
            assert.equals(1, #e.users)
            local past = L({ page = 10, per_page = 5, include_totals = true })
            assert.equals(0, #past.users)
            assert.equals(7, past.length)
            assert.equals(7, past.total)
            assert.is_nil(L({ per_page = 2 }).total)
        end)

        it("keyset mode walks the primary users exactly once", function()
            for _, take in ipairs({ 1, 2, 3, 10 }) do
                local walked = fx.keyset_walk(L, "users", "user_id", take, function(r)
                    assert.is_true(r.length <= take)
                    for _, u in ipairs(r.users) do assert.is_nil(u.linked_to) end
                end)
                assert.same({ "auth2|alice", "auth2|bob", "auth2|dave", "email|bob", "sms|carol" }, sorted(walked))
            end
            -- filtered walk and a fast-path walk
            local r1 = L({ take = 1, q = "provider:auth2" })
            assert.equals("auth2|alice", r1.users[1].user_id)
            local r2 = L({ take = 1, q = "provider:auth2", from = r1.next })
            assert.equals("auth2|bob", r2.users[1].user_id)
            local f1 = L({ take = 1, q = "email:bob@example.com" })
            local f2 = L({ take = 1, q = "email:bob@example.com", from = f1.next })
            assert.same({ "auth2|bob", "email|bob" }, { f1.users[1].user_id, f2.users[1].user_id })
            assert.is_nil(f2.next)
            -- keyset through the email index drops linked users too
            local e = L({ take = 10, q = "email:alice@example.com" })
            assert.same({ "auth2|alice" }, ids_of(e.users))
            -- a foreign or garbage cursor restarts the listing
            local g = L({ take = 2, from = "garbage!!" })
            assert.equals("auth2|alice", g.users[1].user_id)
            local foreign = L({ take = 1, q = "provider:email" }).next
            local h = L({ take = 2, from = foreign })
            assert.equals("auth2|alice", h.users[1].user_id)
        end)

        it("sorts by any q field in offset mode", function()
            local r = L({ per_page = 3, sort = { sort_by = "login_count", sort_order = "desc" } })
            assert.same({ "auth2|alice", "auth2|bob" }, { r.users[1].user_id, r.users[2].user_id })
            local e = ids_of(L({ per_page = 100, q = "-_exists_:linked_to", sort = { sort_by = "email", sort_order = "asc" } }).users)
            -- auth2|bob and email|bob share an email: their relative order is not specified
            assert.same({ "auth2|alice", "auth2|dave", "sms|carol" }, { e[1], e[4], e[5] })
            assert.same({ "auth2|bob", "email|bob" }, sorted({ e[2], e[3] }))
            local c = L({ per_page = 100, sort = { sort_by = "created_at", sort_order = "desc" } })
            assert.same("auth2|dave", c.users[1].user_id)
            assert.same("auth2|alice", c.users[7].user_id)
            local p2 = L({ page = 1, per_page = 2, include_totals = true, sort = { sort_by = "created_at", sort_order = "asc" } })
            assert.same({ "email|bob", "sms|carol" }, ids_of(p2.users))
            assert.equals(7, p2.total)
            -- unknown sort field: ignored (natural order)
            assert.equals("auth2|alice", L({ per_page = 1, sort = { sort_by = "password" } }).users[1].user_id)
        end)

        it("an empty tenant lists nothing", function()
            local r = U.list(fx.tenant("empty"), { include_totals = true })
            assert.same({}, r.users)
            assert.equals(0, r.total)
            assert.equals("[]", core.json_encode(r.users))
            assert.same({}, U.list(fx.tenant("empty")).users)
        end)

        it("pagination across DynamoDB pages (60 users)", function()
            local big = fx.tenant("users-big")
            local want = {}
            for i = 1, 60 do
                local id = string.format("auth2|u%03d", i)
                want[#want + 1] = id
                U.create(big, { user_id = id, connection = "c", email = string.format("u%03d@x.com", i),
                    login_count = i })
            end
            local r = U.list(big, { page = 2, per_page = 25, include_totals = true })
            assert.equals(60, r.total)
            assert.equals(60, r.length)
            assert.equals(10, #r.users)
            assert.equals("auth2|u051", r.users[1].user_id)
            assert.same(want, (fx.keyset_walk(function(o) return U.list(big, o) end, "users", "user_id", 7)))
            local f = U.list(big, { q = "login_count:>50", include_totals = true, per_page = 3 })
            assert.equals(10, f.total)
            assert.same({ "auth2|u051", "auth2|u052", "auth2|u053" }, ids_of(f.users))
        end)
    end)

    describe("update", function()
        it("updates plain fields; ignores user_id, identities, created_at, tenant_id, password", function()
            local u = mk(t, { user_id = "auth2|up", email = "up@x.com", app_metadata = { a = 1, b = 2 } })
            fx.advance(3)
            assert.is_true(U.update(t, u.user_id, {
                name = "New", login_count = 4, email_verified = true, app_metadata = { c = 3 },
                user_id = "auth2|hijack", created_at = "2000-01-01T00:00:00Z", tenant_id = "other",
                identities = { { provider = "x" } }, password = { hash = "h" },
                last_login = "2026-01-01T01:00:00+01:00",
            }))
            local g = U.get(t, u.user_id)
            assert.equals("New", g.name)
            assert.equals(4, g.login_count)
            assert.is_true(g.email_verified)
            assert.same({ c = 3 }, g.app_metadata) -- replaced wholesale
            assert.equals(u.created_at, g.created_at)
            assert.is_true(g.updated_at > u.updated_at)
            assert.equals(t, g.tenant_id)
            assert.equals("2026-01-01T00:00:00.000Z", g.last_login)
            assert.equals(1, #g.identities)
            assert.is_nil(U.get(t, "auth2|hijack"))
            assert.is_nil(A.passwords.get(t, u.user_id))
            assert.is_nil(fx.raw_get(keys.user(t, u.user_id)).password)
        end)

        it("null removes an attribute", function()
            local u = mk(t, { user_id = "auth2|nul", nickname = "n", email = "nul@x.com" })
            assert.is_true(U.update(t, u.user_id, { nickname = core.null }))
            assert.is_nil(U.get(t, u.user_id).nickname)
            assert.is_true(U.update(t, u.user_id, { email = core.null }))
            local item = fx.raw_get(keys.user(t, u.user_id))
            assert.is_nil(item.email)
            assert.is_nil(item.GSI1PK)
            assert.is_nil(item.GSI1SK)
            assert.same({}, guards(t, u.user_id))
            assert.is_nil(U.getByEmail(t, "nul@x.com"))
            mk(t, { user_id = "auth2|nul2", email = "nul@x.com" })
        end)

        it("false for a missing user, with or without keyed fields", function()
            assert.is_false(U.update(t, "auth2|missing", { name = "x" }))
            assert.is_false(U.update(t, "auth2|missing", { email = "m@x.com" }))
            assert.is_nil(fx.raw_get(keys.user(t, "auth2|missing")))
            assert.same({}, guards(t))
        end)

        it("an email change frees the old email and takes the new one", function()
            local u = mk(t, { user_id = "auth2|mover", email = "old@x.com" })
            assert.is_true(U.update(t, u.user_id, { email = "New@X.com" }))
            local g = U.get(t, u.user_id)
            assert.equals("new@x.com", g.email)
            assert.equals("new@x.com", g.identities[1].email)
            assert.equals(u.user_id, U.getByEmail(t, "new@x.com").user_id)
            assert.is_nil(U.getByEmail(t, "old@x.com"))
            assert.equals(1, #guards(t, u.user_id))
            assert.same({ u.user_id }, ids_of(U.list(t, { q = "email:new@x.com" }).users))
            assert.same({}, U.list(t, { q = "email:old@x.com" }).users)
            -- the old email is free, the new one taken
            mk(t, { user_id = "auth2|reuse", email = "old@x.com" })
            fx.raises(409, "Conflict", mk, t, { user_id = "auth2|thief", email = "new@x.com" })
            assert.equals("auth2|reuse", U.getByEmail(t, "old@x.com").user_id)
            -- an unchanged email (other case) is fine
            assert.is_true(U.update(t, u.user_id, { email = "NEW@x.com", name = "same" }))
            assert.equals(1, #guards(t, u.user_id))
        end)

        it("409 when the new email or username is taken, and nothing changes", function()
            mk(t, { user_id = "auth2|one", email = "one@x.com", username = "one" })
            local two = mk(t, { user_id = "auth2|two", email = "two@x.com", username = "two" })
            fx.raises(409, "Conflict", U.update, t, "auth2|two", { email = "ONE@x.com", name = "changed" })
            fx.raises(409, "Conflict", U.update, t, "auth2|two", { username = "One" })
            fx.raises(409, "Conflict", U.update, t, "auth2|two", { email = "free@x.com", username = "one" })
            local g = U.get(t, "auth2|two")
            assert.equals("two@x.com", g.email)
            assert.equals("two", g.username)
            assert.is_nil(g.name)
            assert.equals(two.updated_at, g.updated_at)
            assert.equals(2, #guards(t, "auth2|two"))
            mk(t, { user_id = "auth2|three", email = "free@x.com" }) -- the cancelled update did not take it
        end)

        it("a lost race re-reads once and applies the change on the new values", function()
            local u = mk(t, { user_id = "auth2|racy", email = "racy@x.com", username = "racy" })
            local R = racing_adapters(function()
                assert.is_true(U.update(t, u.user_id, { username = "racer" }))
            end)
            assert.is_true(R.users.update(t, u.user_id, { email = "won@x.com" }))
            local g = U.get(t, u.user_id)
            assert.equals("won@x.com", g.email)
            assert.equals("racer", g.username)
            local sks = {}
            for _, it in ipairs(guards(t, u.user_id)) do sks[#sks + 1] = it.SK end
            assert.same(sorted({ keys.user_email_guard(t, "won@x.com", "auth2").SK,
                keys.user_username_guard(t, "racer", "auth2").SK }), sorted(sks))
            -- the user removed under us: false
            local v = mk(t, { user_id = "auth2|vanish", email = "vanish@x.com" })
            local R2 = racing_adapters(function() assert.is_true(U.remove(t, v.user_id)) end)
            assert.is_false(R2.users.update(t, v.user_id, { email = "back@x.com" }))
            assert.is_nil(U.get(t, v.user_id))
            assert.same({}, guards(t, v.user_id))
        end)

        it("a username change moves its guard", function()
            local u = mk(t, { user_id = "auth2|un", username = "first" })
            assert.is_true(U.update(t, u.user_id, { username = "second" }))
            mk(t, { user_id = "auth2|un2", username = "first" })
            fx.raises(409, "Conflict", mk, t, { user_id = "auth2|un3", username = "SECOND" })
            assert.same({ "auth2|un" }, ids_of(U.list(t, { q = "username:second" }).users))
            assert.is_true(U.update(t, u.user_id, { username = core.null }))
            mk(t, { user_id = "auth2|un4", username = "second" })
            assert.equals(0, #guards(t, u.user_id))
        end)

        it("a provider change moves both guards", function()
            local u = mk(t, { user_id = "auth2|prov", email = "prov@x.com", username = "prov" })
            assert.is_true(U.update(t, u.user_id, { provider = "email" }))
            mk(t, { user_id = "auth2|prov2", email = "prov@x.com", username = "prov" })
            fx.raises(409, "Conflict", mk, t, { user_id = "email|prov3", email = "prov@x.com" })
            fx.raises(409, "Conflict", mk, t, { user_id = "email|prov4", username = "prov" })
            fx.rejects(U.update, t, u.user_id, { provider = core.null })
            fx.rejects(U.update, t, u.user_id, { provider = "" })
        end)

        it("linking and unlinking through update rewrites GSI2", function()
            local p = mk(t, { user_id = "auth2|p" })
            local s = mk(t, { user_id = "google-oauth2|s", provider = "google-oauth2", email = "s@x.com" })
            assert.is_true(U.update(t, s.user_id, { linked_to = p.user_id }))
            assert.equals(2, #U.get(t, p.user_id).identities)
            assert.same({ s.user_id }, ids_of(U.list(t, { q = "linked_to:auth2|p" }).users))
            local item = fx.raw_get(keys.user(t, s.user_id))
            assert.equals(keys.user_linked_index(t, p.user_id, s.user_id).GSI2PK, item.GSI2PK)
            assert.is_true(U.update(t, s.user_id, { linked_to = core.null }))
            assert.equals(1, #U.get(t, p.user_id).identities)
            assert.is_nil(fx.raw_get(keys.user(t, s.user_id)).GSI2PK)
            assert.same({}, U.list(t, { q = "linked_to:auth2|p" }).users)
        end)

        it("400 before any request on invalid input", function()
            fx.rejects(U.update, t, "auth2|x", "patch")
            fx.rejects(U.update, t, "auth2|x", { email = 3 })
            fx.rejects(U.update, t, "auth2|x", { blocked = "no" })
            fx.rejects(U.update, t, "auth2|x", { last_login = "soon" })
            fx.rejects(U.update, t, nil, {})
            fx.rejects(U.update, nil, "auth2|x", {})
        end)
    end)

    describe("remove", function()
        local function session(tenant, user_id, id)
            fx.raw_put({ PK = keys.tenant_partition(tenant), SK = "SESSION#" .. id, GSI1PK = keys.user_partition(tenant, user_id),
                GSI1SK = "SESSION#" .. id, entityType = "SESSION", id = id, user_id = user_id, tenant_id = tenant,
                ttl = math.floor(base / 1000) + 3600 })
        end
        local function membership(tenant, user_id, org, id)
            local m = keys.member(tenant, org, user_id)
            local ix = keys.member_user_index(tenant, user_id, org)
            fx.raw_put({ PK = m.PK, SK = m.SK, GSI1PK = ix.GSI1PK, GSI1SK = ix.GSI1SK, entityType = "USER_ORGANIZATION",
                id = id, user_id = user_id, organization_id = org, tenant_id = tenant })
            local ptr = keys.member_id_pointer(tenant, id)
            fx.raw_put({ PK = ptr.PK, SK = ptr.SK, entityType = "USER_ORGANIZATION_ID", id = id, organization_id = org,
                user_id = user_id, tenant_id = tenant })
        end

        it("leaves nothing of the user", function()
            local u = mk(t, { user_id = "auth2|gone", email = "gone@x.com", username = "gone",
                password = { hash = "h", algorithm = "bcrypt" } })
            A.passwords.create(t, { user_id = u.user_id, password = "h2" })
            fx.raw_put({ PK = keys.user_partition(t, u.user_id), SK = "USER_ROLE#r1", entityType = "USER_ROLE",
                tenant_id = t })
            session(t, u.user_id, "s1")
            session(t, u.user_id, "s2")
            membership(t, u.user_id, "org1", "mem1")
            -- neighbours that must survive
            local keep = mk(t, { user_id = "auth2|keep", email = "keep@x.com", username = "keep",
                password = { hash = "k" } })
            session(t, keep.user_id, "s3")
            membership(t, keep.user_id, "org1", "mem2")

            assert.is_true(U.remove(t, u.user_id))
            assert.is_nil(U.get(t, u.user_id))
            assert.is_nil(U.getByEmail(t, "gone@x.com"))
            assert.same({}, fx.raw_partition(keys.user_partition(t, u.user_id)))
            assert.same({}, guards(t, u.user_id))
            assert.is_nil(fx.raw_get({ PK = keys.tenant_partition(t), SK = "SESSION#s1" }))
            assert.is_nil(fx.raw_get({ PK = keys.tenant_partition(t), SK = "SESSION#s2" }))
            assert.is_nil(fx.raw_get(keys.member(t, "org1", u.user_id)))
            assert.is_nil(fx.raw_get(keys.member_id_pointer(t, "mem1")))
            for _, it in ipairs(fx.raw_partition(keys.tenant_partition(t))) do
                assert.is_true(it.user_id ~= u.user_id, it.SK)
            end
            -- the neighbour is intact
            assert.is_not_nil(U.get(t, keep.user_id))
            assert.equals("k", A.passwords.get(t, keep.user_id).password)
            assert.equals(2, #guards(t, keep.user_id))
            assert.is_not_nil(fx.raw_get({ PK = keys.tenant_partition(t), SK = "SESSION#s3" }))
            assert.is_not_nil(fx.raw_get(keys.member(t, "org1", keep.user_id)))
            assert.is_not_nil(fx.raw_get(keys.member_id_pointer(t, "mem2")))

            assert.is_false(U.remove(t, u.user_id))
            assert.is_false(U.remove(t, "auth2|never"))
        end)

        it("removes memberships written by the userOrganizations adapter", function()
            if not A.userOrganizations then
                pending("userOrganizations adapter not present")
                return
            end
            local u = mk(t, { user_id = "auth2|member" })
            local m = A.userOrganizations.create(t, { user_id = u.user_id, organization_id = "org-x" })
            local keep = A.userOrganizations.create(t, { user_id = "auth2|other-member", organization_id = "org-x" })
            assert.is_true(U.remove(t, u.user_id))
            assert.is_nil(fx.raw_get(keys.member(t, "org-x", u.user_id)))
            assert.is_nil(fx.raw_get(keys.member_id_pointer(t, m.id)))
            assert.is_not_nil(fx.raw_get(keys.member_id_pointer(t, keep.id)))
        end)

        it("takes the linked users along", function()
            local p = mk(t, { user_id = "auth2|prim", email = "prim@x.com" })
            local s = mk(t, { user_id = "google-oauth2|sec", provider = "google-oauth2", email = "prim@x.com",
                linked_to = p.user_id })
            session(t, s.user_id, "sec-session")
            A.passwords.create(t, { user_id = s.user_id, password = "h" })
            fx.raises(400, "ValidationError", mk, t, { user_id = "auth2|other", linked_to = "auth2|someone-else" })
            mk(t, { user_id = "auth2|someone-else" })
            local other = mk(t, { user_id = "auth2|other", linked_to = "auth2|someone-else" })
            assert.is_true(U.remove(t, p.user_id))
            assert.is_nil(U.get(t, s.user_id))
            assert.same({}, fx.raw_partition(keys.user_partition(t, s.user_id)))
            assert.same({}, guards(t, s.user_id))
            assert.is_nil(fx.raw_get({ PK = keys.tenant_partition(t), SK = "SESSION#sec-session" }))
            assert.is_not_nil(U.get(t, other.user_id))
        end)

        it("delete then recreate with the same id and email succeeds, without the old password", function()
            mk(t, { user_id = "auth2|again", email = "again@x.com", username = "again", password = { hash = "old" } })
            assert.is_true(U.remove(t, "auth2|again"))
            local u = mk(t, { user_id = "auth2|again", email = "again@x.com", username = "again" })
            assert.equals("auth2|again", u.user_id)
            assert.is_nil(A.passwords.get(t, "auth2|again"))
            assert.same({}, A.passwords.list(t, "auth2|again"))
            mk(t, { user_id = "auth2|again2", email = "AGAIN2@x.com" })
            assert.is_true(U.remove(t, "auth2|again2"))
            mk(t, { user_id = "auth2|again3", email = "again2@x.com" })
        end)

        it("does not remove a guard that belongs to someone else", function()
            mk(t, { user_id = "auth2|owner", email = "owned@x.com" })
            -- an item written by other tools: same email and provider, but no guard of its own
            local k = keys.user(t, "auth2|legacy")
            local ix = keys.user_email_index(t, "owned@x.com")
            fx.raw_put({ PK = k.PK, SK = k.SK, GSI1PK = ix.GSI1PK, GSI1SK = ix.GSI1SK, entityType = "USER",
                user_id = "auth2|legacy", email = "owned@x.com", provider = "auth2", connection = "c", tenant_id = t })
            assert.is_true(U.remove(t, "auth2|legacy"))
            assert.equals(1, #guards(t, "auth2|owner"))
            fx.raises(409, "Conflict", mk, t, { user_id = "auth2|x", email = "owned@x.com" })
        end)

        it("400 before any request without ids", function()
            fx.rejects(U.remove, t, nil)
            fx.rejects(U.remove, nil, "auth2|x")
        end)
    end)

    describe("unlink", function()
        it("detaches the secondary from its primary and keeps it", function()
            local p = mk(t, { user_id = "auth2|p" })
            mk(t, { user_id = "google-oauth2|s", provider = "google-oauth2", linked_to = p.user_id })
            assert.equals(2, #U.get(t, p.user_id).identities)
            assert.is_false(U.unlink(t, "auth2|not-primary", "google-oauth2", "s"))
            assert.is_true(U.unlink(t, p.user_id, "google-oauth2", "s"))
            local s = U.get(t, "google-oauth2|s")
            assert.is_not_nil(s)
            assert.is_nil(s.linked_to)
            assert.is_nil(fx.raw_get(keys.user(t, "google-oauth2|s")).GSI2PK)
            assert.equals(1, #U.get(t, p.user_id).identities)
            assert.is_false(U.unlink(t, p.user_id, "google-oauth2", "s"))   -- no longer linked
            assert.is_false(U.unlink(t, p.user_id, "google-oauth2", "none")) -- no such user
            assert.is_nil(fx.raw_get(keys.user(t, "google-oauth2|none")))
            -- the unlinked user is listed in keyset mode now
            assert.equals(2, #U.list(t, { take = 10 }).users)
            fx.rejects(U.unlink, t, p.user_id, nil, "s")
            fx.rejects(U.unlink, t, p.user_id, "google-oauth2", "")
        end)
    end)

    describe("hostile ids", function()
        it("tenant and user ids with # % | and unicode stay apart", function()
            local ta, tb = "a" .. t, "a" .. t .. "#USER#b"
            mk(ta, { user_id = "auth2|x", email = "e@x.com" })
            mk(tb, { user_id = "auth2|x", email = "e@x.com" })
            assert.equals(1, #U.list(ta).users)
            assert.equals(1, #U.list(tb).users)
            local weird = "auth2|ü#USER#%23|ñ"
            -- lower-casing is ASCII only (Lua's string.lower), the same on every path
            local u = mk(ta, { user_id = weird, email = "ü#EMAIL#@X.com", username = "ñ%#", linked_to = "auth2|x" })
            assert.equals("ü#email#@x.com", u.email)
            assert.equals("ü#USER#%23|ñ", u.identities[1].user_id)
            assert.equals(weird, U.get(ta, weird).user_id)
            assert.is_nil(U.get(ta, "auth2|ü"))
            assert.equals(weird, U.getByEmail(ta, "ü#EMAIL#@X.COM").user_id)
            assert.same({ weird }, ids_of(U.list(ta, { q = 'user_id:"auth2|ü#USER#%23|ñ"' }).users))
            assert.same({ weird }, ids_of(U.list(ta, { q = "username:ñ%#" }).users))
            assert.same({ weird }, ids_of(U.list(ta, { q = "linked_to:auth2|x" }).users))
            assert.equals(2, #U.get(ta, "auth2|x").identities)
            assert.equals(1, #U.get(tb, "auth2|x").identities)
            assert.is_true(U.update(ta, weird, { email = "plain@x.com" }))
            assert.is_true(U.remove(ta, "auth2|x"))
            assert.is_nil(U.get(ta, weird))
            assert.same({}, guards(ta))
            assert.is_not_nil(U.get(tb, "auth2|x"))
            assert.equals(1, #guards(tb))
            -- tenant "a#ORG#b" vs tenant "a"
            local tc, td = t .. "#ORG#b", t
            mk(tc, { user_id = "auth2|o", email = "o@x.com" })
            assert.is_nil(U.get(td, "auth2|o"))
            assert.same({}, U.list(td, { q = "email:o@x.com" }).users)
            assert.equals(0, #U.list(td, { include_totals = true }).users)
        end)
    end)
end)
