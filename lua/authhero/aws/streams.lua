-- client:changes(table_name [, opts]): the change events of a table's DynamoDB stream, over all of
-- its shards (README "Change streams"). The Streams operations themselves (DescribeStream,
-- GetShardIterator, GetRecords) go through client:call like any other.
--
-- Shards are read parents first: a child shard (after a split) is read only once its parent is
-- closed and read to its end, so the changes of one key come in the order they were made. Each
-- round reads one GetRecords page from every shard that is ready; events come out in the order
-- read. The checkpoint is { [shard id] = sequence number of the last event returned } (strings, a
-- plain JSON-able table): it covers exactly the events the iterator has returned, so saving it
-- after handling an event and passing it back as opts.checkpoint resumes with the next one.
local errors = require "authhero.aws.errors"

local _M = {}

local FROM = { trim_horizon = "TRIM_HORIZON", latest = "LATEST" }
local OPTIONS = { from = true, follow = true, poll = true, sleep = true, limit = true, checkpoint = true,
    describe_every = true }

local function validate(table_name, opts)
    if type(table_name) ~= "string" or table_name == "" then
        errors.validation("changes: table name expected, got %s", tostring(table_name))
    end
    if opts == nil then return {} end
    if type(opts) ~= "table" then errors.validation("changes: options must be a table, got %s", type(opts)) end
    for k in pairs(opts) do
        if not OPTIONS[k] then errors.validation("changes: unknown option %s", tostring(k)) end
    end
    if opts.from ~= nil and not FROM[opts.from] then
        errors.validation("changes: from must be \"trim_horizon\" or \"latest\", got %s", tostring(opts.from))
    end
    if opts.follow ~= nil and type(opts.follow) ~= "boolean" then errors.validation("changes: follow must be a boolean") end
    if opts.poll ~= nil and not (type(opts.poll) == "number" and opts.poll >= 0 and opts.poll < math.huge) then
        errors.validation("changes: poll must be a number of seconds, got %s", tostring(opts.poll))
    end
    if opts.sleep ~= nil and type(opts.sleep) ~= "function" then errors.validation("changes: sleep must be a function") end
    local limit = opts.limit
    if limit ~= nil and not (type(limit) == "number" and limit == math.floor(limit) and limit >= 1 and limit <= 1000) then
        errors.validation("changes: limit must be an integer from 1 to 1000, got %s", tostring(limit))
    end
    if opts.describe_every ~= nil and not (type(opts.describe_every) == "number" and opts.describe_every >= 0) then
        errors.validation("changes: describe_every must be a number of seconds")
    end
    if opts.checkpoint ~= nil then
        if type(opts.checkpoint) ~= "table" then errors.validation("changes: checkpoint must be a table") end
        for k, v in pairs(opts.checkpoint) do
            if type(k) ~= "string" or type(v) ~= "string" or not v:match("^%d+$") then
                errors.validation("changes: checkpoint must map shard ids to sequence numbers (strings of digits)")
            end
        end
    end
    return opts
end

