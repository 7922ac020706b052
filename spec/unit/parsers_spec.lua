-- Regressions the fuzz targets (fuzz/, scripts/fuzz) found in the C core's parsers of untrusted
-- bytes, kept as plain specs so every interpreter runs them.
local core = require "authhero.aws.core"

describe("parsers of untrusted bytes", function()
    it("json_decode refuses a number no double holds instead of returning an infinity", function()
        for _, text in ipairs({ "1e999", "-41e308", '{"n":[1,2e400]}', "123456789e400" }) do
            local ok, err = pcall(core.json_decode, text)
            assert.is_false(ok, text)
            assert.equals("MarshalError", err.code, text)
            assert.truthy(err.message:find("number out of range at byte", 1, true), err.message)
        end
        -- the largest finite ones, and underflow to zero, still decode
        assert.equals(1e308, core.json_decode("1e308"))
        assert.equals(-1.7976931348623157e308, core.json_decode("-1.7976931348623157e308"))
        assert.equals(0, core.json_decode("1e-400"))
    end)

    it("whatever json_decode returns, json_encode writes and json_decode reads back the same", function()
        local text = '{"a":[1,-0.5,1e308,"\\u00e9",null,true,{}],"b":[],"c":"x\\ny"}'
        local v = core.json_decode(text)
        local again = core.json_decode(core.json_encode(v))
        assert.same(v, again)
        assert.is_true(core.is_array(again.a) and core.is_array(again.b))
    end)
end)
