-- Unicode lower-casing as JavaScript's toLowerCase (contract §2.4, core.lower) in the adapters,
-- against DynamoDB Local: `JÖRG@Example.com` and `jörg@example.com` are one email for the stored
-- value, the GSI1 key, the uniqueness guard, getByEmail and `q`; final sigma as JavaScript has it;
-- usernames and custom domains the same way; invalid UTF-8 is a 400 before any request.
local fx = require "support.adapters"
local schema = require "authhero.aws.schema"

local keys = schema.keys

describe("Unicode lower-casing in the adapters", function()
    local A, t

    setup(function()
        A = fx.adapters()
        t = fx.tenant("uc")
    end)

    local function user(id, fields)
        local u = { user_id = id, connection = "Username-Password-Authentication", provider = "auth2" }
        for k, v in pairs(fields) do u[k] = v end
        return u
    end

    it("stores JÖRG@Example.com as jörg@example.com, finds it by any case and refuses a second jörg", function()
        local u = A.users.create(t, user("auth2|jorg", { email = "JÖRG@Example.com" }))
        assert.equals("jörg@example.com", u.email)
        local item = fx.raw_get(keys.user(t, "auth2|jorg"))
        assert.equals("jörg@example.com", item.email)
        assert.equals("TENANT#" .. t .. "#EMAIL#jörg@example.com", item.GSI1PK)
        assert.equals("auth2|jorg", A.users.getByEmail(t, "jörg@example.com").user_id)
        assert.equals("auth2|jorg", A.users.getByEmail(t, "JÖRG@EXAMPLE.COM").user_id)
        assert.equals("auth2|jorg", A.users.getByEmail(t, "Jörg@example.com").user_id)
        -- the same email in another case is a duplicate (the guard holds the lower-cased email)
        local err = fx.raises(409, "Conflict", A.users.create, t, user("auth2|jorg2", { email = "jörg@example.com" }))
        assert.matches("already exists", err.message)
        fx.raises(409, "Conflict", A.users.create, t, user("auth2|jorg3", { email = "JöRG@EXAMPLE.com" }))
        assert.is_nil(A.users.get(t, "auth2|jorg2"))
        -- q lookups lower-case the same way (the email index fast path and the predicate)
        local r = A.users.list(t, { q = "email:JÖRG@example.com" })
        assert.same({ "auth2|jorg" }, fx.ids(r.users, "user_id"))
        r = A.users.list(t, { q = "email:\"jÖrg@example.com\"", per_page = 10 })
        assert.same({ "auth2|jorg" }, fx.ids(r.users, "user_id"))
        -- updating to another case of the same email keeps the user's own guard
        assert.is_true(A.users.update(t, "auth2|jorg", { email = "JÖRG@EXAMPLE.COM" }))
        assert.equals("jörg@example.com", A.users.get(t, "auth2|jorg").email)
        -- a different email that only ASCII lower-casing would keep apart from nothing else
        local v = A.users.create(t, user("auth2|ae", { email = "ÆØÅ@EXAMPLE.DK" }))
        assert.equals("æøå@example.dk", v.email)
    end)

    it("follows JavaScript's final sigma and full mappings", function()
        -- "ΟΔΟΣ".toLowerCase() is "οδος" with a final ς; İ becomes i + U+0307
        local u = A.users.create(t, user("auth2|sigma", { email = "ΟΔΟΣ@EXAMPLE.GR" }))
        assert.equals("οδος@example.gr", u.email)
        assert.equals("auth2|sigma", A.users.getByEmail(t, "ΟΔΟΣ@example.gr").user_id)
        assert.equals("auth2|sigma", A.users.getByEmail(t, "οδος@example.gr").user_id)
        -- a medial σ is another email, as in JavaScript
        assert.is_nil(A.users.getByEmail(t, "οδοσ@example.gr"))
        local i = A.users.create(t, user("auth2|istanbul", { email = "İSTANBUL@EXAMPLE.TR" }))
        assert.equals("i\u{0307}stanbul@example.tr", i.email)
        assert.equals("auth2|istanbul", A.users.getByEmail(t, "İstanbul@example.tr").user_id)
    end)

    it("lower-cases usernames for their guard and domains for their claim", function()
        A.users.create(t, user("auth2|björn", { username = "BJÖRN" }))
        fx.raises(409, "Conflict", A.users.create, t, user("auth2|björn2", { username = "björn" }))
        local g = fx.raw_get(keys.user_username_guard(t, "björn", "auth2"))
        assert.equals("auth2|björn", g.user_id)
        local d = A.customDomains.create(t, { domain = "BÜCHER.Example.COM", type = "auth0_managed_certs" })
        assert.equals("bücher.example.com", d.domain)
        assert.equals(d.custom_domain_id, A.customDomains.getByDomain("Bücher.example.com").custom_domain_id)
    end)

    it("refuses invalid UTF-8 in an email or a q literal with a 400 before any request", function()
        local err = fx.rejects(A.users.create, t, user("auth2|bad", { email = "J\xffRG@example.com" }))
        assert.matches("email is not valid UTF%-8", err.message)
        fx.rejects(A.users.getByEmail, t, "j\xc3@example.com")
        fx.rejects(A.users.list, t, { q = "email:j\xc3@example.com" })
    end)
end)
