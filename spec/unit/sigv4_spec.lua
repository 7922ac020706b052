-- AWS Signature Version 4 (csrc/sigv4.c) against spec/fixtures/sigv4: AWS's suite (legacy/ and v4/,
-- header signing; the presigned query-* files are not used) and our dynamodb/ cases. Canonical
-- request, string to sign and Authorization are separate `it`s, so a failure names the stage.
local core = require "authhero.aws.core"
local cjson = require "cjson"

local FIXTURES = "spec/fixtures/sigv4/"

-- legacy/ has no context file; these are the suite's constants (fixtures README).
local LEGACY = {
    access_key_id = "AKIDEXAMPLE",
    secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    region = "us-east-1",
    service = "service",
    amz_date = "20150830T123600Z",
    signing_key = "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75",
}

local function read(path)
    local f = assert(io.open(FIXTURES .. path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end

local function tohex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function split(s, sep)
    local out, i = {}, 1
    while true do
        local j = s:find(sep, i, true)
        if not j then
            out[#out + 1] = s:sub(i)
            return out
        end
        out[#out + 1] = s:sub(i, j - 1)
        i = j + #sep
    end
end

-- A raw request: method is the first word, HTTP/1.1 the last, the target (which may hold spaces or
-- raw UTF-8) in between; folded header lines join with one space; the body follows a blank line.
local function parse_request(text)
    local head, body = text, ""
    local blank = text:find("\n\n", 1, true)
    if blank then
        head, body = text:sub(1, blank - 1), text:sub(blank + 2)
    end
    local lines = split(head, "\n")
    if lines[#lines] == "" then lines[#lines] = nil end
    local method, target = lines[1]:match("^(%S+) (.*) HTTP/1%.1$")
    assert(method, "bad request line: " .. lines[1])
    local path, query = target, ""
    local q = target:find("?", 1, true)
    if q then
        path, query = target:sub(1, q - 1), target:sub(q + 1)
    end
    local headers = {}
    for i = 2, #lines do
        local line = lines[i]
        if line:match("^[ \t]") then
            local last = headers[#headers]
            last[2] = last[2] .. " " .. line:match("^[ \t]*(.-)$")
        else
            local name, value = line:match("^([^:]+):(.*)$")
            assert(name, "bad header line: " .. line)
            headers[#headers + 1] = { name, value }
        end
    end
    return { method = method, path = path, query = query, headers = headers, body = body }
end

-- "name:value" lines of a signed request's header block, names lowercased, values trimmed.
local function header_lines(text)
    local head = text
    local blank = text:find("\n\n", 1, true)
    if blank then head = text:sub(1, blank - 1) end
    local out = {}
    local lines = split(head, "\n")
    for i = 2, #lines do
        local name, value = lines[i]:match("^([^:]+):(.*)$")
        if name then
            out[#out + 1] = name:lower() .. ":" .. value:match("^%s*(.-)%s*$")
        end
    end
    return out
end

-- lines of `after` not in `before`, as a sorted list (a multiset difference)
local function added_lines(before, after)
    local count = {}
    for _, l in ipairs(before) do count[l] = (count[l] or 0) + 1 end
    local out = {}
    for _, l in ipairs(after) do
        if (count[l] or 0) > 0 then
            count[l] = count[l] - 1
        else
            out[#out + 1] = l
        end
    end
    table.sort(out)
    return out
end

local function load_cases()
    local cases = {}
    local rows = split(read("cases.tsv"), "\n")
    for i = 2, #rows do
        if rows[i] ~= "" then
            local f = split(rows[i], "\t")
            cases[#cases + 1] = {
                suite = f[1], name = f[2], method = f[3], has_body = f[4] == "yes",
                token_mode = f[5], normalize = f[6]:sub(1, 3) == "yes", sign_body = f[7] == "yes",
            }
        end
    end
    return cases
end

-- Builds the sigv4_sign request for a case, plus what the test expects around it.
local function prepare(c)
    local dir = c.suite .. "/" .. c.name .. "/"
    local p = { case = c }
    if c.suite == "legacy" then
        local base = dir .. c.name
        p.raw = read(base .. ".req")
        p.req = parse_request(p.raw)
        p.req.access_key_id = LEGACY.access_key_id
        p.req.secret_access_key = LEGACY.secret_access_key
        p.req.region, p.req.service = LEGACY.region, LEGACY.service
        p.req.amz_date = LEGACY.amz_date
        p.creq, p.sts, p.authz = read(base .. ".creq"), read(base .. ".sts"), read(base .. ".authz")
        -- the token is the one in .creq; post-sts-header-after adds its token only after signing
        if c.token_mode == "signed" then
            p.token = read(base .. ".creq"):match("\nx%-amz%-security%-token:([^\n]*)")
        end
    else
        local ctx = cjson.decode(read(dir .. "context.json"))
        p.context = ctx
        p.raw = read(dir .. "request.txt")
        p.req = parse_request(p.raw)
        p.req.access_key_id = ctx.credentials.access_key_id
        p.req.secret_access_key = ctx.credentials.secret_access_key
        p.req.region, p.req.service = ctx.region, ctx.service
        p.req.amz_date = ctx.timestamp:gsub("[-:]", "")
        p.token = ctx.credentials.token
        -- request.txt lacks the date: add it after the original headers
        p.req.headers[#p.req.headers + 1] = { "X-Amz-Date", p.req.amz_date }
        if c.sign_body then
            local hash = core.sha256_hex(p.req.body)
            p.req.headers[#p.req.headers + 1] = { "x-amz-content-sha256", hash }
        end
        p.creq = read(dir .. "header-canonical-request.txt")
        p.sts = read(dir .. "header-string-to-sign.txt")
        p.signature = read(dir .. "header-signature.txt")
        p.signed = read(dir .. "header-signed-request.txt")
    end
    if c.token_mode == "signed" then p.req.session_token = p.token end
    p.req.normalize_path = c.normalize
    return p
end

local function sign(p)
    local authz, creq, sts = core.sigv4_sign(p.req)
    return { authz = authz, creq = creq, sts = sts }
end

describe("sigv4 fixtures", function()
    it("match MANIFEST.sha256 byte for byte", function()
        local bad, n = {}, 0
        for _, line in ipairs(split(read("MANIFEST.sha256"), "\n")) do
            if line ~= "" then
                local sum, path = line:match("^(%x+)  %*?%./(.+)$")
                assert(sum, "bad manifest line: " .. line)
                n = n + 1
                if core.sha256_hex(read(path)) ~= sum then bad[#bad + 1] = path end
            end
        end
        assert.same({}, bad)
        assert.is_true(n > 500)
    end)
end)

local CASES = load_cases()

describe("sigv4 legacy constants", function()
    it("give the README's signing key", function()
        local key = core.sigv4_signing_key(LEGACY.secret_access_key, LEGACY.amz_date:sub(1, 8),
            LEGACY.region, LEGACY.service)
        assert.equals(LEGACY.signing_key, tohex(key))
    end)
end)

describe("sigv4 cases.tsv", function()
    it("lists every case folder of legacy/, v4/ and dynamodb/", function()
        local counts = {}
        for _, c in ipairs(CASES) do counts[c.suite] = (counts[c.suite] or 0) + 1 end
        assert.same({ legacy = 34, v4 = 38, dynamodb = 3 }, counts)
    end)
end)

for _, c in ipairs(CASES) do
    describe(c.suite .. "/" .. c.name, function()
        local p = prepare(c)

        if p.context then
            it("has flags in cases.tsv that agree with context.json", function()
                assert.equals(c.normalize, p.context.normalize)
                assert.equals(c.sign_body, p.context.sign_body == true)
                assert.equals(c.token_mode == "after-signing", p.context.omit_session_token == true)
                assert.equals(c.token_mode ~= "none", p.token ~= nil)
            end)
        end

        it("canonical request", function()
            assert.equals(p.creq, sign(p).creq)
        end)

        it("string to sign", function()
            assert.equals(p.sts, sign(p).sts)
        end)

        if p.authz then
            it("Authorization", function()
                assert.equals(p.authz, sign(p).authz)
            end)
        else
            it("signature", function()
                local sig = sign(p).authz:match(", Signature=(%x+)$")
                assert.equals(p.signature, sig)
            end)
        end

        -- The signed request must differ from the raw one by exactly the headers signing adds.
        -- Not for legacy/ (the README asks this of v4/ only): upstream's legacy
        -- get-vanilla-with-session-token.sreq carries get-vanilla's signature, not its .authz.
        if c.suite ~= "legacy" then
            it("signed request adds exactly the expected headers", function()
                local want = {
                    "authorization:" .. sign(p).authz,
                    "x-amz-date:" .. p.req.amz_date,
                }
                if c.sign_body then
                    want[#want + 1] = "x-amz-content-sha256:" .. core.sha256_hex(p.req.body)
                end
                if p.token then -- signed, or (after-signing) added afterwards
                    want[#want + 1] = "x-amz-security-token:" .. p.token
                end
                table.sort(want)
                assert.same(want, added_lines(header_lines(p.raw), header_lines(p.signed)))
            end)
        end

        if c.suite == "dynamodb" then
            local dir = c.suite .. "/" .. c.name .. "/"
            it("payload hash", function()
                assert.equals(read(dir .. "payload-sha256.txt"), core.sha256_hex(p.req.body))
                assert.equals(c.has_body, #p.req.body > 0)
            end)

            it("signing key", function()
                local key = core.sigv4_signing_key(p.req.secret_access_key,
                    p.req.amz_date:sub(1, 8), p.req.region, p.req.service)
                assert.equals(read(dir .. "signing-key.hex"), tohex(key))
            end)
        end
    end)
end

describe("core.sha256_hex / core.hmac_sha256", function()
    it("hash known vectors (FIPS 180-2)", function()
        assert.equals("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            core.sha256_hex(""))
        assert.equals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            core.sha256_hex("abc"))
        assert.equals("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
            core.sha256_hex(string.rep("a", 1000000)))
    end)

    it("MAC known vectors (RFC 4231 cases 1, 2 and 6)", function()
        local mac = core.hmac_sha256(string.rep("\11", 20), "Hi There")
        assert.equals(32, #mac)
        assert.equals("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            tohex(mac))
        assert.equals("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            tohex(core.hmac_sha256("Jefe", "what do ya want for nothing?")))
        -- a key longer than the block is hashed first
        assert.equals("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            tohex(core.hmac_sha256(string.rep("\170", 131),
                "Test Using Larger Than Block-Size Key - Hash Key First")))
    end)

    it("derive the signing key as the documented HMAC chain", function()
        local s = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        local k = core.hmac_sha256("AWS4" .. s, "20150830")
        k = core.hmac_sha256(k, "us-east-1")
        k = core.hmac_sha256(k, "service")
        k = core.hmac_sha256(k, "aws4_request")
        assert.equals(k, core.sigv4_signing_key(s, "20150830", "us-east-1", "service"))
        -- and with a secret long enough that "AWS4" .. secret exceeds one block
        local long = string.rep("x", 100)
        k = core.hmac_sha256(core.hmac_sha256(core.hmac_sha256(core.hmac_sha256("AWS4" .. long,
            "20240229"), "eu-west-1"), "dynamodb"), "aws4_request")
        assert.equals(k, core.sigv4_signing_key(long, "20240229", "eu-west-1", "dynamodb"))
    end)

    it("reject non-string input", function()
        assert.has_error(function() core.sha256_hex({}) end)
        assert.has_error(function() core.hmac_sha256("k") end)
        assert.has_error(function() core.sigv4_signing_key("s", "2015083", "r", "s") end)
    end)
end)

local function base_req(over)
    local r = {
        method = "POST", path = "/", query = "",
        headers = {
            { "Host", "dynamodb.us-east-1.amazonaws.com" },
            { "Content-Type", "application/x-amz-json-1.0" },
            { "X-Amz-Date", "20150830T123600Z" },
            { "X-Amz-Target", "DynamoDB_20120810.GetItem" },
        },
        body = '{"TableName":"authhero","Key":{"pk":{"S":"TENANT#t1"},"sk":{"S":"USER#u1"}}}',
        region = "us-east-1", service = "dynamodb",
        access_key_id = "AKIDEXAMPLE",
        secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        amz_date = "20150830T123600Z",
    }
    for k, v in pairs(over or {}) do r[k] = v end
    return r
end

-- The signature the request must carry, computed without sigv4_sign's key cache.
local function expected_signature(req, sts)
    local key = core.sigv4_signing_key(req.secret_access_key, req.amz_date:sub(1, 8), req.region,
        req.service)
    return tohex(core.hmac_sha256(key, sts))
end

describe("core.sigv4_sign key cache", function()
    local function check(req)
        local authz, _, sts = core.sigv4_sign(req)
        assert.equals(expected_signature(req, sts), authz:match("Signature=(%x+)$"))
        return authz
    end

    it("reuses a key only when secret, date, region and service all match", function()
        local base = base_req()
        local first = check(base)
        assert.equals(first, check(base_req()))
        local variants = { -- same lengths first, then longer and shorter
            { secret_access_key = base.secret_access_key:sub(1, -2) .. "Z" },
            { amz_date = "20150831T123600Z" },
            { region = "us-east-2" },
            { service = "dynamodc" },
            { secret_access_key = base.secret_access_key .. "x" },
            { secret_access_key = base.secret_access_key:sub(1, -2) },
            { service = "dynamodbx" },
            -- the same bytes split differently across region and service
            { region = "us-east-1d", service = "ynamodb" },
        }
        for _, over in ipairs(variants) do
            local authz = check(base_req(over))
            assert.not_equals(first:match("Signature=(%x+)$"), authz:match("Signature=(%x+)$"))
            -- and the original key is still right afterwards
            assert.equals(first, check(base))
        end
    end)

    it("gives the same key back for the same inputs", function()
        local a = core.sigv4_signing_key("secret", "20240229", "eu-west-1", "dynamodb")
        assert.equals(a, core.sigv4_signing_key("secret", "20240229", "eu-west-1", "dynamodb"))
        assert.equals(32, #a)
        assert.not_equals(a, core.sigv4_signing_key("secreT", "20240229", "eu-west-1", "dynamodb"))
        assert.not_equals(a, core.sigv4_signing_key("secret", "20240301", "eu-west-1", "dynamodb"))
        assert.not_equals(a, core.sigv4_signing_key("secret", "20240229", "eu-west-2", "dynamodb"))
        assert.not_equals(a, core.sigv4_signing_key("secret", "20240229", "eu-west-1", "sts"))
    end)

    it("stays right when more keys rotate than it holds, and for oversized inputs", function()
        for round = 1, 3 do
            for i = 1, 9 do
                check(base_req({ secret_access_key = "secret-" .. i, region = "r" .. round }))
            end
        end
        check(base_req({ secret_access_key = string.rep("s", 300) }))
        check(base_req({ region = string.rep("r", 100), service = string.rep("v", 100) }))
        check(base_req({ secret_access_key = string.rep("s", 300) }))
    end)
end)

describe("core.sigv4_sign canonicalization", function()
    local function creq_of(over)
        local _, creq = core.sigv4_sign(base_req(over))
        return split(creq, "\n")
    end

    it("normalizes the path, then encodes each segment once", function()
        assert.equals("/a/c/", creq_of({ path = "/a/./b/../c//" })[2])
        assert.equals("/", creq_of({ path = "/../.." })[2])
        assert.equals("/%2541/a%20b", creq_of({ path = "/%41/a b" })[2])
        assert.equals("//a/./b/../%2541",
            creq_of({ path = "//a/./b/../%41", normalize_path = false })[2])
    end)

    it("re-encodes query pairs and sorts them by key, then value", function()
        -- values sort as bytes: "10" before "2"; '+' is a literal plus, not a space
        assert.equals("a=&b=10&b=2&c=%2B%20", creq_of({ query = "c=+%20&b=2&&a&b=10&" })[3])
        assert.equals("k=%E1%88%B4&k=%E1%88%B4&x=%25zz",
            creq_of({ query = "k=%e1%88%b4&k=\225\136\180&x=%zz" })[3])
        assert.equals("a=b%3Dc", creq_of({ query = "a=b=c" })[3])
    end)

    it("signs repeated and oddly spaced headers, and numeric values", function()
        local req = base_req({
            headers = {
                { "Host", "h" }, { "X-B", "  one  two\tthree " }, { "x-b", "" },
                { "X-A", 42 }, { "X-B", "last" },
            },
        })
        local authz, creq = core.sigv4_sign(req)
        assert.equals("host:h\nx-a:42\nx-b:one two three,,last\n\nhost;x-a;x-b",
            creq:match("\n(host:.*x%-a;x%-b)\n"))
        assert.truthy(authz:find("SignedHeaders=host;x-a;x-b,", 1, true))
    end)

    it("signs the session token unless the caller already sends it", function()
        local _, creq = core.sigv4_sign(base_req({ session_token = "tok" }))
        assert.truthy(creq:find("\nx-amz-security-token:tok\n", 1, true))
        assert.truthy(creq:find("x-amz-date;x-amz-security-token;x-amz-target\n", 1, true))
        local req = base_req({ session_token = "tok" })
        table.insert(req.headers, 1, { "X-Amz-Security-Token", "tok" })
        local _, creq2 = core.sigv4_sign(req)
        assert.equals(creq, creq2)
    end)

    it("handles a long query string and many headers", function()
        local q, h = {}, { { "Host", "h" } }
        for i = 300, 1, -1 do
            q[#q + 1] = "p" .. i .. "=" .. (i % 7)
            h[#h + 1] = { "X-H" .. i, "v" .. i }
        end
        local _, creq = core.sigv4_sign(base_req({ query = table.concat(q, "&"), headers = h }))
        local line = split(creq, "\n")[3]
        local keys = {}
        for k in line:gmatch("([^&=]+)=") do keys[#keys + 1] = k end
        local sorted = {}
        for i, k in ipairs(keys) do sorted[i] = k end
        table.sort(sorted)
        assert.equals(300, #keys)
        assert.same(sorted, keys)
    end)
end)

describe("core.sigv4_sign argument errors", function()
    local function err_of(over)
        local ok, err = pcall(core.sigv4_sign, base_req(over))
        assert.is_false(ok)
        assert.equals("string", type(err))
        return err
    end

    it("name the missing or bad field", function()
        local unset = {}
        for _, f in ipairs({ "method", "path", "region", "service", "access_key_id",
            "secret_access_key", "amz_date", "headers" }) do
            local req = base_req()
            req[f] = nil
            local ok, err = pcall(core.sigv4_sign, req)
            assert.is_false(ok)
            if not tostring(err):find("'" .. f .. "'", 1, true) then unset[#unset + 1] = f end
        end
        assert.same({}, unset)
        assert.equals("sigv4_sign: field 'region' must be a string", err_of({ region = 5 }))
        assert.truthy(err_of({ query = {} }):find("'query'", 1, true))
        assert.truthy(err_of({ session_token = 1 }):find("'session_token'", 1, true))
        assert.truthy(err_of({ normalize_path = "no" }):find("'normalize_path'", 1, true))
        assert.truthy(err_of({ path = "a/b" }):find("'path'", 1, true))
        assert.truthy(err_of({ headers = { { "Host" } } }):find("headers[1]", 1, true))
        assert.truthy(err_of({ headers = { "Host: x" } }):find("headers[1]", 1, true))
        assert.truthy(err_of({ headers = { { "Bad Name", "x" } } }):find("headers[1]", 1, true))
        assert.truthy(err_of({ headers = { { "X", "a\r\nY: b" } } }):find("CR or LF", 1, true))
        assert.has_error(function() core.sigv4_sign("req") end)
    end)

    it("check the shape of amz_date", function()
        for _, d in ipairs({ "20150830T123600", "20150830 123600Z", "2015083OT123600Z",
            "20150830T12360aZ", "20150830T123600z", "" }) do
            assert.truthy(err_of({ amz_date = d }):find("'amz_date'", 1, true))
        end
    end)

    it("never quote the secret or the token", function()
        local secret, token = "SECRET-must-not-leak", "TOKEN-must-not-leak"
        for _, over in ipairs({
            { amz_date = "bad", secret_access_key = secret },
            { session_token = token .. "\n", secret_access_key = secret },
            { region = "", secret_access_key = secret },
        }) do
            local err = err_of(over)
            assert.falsy(err:find(secret, 1, true))
            assert.falsy(err:find(token, 1, true))
        end
    end)
end)
