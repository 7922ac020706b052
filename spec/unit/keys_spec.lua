-- Key composition and its inverse (csrc/keys.c), adapter contract §2.4.
local core = require "authhero.aws.core"

describe("core.key", function()
    it("joins parts with # and leaves ordinary ids alone", function()
        assert.equals("TENANT#acme", core.key("TENANT", "acme"))
        assert.equals("TENANT#acme#USER#auth0|123", core.key("TENANT", "acme", "USER", "auth0|123"))
        assert.equals("USER#", core.key("USER", ""))
    end)

    it("escapes % and # inside every part", function()
        assert.equals("TENANT#a%23ORG%23b", core.key("TENANT", "a#ORG#b"))
        assert.equals("TENANT#100%25", core.key("TENANT", "100%"))
        assert.equals("TENANT#%2523", core.key("TENANT", "%23"))
        assert.equals("A%23#B", core.key("A#", "B"))
    end)

    it("never lets a hostile id equal another tenant's key", function()
        local hostile = core.key("TENANT", "a#ORG#b")
        assert.not_equals(core.key("TENANT", "a", "ORG", "b"), hostile)
        assert.not_equals(core.key("TENANT", "a") .. "#ORG#b", hostile)
        -- escaping is injective: different parts, different keys
        assert.not_equals(core.key("TENANT", "%23"), core.key("TENANT", "#"))
    end)

    it("accepts numbers as parts and keeps unicode bytes", function()
        assert.equals("CODE#42", core.key("CODE", 42))
        assert.equals("USER#zoë|名前", core.key("USER", "zoë|名前"))
    end)

    it("rejects non-string parts and empty calls", function()
        assert.has_error(function() core.key() end)
        assert.has_error(function() core.key("A", {}) end)
        assert.has_error(function() core.key("A", nil) end)
    end)
end)

describe("core.key_parts / key_unescape", function()
    it("inverts core.key", function()
        local cases = {
            { "TENANT", "acme" },
            { "TENANT", "a#ORG#b", "USER", "100%", "%23%25" },
            { "X", "", "" },
            { "#", "%", "##%%" },
        }
        for _, parts in ipairs(cases) do
            assert.same(parts, core.key_parts(core.key((table.unpack or unpack)(parts))))
        end
    end)

    it("round-trips random parts", function()
        math.randomseed(7)
        local alphabet = { "a", "#", "%", "2", "3", "5", "|", "é", "Z" }
        for _ = 1, 2000 do
            local parts = {}
            for i = 1, math.random(1, 4) do
                local t = {}
                for j = 1, math.random(0, 6) do t[j] = alphabet[math.random(#alphabet)] end
                parts[i] = table.concat(t)
            end
            local key = core.key((table.unpack or unpack)(parts))
            assert.same(parts, core.key_parts(key))
            for i, p in ipairs(parts) do
                assert.equals(p, core.key_unescape(core.key_escape(p)), "part " .. i)
            end
        end
    end)

    it("keeps % sequences it did not write", function()
        assert.equals("%41%2", core.key_unescape("%41%2"))
        assert.same({ "a%4", "b" }, core.key_parts("a%4#b"))
    end)
end)
