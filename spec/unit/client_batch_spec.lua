-- The batch helpers' handling of UnprocessedItems / UnprocessedKeys, which DynamoDB Local never
-- returns: a scripted transport answers in place of DynamoDB (the retry policy is what is tested).
local aws = require "authhero.aws"
local cjson = require "cjson"

-- A transport answering each request with the next scripted reply (a function of the request).
local function scripted(replies)
    local t = { seen = {} }
    function t.request(_, req)
        local body = cjson.decode(req.body)
        t.seen[#t.seen + 1] = body
        local f = table.remove(replies, 1)
        assert(f, "no reply scripted for request " .. #t.seen)
        return { status = 200, body = cjson.encode(f(body)), headers = {} }
    end
    function t.close() end
    return t
end

local function client_with(replies)
    local sleeps = {}
    local transport = scripted(replies)
    local c = aws.client.new({
        region = "us-east-1", endpoint = "http://127.0.0.1:1", transport = transport,
        credentials = { accessKeyId = "AKID", secretAccessKey = "secret" },
        sleep = function(s) sleeps[#sleeps + 1] = s end, random = function() return 1 end,
    })
    return c, transport, sleeps
end

local function puts(n)
    local r = {}
    for i = 1, n do r[i] = { PutRequest = { Item = { PK = "P", SK = "S#" .. i } } } end
    return r
end

describe("client:batch_write", function()
    it("re-submits UnprocessedItems with backoff until all are written", function()
        local c, t, sleeps = client_with({
            function(body) -- first chunk of 25: two come back unprocessed
                local reqs = body.RequestItems.tbl
                assert.equals(25, #reqs)
                return { UnprocessedItems = { tbl = { reqs[3], reqs[7] } } }
            end,
            function(body)
                assert.equals(2, #body.RequestItems.tbl)
                assert.equals("S#3", body.RequestItems.tbl[1].PutRequest.Item.SK.S)
                return { UnprocessedItems = {} }
            end,
            function(body)
                assert.equals(5, #body.RequestItems.tbl) -- the second chunk
                return {}
            end,
        })
        assert.same({}, c:batch_write("tbl", puts(30)))
        assert.equals(3, #t.seen)
        assert.equals(1, c.stats.retries)
        assert.equals(1, #sleeps)
    end)

    it("returns what stays unprocessed instead of dropping it", function()
        local replies = {}
        for i = 1, 9 do
            replies[i] = function(body) return { UnprocessedItems = { tbl = { body.RequestItems.tbl[1] } } } end
        end
        local c, t = client_with(replies)
        local left = c:batch_write("tbl", puts(1))
        assert.equals(1, #left)
        assert.equals("S#1", left[1].PutRequest.Item.SK)
        assert.equals(9, #t.seen) -- the first send and 8 rounds of re-sending
    end)
end)

describe("client:batch_get", function()
    it("re-requests UnprocessedKeys and gathers every item", function()
        local c, t = client_with({
            function(body)
                local keys = body.RequestItems.tbl.Keys
                assert.equals(100, #keys)
                return { Responses = { tbl = { { PK = { S = "a" } } } },
                    UnprocessedKeys = { tbl = { Keys = { keys[1], keys[2] } } } }
            end,
            function(body)
                assert.equals(2, #body.RequestItems.tbl.Keys)
                return { Responses = { tbl = { { PK = { S = "b" } }, { PK = { S = "c" } } } } }
            end,
            function(body)
                assert.equals(20, #body.RequestItems.tbl.Keys)
                return { Responses = { tbl = { { PK = { S = "d" } } } } }
            end,
        })
        local keys = {}
        for i = 1, 120 do keys[i] = { PK = "k" .. i } end
        local items, left = c:batch_get("tbl", keys)
        assert.same({ "a", "b", "c", "d" }, { items[1].PK, items[2].PK, items[3].PK, items[4].PK })
        assert.same({}, left)
        assert.equals(3, #t.seen)
    end)
end)
