-- examples/changes-feed.sh against this spec's DynamoDB Local: `authhero-dynamo changes` prints the
-- import as entity-level events, then, from its checkpoint file, exactly the later changes, then
-- nothing; it exits 0 and leaves no table behind.
local ddb = require "support.ddb_local"

describe("examples/changes-feed.sh", function()
    it("prints the import, then only what changed after the checkpoint, then nothing", function()
        local endpoint = ddb.endpoint()
        local rc, out = ddb.run("cd " .. ddb.shell_quote(ddb.root) .. " && DYNAMODB_ENDPOINT="
            .. ddb.shell_quote(endpoint) .. " examples/changes-feed.sh 2>&1")
        assert.equals(0, rc, out)
        local first = out:match("%-%-%- changes %-%-checkpoint %(the import[^\n]*\n(.-)\nrenamed user")
        assert.truthy(first, out)
        local lines = tonumber(first:match("%.%.%. (%d+) lines; checkpoint: {\"shardId%-[^\"]+\":\"%d+\"}"))
        assert.equals(57, lines, out) -- 56 records inserted, one user linked to its primary
        assert.truthy(first:find('{"entity":"tenants","event":"INSERT","id":"acme"', 1, true), out)
        local second = out:match("only what changed since\n(.-)\n%-%-%- and again: 0 lines")
        assert.truthy(second, out)
        local seen = {}
        for l in second:gmatch("[^\n]+") do
            local entity, event = l:match('^{"entity":"(%w+)","event":"(%u+)"')
            assert.truthy(entity, l)
            seen[#seen + 1] = entity .. " " .. event
        end
        table.sort(seen)
        assert.same({ "rolePermissions REMOVE", "roles REMOVE", "userRoles REMOVE", "users MODIFY" }, seen)
        -- the example deletes its table
        local client = require("authhero.aws").client.new({ region = "us-east-1", endpoint = endpoint,
            credentials = { accessKeyId = "local", secretAccessKey = "local" } })
        for _, name in ipairs(client:call("ListTables", {}).TableNames or {}) do
            assert.is_nil(name:match("^authhero_changes_%d+_%d+$") and out:find(name, 1, true), name)
        end
    end)
end)
