-- `make demo`'s script against this spec's DynamoDB Local: it must exit 0 and tell the whole
-- story, and it must be able to run again on the same table (it clears its tenant first).
local ddb = require "support.ddb_local"

local function demo(tbl)
    return ddb.run("cd " .. ddb.shell_quote(ddb.root) .. " && DYNAMODB_ENDPOINT=" .. ddb.shell_quote(ddb.endpoint())
        .. " DYNAMODB_TABLE_NAME=" .. ddb.shell_quote(tbl) .. " scripts/demo 2>&1")
end

describe("scripts/demo", function()
    local tbl = "demo_" .. os.time() .. "_" .. math.random(1000000)

    it("tells the AuthHero story through the adapters, with the cost of each step, and exits 0", function()
        local rc, out = demo(tbl)
        assert.equals(0, rc, out)
        local story = {
            "DynamoDB at " .. ddb.endpoint() .. ", table " .. tbl,
            "table " .. tbl .. " is ready",
            "created tenant acme",
            "created client acme-web",
            "created connection Username-Password-Authentication",
            "signed up ada@acme.example as auth2|",
            "signing up ada@acme.example again -> Conflict (409): User already exists",
            "logged in by email: found auth2|",
            "opened session ses-",
            "issued login code otp-",
            "consumed it (again -> false)",
            "created role admin with 2 permissions: manage:users, read:reports",
            "created organization engineering and added ada@acme.example to it -> member of Engineering",
            "looked host Login.ACME.example. up -> tenant acme",
            'listed users with q = "email_verified:true -_exists_:linked_to" -> 2 of 2: grace@acme.example, '
                .. "margaret@acme.example",
            "total: ",
        }
        local pos = 1
        for _, line in ipairs(story) do
            local s, e = out:find(line, pos, true)
            assert.truthy(s, "missing (in order): " .. line .. "\n" .. out)
            pos = e + 1
        end
        -- every step reports its cost: requests and consumed capacity
        local steps = 0
        for _ in out:gmatch("%[%s*%d+ req%s+[%d.]+ RCU%s+[%d.]+ WCU%]") do steps = steps + 1 end
        assert.is_true(steps >= 14, out)
        assert.truthy(out:find("%[ 1 req%s+0%.0 RCU%s+[1-9][%d.]* WCU%] created tenant acme"), out)
    end)

    it("runs again on the same table (it removes the tenant the last run left)", function()
        local rc, out = demo(tbl)
        assert.equals(0, rc, out)
        assert.truthy(out:find("removed tenant acme left by an earlier run", 1, true), out)
        assert.truthy(out:find("created tenant acme", 1, true), out)
    end)
end)
