-- The command line's safety rails without DynamoDB: URLs' user:password@ never reach a message
-- (nor the client's Host header), Ctrl-C's error is told from others and is never swallowed by
-- the writer's own error handling, and the writer stops before a request once asked to.
local cli = require "authhero.aws.cli"
local args = require "authhero.aws.cli.args"
local writer = require "authhero.aws.cli.writer"
local aws = require "authhero.aws"

describe("authhero-dynamo hardening (unit)", function()
    it("redacts the userinfo of URLs, and only that", function()
        assert.equals("http://***@127.0.0.1:8000/x?q=a@b", cli.redact_url("http://u:p@127.0.0.1:8000/x?q=a@b"))
        assert.equals("https://***@h", cli.redact_url("https://u:p@ss@h"))
        assert.equals("http://h:1/a@b", cli.redact_url("http://h:1/a@b"))
        assert.equals("AWS", cli.redact_url("AWS"))
        assert.equals("cannot reach http://***@h:1: POST http://h:1/: refused; mail a@b.c",
            cli.redact("cannot reach http://user:pw@h:1: POST http://h:1/: refused; mail a@b.c"))
        assert.equals('got "ftp://***@x" and "http://***@y/"', cli.redact('got "ftp://a:b@x" and "http://c@y/"'))
        assert.is_true(cli.is_loopback("http://user:pw@127.0.0.1:8000"))
        assert.is_true(cli.is_loopback("http://user:pw@localhost"))
        assert.is_false(cli.is_loopback("http://127.0.0.1@evil.example"))
        assert.equals("http://***@127.0.0.1:1", cli.safe_endpoint({ endpoint = "http://a:b@127.0.0.1:1" }))
    end)

    it("the client drops an endpoint's user:password@ and never quotes it", function()
        local c = aws.client.new({ endpoint = "http://admin:s3cret@127.0.0.1:8000/", region = "us-east-1",
            credentials = { accessKeyId = "a", secretAccessKey = "b" } })
        assert.equals("http://127.0.0.1:8000/", c.endpoint)
        local ok, err = pcall(aws.client.new, { endpoint = "ftp://admin:s3cret@db.example", region = "us-east-1" })
        assert.is_false(ok)
        assert.equals("ValidationError", err.code)
        assert.falsy(err.message:find("s3cret", 1, true), err.message)
        assert.truthy(err.message:find('"ftp://***@db.example"', 1, true), err.message)
    end)

    it("tells Ctrl-C's error from others", function()
        assert.is_true(args.is_interrupt("interrupted!"))
        assert.is_true(args.is_interrupt("writer.lua:12: interrupted!"))
        assert.is_false(args.is_interrupt("interrupted! or not"))
        assert.is_false(args.is_interrupt({ message = "interrupted!" }))
        assert.equals(cli.is_interrupt, args.is_interrupt)
    end)

    local function item(i)
        return { PK = "TENANT#t", SK = "X#" .. i, entityType = "X", n = i }
    end

    it("the writer passes Ctrl-C on instead of failing the batch, and stops before a request when asked", function()
        local calls = 0
        local client = { batch_write = function()
            calls = calls + 1
            error("client.lua:1: interrupted!", 0)
        end }
        local failed = {}
        local w = writer.new(client, "t", { check = false, on_fail = function(line) failed[#failed + 1] = line end })
        w:add(1, { item(1) })
        local ok, err = pcall(w.flush, w)
        assert.is_false(ok)
        assert.is_true(args.is_interrupt(err))
        assert.same({}, failed) -- not reported as a failed record
        -- stop: nothing is sent at all
        local stop = false
        local sent = 0
        client = { batch_write = function() sent = sent + 1 return {} end }
        w = writer.new(client, "t", { check = false, stop = function() return stop end })
        w:add(1, { item(1) })
        w:flush()
        assert.equals(1, sent)
        assert.equals(1, w.stats.records)
        stop = true
        w:add(2, { item(2) })
        ok, err = pcall(w.flush, w)
        assert.is_false(ok)
        assert.equals(writer.INTERRUPTED, err)
        assert.equals(1, sent)
        assert.equals(1, w.stats.records)
    end)
end)
