-- Import throughput into DynamoDB Local: `authhero-dynamo import` against a baseline of one
-- client:call("PutItem") per item, sequentially, writing the same items in the same run; plus the
-- importer's own CPU per record (reader and writer processes, from its --json summary).
-- Run by scripts/bench-import (which starts DynamoDB Local), or with DYNAMODB_ENDPOINT set:
--   DYNAMODB_ENDPOINT=http://127.0.0.1:8000 lua5.4 bench/import.lua [records]
-- Environment: BENCH_RECORDS (default 20000), BENCH_PARALLEL (writer processes to compare with
-- the default, "1 2 8"), BENCH_ROUNDS (3; each round measures everything once, best round kept),
-- BENCH_GEN=1 (only write build/bench-import/records.jsonl and exit).
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("BENCH_CPATH") or "build/5.4/?.so") .. ";" .. package.cpath
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local records = require "authhero.aws.cli.records"
local export = require "authhero.aws.cli.export"

local M = {}

-- gen(n, tenant) -> lines: a tenant with connections, clients, roles and permissions,
-- organizations, then users with a current password, a session each and some memberships, until
-- n records. About 1.4 items per record.
function M.gen(n, tenant)
    tenant = tenant or "bench"
    local lines = {}
    local function add(entity, record)
        if #lines < n then
            lines[#lines + 1] = export.encode({ entity = entity, tenant_id = tenant, record = record })
        end
    end
    local ts = "2024-05-01T10:00:00.000Z"
    add("tenants", { id = tenant, friendly_name = "Bench " .. tenant, created_at = ts, updated_at = ts })
    add("connections", { id = "con-up", name = "Username-Password-Authentication",
        strategy = "Username-Password-Authentication", created_at = ts, updated_at = ts })
    add("connections", { id = "con-google", name = "google-oauth2", strategy = "google-oauth2", created_at = ts,
        updated_at = ts })
    for i = 1, 3 do
        add("clients", { client_id = tenant .. "-client-" .. i, name = "App " .. i, client_secret = "s" .. i,
            callbacks = { "https://app" .. i .. ".example/cb" }, created_at = ts, updated_at = ts })
    end
    for r = 1, 5 do
        add("roles", { id = "role-" .. r, name = "role " .. r, created_at = ts, updated_at = ts })
        for p = 1, 4 do
            add("rolePermissions", { role_id = "role-" .. r, resource_server_identifier = "https://api.example",
                permission_name = "perm:" .. p, created_at = ts })
        end
    end
    for o = 1, 10 do
        add("organizations", { id = "org-" .. o, name = "org" .. o, created_at = ts, updated_at = ts })
    end
    local i = 0
    while #lines < n do
        i = i + 1
        local uid = string.format("auth2|u%07d", i)
        add("users", { user_id = uid, email = string.format("user%07d@bench.example", i), email_verified = i % 3 ~= 0,
            name = "User " .. i, connection = "Username-Password-Authentication", provider = "auth2",
            login_count = i % 17, app_metadata = { plan = i % 2 == 0 and "pro" or "free" }, created_at = ts,
            updated_at = ts })
        add("passwords", { id = "pw-" .. i, user_id = uid,
            password = "$2b$10$abcdefghijklmnopqrstuuN9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p", algorithm = "bcrypt",
            is_current = true, created_at = ts, updated_at = ts })
        add("sessions", { id = "ses-" .. i, user_id = uid, login_session_id = "ls-" .. i, clients = { tenant .. "-client-1" },
            device = { last_ip = "203.0.113." .. (i % 250), last_user_agent = "Mozilla/5.0" },
            expires_at = "2099-01-01T00:00:00.000Z", created_at = ts, updated_at = ts })
        if i % 4 == 0 then
            add("userOrganizations", { id = "uo-" .. i, user_id = uid, organization_id = "org-" .. (i % 10 + 1),
                created_at = ts, updated_at = ts })
        end
    end
    return lines
end

function M.write(path, lines)
    local f = assert(io.open(path, "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
end

local function sh_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- import(path, table, extra args) -> wall seconds, summary (decoded --json output)
function M.import(endpoint, path, tbl, extra)
    local cmd = string.format("lua5.4 bin/authhero-dynamo import %s --endpoint %s --table %s --json --quiet %s",
        sh_quote(path), sh_quote(endpoint), sh_quote(tbl), extra or "")
    local t0 = core.now()
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    local dt = core.now() - t0
    local ok, s = pcall(core.json_decode, out:match("[^\n]*\n?$") or "")
    if not ok or type(s) ~= "table" then error("import gave no summary: " .. out) end
    return dt, s
end

local function main()
    local n = tonumber(arg[1] or os.getenv("BENCH_RECORDS") or "") or 20000
    local rounds = tonumber(os.getenv("BENCH_ROUNDS") or "") or 3
    os.execute("mkdir -p build/bench-import")
    local path = "build/bench-import/records.jsonl"
    local lines = M.gen(n, "bench")
    M.write(path, lines)
    if os.getenv("BENCH_GEN") then return end
    local endpoint = assert(os.getenv("DYNAMODB_ENDPOINT"), "set DYNAMODB_ENDPOINT")

    local client = aws.client.new({ region = "us-east-1", endpoint = endpoint,
        credentials = { accessKeyId = "local", secretAccessKey = "local" } })
    local stamp = os.time() .. "_" .. math.random(1e6)
    local tables = 0
    local function new_table()
        tables = tables + 1
        local name = "bench_import_" .. stamp .. "_" .. tables
        aws.schema.create_table(client, { tableName = name })
        return name
    end
    -- every measurement gets a fresh table, dropped afterwards, so DynamoDB Local's in-memory
    -- database does not grow from one measurement to the next
    local function drop(name) client:call("DeleteTable", { TableName = name }) end

    -- the items every record becomes (what both sides write)
    local b = records.builder({ table = "x", now_ms = math.floor(core.now() * 1000) })
    local ledger = records.ledger()
    local all_items, nitems = {}, 0
    for i, l in ipairs(lines) do
        local p = records.parse(l)
        local items = b:items(p.entity, p.tenant_id, p.record)
        assert(ledger:claim(items, i) == nil)
        all_items[i] = items
        nitems = nitems + #items
    end
    print(string.format("import bench: %d records (%d items, one tenant) into DynamoDB Local at %s; best of %d",
        n, nitems, endpoint, rounds))

    local function baseline()
        local tbl = new_table()
        local t0, c0 = core.now(), os.clock()
        for _, items in ipairs(all_items) do
            for _, it in ipairs(items) do client:call("PutItem", { TableName = tbl, Item = it }) end
        end
        local dt, cpu = core.now() - t0, os.clock() - c0
        drop(tbl)
        return dt, cpu
    end
    local function import(extra, fresh)
        local tbl = new_table()
        if not fresh then M.import(endpoint, path, tbl, extra) end -- a re-import: the tenant exists
        local dt, s = M.import(endpoint, path, tbl, extra)
        assert(s.written == n and s.failed == 0 and s.skipped == 0, "import wrote " .. tostring(s.written) .. " of " .. n)
        drop(tbl)
        return dt, s.cpu_us_per_record
    end

    -- DynamoDB Local (C1-compiled) is much slower for its first tens of thousands of items
    io.stdout:write("  warming DynamoDB Local up ...")
    io.stdout:flush()
    local warm = new_table()
    for i = 1, math.min(3000, n) do
        for _, it in ipairs(all_items[i]) do client:call("PutItem", { TableName = warm, Item = it }) end
    end
    drop(warm)
    import("", true)
    import("--parallel 2", true)
    print(" done")

    local configs = { { "import (defaults: --parallel 4)", "", true } }
    for p in (os.getenv("BENCH_PARALLEL") or "1 2 8"):gmatch("%d+") do
        configs[#configs + 1] = { "import --parallel " .. p, "--parallel " .. p, true }
    end
    configs[#configs + 1] = { "re-import (tenant exists: guard reads)", "", false }
    local best_base, base_cpu = math.huge, 0
    local best = {}
    -- rounds interleave baseline and imports, so drift of the server hits all alike
    for _ = 1, rounds do
        local dt, cpu = baseline()
        if dt < best_base then best_base, base_cpu = dt, cpu end
        for i, c in ipairs(configs) do
            local idt, icpu = import(c[2], c[3])
            if not best[i] or idt < best[i][1] then best[i] = { idt, icpu } end
        end
    end
    local base_rate = n / best_base
    print(string.format("  %-52s %6.0f records/s %6.0f items/s  client CPU   %5.1f us/record",
        "baseline: one PutItem per item, sequential", base_rate, nitems / best_base, base_cpu / n * 1e6))
    for i, c in ipairs(configs) do
        local rate = n / best[i][1]
        print(string.format("  %-52s %6.0f records/s %6.0f items/s  importer CPU %5.1f us/record  %4.2fx",
            c[1], rate, nitems / best[i][1], best[i][2], rate / base_rate))
    end
    local ratio = (n / best[1][1]) / base_rate
    print(string.format("  import with defaults: %.2fx the PutItem baseline (target >= 2.5x): %s", ratio,
        ratio >= 2.5 and "met" or "NOT met"))
end

-- run as a script; `require "bench.import"` or dofile gets M without running the bench
if (...) ~= "bench.import" and arg and type(arg[0]) == "string" and arg[0]:match("bench/import%.lua$") then main() end
return M
