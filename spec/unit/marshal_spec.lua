-- The codec (csrc/marshal.c, csrc/unmarshal.c): Lua values <-> DynamoDB JSON, one pass each way.
local core = require "authhero.aws.core"
local cjson = require "cjson"
local unpack = table.unpack or unpack
-- LuaJIT, 5.1 and 5.2 have doubles only: integers beyond 2^53 come back as exact strings
local doubles = rawget(math, "type") == nil

-- Deep equality that also compares the markers (array, set, binary, null).
local function same(a, b, path)
    path = path or "value"
    if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
    if type(a) ~= "table" then
        if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
        return true
    end
    if core.is_binary(a) ~= core.is_binary(b) then return false, path .. ": binary marker" end
    if core.is_set(a) ~= core.is_set(b) then return false, path .. ": set marker" end
    for k, v in pairs(a) do
        local ok, why = same(v, b[k], path .. "." .. tostring(k))
        if not ok then return false, why end
    end
    for k in pairs(b) do
        if a[k] == nil then return false, path .. "." .. tostring(k) .. ": missing" end
    end
    return true
end

local function assert_same(a, b)
    local ok, why = same(a, b)
    assert(ok, why)
end

local function roundtrip(item)
    return core.unmarshal_item(core.marshal_item(item))
end

local function av(v)
    return cjson.decode(core.marshal_value(v))
end

local function marshal_error(f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok, "expected a MarshalError")
    assert.equals("table", type(err), tostring(err))
    assert.equals("MarshalError", err.code)
    return err
end

