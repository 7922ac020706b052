-- DynamoDB's key limits (contract §2.4: 2048 bytes for a partition key, 1024 for a sort key, after
-- escaping), enforced once in the store for every adapter: a write whose keys would not fit is a
-- 400 naming the field, before any request; reads, updates and removes by such an id find nothing
-- and send nothing; lookups by such a value match nothing.
local fx = require "support.adapters"

describe("key limits", function()
    local a, t
    local huge = "auth2|" .. string.rep("x", 10 * 1024)
    local sk_sized = string.rep("y", 1020) -- fits as a value, not inside SESSION#... once prefixed

    setup(function()
        a = fx.adapters()
        t = fx.tenant()
    end)

    local function sends_nothing(f, ...)
        local before = fx.requests()
        local r = f(...)
        assert.equal(before, fx.requests(), "expected no request")
        return r
    end

    it("reads, updates and removes by an over-long id return nil / false without a request", function()
        assert.is_nil(sends_nothing(a.users.get, t, huge))
        assert.is_false(sends_nothing(a.users.update, t, huge, { name = "x" }))
        assert.is_false(sends_nothing(a.users.update, t, huge, { email = "x@example.com" }))
        assert.is_false(sends_nothing(a.users.remove, t, huge))
        assert.is_nil(sends_nothing(a.tenants.get, string.rep("t", 3000)))
        assert.is_nil(sends_nothing(a.sessions.get, t, sk_sized))
        assert.is_false(sends_nothing(a.sessions.remove, t, sk_sized))
        assert.is_nil(sends_nothing(a.roles.get, t, sk_sized))
    end)

    it("lookups by an over-long value match nothing", function()
        local r = sends_nothing(a.users.list, t, { q = "user_id:" .. huge })
        assert.equal(0, #r.users)
        assert.is_nil(a.users.getByEmail(t, string.rep("e", 3000) .. "@example.com"))
    end)

    it("writes whose keys would not fit are a 400 naming the field, before any request", function()
        local e = fx.rejects(a.users.create, t, { user_id = huge, connection = "c" })
        assert.matches("^user_id is too long: the SK key would be %d+ bytes %(DynamoDB's limit is 1024%)", e.message)
        e = fx.rejects(a.users.create, t, { email = string.rep("e", 3000) .. "@x.com", connection = "c", provider = "auth2" })
        assert.matches("^email is too long: the GSI1PK key", e.message)
        e = fx.rejects(a.roles.create, t, { id = sk_sized, name = "n" })
        assert.matches("^id is too long", e.message)
        e = fx.rejects(a.tenants.create, { id = string.rep("t", 3000), friendly_name = "f" })
        assert.matches("^id is too long: the PK key", e.message)
        -- an update that would move an index key past the limit
        local u = a.users.create(t, { email = "fits@example.com", connection = "c", provider = "auth2" })
        e = fx.raises(400, "ValidationError", a.users.update, t, u.user_id, { email = string.rep("e", 3000) .. "@x.com" })
        assert.matches("too long", e.message)
        assert.equal("fits@example.com", a.users.get(t, u.user_id).email)
    end)
end)
