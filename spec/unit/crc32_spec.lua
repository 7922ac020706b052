-- core.crc32: zlib's CRC-32 (what x-amz-crc32 carries), on both code paths (carry-less multiply
-- where the CPU has it, tables elsewhere and for the last bytes), against a bit-at-a-time
-- reference written here.
local core = require "authhero.aws.core"

-- The definition, one bit at a time (Lua 5.3+ operators, compiled with load so LuaJIT never parses
-- them; `bit` on LuaJIT, and Debian's lua-bitop on Lua 5.1 and 5.2).
local reference
if rawget(math, "type") then
    reference = assert(load([[
        local byte = string.byte
        return function(s)
            local c = 0xFFFFFFFF
            for i = 1, #s do
                c = c ~ byte(s, i)
                for _ = 1, 8 do c = (c & 1) ~= 0 and ((c >> 1) ~ 0xEDB88320) or (c >> 1) end
            end
            return c ~ 0xFFFFFFFF
        end]], "=reference"))()
else
    local bit = require "bit"
    local band, bxor, rshift = bit.band, bit.bxor, bit.rshift
    reference = function(s)
        local c = -1
        for i = 1, #s do
            c = bxor(c, s:byte(i))
            for _ = 1, 8 do
                if band(c, 1) ~= 0 then c = bxor(rshift(c, 1), 0xEDB88320) else c = rshift(c, 1) end
            end
        end
        c = bxor(c, -1)
        return c < 0 and c + 4294967296 or c
    end
end

local function random_bytes(n, seed)
    local t, x = {}, seed
    for i = 1, n do
        x = (x * 1103515245 + 12345) % 2147483648
        t[i] = string.char(math.floor(x / 65536) % 256)
    end
    return table.concat(t)
end

describe("core.crc32", function()
    local initial = core.crc32_impl()
    after_each(function() core.crc32_impl(initial) end)

    for _, impl in ipairs({ "tables", "clmul" }) do
        describe("with " .. impl, function()
            before_each(function() core.crc32_impl(impl) end)

            it("gives the check values", function()
                assert.equals(0, core.crc32(""))
                assert.equals(3421780262, core.crc32("123456789")) -- 0xCBF43926
                assert.equals(1315925753, core.crc32('{"TableNames":[]}'))
            end)

            it("matches the bitwise definition at every length and alignment up to 300 bytes", function()
                local data = random_bytes(320, 42)
                for len = 0, 300 do
                    for off = 0, 15, 5 do
                        local s = data:sub(1 + off, off + len)
                        local got, want = core.crc32(s), reference(s)
                        if got ~= want then
                            error(string.format("%s: length %d at offset %d: %d, want %d", impl, len, off, got, want))
                        end
                    end
                end
            end)

            it("matches on a 30 KB reply-sized body, and continues from a given crc", function()
                local s = random_bytes(30563, 7)
                local whole = core.crc32(s)
                assert.equals(reference(s), whole)
                for _, cut in ipairs({ 1, 63, 64, 100, 4096, 30000 }) do
                    assert.equals(whole, core.crc32(s:sub(cut + 1), core.crc32(s:sub(1, cut))))
                end
            end)
        end)
    end

    it("reports what it uses, and uses clmul only where the CPU has it", function()
        assert.is_true(initial == "clmul" or initial == "tables")
        assert.equals("tables", core.crc32_impl("tables"))
        local back = core.crc32_impl("clmul")
        assert.is_true(back == "clmul" or back == "tables")
    end)

    it("rejects a bad start value or impl name", function()
        assert.has_error(function() core.crc32("x", -1) end)
        assert.has_error(function() core.crc32("x", 2 ^ 32) end)
        assert.has_error(function() core.crc32("x", 1.5) end)
        assert.has_error(function() core.crc32(nil) end)
        assert.has_error(function() core.crc32_impl("fast") end)
    end)
end)
