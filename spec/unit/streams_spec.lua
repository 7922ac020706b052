-- DynamoDB Streams without a server: where the Streams operations are sent and how they are signed,
-- their errors' retry classes, the codec on GetRecords replies, client:changes over shards that
-- split and iterators that expire (DynamoDB Local never splits a shard), and create_table's
-- replicas (global tables exist only on AWS) -- all with a stub transport.
local aws = require "authhero.aws"
local cjson = require "cjson"
local core = require "authhero.aws.core"
local errors = aws.errors

local function header(req, name)
    for _, h in ipairs(req.headers) do
        if h[1] == name then return h[2] end
    end
end

local function err_reply(code, message)
    return { status = 400, headers = {},
        body = cjson.encode({ __type = "com.amazonaws.dynamodb.v20120810#" .. code, message = message or code }) }
end

local function ok_reply(t) return { status = 200, headers = {}, body = cjson.encode(t) } end

-- A transport answering by operation: handlers[op](body, req) -> a reply; records every request.
local function stub(handlers)
    local t = { seen = {} }
    function t.request(_, req)
        local target = header(req, "x-amz-target")
        local op = target:match("%.(%a+)$")
        local body = cjson.decode(req.body)
        t.seen[#t.seen + 1] = { op = op, target = target, url = req.url, host = header(req, "host"),
            auth = header(req, "authorization"), body = body }
        local h = handlers[op]
        assert(h, "no handler for " .. op)
        return h(body, req)
    end
    function t.close() end
    return t
end

local function new_client(transport, extra)
    local config = { region = "eu-west-1", transport = transport,
        credentials = { accessKeyId = "AKID", secretAccessKey = "secret" },
        sleep = function() end, random = function() return 0 end }
    for k, v in pairs(extra or {}) do config[k] = v end
    return aws.client.new(config)
end

local ENV_ENDPOINTS = os.getenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS") or os.getenv("AWS_ENDPOINT_URL_DYNAMODB")
    or os.getenv("AWS_ENDPOINT_URL")

