-- The rock as a user installs it: `luarocks make --tree T --lua-version 5.4 rockspec/...` offline (the
-- only server an empty folder, so any dependency luarocks would have to fetch fails the build), then
-- a script that has nothing but T on package.path/cpath requires authhero.aws and talks to DynamoDB
-- Local, and T's own `authhero-dynamo` runs (--help, create-table) from outside the checkout. The
-- same for LuaJIT (OpenResty's Lua): the 5.1 tree built against LuaJIT's headers, loaded by luajit.
-- luarocks builds in its source folder (.o files, a core.so): it gets a copy of the checkout.
local ddb = require "support.ddb_local"

local q = ddb.shell_quote
local ROOT = ddb.root
local ROCKSPEC = "rockspec/authhero-aws-0.1.0-1.rockspec"

local function sh(cmd)
    local rc, out = ddb.run(cmd .. " 2>&1")
    return rc, out
end

local function write(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
end

-- What the installed library must do with only its tree: sign and send requests through the C
-- core's libcurl transport (create a table, put and get an item with every kind of value the codec
-- types), and never load lua-cjson.
local SCRIPT = [[
local aws = require "authhero.aws"
local client = aws.client.new({
    endpoint = arg[1], region = "us-east-1",
    credentials = { accessKeyId = "dummy", secretAccessKey = "dummy" },
})
local tbl = arg[2]
aws.schema.create_table(client, { tableName = tbl })
client:call("PutItem", { TableName = tbl, Item = {
    PK = "TENANT#rock", SK = "USER#1", n = 42, f = 0.5, b = true, l = { 1, "two" },
    s = aws.set({ "x" }), z = aws.null,
} })
local item = client:call("GetItem", { TableName = tbl, Key = { PK = "TENANT#rock", SK = "USER#1" },
    ConsistentRead = true }).Item
assert(item.n == 42 and item.f == 0.5 and item.b == true and item.l[2] == "two", "item did not round-trip")
assert(item.z == aws.null and item.s[1] == "x", "null or set did not round-trip")
assert(package.loaded.cjson == nil, "lua-cjson was loaded")
print("ok " .. _VERSION .. " " .. package.cpath)
]]

describe("the installed rock", function()
    local endpoint, tmp, src, empty
    local stamp = os.time() .. "_" .. math.random(1000000)

    setup(function()
        endpoint = ddb.endpoint()
        local _, out = sh("mktemp -d")
        tmp = out:match("[^\n]+")
        src, empty = tmp .. "/src", tmp .. "/no-server"
        local rc, o = sh("mkdir -p " .. q(src) .. " " .. q(empty) .. " && cd " .. q(ROOT)
            .. " && cp -r rockspec csrc lua bin " .. q(src))
        assert(rc == 0, o)
        write(tmp .. "/script.lua", SCRIPT)
    end)

    teardown(function()
        if tmp and tmp:match("^/tmp/") then sh("rm -rf " .. q(tmp)) end
    end)

    -- luarocks make into tree, offline; returns luarocks' exit code and output
    local function install(tree, version, extra)
        return sh("cd " .. q(src) .. " && luarocks make --only-server=" .. q(empty) .. " --tree " .. q(tree)
            .. " --lua-version " .. version .. " " .. ROCKSPEC .. (extra or ""))
    end

    -- runs interp on script.lua with nothing but the tree's folders on its paths (no LUA_PATH,
    -- LUA_CPATH, HOME or checkout), from the temporary folder
    local function run_script(interp, tree, luaver, tbl)
        local setpath = string.format(
            "package.path=%q; package.cpath=%q",
            tree .. "/share/lua/" .. luaver .. "/?.lua;" .. tree .. "/share/lua/" .. luaver .. "/?/init.lua",
            tree .. "/lib/lua/" .. luaver .. "/?.so")
        return sh("cd " .. q(tmp) .. " && env -i PATH=/usr/bin:/bin " .. interp .. " -e " .. q(setpath)
            .. " script.lua " .. q(endpoint) .. " " .. q(tbl))
    end

    it("installs offline for Lua 5.4 and runs with its tree alone, CLI included", function()
        local tree = tmp .. "/tree54"
        local rc, out = install(tree, "5.4")
        assert(rc == 0, "luarocks make failed:\n" .. out)
        assert.matches("is now installed in", out)

        rc, out = run_script("lua5.4", tree, "5.4", "rock54_" .. stamp)
        assert(rc == 0, out)
        assert.equals("ok Lua 5.4 " .. tree .. "/lib/lua/5.4/?.so\n", out)

        -- the CLI luarocks installed, run from outside the checkout with a clean environment
        local bin = tree .. "/bin/authhero-dynamo"
        rc, out = sh("cd " .. q(tmp) .. " && env -i PATH=/usr/bin:/bin " .. q(bin) .. " --help")
        assert(rc == 0, out)
        assert.matches("create%-table", out)
        assert.matches("import", out)
        assert.not_matches("make", out)
        rc, out = sh("cd " .. q(tmp) .. " && env -i PATH=/usr/bin:/bin " .. q(bin) .. " create-table --endpoint "
            .. q(endpoint) .. " --table " .. q("rockcli_" .. stamp))
        assert(rc == 0, out)
        local client = require("authhero.aws").client.new({ endpoint = endpoint, region = "us-east-1",
            credentials = { accessKeyId = "dummy", secretAccessKey = "dummy" } })
        local t = client:call("DescribeTable", { TableName = "rockcli_" .. stamp }).Table
        assert.equals("ACTIVE", t.TableStatus)
    end)

    it("tells an installed user what is wrong without mentioning make when the C core is missing", function()
        local tree = tmp .. "/tree54"
        local so = tree .. "/lib/lua/5.4/authhero/aws/core.so"
        local rc, out = sh("mv " .. q(so) .. " " .. q(so .. ".off"))
        assert(rc == 0, out)
        rc, out = sh("cd " .. q(tmp) .. " && env -i PATH=/usr/bin:/bin " .. q(tree .. "/bin/authhero-dynamo")
            .. " --help")
        sh("mv " .. q(so .. ".off") .. " " .. q(so))
        assert.equals(1, rc)
        assert.matches("cannot load the library", out)
        assert.matches("reinstall it with luarocks", out)
        assert.not_matches("make", out)
    end)

    it("installs for LuaJIT (the 5.1 tree, built against LuaJIT's headers) and runs under luajit", function()
        local tree = tmp .. "/treejit"
        local rc, out = install(tree, "5.1", " LUA_INCDIR=/usr/include/luajit-2.1")
        assert(rc == 0, "luarocks make failed:\n" .. out)
        assert.matches("%-I/usr/include/luajit%-2%.1", out)
        rc, out = run_script("luajit", tree, "5.1", "rockjit_" .. stamp)
        assert(rc == 0, out)
        assert.matches("^ok Lua 5%.1 ", out)
    end)
end)
