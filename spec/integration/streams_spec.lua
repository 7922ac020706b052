-- DynamoDB Streams through the client against DynamoDB Local: the Streams operations through
-- client:call, GetRecords replies decoded as items, schema.create_table's streams option, and
-- client:changes (order per key, checkpoint and resume without loss or repeats).
local aws = require "authhero.aws"
local ddb = require "support.ddb_local"
local errors = aws.errors

local TABLE = "streams_spec_" .. tostring(os.time()) .. "_" .. math.random(1000000)
local PLAIN = TABLE .. "_plain"

local function new_client()
    return aws.client.new({
        region = "us-east-1",
        endpoint = ddb.endpoint(),
        credentials = { accessKeyId = "fakeMyKeyId", secretAccessKey = "fakeSecretAccessKey" },
    })
end

local function key(pk) return { PK = pk, SK = "#" } end

-- every event changes() gives until it stops, and the feed
local function drain(client, opts)
    local out = {}
    local next_change, feed = client:changes(TABLE, opts)
    for ev in next_change do out[#out + 1] = ev end
    return out, feed
end

describe("DynamoDB Streams against DynamoDB Local", function()
    local client

    setup(function()
        client = new_client()
        aws.schema.create_table(client, { tableName = TABLE, streams = true })
        aws.schema.create_table(client, { tableName = PLAIN })
    end)

    teardown(function()
        pcall(client.call, client, "DeleteTable", { TableName = TABLE })
        pcall(client.call, client, "DeleteTable", { TableName = PLAIN })
        client:close()
    end)

    it("create_table streams = true enables NEW_AND_OLD_IMAGES; an existing table without says so", function()
        local t = client:call("DescribeTable", { TableName = TABLE }).Table
        assert.is_true(t.StreamSpecification.StreamEnabled)
        assert.equals("NEW_AND_OLD_IMAGES", t.StreamSpecification.StreamViewType)
        assert.is_string(t.LatestStreamArn)
        assert.has_no.errors(function() aws.schema.create_table(client, { tableName = TABLE, streams = true }) end)
        local ok, err = pcall(aws.schema.create_table, client, { tableName = PLAIN, streams = true })
        assert.is_false(ok)
        assert.equals("ValidationError", err.code)
        assert.matches("no stream", err.message)
        assert.matches("NEW_AND_OLD_IMAGES", err.message)
    end)

    it("the Streams operations go through client:call and GetRecords decodes Keys and images as items", function()
        client:call("PutItem", { TableName = TABLE, Item = { PK = "raw", SK = "#", n = 1, tags = { "a" } } })
        client:call("PutItem", { TableName = TABLE, Item = { PK = "raw", SK = "#", n = 2, tags = { "a" } } })
        local arn = client:call("DescribeTable", { TableName = TABLE }).Table.LatestStreamArn
        local streams = client:call("ListStreams", { TableName = TABLE }).Streams
        assert.equals(arn, streams[1].StreamArn)
        local shard = client:call("DescribeStream", { StreamArn = arn }).StreamDescription.Shards[1]
        local it = client:call("GetShardIterator", { StreamArn = arn, ShardId = shard.ShardId,
            ShardIteratorType = "TRIM_HORIZON" }).ShardIterator
        local recs = client:call("GetRecords", { ShardIterator = it }).Records
        local mine = {}
        for _, r in ipairs(recs) do
            if r.dynamodb.Keys.PK == "raw" then mine[#mine + 1] = r end
        end
        assert.equals(2, #mine)
        assert.equals("INSERT", mine[1].eventName)
        assert.same({ PK = "raw", SK = "#" }, mine[2].dynamodb.Keys)
        assert.equals("MODIFY", mine[2].eventName)
        assert.equals(2, mine[2].dynamodb.NewImage.n)
        assert.equals(1, mine[2].dynamodb.OldImage.n)
        assert.equals("a", mine[2].dynamodb.NewImage.tags[1])
        -- a bad iterator is the Streams API's own error, not retried
        local ok, err = pcall(client.call, client, "GetRecords", { ShardIterator = "not-an-iterator" })
        assert.is_false(ok)
        assert.is_true(errors.is(err))
        assert.is_false(err.retryable)
        assert.equals(1, err.attempts)
    end)

    it("changes: inserts, modifies and removes of each key in order; checkpoint resume loses and repeats nothing",
        function()
            local before = drain(client) -- whatever earlier tests wrote
            local _, start = drain(client)
            assert.is_table(start.checkpoint)
            assert.equals(0, #drain(client, { checkpoint = start:checkpoint_copy() }))
            local expect = {}
            for round = 1, 3 do
                for i = 1, 4 do
                    local pk = "k" .. i
                    if round < 3 or i % 2 == 0 then
                        client:call("PutItem", { TableName = TABLE, Item = { PK = pk, SK = "#", v = round } })
                        expect[#expect + 1] = { pk, round == 1 and "INSERT" or "MODIFY", round }
                    else
                        client:call("DeleteItem", { TableName = TABLE, Key = key(pk) })
                        expect[#expect + 1] = { pk, "REMOVE", nil }
                    end
                end
            end
            -- read part of it, keep the checkpoint, stop
            local seen = {}
            local next_change, feed = client:changes(TABLE, { checkpoint = start:checkpoint_copy(), limit = 3 })
            for _ = 1, 5 do
                local ev = next_change()
                seen[#seen + 1] = ev
            end
            local saved = feed:checkpoint_copy()
            -- the checkpoint is plain, JSON-able: shard id -> sequence number
            local core = require "authhero.aws.core"
            saved = core.json_decode(core.json_encode(saved))
            -- resume: exactly the rest
            local rest = drain(client, { checkpoint = saved, limit = 2 })
            for _, ev in ipairs(rest) do seen[#seen + 1] = ev end
            assert.equals(#expect, #seen)
            local seqs = {}
            for i, ev in ipairs(seen) do
                assert.is_nil(seqs[ev.sequence], "repeated " .. ev.sequence)
                seqs[ev.sequence] = true
                local pk, kind, v = expect[i][1], expect[i][2], expect[i][3]
                assert.equals(pk, ev.keys.PK)
                assert.equals(kind, ev.event)
                if kind == "REMOVE" then
                    assert.is_nil(ev.new)
                    assert.equals(2, ev.old.v)
                else
                    assert.equals(v, ev.new.v)
                    if kind == "MODIFY" then assert.equals(v - 1, ev.old.v) else assert.is_nil(ev.old) end
                end
                assert.is_string(ev.shard)
                assert.is_number(ev.time)
                -- DynamoDB Local truncates ApproximateCreationDateTime to the minute
                assert.is_true(math.abs(ev.time - os.time()) < 180)
            end
            -- from the trim horizon, the whole history: what came before, then these
            local all = drain(client)
            assert.equals(#before + #expect, #all)
            -- from latest: nothing yet
            local latest, lf = drain(client, { from = "latest" })
            assert.equals(0, #latest)
            assert.is_string(lf.stream_arn)
        end)

    it("follow keeps polling until stopped, and sees a write made while it waits", function()
        local _, feed = drain(client)
        local polls = 0
        local next_change = client:changes(TABLE, { checkpoint = feed:checkpoint_copy(), follow = true, poll = 0.01,
            sleep = function()
                polls = polls + 1
                if polls == 3 then
                    client:call("PutItem", { TableName = TABLE, Item = { PK = "late", SK = "#", v = 1 } })
                end
                require("authhero.aws.core").sleep(0.01)
            end })
        local ev = next_change()
        assert.equals("late", ev.keys.PK)
        assert.is_true(polls >= 3)
    end)

    it("bad options are a ValidationError before any request; a table without a stream is refused", function()
        local sent = client.stats.requests
        for _, o in ipairs({ { from = "now" }, { limit = 0 }, { limit = 1001 }, { follow = "yes" }, { bogus = 1 },
            { checkpoint = { s = 12 } }, { poll = -1 } }) do
            local ok, err = pcall(client.changes, client, TABLE, o)
            assert.is_false(ok)
            assert.equals("ValidationError", err.code)
        end
        assert.equals(sent, client.stats.requests)
        local next_change = client:changes(PLAIN)
        local ok, err = pcall(next_change)
        assert.is_false(ok)
        assert.equals("ValidationError", err.code)
        assert.matches("has no stream", err.message)
    end)
end)
