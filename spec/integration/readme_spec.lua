-- Every ```lua block of README.md runs as written: each is extracted, saved as a file and run by
-- lua5.4 in a process of its own against DynamoDB Local, with the checkout's lua/ and build/5.4 on
-- its paths (as an installed rock would be) and nothing else changed. The snippets find DynamoDB
-- Local the way a reader's program would, through the environment: DYNAMODB_ENDPOINT (the
-- convention of examples/quickstart.lua), AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION, dummy
-- AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, and DYNAMODB_TABLE_NAME (a table of its own per
-- block). HOME is an empty folder, so no ~/.aws of the machine's gets in, and IMDS is off.
-- A block that is not a Lua program must not be fenced as lua (shell commands are ```sh).
local ddb = require "support.ddb_local"

local q = ddb.shell_quote
local ROOT = ddb.root

-- -> { { line = first line of code, code = text }, ... } for every ```lua fence, and the line
-- numbers of fences that name no language (a Lua program there would escape this spec)
local function lua_blocks(text)
    local blocks, bare, current, other, n = {}, {}, nil, false, 0
    for line in (text:gsub("\r\n", "\n") .. "\n"):gmatch("([^\n]*)\n") do
        n = n + 1
        if current then
            if line:match("^%s*```%s*$") then
                blocks[#blocks + 1] = current
                current = nil
            else
                current.code[#current.code + 1] = line
            end
        elseif other then
            if line:match("^%s*```%s*$") then other = false end
        elseif line:match("^%s*```%s*lua%s*$") then
            current = { line = n + 1, code = {} }
        elseif line:match("^%s*```") then
            other = true
            if line:match("^%s*```%s*$") then bare[#bare + 1] = n end
        end
    end
    assert(current == nil, "README.md: the ```lua block at line " .. tostring(current and current.line - 1)
        .. " is never closed")
    for _, b in ipairs(blocks) do b.code = table.concat(b.code, "\n") .. "\n" end
    return blocks, bare
end

local f = assert(io.open(ROOT .. "/README.md"))
local readme = f:read("*a")
f:close()
local blocks, bare = lua_blocks(readme)

describe("README.md's Lua snippets", function()
    local endpoint, tmp
    local stamp = os.time() .. "_" .. math.random(1000000)

    setup(function()
        endpoint = ddb.endpoint()
        local _, out = ddb.run("mktemp -d")
        tmp = out:match("[^\n]+")
        assert(ddb.run("mkdir -p " .. q(tmp .. "/home")) == 0)
    end)

    teardown(function()
        if tmp and tmp:match("^/tmp/") then ddb.run("rm -rf " .. q(tmp)) end
    end)

    it("has some (the extraction found the fences)", function()
        assert.is_true(#blocks >= 5, "found only " .. #blocks .. " ```lua blocks")
        for _, b in ipairs(blocks) do assert(b.code:match("%S"), "empty ```lua block at line " .. b.line) end
    end)

    it("names the language of every code block (```lua blocks run here; shell is ```sh)", function()
        assert(#bare == 0, "README.md: code blocks with no language at lines " .. table.concat(bare, ", "))
    end)

    for i, b in ipairs(blocks) do
        it(string.format("block %d (README.md line %d) runs as written", i, b.line), function()
            local file = string.format("%s/block%02d.lua", tmp, i)
            local out = assert(io.open(file, "w"))
            out:write(b.code)
            out:close()
            local env = table.concat({
                "env -i PATH=/usr/bin:/bin",
                "HOME=" .. q(tmp .. "/home"),
                "LUA_PATH=" .. q(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"),
                "LUA_CPATH=" .. q(ROOT .. "/build/5.4/?.so;;"),
                "DYNAMODB_ENDPOINT=" .. q(endpoint),
                "AWS_ENDPOINT_URL_DYNAMODB=" .. q(endpoint),
                "AWS_REGION=us-east-1",
                "AWS_ACCESS_KEY_ID=local",
                "AWS_SECRET_ACCESS_KEY=local",
                "AWS_EC2_METADATA_DISABLED=true",
                "DYNAMODB_TABLE_NAME=" .. q(string.format("readme_%02d_%s", i, stamp)),
            }, " ")
            local rc, output = ddb.run("cd " .. q(tmp) .. " && " .. env .. " timeout 120 lua5.4 " .. q(file)
                .. " 2>&1")
            assert(rc == 0, string.format("README.md line %d: the block exited %d:\n%s\n-- the block:\n%s", b.line,
                rc, output, b.code))
        end)
    end
end)