describe("Streams operations through client:call", function()
    local handlers = {
        GetRecords = function() return ok_reply({ Records = {} }) end,
        GetItem = function() return ok_reply({}) end,
    }

    it("go to streams.dynamodb.<region> on AWS with their own target prefix, signed as dynamodb", function()
        if ENV_ENDPOINTS then return pending("an AWS_ENDPOINT_URL* variable is set") end
        local t = stub(handlers)
        local c = new_client(t)
        c:call("GetRecords", { ShardIterator = "it" })
        c:call("GetItem", { TableName = "t", Key = { PK = "a", SK = "b" } })
        assert.equals("https://streams.dynamodb.eu-west-1.amazonaws.com/", t.seen[1].url)
        assert.equals("streams.dynamodb.eu-west-1.amazonaws.com", t.seen[1].host)
        assert.equals("DynamoDBStreams_20120810.GetRecords", t.seen[1].target)
        assert.truthy(t.seen[1].auth:find("/eu-west-1/dynamodb/aws4_request", 1, true))
        -- the table API is untouched
        assert.equals("https://dynamodb.eu-west-1.amazonaws.com/", t.seen[2].url)
        assert.equals("dynamodb.eu-west-1.amazonaws.com", t.seen[2].host)
        assert.equals("DynamoDB_20120810.GetItem", t.seen[2].target)
        assert.equals("https://streams.dynamodb.eu-west-1.amazonaws.com/", c.streams_endpoint)
    end)

    it("use a custom endpoint (DynamoDB Local serves both), or streams_endpoint when given", function()
        local t = stub(handlers)
        local c = new_client(t, { endpoint = "http://127.0.0.1:8000" })
        c:call("GetRecords", { ShardIterator = "it" })
        assert.equals("http://127.0.0.1:8000/", t.seen[1].url)
        assert.equals("127.0.0.1:8000", t.seen[1].host)
        assert.equals("DynamoDBStreams_20120810.GetRecords", t.seen[1].target)
        local c2 = new_client(t, { endpoint = "http://127.0.0.1:8000", streams_endpoint = "http://127.0.0.1:9000/s" })
        c2:call("GetRecords", { ShardIterator = "it" })
        c2:call("GetItem", { TableName = "t", Key = { PK = "a", SK = "b" } })
        assert.equals("http://127.0.0.1:9000/s", t.seen[2].url)
        assert.equals("127.0.0.1:9000", t.seen[2].host)
        assert.equals("http://127.0.0.1:8000/", t.seen[3].url)
        local ok, err = pcall(new_client, t, { streams_endpoint = "ftp://x" })
        assert.is_false(ok)
        assert.equals("ValidationError", err.code)
        assert.has_error(function() new_client(t, { streams_endpoint = 5 }) end)
    end)

    it("ExpiredIterator, TrimmedDataAccess and ResourceNotFound are not retried; LimitExceeded is throttling",
        function()
            for _, code in ipairs({ "ExpiredIteratorException", "TrimmedDataAccessException",
                "ResourceNotFoundException" }) do
                local t = stub({ GetRecords = function() return err_reply(code) end })
                local ok, err = pcall(new_client(t).call, new_client(t), "GetRecords", { ShardIterator = "x" })
                assert.is_false(ok)
                assert.equals(code, err.code)
                assert.is_false(err.retryable)
                assert.equals(1, #t.seen)
                assert.is_nil(err.maybe_applied)
            end
            local n = 0
            local t = stub({ GetRecords = function()
                n = n + 1
                if n < 3 then return err_reply("LimitExceededException", "Rate exceeded for shard") end
                return ok_reply({ Records = {}, NextShardIterator = "next" })
            end })
            local c = new_client(t)
            assert.equals("next", c:call("GetRecords", { ShardIterator = "x" }).NextShardIterator)
            assert.equals(3, #t.seen)
            assert.equals(2, c.stats.retries)
        end)
end)

describe("decode_reply on a GetRecords reply", function()
    it("reads each record's Keys, NewImage and OldImage as items; BatchGetItem's Keys stay a list", function()
        local r = core.decode_reply([[{"Records":[{"eventID":"e1","eventName":"MODIFY","eventVersion":"1.1",
          "dynamodb":{"ApproximateCreationDateTime":1764892800,"Keys":{"PK":{"S":"TENANT#a"},"SK":{"S":"USER#1"}},
          "NewImage":{"PK":{"S":"TENANT#a"},"n":{"N":"2"},"tags":{"SS":["x","y"]},"m":{"M":{"b":{"BOOL":true}}},
          "l":{"L":[{"N":"1"},{"NULL":true}]}},
          "OldImage":{"PK":{"S":"TENANT#a"},"n":{"N":"1"}},
          "SequenceNumber":"000000000000000000042","SizeBytes":40,"StreamViewType":"NEW_AND_OLD_IMAGES"}},
          {"eventName":"REMOVE","dynamodb":{"Keys":{"PK":{"S":"k"},"SK":{"S":"#"}},"OldImage":{"PK":{"S":"k"}}}}],
          "NextShardIterator":"arn:aws:dynamodb:..."}]])
        local d = r.Records[1].dynamodb
        assert.same({ PK = "TENANT#a", SK = "USER#1" }, d.Keys)
        assert.equals(2, d.NewImage.n)
        assert.same({ "x", "y" }, { d.NewImage.tags[1], d.NewImage.tags[2] })
        assert.is_true(d.NewImage.m.b)
        assert.equals(1, d.NewImage.l[1])
        assert.equals(core.null, d.NewImage.l[2])
        assert.equals(1, d.OldImage.n)
        assert.equals("000000000000000000042", d.SequenceNumber)
        assert.equals(1764892800, d.ApproximateCreationDateTime)
        assert.is_nil(r.Records[2].dynamodb.NewImage)
        assert.same({ PK = "k", SK = "#" }, r.Records[2].dynamodb.Keys)
        local b = core.decode_reply('{"UnprocessedKeys":{"t":{"Keys":[{"PK":{"S":"a"},"SK":{"S":"b"}}]}}}')
        assert.same({ PK = "a", SK = "b" }, b.UnprocessedKeys.t.Keys[1])
        assert.is_true(core.is_array(b.UnprocessedKeys.t.Keys))
        -- and back: a map under Keys is one item, a list stays BatchGetItem's list of items
        assert.equals('{"Keys":{"PK":{"S":"a"}}}', core.encode_request({ Keys = { PK = "a" } }))
        assert.equals('{"Keys":[{"PK":{"S":"a"}}]}', core.encode_request({ Keys = { { PK = "a" } } }))
        assert.same(d.Keys, core.decode_reply(core.encode_request({ Keys = d.Keys })).Keys)
        -- an image that is not an attribute map is still an error with its path
        local ok, err = pcall(core.decode_reply, '{"Records":[{"dynamodb":{"NewImage":{"a":{"Q":"1"}}}}]}')
        assert.is_false(ok)
        assert.truthy(tostring(err.message):find("Records[1].dynamodb.NewImage.a", 1, true), tostring(err.message))
    end)
end)

-- A scripted stream: shards = { {id, parent, closed, records = {...}} }, DescribeStream paged by
-- `page` shards, GetRecords `limit` records per call (iterators are "shard:position").
local function fake_stream(shards, opts)
    opts = opts or {}
    local by_id = {}
    for _, s in ipairs(shards) do by_id[s.id] = s end
    local expire_once = opts.expire_once
    local h = {
        DescribeTable = function()
            return ok_reply({ Table = { TableName = "t", LatestStreamArn = "arn:stream",
                StreamSpecification = { StreamEnabled = true, StreamViewType = "NEW_AND_OLD_IMAGES" } } })
        end,
        DescribeStream = function(b)
            local start = 1
            if b.ExclusiveStartShardId then
                for i, s in ipairs(shards) do
                    if s.id == b.ExclusiveStartShardId then start = i + 1 end
                end
            end
            local page = opts.page or #shards
            local list = {}
            for i = start, math.min(#shards, start + page - 1) do
                local s = shards[i]
                list[#list + 1] = { ShardId = s.id, ParentShardId = s.parent,
                    SequenceNumberRange = { StartingSequenceNumber = "1", EndingSequenceNumber = s.closed and "999" or nil } }
            end
            local last = (start + page - 1 < #shards) and list[#list].ShardId or nil
            return ok_reply({ StreamDescription = { StreamArn = "arn:stream", Shards = list,
                LastEvaluatedShardId = last } })
        end,
        GetShardIterator = function(b)
            local s = by_id[b.ShardId]
            local pos = 0
            if b.ShardIteratorType == "AFTER_SEQUENCE_NUMBER" then
                for i, r in ipairs(s.records) do
                    if r.seq == b.SequenceNumber then pos = i end
                end
            elseif b.ShardIteratorType == "LATEST" then
                pos = #s.records
            end
            return ok_reply({ ShardIterator = s.id .. ":" .. pos })
        end,
        GetRecords = function(b)
            local id, pos = b.ShardIterator:match("^(.*):(%d+)$")
            pos = tonumber(pos)
            if expire_once and id == expire_once and pos > 0 then
                expire_once = nil
                return err_reply("ExpiredIteratorException", "Iterator expired")
            end
            local s = by_id[id]
            assert(s, "unknown iterator " .. tostring(b.ShardIterator))
            local recs = {}
            local n = math.floor(math.min(#s.records, pos + (b.Limit or 1000))) -- cjson reads Limit as a float
            for i = pos + 1, n do
                local r = s.records[i]
                recs[#recs + 1] = { eventName = r.event, dynamodb = { Keys = { PK = { S = r.pk }, SK = { S = "#" } },
                    NewImage = r.v and { PK = { S = r.pk }, v = { N = tostring(r.v) } } or nil,
                    SequenceNumber = r.seq, ApproximateCreationDateTime = 1764892800 } }
            end
            local nxt = id .. ":" .. n
            if s.closed and n == #s.records then nxt = nil end
            return ok_reply({ Records = recs, NextShardIterator = nxt })
        end,
    }
    return stub(h)
end

describe("client:changes over shards", function()
    local function split_stream()
        return {
            -- DescribeStream lists the children before their parent: the order must still hold
            { id = "child-a", parent = "root", records = { { pk = "x", event = "MODIFY", v = 3, seq = "21" },
                { pk = "x", event = "REMOVE", seq = "22" } } },
            { id = "child-b", parent = "root", records = { { pk = "y", event = "MODIFY", v = 2, seq = "31" } } },
            { id = "root", closed = true, records = { { pk = "x", event = "INSERT", v = 1, seq = "11" },
                { pk = "y", event = "INSERT", v = 1, seq = "12" }, { pk = "x", event = "MODIFY", v = 2, seq = "13" } } },
        }
    end

    local function collect(next_change)
        local out = {}
        for ev in next_change do out[#out + 1] = ev.shard .. "/" .. ev.keys.PK .. "/" .. ev.event .. "/" .. ev.sequence end
        return out
    end

    it("reads a parent shard to its end before its children, with paged DescribeStream", function()
        local t = fake_stream(split_stream(), { page = 1 })
        local c = new_client(t)
        local next_change, feed = c:changes("t", { limit = 2 })
        -- a round: one page (2 records) of each ready shard
        assert.same({ "root/x/INSERT/11", "root/y/INSERT/12", "root/x/MODIFY/13", "child-a/x/MODIFY/21",
            "child-a/x/REMOVE/22", "child-b/y/MODIFY/31" }, collect(next_change))
        assert.same({ root = "13", ["child-a"] = "22", ["child-b"] = "31" }, feed.checkpoint)
        -- DescribeStream was paged
        local pages = 0
        for _, s in ipairs(t.seen) do
            if s.op == "DescribeStream" and s.body.ExclusiveStartShardId then pages = pages + 1 end
        end
        assert.is_true(pages >= 2)
    end)

    it("resumes from a checkpoint without losing or repeating; a new shard starts at its trim horizon", function()
        local c = new_client(fake_stream(split_stream()))
        local next_change, feed = c:changes("t", { limit = 1 })
        local first = { next_change(), next_change(), next_change(), next_change() }
        assert.equals("21", first[4].sequence)
        local saved = cjson.decode(cjson.encode(feed:checkpoint_copy()))
        assert.same({ root = "13", ["child-a"] = "21" }, saved)
        local c2 = new_client(fake_stream(split_stream()))
        assert.same({ "child-a/x/REMOVE/22", "child-b/y/MODIFY/31" }, collect(c2:changes("t", { checkpoint = saved })))
        -- from latest: open shards start at their end, a closed parent is skipped
        local c3 = new_client(fake_stream(split_stream()))
        assert.same({}, collect(c3:changes("t", { from = "latest" })))
    end)

    it("gets an expired iterator again after the last sequence number returned", function()
        local t = fake_stream(split_stream(), { expire_once = "root" })
        local c = new_client(t)
        local got = collect(c:changes("t", { limit = 1 }))
        -- the root first; the two children's rounds interleave
        assert.same({ "root/x/INSERT/11", "root/y/INSERT/12", "root/x/MODIFY/13" }, { got[1], got[2], got[3] })
        table.sort(got)
        assert.same({ "child-a/x/MODIFY/21", "child-a/x/REMOVE/22", "child-b/y/MODIFY/31", "root/x/INSERT/11",
            "root/x/MODIFY/13", "root/y/INSERT/12" }, got)
        local again
        for i, s in ipairs(t.seen) do
            if s.op == "GetRecords" and i > 1 and t.seen[i - 1].op == "GetShardIterator"
                and t.seen[i - 1].body.ShardIteratorType == "AFTER_SEQUENCE_NUMBER" then
                again = t.seen[i - 1].body
            end
        end
        assert.same({ StreamArn = "arn:stream", ShardId = "root", ShardIteratorType = "AFTER_SEQUENCE_NUMBER",
            SequenceNumber = "11" }, again)
    end)

    it("raises TrimmedDataAccessException as it is (changes were lost)", function()
        local t = fake_stream(split_stream())
        local c = new_client(stub({
            DescribeTable = function(_, r) return t.request(t, r) end,
            DescribeStream = function(_, r) return t.request(t, r) end,
            GetShardIterator = function() return err_reply("TrimmedDataAccessException", "trimmed") end,
        }))
        local next_change = c:changes("t", { checkpoint = { root = "5" } })
        local ok, err = pcall(next_change)
        assert.is_false(ok)
        assert.is_true(errors.is(err, "TrimmedDataAccessException"))
    end)
end)

describe("create_table with replicas (global tables: AWS only, stubbed here)", function()
    -- the table's life as AWS would report it: each replica CREATING for two DescribeTables
    local function aws_like()
        local replicas, pending_region, polls = {}, nil, 0
        local function desc()
            local list = {}
            for _, r in ipairs(replicas) do list[#list + 1] = { RegionName = r.region, ReplicaStatus = r.status } end
            return { Table = { TableName = "auth", TableStatus = pending_region and "UPDATING" or "ACTIVE",
                KeySchema = { { AttributeName = "PK", KeyType = "HASH" }, { AttributeName = "SK", KeyType = "RANGE" } },
                AttributeDefinitions = {},
                GlobalSecondaryIndexes = {
                    { IndexName = "GSI1", IndexStatus = "ACTIVE", Projection = { ProjectionType = "ALL" },
                        KeySchema = { { AttributeName = "GSI1PK", KeyType = "HASH" }, { AttributeName = "GSI1SK", KeyType = "RANGE" } } },
                    { IndexName = "GSI2", IndexStatus = "ACTIVE", Projection = { ProjectionType = "ALL" },
                        KeySchema = { { AttributeName = "GSI2PK", KeyType = "HASH" }, { AttributeName = "GSI2SK", KeyType = "RANGE" } } },
                },
                StreamSpecification = { StreamEnabled = true, StreamViewType = "NEW_AND_OLD_IMAGES" },
                Replicas = #list > 0 and list or nil } }
        end
        return stub({
            CreateTable = function() return ok_reply({ TableDescription = {} }) end,
            DescribeTable = function()
                if pending_region then
                    polls = polls + 1
                    if polls >= 2 then
                        replicas[#replicas].status = "ACTIVE"
                        pending_region = nil
                    end
                end
                return ok_reply(desc())
            end,
            DescribeTimeToLive = function() return ok_reply({ TimeToLiveDescription = { TimeToLiveStatus = "DISABLED" } }) end,
            UpdateTimeToLive = function() return ok_reply({}) end,
            UpdateTable = function(b)
                assert(pending_region == nil, "a replica change while another is in progress")
                pending_region, polls = b.ReplicaUpdates[1].Create.RegionName, 0
                replicas[#replicas + 1] = { region = pending_region, status = "CREATING" }
                return ok_reply({})
            end,
        })
    end

    it("creates with a NEW_AND_OLD_IMAGES stream, then adds one replica at a time, waiting for each", function()
        local t = aws_like()
        local c = new_client(t, { region = "us-east-1" })
        local logged = {}
        local desc = aws.schema.create_table(c, { tableName = "auth", replicas = { "eu-west-1", "ap-southeast-2" },
            sleep = function() end, log = function(m) logged[#logged + 1] = m end })
        local ops = {}
        for _, s in ipairs(t.seen) do ops[#ops + 1] = s.op end
        assert.same({ "CreateTable", "DescribeTable", "DescribeTimeToLive", "UpdateTimeToLive",
            "UpdateTable", "DescribeTable", "DescribeTable",
            "UpdateTable", "DescribeTable", "DescribeTable" }, ops)
        assert.same({ StreamEnabled = true, StreamViewType = "NEW_AND_OLD_IMAGES" }, t.seen[1].body.StreamSpecification)
        assert.same({ TableName = "auth", ReplicaUpdates = { { Create = { RegionName = "eu-west-1" } } } }, t.seen[5].body)
        assert.same({ TableName = "auth", ReplicaUpdates = { { Create = { RegionName = "ap-southeast-2" } } } },
            t.seen[8].body)
        assert.equals(2, #desc.Replicas)
        assert.equals(2, #logged)
        -- again: every replica exists, so nothing more is asked
        local before = #t.seen
        aws.schema.create_table(c, { tableName = "auth", replicas = { "eu-west-1", "ap-southeast-2", "us-east-1" },
            sleep = function() end })
        for i = before + 1, #t.seen do assert.is_true(t.seen[i].op ~= "UpdateTable") end
    end)

    it("authhero-dynamo create-table --replicas sends the same requests, one replica at a time", function()
        local cli = require "authhero.aws.cli"
        local t = aws_like()
        local real_client, real_print, real_sleep = cli.client, _G.print, core.sleep
        local printed, errs = {}, {}
        cli.client = function(opts) return new_client(t, { region = opts.region }) end
        _G.print = function(s) printed[#printed + 1] = s end
        local real_stderr = io.stderr
        io.stderr = { write = function(_, ...) errs[#errs + 1] = table.concat({ ... }) end } -- luacheck: ignore 122
        core.sleep = function() end
        local ok, rc = pcall(cli.main, { "create-table", "--region", "us-east-1", "--table", "auth",
            "--replicas", "eu-west-1,ap-southeast-2" })
        cli.client, _G.print, io.stderr, core.sleep = real_client, real_print, real_stderr, real_sleep -- luacheck: ignore 122
        assert.is_true(ok, tostring(rc))
        assert.equals(0, rc, table.concat(errs))
        local updates, create = {}, nil
        for _, s in ipairs(t.seen) do
            if s.op == "UpdateTable" then updates[#updates + 1] = s.body.ReplicaUpdates[1].Create.RegionName end
            if s.op == "CreateTable" then create = s.body end
        end
        assert.same({ "eu-west-1", "ap-southeast-2" }, updates)
        assert.equals("NEW_AND_OLD_IMAGES", create.StreamSpecification.StreamViewType)
        assert.truthy(printed[1]:find("replicas in us-east-1,eu-west-1,ap-southeast-2", 1, true), printed[1])
    end)

    it("a replica that fails to create is an error naming it; bad Region names fail before any request", function()
        local t
        t = stub({
            CreateTable = function() return err_reply("ResourceInUseException") end,
            DescribeTable = function()
                local n = 0
                for _, s in ipairs(t.seen) do if s.op == "UpdateTable" then n = n + 1 end end
                local r = n > 0 and { { RegionName = "eu-west-1", ReplicaStatus = "CREATION_FAILED" } } or nil
                return ok_reply({ Table = { TableStatus = "ACTIVE", Replicas = r,
                    KeySchema = { { AttributeName = "PK", KeyType = "HASH" }, { AttributeName = "SK", KeyType = "RANGE" } },
                    GlobalSecondaryIndexes = {
                        { IndexName = "GSI1", Projection = { ProjectionType = "ALL" }, KeySchema = { { AttributeName = "GSI1PK",
                            KeyType = "HASH" }, { AttributeName = "GSI1SK", KeyType = "RANGE" } } },
                        { IndexName = "GSI2", Projection = { ProjectionType = "ALL" }, KeySchema = { { AttributeName = "GSI2PK",
                            KeyType = "HASH" }, { AttributeName = "GSI2SK", KeyType = "RANGE" } } } },
                    StreamSpecification = { StreamEnabled = true, StreamViewType = "NEW_AND_OLD_IMAGES" } } })
            end,
            DescribeTimeToLive = function()
                return ok_reply({ TimeToLiveDescription = { TimeToLiveStatus = "ENABLED", AttributeName = "ttl" } })
            end,
            UpdateTable = function() return ok_reply({}) end,
        })
        local c = new_client(t, { region = "us-east-1" })
        local ok, err = pcall(aws.schema.create_table, c, { tableName = "auth", replicas = { "eu-west-1" },
            sleep = function() end })
        assert.is_false(ok)
        assert.is_true(errors.is(err), tostring(err))
        assert.equals("ReplicaError", err.code)
        assert.truthy(err.message:find("eu-west-1: CREATION_FAILED", 1, true))
        local n = #t.seen
        for _, bad in ipairs({ { "EU WEST" }, { 5 }, "eu-west-1" }) do
            ok, err = pcall(aws.schema.create_table, c, { tableName = "auth", replicas = bad })
            assert.is_false(ok)
            assert.equals("ValidationError", err.code)
        end
        assert.equals(n, #t.seen)
    end)

    it("an existing table without a stream is named incompatible when replicas or streams are asked", function()
        local problems = aws.schema.incompatibilities({
            KeySchema = { { AttributeName = "PK", KeyType = "HASH" }, { AttributeName = "SK", KeyType = "RANGE" } },
            GlobalSecondaryIndexes = {},
        }, { streams = true })
        assert.truthy(table.concat(problems, "; "):find("no stream", 1, true))
        problems = aws.schema.incompatibilities({ StreamSpecification = { StreamEnabled = true,
            StreamViewType = "KEYS_ONLY" } }, { streams = true })
        assert.truthy(table.concat(problems, "; "):find("view type is KEYS_ONLY", 1, true))
    end)
end)
