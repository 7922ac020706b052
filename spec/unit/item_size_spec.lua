-- core.item_size (csrc/marshal.c): an item's size as DynamoDB measures it for its 400 KB limit
-- (AWS "DynamoDB item sizes and formats"): names and strings by UTF-8 bytes, binaries by raw bytes,
-- numbers by base-100 digit pairs, BOOL/NULL 1 byte, lists and maps 3 bytes + 1 per element. The
-- number sizes below are the ones DynamoDB Local 1.25 enforces (spec/integration/adapters/
-- item_size_spec.lua checks the boundary against it).
local core = require "authhero.aws.core"
local store = require "authhero.aws.store"
local schema = require "authhero.aws.schema"

local function size_of(v) -- the value's size alone: an item { a = v } minus the 1-byte name
    return core.item_size({ a = v }) - 1
end

describe("core.item_size", function()
    it("counts names and strings by their UTF-8 bytes, not by their JSON text", function()
        assert.equals(0, core.item_size({}))
        assert.equals(2 + 3, core.item_size({ PK = "abc" }))
        assert.equals(1 + 10, core.item_size({ q = string.rep('"', 10) })) -- 20 bytes as JSON text
        assert.equals(1 + 8, core.item_size({ b = "\\\n\t\1\0\31\127x" }))
        assert.equals(#"jörg" + #"Σ€😀", core.item_size({ ["jörg"] = "Σ€😀" }))
        assert.equals(4 + 2 + 1, core.item_size({ PK = "ab", SK = "c" }))
        local quotes = string.rep('"', 300 * 1024)
        assert.equals(2 + #quotes, core.item_size({ PK = quotes }))
        assert.is_true(#core.marshal_item({ PK = quotes }) > 600 * 1024)
    end)

    it("counts numbers by their significant digits in pairs aligned on the decimal point", function()
        local cases = {
            { 0, 1 }, { 1, 2 }, { 12, 2 }, { 99, 2 }, { 100, 2 }, { 1000, 2 }, { 123, 3 }, { 1234, 3 },
            { 12345, 4 }, { 123456789, 6 }, { 100000, 2 }, { 1e20, 2 }, { 1e21, 2 }, { 1e125, 2 },
            { 1.5, 3 }, { 1.25, 3 }, { 0.5, 2 }, { 0.05, 2 }, { 0.001, 2 }, { 0.1, 2 }, { 1e-7, 2 },
            { 3.14159, 5 }, { 1.5e-100, 3 }, { 2 ^ 53, 9 },
            { -1, 3 }, { -12, 3 }, { -123, 4 }, { -1.5, 4 }, { -0.5, 3 }, { -(2 ^ 53), 10 },
        }
        for _, c in ipairs(cases) do
            assert.equals(c[2], size_of(c[1]), "size of " .. core.marshal_value(c[1]))
        end
        if math.type then -- 5.3+: exact integers
            assert.equals(10, size_of(12345678901234567))
            assert.equals(12, size_of(-9223372036854775807))
        end
    end)

    it("counts binaries raw, BOOL and NULL as 1, lists and maps with their overheads", function()
        assert.equals(4, size_of(core.binary("abcd")))
        assert.equals(0, size_of(core.binary("")))
        assert.equals(1, size_of(true))
        assert.equals(1, size_of(false))
        assert.equals(1, size_of(core.null))
        assert.equals(3, size_of({}))
        assert.equals(3, size_of(core.array({})))
        assert.equals(3 + (1 + 1 + 1), size_of({ k = "v" }))
        assert.equals(3 + (1 + 1) * 2, size_of({ "v", "w" }))
        -- { { a = 1 }, [ true ] }: 3 + (1 + (3 + 1 + 1 + 2)) + (1 + (3 + 1 + 1))
        assert.equals(3 + 1 + 7 + 1 + 5, size_of({ { a = 1 }, core.array({ true }) }))
        -- map keys count like names (UTF-8 bytes)
        assert.equals(3 + #"ключ" + 1 + 1, size_of({ ["ключ"] = "v" }))
        -- sets: the sum of their elements
        assert.equals(4, size_of(core.set({ "ab", "cd" })))
        assert.equals(4, size_of(core.set({ 1, 22 })))
        assert.equals(5, size_of(core.set({ core.binary("abcd"), core.binary("x") })))
    end)

    it("types values as the marshaller does and refuses what it refuses", function()
        local cyc = {}
        cyc.self = cyc
        for _, bad in ipairs({ { a = cyc }, { a = { [1] = "x", k = "y" } }, { a = 0 / 0 }, { a = print },
            { a = core.set({}) }, { [1] = "list" } }) do
            local ok, err = pcall(core.item_size, bad)
            assert.is_false(ok)
            assert.equals(400, err.status)
            assert.equals("MarshalError", err.code)
        end
        assert.has_error(function() core.item_size("x") end)
    end)

    it("is what store.to_item checks: 400 KB as DynamoDB counts, not the JSON text", function()
        local E = schema.entity("users")
        local ctx = store.new({ call = function() error("no request expected") end }, { tableName = "t" })
        local keys = { PK = "TENANT#t", SK = "USER#u" }
        local fixed = core.item_size({ PK = keys.PK, SK = keys.SK, entityType = E.entity_type, user_id = "u",
            app_metadata = "" })
        -- a quote-heavy app_metadata just at the limit is accepted (its JSON text is ~800 KB)
        local room = 400 * 1024 - fixed
        local function record(n)
            -- JSON of { q = '"""...' }: {"q":"\"\"...\""} -> 8 + 2n bytes of stored text
            return { user_id = "u", app_metadata = { q = string.rep('"', n) } }
        end
        local n = math.floor((room - 8) / 2)
        local item = ctx:to_item(E, record(n), keys)
        assert.equals(400 * 1024, core.item_size(item))
        assert.is_true(#core.marshal_item(item) > 800 * 1024)
        -- one more quote (2 more stored bytes) is over: 400 before any request
        local ok, err = pcall(ctx.to_item, ctx, E, record(n + 1), keys)
        assert.is_false(ok)
        assert.equals(400, err.status)
        assert.equals("ValidationError", err.code)
        assert.matches("409602 bytes", err.message)
    end)
end)
