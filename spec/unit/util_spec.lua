-- util.lua: ids, ISO-8601 time, JSON-string fields, base64url.
local util = require "authhero.aws.util"
local core = require "authhero.aws.core"

describe("util time", function()
    it("formats epoch ms as ISO with milliseconds and parses it back", function()
        assert.equals("1970-01-01T00:00:00.000Z", util.iso(0))
        assert.equals("2024-02-29T23:59:59.999Z", util.iso(1709251199999))
        assert.equals("1969-12-31T23:59:59.999Z", util.iso(-1))
        for _, ms in ipairs({ 0, 1, 951782400000, 1709251199999, 4102444800000, -86400000 }) do
            assert.equals(ms, util.parse_iso(util.iso(ms)))
        end
    end)

    it("accepts offsets, missing milliseconds and (when not strict) a bare date", function()
        assert.equals(util.parse_iso("2026-11-26T12:00:00Z"), util.parse_iso("2026-11-26T13:30:00+01:30"))
        assert.equals(util.parse_iso("2026-11-26T12:00:00.000Z"), util.parse_iso("2026-11-26T07:00:00-0500"))
        assert.equals(util.parse_iso("2026-11-26T00:00:00Z"), util.parse_iso("2026-11-26"))
        assert.is_nil(util.parse_iso("2026-11-26", true))
        assert.is_nil(util.parse_iso("2026-11-26T00:00:00", true))
        assert.equals("2026-11-26T11:00:00.120Z", util.normalize_time("2026-11-26T12:00:00.12+01:00"))
    end)

    it("refuses days a month does not have and out-of-range parts", function()
        assert.is_nil(util.parse_iso("2026-02-29T00:00:00Z"))
        assert.is_not_nil(util.parse_iso("2024-02-29T00:00:00Z"))
        assert.is_nil(util.parse_iso("2100-02-29T00:00:00Z"))
        assert.is_not_nil(util.parse_iso("2000-02-29T00:00:00Z"))
        assert.is_nil(util.parse_iso("2026-04-31T00:00:00Z"))
        assert.is_nil(util.parse_iso("2026-13-01T00:00:00Z"))
        assert.is_nil(util.parse_iso("2026-01-01T24:00:00Z"))
        assert.is_nil(util.parse_iso("2026-01-01T00:00:00+24:00"))
        assert.is_nil(util.parse_iso("yesterday"))
        local ok, err = pcall(util.normalize_time, "2026-02-30T00:00:00Z", "expires_at")
        assert.is_false(ok)
        assert.equals("ValidationError", err.code)
        assert.matches("expires_at", err.message)
    end)
end)

describe("util ids, JSON fields and base64url", function()
    it("makes 21-character ids from the URL-safe alphabet, all different", function()
        local seen = {}
        for _ = 1, 2000 do
            local id = util.new_id()
            assert.equals(21, #id)
            assert.matches("^[A-Za-z0-9_%-]+$", id)
            assert.is_nil(seen[id])
            seen[id] = true
        end
    end)

    it("writes JSON fields by schema and reads either encoding", function()
        assert.equals("[]", util.json_field({}, "array"))
        assert.equals("{}", util.json_field({}, "object"))
        assert.is_nil(util.json_field(core.null, "object"))
        assert.same({ a = 1 }, util.read_json_field('{"a":1}', "object"))
        assert.same({ a = 1 }, util.read_json_field({ a = 1 }, "object"))
        assert.is_true(core.is_array(util.read_json_field("not json", "array")))
    end)

    it("round-trips base64url without padding and refuses foreign text", function()
        for _, s in ipairs({ "", "a", "ab", "abc", "\255\254\253", string.rep("x?>", 20) }) do
            local t = util.b64url(s)
            assert.is_nil(t:find("[+/=]"))
            assert.equals(s, util.unb64url(t))
        end
        assert.is_nil(util.unb64url("a+b"))
        assert.is_nil(util.unb64url(42))
    end)
end)
