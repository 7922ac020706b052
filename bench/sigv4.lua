-- SigV4 cost per call: a DynamoDB GetItem signature with the signing key cached and with a cache
-- miss on every call, and sha256_hex of a 1.2 KB body. Run: lua5.4 bench/sigv4.lua (from any
-- folder; under luajit it loads build/jit instead of build/5.4).
local script = arg and arg[0] or "bench/sigv4.lua"
local dir = script:match("^(.*)/[^/]*$") or "."
local flavour = rawget(_G, "jit") and "jit" or "5.4"
package.cpath = dir .. "/../build/" .. flavour .. "/?.so;" .. package.cpath
local core = require "authhero.aws.core"

local N = tonumber(os.getenv("BENCH_N")) or 200000

local function req(secret)
    return {
        method = "POST", path = "/", query = "",
        headers = {
            { "host", "dynamodb.us-east-1.amazonaws.com" },
            { "content-type", "application/x-amz-json-1.0" },
            { "x-amz-date", "20150830T123600Z" },
            { "x-amz-target", "DynamoDB_20120810.GetItem" },
        },
        body = '{"TableName":"authhero","Key":{"pk":{"S":"TENANT#acme"},"sk":{"S":"USER#auth0|64f1c'
            .. '2a9e"}},"ConsistentRead":true}',
        region = "us-east-1", service = "dynamodb",
        access_key_id = "AKIDEXAMPLE", secret_access_key = secret,
        amz_date = "20150830T123600Z",
    }
end

local function report(name, n, f)
    f(math.floor(n / 10)) -- warm up
    local t0 = os.clock()
    f(n)
    local us = (os.clock() - t0) / n * 1e6
    print(string.format("%s: %.2f us/op", name, us))
end

local sign = core.sigv4_sign

local warm = req("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
report("sigv4 sign (cached key)", N, function(n)
    for _ = 1, n do sign(warm) end
end)

-- 16 secrets in turn: more than the cache holds, so every call derives its key
local rotating = {}
for i = 1, 16 do rotating[i] = req("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" .. i) end
report("sigv4 sign (key cache miss)", N, function(n)
    for i = 1, n do sign(rotating[i % 16 + 1]) end
end)

local body = string.rep('{"S":"0123456789abcdef"},', 48):sub(1, 1200)
local sha256_hex = core.sha256_hex
report("sha256_hex (1.2 KB)", N, function(n)
    for _ = 1, n do sha256_hex(body) end
end)
