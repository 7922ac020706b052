-- adapters.transaction (contract §7): calls fn with the adapters and returns its results; no
-- atomicity, so what fn wrote before it failed stays written.
local fx = require "support.adapters"

describe("transaction", function()
    local a, t

    setup(function()
        a = fx.adapters()
        t = fx.tenant()
    end)

    it("calls fn with the adapters and returns all it returns", function()
        local seen
        local x, y, z = a.transaction(function(trx)
            seen = trx
            local r = trx.roles.create(t, { id = "in-tx", name = "in-tx" })
            return r.id, 2, nil
        end)
        assert.equal(a, seen)
        assert.equal("in-tx", x)
        assert.equal(2, y)
        assert.is_nil(z)
        assert.equal("in-tx", a.roles.get(t, "in-tx").name)
        assert.equal(7, a:transaction(function() return 7 end)) -- a colon call works too
    end)

    it("propagates fn's error and keeps what fn wrote before it (no rollback)", function()
        local ok, err = pcall(a.transaction, function(trx)
            trx.roles.create(t, { id = "kept", name = "kept" })
            trx.roles.create(t, { id = "kept", name = "again" }) -- 409
        end)
        assert.is_false(ok)
        assert.equal(409, err.status)
        assert.equal("kept", a.roles.get(t, "kept").name)
    end)

    it("refuses what is not a function", function()
        assert.has_error(function() a.transaction("nope") end,
            "bad argument #1 to 'transaction' (function expected)")
    end)
end)