describe("marshal: types", function()
    it("writes strings as S, exactly, with JSON escapes", function()
        assert.same({ S = "TENANT#a" }, av("TENANT#a"))
        local s = 'q"\\/\n\r\t\b\f\0\1\31 zoë 名前 🚀'
        assert.same({ S = s }, av(s))
        assert.equals(s, roundtrip({ s = s }).s)
        assert.equals("", roundtrip({ s = "" }).s)
    end)

    it("writes integers as N exactly", function()
        assert.same({ N = "0" }, av(0))
        assert.same({ N = "-17" }, av(-17))
        assert.same({ N = "1700000000" }, av(1700000000))
        assert.same({ N = "9007199254740992" }, av(2 ^ 53))
        if not doubles then
            assert.same({ N = "9223372036854775807" }, av(math.maxinteger))
            assert.same({ N = "-9223372036854775808" }, av(math.mininteger))
            assert.equals(math.maxinteger, roundtrip({ n = math.maxinteger }).n)
            assert.equals(math.mininteger, roundtrip({ n = math.mininteger }).n)
            assert.equals("integer", math.type(roundtrip({ n = 42 }).n))
        end
    end)

    it("writes floats in the shortest text that reads back the same", function()
        assert.same({ N = "0.1" }, av(0.1))
        assert.same({ N = "1.5" }, av(1.5))
        assert.same({ N = "-2.25" }, av(-2.25))
        assert.same({ N = "0.30000000000000004" }, av(0.1 + 0.2))
        assert.same({ N = "3" }, av(3.0))
        for _, f in ipairs({ 0.1, 1 / 3, math.pi, -1e-300, 1e300, 5e-324, 1.7976931348623157e308, 2 ^ 70 }) do
            assert.equals(f, roundtrip({ f = f }).f)
        end
    end)

    it("writes booleans, null, binary", function()
        assert.same({ BOOL = true }, av(true))
        assert.same({ BOOL = false }, av(false))
        assert.same({ NULL = true }, av(core.null))
        assert.equals(core.null, cjson.null) -- the same sentinel as lua-cjson's
        assert.same({ B = "AAECYWJj" }, av(core.binary("\0\1\2abc")))
        assert.same({ B = "" }, av(core.binary("")))
        local all = {}
        for i = 0, 255 do all[#all + 1] = string.char(i) end
        local bytes = table.concat(all)
        for n = 0, 5 do
            local back = roundtrip({ b = core.binary(bytes:sub(1, 250 + n)) }).b
            assert.is_true(core.is_binary(back))
            assert.equals(bytes:sub(1, 250 + n), back.data)
            assert.equals(bytes:sub(1, 250 + n), tostring(back))
        end
    end)

    it("writes sequences as L and string-keyed tables as M", function()
        assert.same({ L = { { N = "1" }, { S = "x" } } }, av({ 1, "x" }))
        assert.same({ M = { a = { N = "1" } } }, av({ a = 1 }))
        assert.same({ M = {} }, av({}))
        assert.equals('{"L":[]}', core.marshal_value(core.array({})))
        assert.equals('{"L":[]}', core.marshal_value(core.array()))
        local back = roundtrip({ l = core.array({}), m = {} })
        assert.is_true(core.is_array(back.l))
        assert.is_false(core.is_array(back.m))
        assert.equals(0, #back.l)
        assert.is_nil(next(back.m))
    end)

    it("honours lua-cjson's empty_array and array_mt when that cjson has them", function()
        if cjson.empty_array then
            assert.equals('{"L":[]}', core.marshal_value(cjson.empty_array))
        end
        if cjson.array_mt then
            assert.equals('{"L":[]}', core.marshal_value(setmetatable({}, cjson.array_mt)))
        end
        -- a foreign metatable that is not a marker does not change how a table is written
        assert.same({ M = { a = { N = "1" } } }, av(setmetatable({ a = 1 }, { __index = {} })))
    end)

    it("writes sets as SS, NS and BS, and reads them back as sets", function()
        assert.same({ SS = { "a", "b" } }, av(core.set({ "a", "b" })))
        assert.same({ NS = { "1", "2.5" } }, av(core.set({ 1, 2.5 })))
        assert.same({ BS = { "AA==", "AQI=" } }, av(core.set({ core.binary("\0"), core.binary("\1\2") })))
        local back = roundtrip({
            ss = core.set({ "x", "y" }),
            ns = core.set({ 3, 0.5 }),
            bs = core.set({ core.binary("a") }),
        })
        assert.is_true(core.is_set(back.ss))
        assert.same({ "x", "y" }, { unpack(back.ss) })
        assert.is_true(core.is_set(back.ns))
        assert.same({ 3, 0.5 }, { unpack(back.ns) })
        assert.is_true(core.is_set(back.bs))
        assert.equals("a", back.bs[1].data)
    end)

    it("reads back lists as tables marked as arrays, nested values intact", function()
        local item = {
            PK = "TENANT#a",
            nested = { a = { b = { c = { 1, 2, { d = core.null } } } } },
            list = { { x = true }, core.array({}), {} },
        }
        local back = roundtrip(item)
        assert_same(item, back)
        assert.is_true(core.is_array(back.list))
        assert.is_true(core.is_array(back.nested.a.b.c))
        assert.equals(core.null, back.nested.a.b.c[3].d)
    end)
end)

describe("unmarshal: numbers", function()
    local function n(text) return core.unmarshal_value('{"N":"' .. text .. '"}') end

    it("gives integers when integral and in range", function()
        assert.equals(42, n("42"))
        assert.equals(-7, n("-7"))
        assert.equals(0, n("0"))
        assert.equals(0, n("-0"))
        assert.equals(1000, n("1E+3"))
        assert.equals(120, n("1.20E2"))
        if not doubles then
            assert.equals("integer", math.type(n("1E+3")))
            assert.equals(math.maxinteger, n("9223372036854775807"))
            assert.equals(math.mininteger, n("-9223372036854775808"))
            assert.equals("integer", math.type(n("9007199254740993")))
            assert.equals(9007199254740993, n("9007199254740993"))
        end
    end)

    it("gives floats when the double holds the decimal", function()
        assert.equals(0.1, n("0.1"))
        assert.equals(1.5, n("1.50"))
        assert.equals(-0.000123, n("-1.23e-4"))
        assert.equals(1e20, n("100000000000000000000"))
    end)

    it("keeps values a double cannot hold as exact strings, never rounded", function()
        assert.equals("12345678901234567890123", n("12345678901234567890123"))
        assert.equals("0.12345678901234567890123456789012345678", n("0.12345678901234567890123456789012345678"))
        assert.equals("99999999999999999999999999999999999999", n("99999999999999999999999999999999999999"))
        -- 2^63 is a double, but its shortest text (9.223372036854776e18) is another decimal
        assert.equals("9223372036854775808", n("9223372036854775808"))
        assert.equals(1e126, n("1E+126"))
        if doubles then
            assert.equals("9007199254740993", n("9007199254740993")) -- 2^53 + 1: no double holds it
            assert.equals(9007199254740992, n("9007199254740992"))
        else
            assert.equals("92233720368547758071", n("92233720368547758071"))
        end
    end)

    it("rejects text that is not a number", function()
        for _, bad in ipairs({ "", "abc", "1.2.3", "1e", "--1", "0x10", "1e+", " 1" }) do
            marshal_error(core.unmarshal_value, '{"N":"' .. bad .. '"}')
        end
    end)
end)

describe("marshal: bad input raises MarshalError naming the path", function()
    it("invalid UTF-8", function()
        for _, s in ipairs({ "\255", "a\192\128", "\237\160\128", "\244\144\128\128", "\226\130", "\128" }) do
            local err = marshal_error(core.marshal_item, { profile = { name = s } })
            assert.equals(400, err.status)
            assert.equals("profile.name", err.path)
            assert.matches("UTF%-8", err.message)
        end
    end)

    it("NaN and infinity", function()
        for _, v in ipairs({ 0 / 0, 1 / 0, -1 / 0 }) do
            local err = marshal_error(core.marshal_item, { list = { 1, v } })
            assert.equals("list[2]", err.path)
        end
    end)

    it("empty and mixed sets", function()
        assert.equals("tags", marshal_error(core.marshal_item, { tags = core.set({}) }).path)
        assert.equals("tags[2]", marshal_error(core.marshal_item, { tags = core.set({ "a", 1 }) }).path)
        assert.equals("tags[2]", marshal_error(core.marshal_item, { tags = core.set({ core.binary("a"), "b" }) }).path)
        marshal_error(core.marshal_item, { tags = core.set({ true }) })
        marshal_error(core.marshal_item, { tags = core.set({ {} }) })
    end)

    it("nesting deeper than 32 levels, and cycles", function()
        local function nest(n)
            local root = {}
            local t = root
            for _ = 2, n do t.x = {}; t = t.x end
            return root
        end
        assert.has_no.errors(function() core.marshal_item({ d = nest(32) }) end)
        local err = marshal_error(core.marshal_item, { d = nest(33) })
        assert.matches("deeper than 32", err.message)
        local back = roundtrip({ d = nest(32) })
        assert.is_table(back.d.x.x.x)
        local t = { a = {} }
        t.a.back = t
        assert.matches("cycle", marshal_error(core.marshal_item, { t = t }).message)
        local l = {}
        l[1] = l
        assert.matches("cycle", marshal_error(core.marshal_item, { l = l }).message)
    end)

    it("keys that are not strings, and values that are not data", function()
        marshal_error(core.marshal_item, { m = { [true] = 1 } })
        marshal_error(core.marshal_item, { m = { 1, 2, x = 3 } })
        marshal_error(core.marshal_item, { m = { [1] = "a", [3] = "c" } })
        marshal_error(core.marshal_item, { m = { [1.5] = "a" } })
        marshal_error(core.marshal_item, { f = print })
        marshal_error(core.marshal_item, { co = coroutine.create(function() end) })
        marshal_error(core.marshal_item, { u = io.stdout })
        marshal_error(core.marshal_item, { 1, 2 }) -- an item is a map
        assert.has_error(function() core.marshal_item("x") end)
    end)

    it("decoding the same shapes back out of a reply refuses deeper than 32 levels", function()
        local json = '{"d":' .. string.rep('{"M":{"x":', 33) .. '{"S":"y"}' .. string.rep("}}", 33) .. "}"
        assert.matches("deeper than 32", marshal_error(core.unmarshal_item, json).message)
        local ok32 = '{"d":' .. string.rep('{"M":{"x":', 32) .. '{"S":"y"}' .. string.rep("}}", 32) .. "}"
        assert.is_table(core.unmarshal_item(ok32).d)
    end)
end)

describe("unmarshal: malformed JSON raises MarshalError, never a partial table", function()
    local good = core.marshal_item({
        PK = "TENANT#a", n = 12, l = { 1, "x", { y = core.null } }, s = core.set({ "a" }),
        b = core.binary("xyz"), u = "é\"\\",
    })

    it("every truncation of a valid item", function()
        for i = 0, #good - 1 do
            marshal_error(core.unmarshal_item, good:sub(1, i))
        end
    end)

    it("garbage, wrong types and bad escapes", function()
        local bad = {
            "", " ", "null", "[]", "{", "}", '{"a"}', '{"a":}', '{"a":{"S":1}}', '{"a":{"S":"x","N":"1"}}',
            '{"a":{"BOOL":"true"}}', '{"a":{"NULL":false}}', '{"a":{"B":"###"}}', '{"a":{"B":"QQ="}}',
            '{"a":{"L":{}}}', '{"a":{"M":[]}}', '{"a":{"SS":[1]}}', '{"a":{"NS":["x"]}}', '{"a":{}}',
            '{"a":{"S":"\\x"}}', '{"a":{"S":"\\u12"}}', '{"a":{"S":"\\ud800"}}', '{"a":{"S":"\\udc00x"}}',
            '{"a":{"S":"tab\there"}}', '{"a":{"S":"x"}},', '{"a":{"S":"x"}}{}', '{"a":{"S":"x"},}',
            '{a:{"S":"x"}}', "{'a':{'S':'x'}}", '{"a":{"S":"x"}}\0', '{"a":{"S":"\255"}}',
        }
        for _, json in ipairs(bad) do
            local err = marshal_error(core.unmarshal_item, json)
            assert.is_string(err.message)
        end
    end)

    it("names the attribute path of a bad value", function()
        local err = marshal_error(core.decode_reply, '{"Items":[{"a":{"S":"x"}},{"m":{"M":{"k":{"Q":1}}}}]}')
        assert.equals("Items[2].m.k", err.path)
    end)
end)

describe("encode_request / decode_reply", function()
    it("marshals the item fields of every operation and leaves the rest plain", function()
        local body = core.encode_request({
            TableName = "authhero",
            Item = { PK = "TENANT#a", n = 1 },
            Key = { PK = "a", SK = "b" },
            ExpressionAttributeValues = { [":v"] = 5, [":s"] = "x" },
            ExpressionAttributeNames = { ["#n"] = "name" },
            ExclusiveStartKey = { PK = "p" },
            Limit = 25,
            ConsistentRead = true,
            ReturnConsumedCapacity = "TOTAL",
        })
        local t = cjson.decode(body)
        assert.same({ PK = { S = "TENANT#a" }, n = { N = "1" } }, t.Item)
        assert.same({ PK = { S = "a" }, SK = { S = "b" } }, t.Key)
        assert.same({ [":v"] = { N = "5" }, [":s"] = { S = "x" } }, t.ExpressionAttributeValues)
        assert.same({ ["#n"] = "name" }, t.ExpressionAttributeNames)
        assert.same({ PK = { S = "p" } }, t.ExclusiveStartKey)
        assert.equals(25, t.Limit)
        assert.equals(true, t.ConsistentRead)
        assert.equals("authhero", t.TableName)
    end)

    it("marshals inside RequestItems and TransactItems", function()
        local t = cjson.decode(core.encode_request({
            RequestItems = {
                authhero = {
                    { PutRequest = { Item = { PK = "a", v = true } } },
                    { DeleteRequest = { Key = { PK = "b", SK = "c" } } },
                },
                other = { Keys = { { PK = "k1" }, { PK = "k2" } }, ConsistentRead = true },
            },
        }))
        assert.same({ PK = { S = "a" }, v = { BOOL = true } }, t.RequestItems.authhero[1].PutRequest.Item)
        assert.same({ PK = { S = "b" }, SK = { S = "c" } }, t.RequestItems.authhero[2].DeleteRequest.Key)
        assert.same({ { PK = { S = "k1" } }, { PK = { S = "k2" } } }, t.RequestItems.other.Keys)
        t = cjson.decode(core.encode_request({
            TransactItems = {
                { Put = { TableName = "t", Item = { PK = "x" }, ConditionExpression = "attribute_not_exists(PK)" } },
                { Update = { TableName = "t", Key = { PK = "y" }, UpdateExpression = "SET #a = :a",
                    ExpressionAttributeNames = { ["#a"] = "a" }, ExpressionAttributeValues = { [":a"] = 1 } } },
                { ConditionCheck = { TableName = "t", Key = { PK = "z" }, ConditionExpression = "attribute_exists(PK)" } },
                { Delete = { TableName = "t", Key = { PK = "w" } } },
            },
            ClientRequestToken = "tok",
        }))
        assert.same({ PK = { S = "x" } }, t.TransactItems[1].Put.Item)
        assert.same({ [":a"] = { N = "1" } }, t.TransactItems[2].Update.ExpressionAttributeValues)
        assert.same({ PK = { S = "z" } }, t.TransactItems[3].ConditionCheck.Key)
        assert.same({ PK = { S = "w" } }, t.TransactItems[4].Delete.Key)
    end)

    it("writes CreateTable-style plain lists and numbers", function()
        local t = cjson.decode(core.encode_request({
            AttributeDefinitions = { { AttributeName = "PK", AttributeType = "S" } },
            ProvisionedThroughput = { ReadCapacityUnits = 5, WriteCapacityUnits = 5 },
            GlobalSecondaryIndexes = core.array({}),
            Ratio = 0.5,
            Nothing = core.null,
        }))
        assert.same({ { AttributeName = "PK", AttributeType = "S" } }, t.AttributeDefinitions)
        assert.same({}, t.GlobalSecondaryIndexes)
        assert.equals(0.5, t.Ratio)
        assert.equals(cjson.null, t.Nothing)
    end)

    it("unmarshals items wherever a reply carries them", function()
        local r = core.decode_reply([[{
            "Item": {"PK": {"S": "a"}},
            "Items": [{"PK": {"S": "b"}, "n": {"N": "3"}}],
            "Attributes": {"x": {"BOOL": true}},
            "LastEvaluatedKey": {"PK": {"S": "c"}, "SK": {"S": "d"}},
            "Count": 1, "ScannedCount": 10,
            "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5},
            "Responses": {"t": [{"PK": {"S": "e"}}]},
            "UnprocessedItems": {"t": [{"PutRequest": {"Item": {"PK": {"S": "f"}}}},
                                       {"DeleteRequest": {"Key": {"PK": {"S": "g"}}}}]},
            "UnprocessedKeys": {"t": {"Keys": [{"PK": {"S": "h"}}], "ConsistentRead": true}},
            "CancellationReasons": [{"Code": "None"}, {"Code": "ConditionalCheckFailed", "Message": "m",
                                     "Item": {"PK": {"S": "i"}}}]
        }]])
        assert.equals("a", r.Item.PK)
        assert.equals(3, r.Items[1].n)
        assert.is_true(core.is_array(r.Items))
        assert.is_true(r.Attributes.x)
        assert.same({ PK = "c", SK = "d" }, r.LastEvaluatedKey)
        assert.equals(1, r.Count)
        assert.equals(0.5, r.ConsumedCapacity.CapacityUnits)
        assert.equals("e", r.Responses.t[1].PK)
        assert.equals("f", r.UnprocessedItems.t[1].PutRequest.Item.PK)
        assert.equals("g", r.UnprocessedItems.t[2].DeleteRequest.Key.PK)
        assert.equals("h", r.UnprocessedKeys.t.Keys[1].PK)
        assert.equals("i", r.CancellationReasons[2].Item.PK)
        assert.equals("None", r.CancellationReasons[1].Code)
    end)

    it("reads TransactGetItems' Responses (a list of {Item})", function()
        local r = core.decode_reply('{"Responses":[{"Item":{"PK":{"S":"a"}}},{}]}')
        assert.equals("a", r.Responses[1].Item.PK)
        assert.is_nil(r.Responses[2].Item)
    end)

    it("reads plain JSON like lua-cjson does", function()
        local json = '{"a":[1,2.5,-3e2,"x",true,false,null,{"b":[]}],"s":"\\u00e9\\ud83d\\ude80\\n","e":{}}'
        local mine, theirs = core.decode_reply(json), cjson.decode(json)
        assert.same(theirs.a[8], mine.a[8])
        for i = 1, 7 do assert.equals(theirs.a[i], mine.a[i]) end
        assert.equals(theirs.s, mine.s)
        assert.equals("é🚀\n", mine.s)
        assert.same({}, mine.e)
    end)

    -- Names and values that repeat from item to item are matched against the last item's bytes
    -- in the input (csrc/unmarshal.c's cache); escapes must never fool that match.
    describe("items that repeat names and values", function()
        it("reads repeats, changes and escaped look-alikes right", function()
            local json = '{"Items":['
                .. '{"k":{"S":"same"},"x\\\\b":{"S":"x\\\\b"},"v":{"S":"a"}},'
                .. '{"k":{"S":"same"},"x\\b":{"S":"x\\b"},"v":{"S":"a"}},'
                .. '{"k":{"S":"same"},"x\\\\b":{"S":"x\\\\b"},"v":{"S":"ab"}},'
                .. '{"k":{"S":"sam"},"v":{"S":"a"},"x\\\\b":{"N":"1"}},'
                .. '{"k":{"S":"same"},"x\\\\b":{"S":"same\\""},"v":{"S":"a\\u0062"}}]}'
            local items = core.decode_reply(json).Items
            assert.same({ k = "same", ["x\\b"] = "x\\b", v = "a" }, items[1])
            assert.same({ k = "same", ["x\b"] = "x\b", v = "a" }, items[2])
            assert.same({ k = "same", ["x\\b"] = "x\\b", v = "ab" }, items[3])
            assert.same({ k = "sam", v = "a", ["x\\b"] = 1 }, items[4])
            assert.same({ k = "same", ["x\\b"] = "same\"", v = "ab" }, items[5])
        end)

        it("agrees with lua-cjson on many items of repeating shapes", function()
            local items = {}
            for i = 1, 60 do
                local it = { PK = "TENANT#t", SK = "USER#" .. (i % 7), entityType = i % 5 == 0 and "ROLE" or "USER",
                    name = i % 3 == 0 and 'quote"d' or "plain", n = i % 4 }
                if i % 9 == 0 then it.extra = "x" end
                items[i] = it
            end
            local json = core.encode_request({ Items = items })
            local theirs = cjson.decode(json).Items
            local mine = core.decode_reply(json).Items
            for i, t in ipairs(theirs) do
                local want = {}
                for k, v in pairs(t) do want[k] = v.S or tonumber(v.N) end
                assert.same(want, mine[i])
            end
        end)

        it("raises MarshalError for every truncation of a reply, never reading past its end", function()
            local json = core.encode_request({ Items = { { PK = "a", SK = "b", n = 1 }, { PK = "a", SK = "b", n = 2 },
                { PK = "a", SK = "b", n = 3 } } })
            for cut = 1, #json - 1 do
                local ok, err = pcall(core.decode_reply, json:sub(1, cut))
                assert.is_false(ok, "decoded a reply cut at " .. cut)
                assert.equals("MarshalError", err.code)
            end
        end)
    end)

    it("finds a quote, an escape, a control or a non-ASCII byte at every offset of a long string", function()
        -- the string scanner takes 16 or 8 bytes at a time: put each kind of byte everywhere
        for pos = 0, 40 do
            local before, after = string.rep("a", pos), string.rep("b", 37 - pos % 19)
            -- the last is U+10348 in UTF-8 (Lua 5.1 and 5.2 have no \u{} escapes)
            for _, special in ipairs({ '"', "\\", "\n", "\1", "é", "\240\144\141\136" }) do
                local v = before .. special .. after
                assert.equals(v, core.unmarshal_item(core.marshal_item({ s = v })).s)
                assert.equals(v, core.decode_reply(core.encode_request({ s = v })).s)
            end
            marshal_error(core.unmarshal_value, '{"S":"' .. before .. "\1" .. after .. '"}')
            marshal_error(core.unmarshal_value, '{"S":"' .. before .. "\255" .. after .. '"}')
            marshal_error(core.decode_reply, '{"s":"' .. before .. after) -- no closing quote
        end
    end)

    it("round-trips a request through both directions", function()
        local params = { TableName = "t", Item = { PK = "a", l = { 1, 2 }, m = { x = "y" } }, Limit = 3 }
        local back = core.decode_reply(core.encode_request(params))
        assert_same(params.Item, back.Item)
        assert.equals(3, back.Limit)
    end)
end)

describe("randomized round-trips", function()
    local chars = { "a", "Z", "0", "#", "%", '"', "\\", "\n", "\0", "é", "名", "🚀", " ", "/", "\127" }
    local function rstring()
        local t = {}
        for i = 1, math.random(0, 12) do t[i] = chars[math.random(#chars)] end
        return table.concat(t)
    end
    local function rnumber()
        local k = math.random(4)
        if k == 1 then return math.random(-1000000, 1000000) end
        if k == 2 then return (math.random() - 0.5) * 10 ^ math.random(-20, 20) end
        -- up to 2^52 (Lua 5.1's math.random takes ints: bounds below 2^31)
        if k == 3 then return math.random(0, 2 ^ 30) * 2 ^ 22 + math.random(0, 2 ^ 22 - 1) end
        return math.random(-100, 100) / 8
    end
    local rvalue
    local function rtable(depth)
        local t = {}
        if math.random(2) == 1 then
            for i = 1, math.random(0, 4) do t[i] = rvalue(depth + 1) end
            return math.random(3) == 1 and core.array(t) or (#t > 0 and t or core.array(t))
        end
        for _ = 1, math.random(0, 4) do t[rstring()] = rvalue(depth + 1) end
        return t
    end
    function rvalue(depth)
        local k = math.random(depth > 6 and 6 or 9)
        if k == 1 then return rstring() end
        if k == 2 then return rnumber() end
        if k == 3 then return math.random(2) == 1 end
        if k == 4 then return core.null end
        if k == 5 then return core.binary(rstring()) end
        if k == 6 then
            local s, seen = {}, {}
            local which = math.random(3)
            for _ = 1, math.random(1, 4) do
                local v = which == 1 and rstring() or which == 2 and rnumber() or core.binary(rstring())
                local id = type(v) == "table" and v.data or v
                if not seen[id] then seen[id] = true; s[#s + 1] = v end
            end
            return core.set(s)
        end
        return rtable(depth)
    end

    it("survive 3000 generated documents, values and markers intact", function()
        math.randomseed(20261126)
        for n = 1, 3000 do
            local item = {}
            for _ = 1, math.random(1, 10) do item[rstring()] = rvalue(1) end
            local json = core.marshal_item(item)
            assert(pcall(cjson.decode, json), "not valid JSON: " .. json)
            local back = core.unmarshal_item(json)
            local ok, why = same(item, back)
            assert(ok, "document " .. n .. ": " .. tostring(why) .. "\n" .. json)
            -- and a reply carrying it
            local reply = core.decode_reply('{"Items":[' .. json .. "]}")
            assert(same(item, reply.Items[1]))
        end
    end)
end)

describe("plain JSON and base64 helpers", function()
    it("json_encode / json_decode never switch to AttributeValues", function()
        local v = { Item = { a = 1 }, Items = { "x" }, list = core.array({}), n = 0.5, z = core.null, s = "é\n" }
        local text = core.json_encode(v)
        assert.same({ Item = { a = 1 }, Items = { "x" }, list = {}, n = 0.5, z = cjson.null, s = "é\n" }, cjson.decode(text))
        local back = core.json_decode(text)
        assert.equals(1, back.Item.a)
        assert.equals("x", back.Items[1])
        assert.is_true(core.is_array(back.list))
        assert.equals(core.null, back.z)
        assert.equals("[]", core.json_encode(core.array()))
        assert.equals("{}", core.json_encode({}))
        assert.equals('"x"', core.json_encode("x"))
        marshal_error(core.json_decode, '{"a":')
    end)

    it("base64 round-trips and refuses bad text", function()
        for _, s in ipairs({ "", "f", "fo", "foo", "foob", "\0\255\128" }) do
            assert.equals(s, core.base64_decode(core.base64_encode(s)))
        end
        assert.equals("Zm9v", core.base64_encode("foo"))
        assert.is_nil(core.base64_decode("Zm9"))
        assert.is_nil(core.base64_decode("Z!=="))
    end)
end)
