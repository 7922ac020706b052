-- The client against AWS's own DynamoDB Local: every operation, error mapping, pagination, batch
-- helpers past 25/100 items, table setup and stats.
local aws = require "authhero.aws"
local ddb = require "support.ddb_local"
local errors = aws.errors
local core = require "authhero.aws.core"

local TABLE = "client_spec_" .. tostring(os.time()) .. "_" .. math.random(1000000)

local function new_client(extra)
    local config = {
        region = "us-east-1",
        endpoint = ddb.endpoint(),
        credentials = { accessKeyId = "fakeMyKeyId", secretAccessKey = "fakeSecretAccessKey" },
    }
    for k, v in pairs(extra or {}) do config[k] = v end
    return aws.client.new(config)
end

local function raises(code, f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok, "expected " .. code)
    assert.is_true(errors.is(err), "not an error object: " .. tostring(err))
    assert.equals(code, err.code, tostring(err))
    return err
end

describe("client against DynamoDB Local", function()
    local client

    setup(function()
        client = new_client()
        aws.schema.create_table(client, { tableName = TABLE })
    end)

    teardown(function()
        pcall(client.call, client, "DeleteTable", { TableName = TABLE })
        client:close()
    end)

    describe("schema.create_table", function()
        it("creates exactly the documented table, indexes and TTL", function()
            local t = client:call("DescribeTable", { TableName = TABLE }).Table
            assert.equals("ACTIVE", t.TableStatus)
            assert.same({}, aws.schema.incompatibilities(t))
            local byname = {}
            for _, g in ipairs(t.GlobalSecondaryIndexes) do byname[g.IndexName] = g end
            assert.equals("ALL", byname.GSI1.Projection.ProjectionType)
            assert.equals("GSI2PK", byname.GSI2.KeySchema[1].AttributeName)
            assert.equals("PAY_PER_REQUEST", t.BillingModeSummary and t.BillingModeSummary.BillingMode or "PAY_PER_REQUEST")
            local ttl = client:call("DescribeTimeToLive", { TableName = TABLE }).TimeToLiveDescription
            assert.equals("ttl", ttl.AttributeName)
            assert.equals("ENABLED", ttl.TimeToLiveStatus)
        end)

        it("accepts an existing compatible table", function()
            assert.has_no.errors(function() aws.schema.create_table(client, { tableName = TABLE }) end)
        end)

        it("refuses an incompatible table with a clear error", function()
            local other = TABLE .. "_bad"
            client:call("CreateTable", {
                TableName = other,
                AttributeDefinitions = { { AttributeName = "id", AttributeType = "S" } },
                KeySchema = { { AttributeName = "id", KeyType = "HASH" } },
                BillingMode = "PAY_PER_REQUEST",
            })
            local err = raises("ValidationError", aws.schema.create_table, client, { tableName = other })
            assert.equals(400, err.status)
            assert.matches("not compatible", err.message)
            assert.matches("GSI1 is missing", err.message)
            client:call("DeleteTable", { TableName = other })
        end)

        it("lists the table", function()
            local names = client:call("ListTables", {}).TableNames
            local found = false
            for _, n in ipairs(names) do found = found or n == TABLE end
            assert.is_true(found)
        end)
    end)

    describe("items", function()
        it("PutItem / GetItem round-trip every type", function()
            local item = {
                PK = "TENANT#a", SK = "USER#1", s = "zoë 名前 🚀", n = 42, neg = -7, f = 0.1, big = 1e20,
                t = true, no = false, z = aws.null, m = { x = { y = 1 } }, l = { 1, "two", { three = 3 } },
                el = aws.array({}), em = {}, ss = aws.set({ "a", "b" }), ns = aws.set({ 1, 2.5 }),
                b = aws.binary("\0\1\2\255"), bs = aws.set({ aws.binary("x"), aws.binary("y") }),
            }
            client:call("PutItem", { TableName = TABLE, Item = item })
            local got = client:call("GetItem", { TableName = TABLE, Key = { PK = "TENANT#a", SK = "USER#1" },
                ConsistentRead = true }).Item
            assert.equals(item.s, got.s)
            assert.equals(42, got.n)
            assert.equals(-7, got.neg)
            assert.equals(0.1, got.f)
            assert.equals(1e20, got.big)
            assert.is_true(got.t)
            assert.is_false(got.no)
            assert.equals(aws.null, got.z)
            assert.equals(1, got.m.x.y)
            assert.equals("two", got.l[2])
            assert.equals(3, got.l[3].three)
            assert.is_true(core.is_array(got.el))
            assert.same({}, got.em)
            assert.is_true(core.is_set(got.ss))
            table.sort(got.ss)
            assert.same({ "a", "b" }, { got.ss[1], got.ss[2] })
            assert.is_true(core.is_set(got.ns))
            assert.equals("\0\1\2\255", got.b.data)
            assert.equals(2, #got.bs)
        end)

        it("GetItem of a missing item has no Item", function()
            local r = client:call("GetItem", { TableName = TABLE, Key = { PK = "nope", SK = "nope" } })
            assert.is_nil(r.Item)
        end)

        it("UpdateItem returns the new attributes; DeleteItem the old ones", function()
            client:call("PutItem", { TableName = TABLE, Item = { PK = "u", SK = "1", count = 1 } })
            local r = client:call("UpdateItem", {
                TableName = TABLE, Key = { PK = "u", SK = "1" },
                UpdateExpression = "SET #c = #c + :one, #n = :name",
                ExpressionAttributeNames = { ["#c"] = "count", ["#n"] = "name" },
                ExpressionAttributeValues = { [":one"] = 1, [":name"] = "x" },
                ReturnValues = "ALL_NEW",
            })
            assert.equals(2, r.Attributes.count)
            assert.equals("x", r.Attributes.name)
            local d = client:call("DeleteItem", { TableName = TABLE, Key = { PK = "u", SK = "1" }, ReturnValues = "ALL_OLD" })
            assert.equals(2, d.Attributes.count)
        end)

        it("maps a failed condition to ConditionalCheckFailedException, not retried", function()
            client:call("PutItem", { TableName = TABLE, Item = { PK = "c", SK = "1" } })
            local before = client.stats.requests
            local err = raises("ConditionalCheckFailedException", client.call, client, "PutItem", {
                TableName = TABLE, Item = { PK = "c", SK = "1" }, ConditionExpression = "attribute_not_exists(PK)",
            })
            assert.equals(400, err.status)
            assert.is_false(err.retryable)
            assert.is_string(err.message)
            assert.is_string(err.request_id)
            assert.equals(before + 1, client.stats.requests)
            assert.matches("^ConditionalCheckFailedException %(400%): ", tostring(err))
        end)

        it("maps validation errors and missing tables", function()
            local err = raises("ValidationException", client.call, client, "GetItem", {
                TableName = TABLE, Key = { PK = "only-half" },
            })
            assert.equals(400, err.status)
            assert.is_false(err.retryable)
            err = raises("ResourceNotFoundException", client.call, client, "GetItem", {
                TableName = "no_such_table_here", Key = { PK = "a", SK = "b" },
            })
            assert.equals(400, err.status)
        end)

        it("refuses bad input before any request is sent", function()
            local before = client.stats.requests
            local err = raises("MarshalError", client.call, client, "PutItem", {
                TableName = TABLE, Item = { PK = "x", SK = "y", bad = "\255" },
            })
            assert.equals(400, err.status)
            assert.equals("Item.bad", err.path)
            assert.equals(before, client.stats.requests)
            assert.has_error(function() client:call("getItem", {}) end)
            assert.has_error(function() client:call("GetItem", "x") end)
        end)
    end)

    describe("queries and pagination", function()
        setup(function()
            local reqs = {}
            for i = 1, 60 do
                reqs[i] = { PutRequest = { Item = { PK = "TENANT#q", SK = string.format("USER#%03d", i), i = i,
                    GSI1PK = "EMAIL#" .. (i % 3), GSI1SK = "USER" } } }
            end
            assert.same({}, client:batch_write(TABLE, reqs))
        end)

        it("Query pages follow LastEvaluatedKey", function()
            local seen, pages = {}, 0
            for page in client:paginate("Query", {
                TableName = TABLE, KeyConditionExpression = "PK = :pk",
                ExpressionAttributeValues = { [":pk"] = "TENANT#q" }, Limit = 7,
            }) do
                pages = pages + 1
                for _, it in ipairs(page.Items) do
                    assert.is_nil(seen[it.i])
                    seen[it.i] = true
                end
            end
            local n = 0
            for _ in pairs(seen) do n = n + 1 end
            assert.equals(60, n)
            assert.is_true(pages >= 9)
        end)

        it("queries an index and begins_with", function()
            local r = client:call("Query", {
                TableName = TABLE, IndexName = "GSI1",
                KeyConditionExpression = "GSI1PK = :e", ExpressionAttributeValues = { [":e"] = "EMAIL#1" },
            })
            assert.equals(20, r.Count)
            r = client:call("Query", {
                TableName = TABLE, KeyConditionExpression = "PK = :pk AND begins_with(SK, :p)",
                ExpressionAttributeValues = { [":pk"] = "TENANT#q", [":p"] = "USER#00" },
            })
            assert.equals(9, r.Count)
        end)

        it("Scan works (the adapters never use it)", function()
            local r = client:call("Scan", { TableName = TABLE, Limit = 5 })
            assert.equals(5, r.Count)
            assert.is_table(r.LastEvaluatedKey)
        end)
    end)

    describe("batch helpers", function()
        it("batch_write chunks past 25 and batch_get past 100", function()
            local reqs, keys = {}, {}
            for i = 1, 130 do
                reqs[i] = { PutRequest = { Item = { PK = "TENANT#b", SK = "K#" .. i, v = i } } }
                keys[i] = { PK = "TENANT#b", SK = "K#" .. i }
            end
            local before = client.stats.requests
            assert.same({}, client:batch_write(TABLE, reqs))
            assert.is_true(client.stats.requests - before >= 6)
            local items, left = client:batch_get(TABLE, keys)
            assert.equals(130, #items)
            assert.same({}, left)
            local sum = 0
            for _, it in ipairs(items) do sum = sum + it.v end
            assert.equals(130 * 131 / 2, sum)
            local dels = {}
            for i = 1, 130 do dels[i] = { DeleteRequest = { Key = keys[i] } } end
            assert.same({}, client:batch_write(TABLE, dels))
            items = client:batch_get(TABLE, keys)
            assert.equals(0, #items)
        end)

        it("a failing batch raises with every unwritten request attached", function()
            local reqs = {}
            for i = 1, 30 do reqs[i] = { PutRequest = { Item = { PK = "TENANT#f", SK = "K#" .. i } } } end
            reqs[27] = { PutRequest = { Item = { PK = "TENANT#f" } } } -- no SK: the second chunk fails
            local err = raises("ValidationException", client.batch_write, client, TABLE, reqs)
            assert.equals(5, #err.unprocessed)
        end)
    end)

    describe("transactions", function()
        it("TransactWriteItems writes all or nothing", function()
            client:call("TransactWriteItems", { TransactItems = {
                { Put = { TableName = TABLE, Item = { PK = "T#1", SK = "A", v = 1 } } },
                { Put = { TableName = TABLE, Item = { PK = "T#1", SK = "B", v = 2 } } },
            } })
            local err = raises("TransactionCanceledException", client.call, client, "TransactWriteItems", {
                TransactItems = {
                    { Put = { TableName = TABLE, Item = { PK = "T#1", SK = "C", v = 3 } } },
                    { Put = { TableName = TABLE, Item = { PK = "T#1", SK = "A", v = 9 },
                        ConditionExpression = "attribute_not_exists(PK)", ReturnValuesOnConditionCheckFailure = "ALL_OLD" } },
                },
            })
            assert.is_false(err.retryable)
            assert.equals(400, err.status)
            local reasons = err.cause.CancellationReasons
            assert.equals("None", reasons[1].Code)
            assert.equals("ConditionalCheckFailed", reasons[2].Code)
            assert.equals(1, reasons[2].Item.v)
            local r = client:call("GetItem", { TableName = TABLE, Key = { PK = "T#1", SK = "C" } })
            assert.is_nil(r.Item)
        end)

        it("TransactGetItems reads several items", function()
            local r = client:call("TransactGetItems", { TransactItems = {
                { Get = { TableName = TABLE, Key = { PK = "T#1", SK = "A" } } },
                { Get = { TableName = TABLE, Key = { PK = "T#1", SK = "B" } } },
                { Get = { TableName = TABLE, Key = { PK = "T#1", SK = "missing" } } },
            } })
            assert.equals(1, r.Responses[1].Item.v)
            assert.equals(2, r.Responses[2].Item.v)
            assert.is_nil(r.Responses[3].Item)
        end)
    end)

    describe("stats", function()
        it("counts requests and consumed capacity", function()
            local c = new_client()
            c:call("PutItem", { TableName = TABLE, Item = { PK = "S#1", SK = "x" }, ReturnConsumedCapacity = "TOTAL" })
            c:call("GetItem", { TableName = TABLE, Key = { PK = "S#1", SK = "x" }, ReturnConsumedCapacity = "TOTAL" })
            c:call("Query", { TableName = TABLE, KeyConditionExpression = "PK = :p",
                ExpressionAttributeValues = { [":p"] = "S#1" }, ReturnConsumedCapacity = "INDEXES" })
            assert.equals(3, c.stats.requests)
            assert.equals(0, c.stats.retries)
            assert.is_true(c.stats.write_capacity >= 1)
            assert.is_true(c.stats.read_capacity >= 0.5)
            c:close()
        end)

        it("asks for ConsumedCapacity on every data call when configured", function()
            local c = new_client({ return_consumed_capacity = "TOTAL" })
            local params = { TableName = TABLE, Key = { PK = "S#1", SK = "x" } }
            c:call("GetItem", params)
            assert.is_nil(params.ReturnConsumedCapacity) -- the caller's table is left alone
            c:call("PutItem", { TableName = TABLE, Item = { PK = "S#2", SK = "x" } })
            c:call("DescribeTable", { TableName = TABLE }) -- takes no ReturnConsumedCapacity
            assert.is_true(c.stats.read_capacity >= 0.5)
            assert.is_true(c.stats.write_capacity >= 1)
            c:close()
        end)
    end)

    describe("configuration", function()
        it("needs a region, and says where it looked", function()
            local old = { os.getenv("AWS_REGION"), os.getenv("AWS_DEFAULT_REGION") }
            if old[1] or old[2] then return end -- the environment sets one; nothing to check here
            local err = raises("ValidationError", aws.client.new, { endpoint = "http://127.0.0.1:1" })
            assert.matches("AWS_REGION", err.message)
        end)

        it("builds the AWS endpoint from the region", function()
            local c = aws.client.new({ region = "eu-west-1", credentials = { accessKeyId = "a", secretAccessKey = "b" } })
            assert.equals("https://dynamodb.eu-west-1.amazonaws.com/", c.endpoint)
            c:close()
        end)

        it("rejects a malformed endpoint", function()
            raises("ValidationError", aws.client.new, { region = "us-east-1", endpoint = "ftp://x" })
        end)
    end)
end)