-- changes(client, table_name [, opts]) -> iterator, feed. Every call of the iterator returns the next
-- event { event = "INSERT"|"MODIFY"|"REMOVE", keys, new, old, sequence, shard, time } (new/old:
-- the items, nil when absent; time: ApproximateCreationDateTime, epoch seconds), or nil at the end
-- (never, with follow). feed.checkpoint is the live checkpoint, feed:checkpoint_copy() a copy,
-- feed.stream_arn the stream. Options: from ("trim_horizon", the default, or "latest": where shards
-- open at the start and absent from the checkpoint begin; shards found later, and with a non-empty
-- checkpoint every shard not in it, begin at their trim horizon), checkpoint, follow (keep polling;
-- default false: stop after a round in which no shard returned a record and no new shard appeared),
-- poll (seconds between empty rounds with follow, default 1), sleep (function(seconds); default the
-- client's), limit (records per GetRecords, 1-1000), describe_every (seconds between DescribeStream
-- calls while following, default 10). Bad options are a ValidationError before any request; a
-- table without a stream raises a ValidationError; TrimmedDataAccessException (a checkpoint older
-- than the stream's 24 hours) is raised as it is: changes were lost and only the caller can decide.
function _M.changes(client, table_name, opts)
    opts = validate(table_name, opts)
    local limit, follow = opts.limit, opts.follow == true
    local poll = opts.poll or 1
    local sleep = opts.sleep or client._sleep
    local now = client._now
    local describe_every = opts.describe_every or 10
    local feed = { checkpoint = {}, stream_arn = nil }
    for k, v in pairs(opts.checkpoint or {}) do feed.checkpoint[k] = v end
    function feed.checkpoint_copy(self)
        local c = {}
        for k, v in pairs(self.checkpoint) do c[k] = v end
        return c
    end
    local resuming = next(feed.checkpoint) ~= nil
    local start_type = FROM[opts.from or "trim_horizon"]
    local shards, order = {}, {} -- id -> state; states in the order DescribeStream listed them
    local described_at, first = nil, true
    local queue, qi, finished = {}, 1, false

    -- DescribeStream, every page; -> the number of shards not seen before
    local function describe()
        if not feed.stream_arn then
            local t = client:call("DescribeTable", { TableName = table_name }).Table
            local ss = t.StreamSpecification
            if not (t.LatestStreamArn and ss and ss.StreamEnabled) then
                errors.raise(400, "ValidationError", "table " .. table_name .. " has no stream (create it with"
                    .. " streams = true, or enable StreamSpecification NEW_AND_OLD_IMAGES)")
            end
            feed.stream_arn = t.LatestStreamArn
        end
        local added, after = 0, nil
        repeat
            local d = client:call("DescribeStream", { StreamArn = feed.stream_arn, ExclusiveStartShardId = after })
                .StreamDescription or {}
            for _, s in ipairs(d.Shards or {}) do
                local id = s.ShardId
                if not shards[id] then
                    local closed = s.SequenceNumberRange and s.SequenceNumberRange.EndingSequenceNumber ~= nil
                    local st = { id = id, parent = s.ParentShardId, last = feed.checkpoint[id] }
                    if first and not resuming then
                        st.start = start_type
                        -- reading from "now" on: a shard already closed has nothing after now
                        if start_type == "LATEST" and closed then st.done = true end
                    else
                        st.start = "TRIM_HORIZON"
                    end
                    shards[id] = st
                    order[#order + 1] = st
                    added = added + 1
                end
            end
            after = d.LastEvaluatedShardId
        until after == nil
        first = false
        described_at = now()
        return added
    end

    local function ready(s)
        if s.done then return false end
        local p = s.parent and shards[s.parent]
        return p == nil or p.done
    end

    local function get_iterator(s)
        local p = { StreamArn = feed.stream_arn, ShardId = s.id }
        if s.last then
            p.ShardIteratorType, p.SequenceNumber = "AFTER_SEQUENCE_NUMBER", s.last
        else
            p.ShardIteratorType = s.start
        end
        s.iter = client:call("GetShardIterator", p).ShardIterator
        if s.iter == nil then s.done = true end
    end

    -- One GetRecords page of shard s into the queue; -> records read. An expired iterator is
    -- fetched again after the last sequence number returned (the queue is empty when we read).
    local function read(s)
        local ok, r = pcall(client.call, client, "GetRecords", { ShardIterator = s.iter, Limit = limit })
        if not ok then
            if not errors.is(r, "ExpiredIteratorException") then error(r, 0) end
            get_iterator(s)
            if s.done then return 0 end
            r = client:call("GetRecords", { ShardIterator = s.iter, Limit = limit })
        end
        s.iter = r.NextShardIterator
        if s.iter == nil then s.done = true end -- closed, and read to its end
        local n = 0
        for _, rec in ipairs(r.Records or {}) do
            local d = rec.dynamodb or {}
            n = n + 1
            queue[#queue + 1] = { event = rec.eventName, keys = d.Keys, new = d.NewImage, old = d.OldImage,
                sequence = d.SequenceNumber, shard = s.id, time = d.ApproximateCreationDateTime }
        end
        return n
    end

    local function round()
        local got, closed = 0, false
        for _, s in ipairs(order) do
            if ready(s) then
                if not s.iter then get_iterator(s) end
                if s.iter then got = got + read(s) end
                if s.done then closed = true end
            end
        end
        return got, closed
    end

    local function next_event()
        while true do
            local ev = queue[qi]
            if ev then
                queue[qi] = nil
                qi = qi + 1
                feed.checkpoint[ev.shard] = ev.sequence
                shards[ev.shard].last = ev.sequence
                return ev
            end
            if finished then return nil end
            queue, qi = {}, 1
            if described_at == nil then describe() end
            local got, closed = round()
            if got == 0 then
                local added = 0
                if closed or not follow or now() - described_at >= describe_every then added = describe() end
                if added == 0 and not closed then
                    if not follow then
                        finished = true
                    else
                        sleep(poll)
                    end
                end
            end
        end
    end
    return next_event, feed
end

return _M
