-- The credentials provider chain (lua/authhero/aws/credentials.lua): precedence, shared-file
-- parsing, the container endpoint and EC2 IMDSv2 against spec/support/credserver.py (a python3
-- server this spec starts on loopback), caching, refresh inside the 5-minute window, and that no
-- secret ever reaches an error. The environment is an injected table and files are temporary:
-- the real environment, ~/.aws and 169.254.169.254 are never touched.
local cjson = require "cjson"
local credentials = require "authhero.aws.credentials"
local errors = require "authhero.aws.errors"
local curl = require "authhero.aws.transport.curl"

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local CREDSERVER = here .. "../support/credserver.py"

local T0 = 1795694400 -- 2026-11-26T12:00:00Z

local function iso(t)
    return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

-- pcall that returns the error value, asserting there was one.
local function catch(f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an error")
    return err
end

local function credentials_error(f, ...)
    local err = catch(f, ...)
    assert.is_true(errors.is(err, "CredentialsError"), tostring(err))
    assert.equals(0, err.status)
    return err
end

local function contains(haystack, needle)
    assert.truthy(haystack:find(needle, 1, true), "expected '" .. needle .. "' in: " .. haystack)
end

local function write_file(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
end

local function file_exists(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
end

describe("credentials", function()
    local server, base, closed_base, tmp, home

    setup(function()
        server = {}
        tmp = assert(io.popen("mktemp -d"):read("*l"))
        home = tmp .. "/home" -- exists, without .aws, unless a spec writes one
        os.execute("mkdir -p " .. home)
        -- exec: python's parent is this process, so it exits by itself if we die without teardown
        local pipe = assert(io.popen("exec " .. (os.getenv("PYTHON") or "python3") .. " " .. CREDSERVER, "r"))
        server.pipe = pipe
        local line = pipe:read("*l")
        assert(line, "spec/support/credserver.py did not start (needs python3)")
        local pid, port, closed_port = line:match("^(%d+) (%d+) (%d+)$")
        assert(pid, "unexpected credserver.py banner: " .. line)
        server.pid = pid
        base = "http://127.0.0.1:" .. port
        closed_base = "http://127.0.0.1:" .. closed_port
    end)

    teardown(function()
        if server and server.pid then os.execute("kill " .. server.pid .. " 2>/dev/null") end
        if server and server.pipe then server.pipe:close() end
        if tmp and tmp:match("^/tmp/") then os.execute("rm -rf '" .. tmp .. "'") end
    end)

    local function call(method, path, doc)
        local t = curl.new({ connect_timeout_ms = 5000, timeout_ms = 10000 })
        local res = t:request({ method = method, url = base .. path, body = doc and cjson.encode(doc) })
        t:close()
        assert.equals(200, res.status)
        return cjson.decode(res.body)
    end

    local function control(doc)
        call("POST", "/_control", doc)
    end

    local function counts()
        return setmetatable(call("GET", "/_counts"), { __index = function() return 0 end })
    end

    -- A provider over an injected environment: HOME is an empty temp folder and IMDS is a closed
    -- loopback port unless the spec says otherwise; false in env removes a default.
    local function make(env, config)
        local e = { HOME = home, AWS_EC2_METADATA_SERVICE_ENDPOINT = closed_base }
        for k, v in pairs(env or {}) do e[k] = v end
        local cfg = {}
        for k, v in pairs(config or {}) do cfg[k] = v end
        cfg.env = function(name)
            local v = e[name]
            if v == false then return nil end
            return v
        end
        return credentials.new(cfg)
    end

    local function imds_env(extra)
        local e = { AWS_EC2_METADATA_SERVICE_ENDPOINT = base }
        for k, v in pairs(extra or {}) do e[k] = v end
        return e
    end

    local function container_env(extra)
        local e = {
            AWS_CONTAINER_CREDENTIALS_FULL_URI = base .. "/container/v1/creds",
            AWS_CONTAINER_AUTHORIZATION_TOKEN = "container-auth-token",
        }
        for k, v in pairs(extra or {}) do e[k] = v end
        return e
    end

    -- A transport_factory whose transports record requests and answer `reply`.
    local function fake_factory(log, reply)
        return function(opts)
            log.opts = opts
            return {
                request = function(_, req)
                    log[#log + 1] = req
                    return reply or {
                        status = 200,
                        headers = {},
                        body = cjson.encode({ AccessKeyId = "AKIDFAKE", SecretAccessKey = "fake-secret",
                            Token = "fake-token", Expiration = iso(T0 + 3600) }),
                    }
                end,
                close = function() log.closed = (log.closed or 0) + 1 end,
            }
        end
    end

    local function header(req, name)
        for _, h in ipairs(req.headers or {}) do
            if h[1]:lower() == name:lower() then return h[2] end
        end
    end

    local function new_file(name, text)
        local path = tmp .. "/" .. name
        write_file(path, text)
        return path
    end

    before_each(function()
        call("POST", "/_reset")
    end)

    describe("parse_timestamp", function()
        local parse = credentials.parse_timestamp

        it("converts ISO-8601 UTC to epoch seconds without local time", function()
            assert.equals(0, parse("1970-01-01T00:00:00Z"))
            assert.equals(-1, parse("1969-12-31T23:59:59Z"))
            assert.equals(951825600, parse("2000-02-29T12:00:00Z"))
            assert.equals(T0, parse("2026-11-26T12:00:00Z"))
            assert.equals(4102444800, parse("2100-01-01T00:00:00Z"))
            assert.equals(-11670912000, parse("1600-03-01T00:00:00Z"))
        end)

        it("accepts fractions and numeric offsets", function()
            assert.equals(T0, parse("2026-11-26T12:00:00.123456Z"))
            assert.equals(T0, parse("2026-11-26T13:30:00+01:30"))
            assert.equals(T0, parse("2026-11-26T07:00:00-0500"))
            assert.equals(T0, parse("2026-11-26t12:00:00z"))
        end)

        it("agrees with os.date('!...') on random instants", function()
            math.randomseed(42)
            for _ = 1, 3000 do
                local t = math.floor(math.random() * 4102444800)
                assert.equals(t, parse(iso(t)), iso(t))
            end
        end)

        it("returns nil for anything else", function()
            for _, s in ipairs({ "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
                "2026-11-26T24:00:00Z", "2026-11-26T12:60:00Z", "2026-11-26T12:00:00", "2026-11-26",
                "nope", "", "2026-11-26T12:00:00+25:00", "2026-11-26T12:00:00Zjunk" }) do
                assert.is_nil(parse(s), s)
            end
            assert.is_nil(parse(12345))
            assert.is_nil(parse(nil))
            assert.equals(951782400, parse("2000-02-29T00:00:00Z"))
        end)
    end)

    describe("config.credentials", function()
        local no_env = function() error("the environment was consulted") end

        it("wins, in camelCase or snake_case, never expires and is never looked up again", function()
            local clock = T0
            local p = credentials.new({
                credentials = { accessKeyId = "AKIDCONFIG", secretAccessKey = "s", sessionToken = "t" },
                env = no_env,
                now = function() return clock end,
            })
            local c = p:get()
            assert.equals("AKIDCONFIG", c.access_key_id)
            assert.equals("s", c.secret_access_key)
            assert.equals("t", c.session_token)
            assert.is_nil(c.expiration)
            assert.equals("config", c.source)
            clock = T0 + 10 * 365 * 86400
            assert.equals(c, p:get())
            p:invalidate()
            assert.equals("AKIDCONFIG", p:get().access_key_id)

            c = credentials.new({
                credentials = { access_key_id = "AKIDSNAKE", secret_access_key = "s2" },
                env = no_env,
            }):get()
            assert.equals("AKIDSNAKE", c.access_key_id)
            assert.equals("s2", c.secret_access_key)
            assert.is_nil(c.session_token)
        end)

        it("beats the environment and everything after it", function()
            local p = make(imds_env(container_env({ AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "e" })),
                { credentials = { accessKeyId = "AKIDCONFIG", secretAccessKey = "s" } })
            assert.equals("config", p:get().source)
            assert.equals(0, counts().container + counts().imds_token)
        end)

        it("raises CredentialsError when half-filled or empty, naming what is missing", function()
            local err = credentials_error(credentials.new, { credentials = { accessKeyId = "AKID" } })
            contains(err.message, "secretAccessKey")
            err = credentials_error(credentials.new, { credentials = { secret_access_key = "s" } })
            contains(err.message, "accessKeyId")
            err = credentials_error(credentials.new, { credentials = { sessionToken = "t" } })
            contains(err.message, "accessKeyId and secretAccessKey")
            credentials_error(credentials.new, { credentials = {} })
            credentials_error(credentials.new, { credentials = { accessKeyId = "AKID", secretAccessKey = "" } })
        end)

        it("treats wrong types as argument errors (plain strings)", function()
            for _, cfg in ipairs({
                { credentials = "AKID:secret" },
                { credentials = { accessKeyId = "AKID", secretAccessKey = 42 } },
                { profile = 1 },
                { env = {} },
                { now = 0 },
                { transport_factory = true },
                { metadata_timeout_ms = "2000" },
                { metadata_attempts = 0 },
            }) do
                assert.equals("string", type(catch(credentials.new, cfg)))
            end
            assert.equals("string", type(catch(credentials.new, "config")))
        end)

        it("prints as access key id and source only", function()
            local c = credentials.new({
                credentials = { accessKeyId = "AKIDPRINT", secretAccessKey = "hush-secret", sessionToken = "hush-token" },
            }):get()
            local text = tostring(c)
            contains(text, "AKIDPRINT")
            contains(text, "config")
            assert.is_nil(text:find("hush", 1, true))
        end)
    end)

    describe("environment", function()
        it("reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN; static", function()
            local p = make({ AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "e", AWS_SESSION_TOKEN = "et" })
            local c = p:get()
            assert.same({ "AKIDENV", "e", "et", "env" }, { c.access_key_id, c.secret_access_key, c.session_token, c.source })
            assert.is_nil(c.expiration)
            assert.equals(c, p:get())
            c = make({ AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "e", AWS_SESSION_TOKEN = "" }):get()
            assert.is_nil(c.session_token)
        end)

        it("beats shared files, container and IMDS", function()
            local path = new_file("env-beats", "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = f\n")
            local p = make(imds_env(container_env({
                AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "e", AWS_SHARED_CREDENTIALS_FILE = path,
            })))
            assert.equals("env", p:get().source)
            assert.equals(0, counts().container + counts().imds_token)
        end)

        it("raises on half-set keys; empty values count as unset", function()
            local p = make({ AWS_ACCESS_KEY_ID = "AKIDENV" })
            contains(credentials_error(p.get, p).message, "AWS_SECRET_ACCESS_KEY is not")
            p = make({ AWS_SECRET_ACCESS_KEY = "e" })
            contains(credentials_error(p.get, p).message, "AWS_ACCESS_KEY_ID is not")
            p = make({ AWS_ACCESS_KEY_ID = "", AWS_SECRET_ACCESS_KEY = "" })
            contains(credentials_error(p.get, p).message, "environment (AWS_ACCESS_KEY_ID not set)")
        end)
    end)

    describe("shared files", function()
        it("reads the default profile from ~/.aws/credentials", function()
            local h = tmp .. "/home-default"
            os.execute("mkdir -p " .. h .. "/.aws")
            write_file(h .. "/.aws/credentials", table.concat({
                "# a comment",
                "; another",
                "[other]",
                "aws_access_key_id = AKIDOTHER",
                "aws_secret_access_key = o",
                "",
                "[default]\r",
                "  aws_access_key_id   =   AKIDFILE  \r",
                "AWS_SECRET_ACCESS_KEY=f/with+base64=\r",
                "aws_session_token = ft",
                "s3 =",
                "    aws_access_key_id = AKIDNESTED",
                "",
            }, "\n"))
            local c = make({ HOME = h }):get()
            assert.same({ "AKIDFILE", "f/with+base64=", "ft", "shared-file" },
                { c.access_key_id, c.secret_access_key, c.session_token, c.source })
            assert.is_nil(c.expiration)
            -- config.home beats HOME
            c = make({ HOME = home }, { home = h }):get()
            assert.equals("AKIDFILE", c.access_key_id)
        end)

        it("reads [profile name] from the config file; credentials-file values win", function()
            local conf = new_file("config-merge", table.concat({
                "[default]",
                "region = eu-west-1",
                "[dev]", -- not a profile in the config file
                "aws_access_key_id = AKIDWRONG",
                "[profile dev]",
                "aws_access_key_id = AKIDCONFIGFILE",
                "aws_secret_access_key = from-config",
                "aws_session_token = token-from-config",
                "[sso-session corp]",
                "aws_access_key_id = AKIDSSO",
            }, "\n"))
            local creds = new_file("credentials-merge", "[dev]\naws_secret_access_key = from-credentials\n")
            local c = make({ AWS_CONFIG_FILE = conf, AWS_SHARED_CREDENTIALS_FILE = creds, AWS_PROFILE = "dev" }):get()
            assert.same({ "AKIDCONFIGFILE", "from-credentials", "token-from-config" },
                { c.access_key_id, c.secret_access_key, c.session_token })
            c = make({ AWS_CONFIG_FILE = conf }, { profile = "dev" }):get()
            assert.equals("from-config", c.secret_access_key)
            -- "~/" in the file variables is the home folder
            os.execute("mkdir -p " .. tmp .. "/home-tilde")
            write_file(tmp .. "/home-tilde/creds", "[default]\naws_access_key_id=AKIDTILDE\naws_secret_access_key=x\n")
            assert.equals("AKIDTILDE", make({ HOME = tmp .. "/home-tilde", AWS_SHARED_CREDENTIALS_FILE = "~/creds" }):get().access_key_id)
        end)

        it("an explicit config.profile that does not exist is a CredentialsError naming it", function()
            local path = new_file("no-such-profile", "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = f\n")
            local p = make(imds_env({ AWS_SHARED_CREDENTIALS_FILE = path }), { profile = "prod-eu" })
            local err = credentials_error(p.get, p)
            contains(err.message, "'prod-eu' not found")
            contains(err.message, path)
            assert.equals(0, counts().imds_token) -- never falls through to another identity
            -- so does AWS_PROFILE
            p = make({ AWS_SHARED_CREDENTIALS_FILE = path, AWS_PROFILE = "stage" })
            contains(credentials_error(p.get, p).message, "'stage' not found")
        end)

        it("config.profile skips environment keys; AWS_PROFILE does not", function()
            local path = new_file("profile-vs-env", "[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = d\n")
            local env = { AWS_SHARED_CREDENTIALS_FILE = path, AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "e" }
            assert.equals("AKIDDEV", make(env, { profile = "dev" }):get().access_key_id)
            env.AWS_PROFILE = "dev"
            assert.equals("AKIDENV", make(env):get().access_key_id)
        end)

        it("beats container and IMDS", function()
            local path = new_file("file-beats", "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = f\n")
            assert.equals("shared-file", make(imds_env(container_env({ AWS_SHARED_CREDENTIALS_FILE = path }))):get().source)
            assert.equals(0, counts().container + counts().imds_token)
        end)

        it("skips unsupported default profiles with a note, runs nothing; named ones raise", function()
            local marker = tmp .. "/process-ran"
            local path = new_file("unsupported", table.concat({
                "[default]",
                "credential_process = touch " .. marker,
                "[assume]",
                "role_arn = arn:aws:iam::123456789012:role/x",
                "source_profile = default",
                "aws_access_key_id = AKIDROLE",
                "aws_secret_access_key = r",
                "[sso]",
                "sso_start_url = https://example.awsapps.com/start",
                "[empty]",
                "region = us-east-1",
            }, "\n"))
            local p = make({ AWS_SHARED_CREDENTIALS_FILE = path })
            local err = credentials_error(p.get, p)
            contains(err.message, "no AWS credentials")
            contains(err.message, "profile default: uses credential_process, which this library does not support")
            assert.is_false(file_exists(marker))
            -- the same profile served by IMDS: skipped, and IMDS wins
            assert.equals("imds", make(imds_env({ AWS_SHARED_CREDENTIALS_FILE = path })):get().source)
            for name, what in pairs({ assume = "role_arn", sso = "sso_start_url", empty = "no aws_access_key_id" }) do
                p = make(imds_env({ AWS_SHARED_CREDENTIALS_FILE = path }), { profile = name })
                err = credentials_error(p.get, p)
                contains(err.message, "'" .. name .. "'")
                contains(err.message, what)
            end
            assert.is_false(file_exists(marker))
        end)

        it("raises on a profile with only one of the two keys", function()
            local path = new_file("half", "[default]\naws_access_key_id = AKIDHALF\n")
            local p = make({ AWS_SHARED_CREDENTIALS_FILE = path })
            contains(credentials_error(p.get, p).message, "has aws_access_key_id but no aws_secret_access_key")
        end)
    end)

    describe("container", function()
        it("fetches from FULL_URI with the Authorization token and parses Expiration", function()
            control({ container = { expiration = "2026-11-26T12:00:00Z" } })
            local p = make(imds_env(container_env()), { now = function() return T0 - 3600 end })
            local c = p:get()
            assert.same({ "AKIDCONTAINER", "container-secret", "container-session", T0, "container" },
                { c.access_key_id, c.secret_access_key, c.session_token, c.expiration, c.source })
            local n = counts()
            assert.equals(1, n.container)
            assert.equals(0, n.imds_token) -- container beats IMDS
            assert.equals(c, p:get()) -- cached
            assert.equals(1, counts().container)
        end)

        it("raises on a wrong token (401, not retried) and never falls through to IMDS", function()
            local p = make(imds_env(container_env({ AWS_CONTAINER_AUTHORIZATION_TOKEN = "wrong" })))
            local err = credentials_error(p.get, p)
            contains(err.message, "HTTP 401")
            contains(err.message, "container credentials from http://127.0.0.1")
            local n = counts()
            assert.equals(1, n.container_401)
            assert.equals(0, n.imds_token)
        end)

        it("re-reads AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE on each refresh; the file beats the variable", function()
            local file = new_file("token-file", "token-one\n")
            control({ container = { token = "token-one" } })
            local p = make(container_env({ AWS_CONTAINER_AUTHORIZATION_TOKEN = "env-token",
                AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = file }))
            assert.equals("container", p:get().source)
            control({ container = { token = "token-two", access_key_id = "AKIDROTATED" } })
            write_file(file, "  token-two  \n")
            p:invalidate()
            assert.equals("AKIDROTATED", p:get().access_key_id)
            assert.equals(2, counts().container)
            assert.equals(0, counts().container_401)
            -- a missing token file is an error naming the file
            p = make(container_env({ AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = tmp .. "/no-token" }))
            contains(credentials_error(p.get, p).message, tmp .. "/no-token: not found")
        end)

        it("retries a 500 once", function()
            control({ container = { fail = 1 } })
            assert.equals("container", make(container_env()):get().source)
            assert.equals(2, counts().container)
            call("POST", "/_reset")
            control({ container = { fail = 2 } })
            local p = make(container_env())
            contains(credentials_error(p.get, p).message, "HTTP 500")
            assert.equals(2, counts().container)
        end)

        it("refuses FULL_URI over http to a non-loopback host without sending anything", function()
            for _, uri in ipairs({
                "http://10.0.0.1/creds",
                "http://169.254.169.254/creds",
                "http://127.0.0.1.evil.example/creds",
                "http://localhost.evil.example/creds",
                "http://169.254.170.2@evil.example/creds",
                "http://[::2]/creds",
                "ftp://127.0.0.1/creds",
                "127.0.0.1/creds",
            }) do
                local log = {}
                local p = make(container_env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = uri }),
                    { transport_factory = fake_factory(log) })
                credentials_error(p.get, p)
                assert.equals(0, #log, uri)
            end
            local p = make(container_env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://10.0.0.1/creds" }))
            contains(credentials_error(p.get, p).message, "refusing container credentials over plain http from 10.0.0.1")
        end)

        it("allows http to loopback and the ECS/EKS addresses, and https anywhere", function()
            for _, uri in ipairs({
                "http://127.0.0.1:8080/creds", "http://127.1.2.3/creds", "http://localhost/creds",
                "http://LOCALHOST:99/creds", "http://[::1]:80/creds", "http://169.254.170.2/v1",
                "http://169.254.170.23/v1/credentials", "https://creds.example.com/x?y=1",
            }) do
                local log = {}
                local p = make(container_env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = uri }),
                    { transport_factory = fake_factory(log) })
                assert.equals("AKIDFAKE", p:get().access_key_id, uri)
                assert.equals(1, #log)
                assert.equals(uri, log[1].url)
                assert.equals("GET", log[1].method)
                assert.equals("container-auth-token", header(log[1], "Authorization"))
                assert.equals(1, log.closed)
                assert.same({ connect_timeout_ms = 1000, timeout_ms = 2000 }, log.opts)
            end
        end)

        it("builds RELATIVE_URI on 169.254.170.2 (it wins over FULL_URI; no Authorization)", function()
            local log = {}
            local p = make(container_env({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/v2/credentials/abc-123" }),
                { transport_factory = fake_factory(log), metadata_timeout_ms = 5000 })
            assert.equals("container", p:get().source)
            assert.equals("http://169.254.170.2/v2/credentials/abc-123", log[1].url)
            assert.is_nil(header(log[1], "Authorization"))
            assert.equals(5000, log.opts.timeout_ms)
            -- "@host" would turn 169.254.170.2 into user info
            log = {}
            p = make({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "@evil.example/x" }, { transport_factory = fake_factory(log) })
            credentials_error(p.get, p)
            assert.equals(0, #log)
        end)

        it("raises on malformed replies", function()
            for _, body in ipairs({
                "not json", "[1,2]", '{"AccessKeyId":"AKID"}', '{"SecretAccessKey":"x"}',
                '{"AccessKeyId":"AKID","SecretAccessKey":"x","Expiration":"tomorrow"}',
                '{"AccessKeyId":"AKID","SecretAccessKey":"x","Token":5}',
            }) do
                control({ container = { body = body } })
                local p = make(container_env())
                contains(credentials_error(p.get, p).message, "container credentials from")
            end
            control({ container = { body = '{"AccessKeyId":"AKIDNULL","SecretAccessKey":"x","Token":null,"Expiration":null}' } })
            local c = make(container_env()):get()
            assert.equals("AKIDNULL", c.access_key_id)
            assert.is_nil(c.session_token)
            assert.is_nil(c.expiration)
        end)
    end)

    describe("EC2 IMDS", function()
        it("walks token, role and credentials with IMDSv2 headers", function()
            local p = make(imds_env(), { now = function() return T0 end })
            local c = p:get()
            assert.same({ "AKIDIMDS", "imds-secret", "imds-session", 4102444800, "imds" },
                { c.access_key_id, c.secret_access_key, c.session_token, c.expiration, c.source })
            local n = counts()
            assert.same({ 1, 1, 1, 0 }, { n.imds_token, n.imds_role, n.imds_creds, n.imds_401 })
        end)

        it("caches, and refetches after invalidate()", function()
            local p = make(imds_env(), { now = function() return T0 end })
            local c = p:get()
            for _ = 1, 5 do assert.equals(c, p:get()) end
            assert.equals(1, counts().imds_creds)
            p:invalidate()
            assert.not_equals(c, p:get())
            assert.equals(2, counts().imds_creds)
            assert.equals(2, counts().imds_token)
        end)

        it("refreshes once within 5 minutes of Expiration, not before", function()
            local clock = T0
            control({ imds = { expiration = iso(T0 + 3600) } })
            local p = make(imds_env(), { now = function() return clock end })
            local c = p:get()
            assert.equals(T0 + 3600, c.expiration)
            clock = T0 + 3600 - 301
            assert.equals(c, p:get())
            assert.equals(1, counts().imds_creds)
            control({ imds = { expiration = iso(T0 + 7200), access_key_id = "AKIDNEXT" } })
            clock = T0 + 3600 - 300
            local d = p:get()
            assert.equals("AKIDNEXT", d.access_key_id)
            assert.equals(T0 + 7200, d.expiration)
            assert.equals(2, counts().imds_creds)
            assert.equals(d, p:get())
            assert.equals(2, counts().imds_creds)
        end)

        it("uses credentials that arrive inside the window for 30 s instead of refetching per call", function()
            local clock = T0
            control({ imds = { expiration = iso(T0 + 120) } })
            local p = make(imds_env(), { now = function() return clock end })
            local c = p:get()
            clock = T0 + 29
            assert.equals(c, p:get())
            assert.equals(1, counts().imds_creds)
            clock = T0 + 30
            assert.not_equals(c, p:get())
            assert.equals(2, counts().imds_creds)
        end)

        it("keeps still-valid credentials when a refresh fails, retries after 30 s, raises once expired", function()
            local clock = T0
            control({ imds = { expiration = iso(T0 + 3600) } })
            local p = make(imds_env(), { now = function() return clock end })
            local c = p:get()
            control({ imds = { creds_status = 500 } })
            clock = T0 + 3400
            assert.equals(c, p:get())
            assert.equals(3, counts().imds_creds) -- first fetch + failed attempt and its retry
            clock = T0 + 3429
            assert.equals(c, p:get())
            assert.equals(3, counts().imds_creds)
            clock = T0 + 3430
            assert.equals(c, p:get())
            assert.equals(5, counts().imds_creds)
            clock = T0 + 3600
            contains(credentials_error(p.get, p).message, "credentials for role test-role: HTTP 500")
        end)

        it("retries a 500 on the token request once", function()
            control({ imds = { fail = 1 } })
            assert.equals("imds", make(imds_env()):get().source)
            assert.equals(2, counts().imds_token)
        end)

        it("is skipped entirely when AWS_EC2_METADATA_DISABLED=true", function()
            for _, v in ipairs({ "true", "TRUE", " True " }) do
                local p = make(imds_env({ AWS_EC2_METADATA_DISABLED = v }))
                contains(credentials_error(p.get, p).message, "EC2 IMDS (disabled by AWS_EC2_METADATA_DISABLED)")
            end
            assert.equals(0, counts().imds_token)
            assert.equals("imds", make(imds_env({ AWS_EC2_METADATA_DISABLED = "false" })):get().source)
        end)

        it("moves on fast when nothing listens (closed port)", function()
            local p = make({}, { transport_factory = function(opts)
                return curl.new(opts)
            end })
            local started = os.time()
            local err = credentials_error(p.get, p)
            assert.is_true(os.time() - started <= 1)
            contains(err.message, "EC2 IMDS (" .. closed_base .. ": unreachable (connect))")
        end)

        it("never falls back to IMDSv1 when the token PUT is refused", function()
            for _, status in ipairs({ 403, 404, 405 }) do
                call("POST", "/_reset")
                control({ imds = { token_status = status } })
                local p = make(imds_env())
                local err = credentials_error(p.get, p)
                contains(err.message, "IMDSv2 token refused with HTTP " .. status .. "; no IMDSv1 fallback")
                local n = counts()
                assert.equals(1, n.imds_token)
                assert.equals(0, n.imds_role + n.imds_creds)
            end
        end)

        it("notes an instance without a role, a failed Code and bad role names", function()
            control({ imds = { role_status = 404 } })
            local p = make(imds_env())
            contains(credentials_error(p.get, p).message, "no IAM role attached to this instance")
            call("POST", "/_reset")
            control({ imds = { code = "Failed" } })
            contains(credentials_error(p.get, p).message, "credentials for role test-role: Code is not Success")
            call("POST", "/_reset")
            control({ imds = { role = "../../latest/user-data" } })
            contains(credentials_error(p.get, p).message, "not a valid IAM role name")
            assert.equals(0, counts().imds_creds)
        end)
    end)

    describe("the final error", function()
        it("names every place it looked", function()
            local p = make({ HOME = "/nonexistent-home" })
            local err = credentials_error(p.get, p)
            assert.equals("no AWS credentials: looked in config.credentials (not set), environment "
                .. "(AWS_ACCESS_KEY_ID not set), shared files (/nonexistent-home/.aws/credentials: not found, "
                .. "/nonexistent-home/.aws/config: not found; profile default: not found), container "
                .. "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI not set), EC2 IMDS ("
                .. closed_base .. ": unreachable (connect))", err.message)
            contains(tostring(err), "CredentialsError (0): no AWS credentials")
            p = make({ HOME = false })
            contains(credentials_error(p.get, p).message, "shared files (no home directory; profile default: not found)")
        end)
    end)

    describe("secrets", function()
        local SECRET, TOKEN, AUTH = "SeCrEtKeY4242", "SeSsIoNtOkEn4242", "AuThZtOkEn4242"
        local MARKERS = { SECRET, TOKEN, AUTH }

        local function assert_clean(value, where)
            local seen = {}
            local function scan(v, path)
                if type(v) == "string" then
                    for _, m in ipairs(MARKERS) do
                        -- the failure message names the path only, not the secret
                        assert.is_nil(v:find(m, 1, true), "a secret leaked into " .. path)
                    end
                elseif type(v) == "table" and not seen[v] then
                    seen[v] = true
                    for k, x in pairs(v) do
                        scan(k, path .. " key")
                        scan(x, path .. "." .. tostring(k))
                    end
                end
            end
            scan(value, where)
            scan(tostring(value), "tostring(" .. where .. ")")
        end

        it("never appear in any error, whatever the path", function()
            local creds_file = new_file("secret-creds", table.concat({
                "[default]",
                "aws_secret_access_key = " .. SECRET,
                "aws_session_token = " .. TOKEN,
                "[role]",
                "role_arn = arn:aws:iam::123456789012:role/x",
                "aws_access_key_id = AKIDROLE",
                "aws_secret_access_key = " .. SECRET,
                "[proc]",
                "credential_process = echo " .. SECRET,
            }, "\n"))
            local role_default = new_file("secret-role-default", "[default]\nrole_arn = x\naws_access_key_id = AKID\n"
                .. "aws_secret_access_key = " .. SECRET .. "\naws_session_token = " .. TOKEN .. "\n")
            local token_file = new_file("secret-token-file", AUTH .. "\n")
            local function body(doc)
                return cjson.encode(doc)
            end
            local cases = {
                { cfg = { credentials = { secretAccessKey = SECRET, sessionToken = TOKEN } } },
                { cfg = { credentials = { accessKeyId = "AKID", sessionToken = TOKEN } } },
                { cfg = { credentials = { secret_access_key = SECRET, session_token = TOKEN } } },
                { env = { AWS_SECRET_ACCESS_KEY = SECRET, AWS_SESSION_TOKEN = TOKEN } },
                { env = { AWS_ACCESS_KEY_ID = "AKID", AWS_SESSION_TOKEN = TOKEN } },
                { env = { AWS_SESSION_TOKEN = TOKEN } },
                { env = { AWS_SHARED_CREDENTIALS_FILE = creds_file } },
                { env = { AWS_SHARED_CREDENTIALS_FILE = role_default } },
                { env = { AWS_SHARED_CREDENTIALS_FILE = creds_file }, cfg = { profile = "role" } },
                { env = { AWS_SHARED_CREDENTIALS_FILE = creds_file }, cfg = { profile = "proc" } },
                { env = { AWS_SHARED_CREDENTIALS_FILE = creds_file }, cfg = { profile = "missing" } },
                { env = container_env({ AWS_CONTAINER_AUTHORIZATION_TOKEN = AUTH }) },
                { env = container_env({ AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = token_file }) },
                { env = container_env({ AWS_CONTAINER_AUTHORIZATION_TOKEN = AUTH .. "\r\nX-Injected: 1" }) },
                { env = container_env({ AWS_CONTAINER_AUTHORIZATION_TOKEN = AUTH,
                    AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://10.0.0.1/" .. AUTH }) },
                { env = container_env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://u:" .. SECRET .. "@127.0.0.1/" }) },
                { env = container_env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = closed_base .. "/" .. AUTH,
                    AWS_CONTAINER_AUTHORIZATION_TOKEN = AUTH }) },
                { env = container_env({ AWS_CONTAINER_AUTHORIZATION_TOKEN = "container-auth-token" }),
                    server = { container = { body = '{"AccessKeyId":"AKID","SecretAccessKey":"' .. SECRET .. '",' } } },
                { env = container_env(), server = { container = { body = body({ SecretAccessKey = SECRET, Token = TOKEN }) } } },
                { env = container_env(), server = { container = { body = body({ AccessKeyId = "AKID",
                    SecretAccessKey = SECRET, Token = TOKEN, Expiration = SECRET }) } } },
                { env = container_env(), server = { container = { body = body({ AccessKeyId = "AKID",
                    SecretAccessKey = SECRET, Token = { TOKEN } }) } } },
                { env = container_env({ AWS_CONTAINER_AUTHORIZATION_TOKEN = AUTH }),
                    server = { container = { token = AUTH, status = 403 } } },
                { env = imds_env(), server = { imds = { code = SECRET, secret_access_key = SECRET, session_token = TOKEN } } },
                { env = imds_env(), server = { imds = { code = "Failed", secret_access_key = SECRET, session_token = TOKEN } } },
                { env = imds_env(), server = { imds = { body = '{"SecretAccessKey":"' .. SECRET .. '"' } } },
                { env = imds_env(), server = { imds = { body = body({ AccessKeyId = "AKID", SecretAccessKey = SECRET,
                    Token = TOKEN, Expiration = TOKEN, Code = "Success" }) } } },
                { env = imds_env(), server = { imds = { token_status = 403 } } },
                { env = imds_env(), server = { imds = { role = SECRET .. "/x" } } },
                { env = imds_env(), server = { imds = { creds_status = 500 } } },
            }
            for i, case in ipairs(cases) do
                call("POST", "/_reset")
                if case.server then control(case.server) end
                local err = catch(function()
                    return make(case.env, case.cfg):get()
                end)
                assert.is_true(errors.is(err, "CredentialsError"), "case " .. i .. ": " .. tostring(err))
                assert_clean(err, "case " .. i)
            end
        end)

        it("never appear in tostring of the credentials, whatever the source", function()
            local path = new_file("secret-ok", "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = "
                .. SECRET .. "\naws_session_token = " .. TOKEN .. "\n")
            control({ container = { secret_access_key = SECRET, session_token = TOKEN, token = AUTH },
                imds = { secret_access_key = SECRET, session_token = TOKEN } })
            for _, case in ipairs({
                { cfg = { credentials = { accessKeyId = "AKIDCFG", secretAccessKey = SECRET, sessionToken = TOKEN } } },
                { env = { AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = SECRET, AWS_SESSION_TOKEN = TOKEN } },
                { env = { AWS_SHARED_CREDENTIALS_FILE = path } },
                { env = container_env({ AWS_CONTAINER_AUTHORIZATION_TOKEN = AUTH }) },
                { env = imds_env() },
            }) do
                local c = make(case.env, case.cfg):get()
                assert.equals(SECRET, c.secret_access_key)
                assert.equals(TOKEN, c.session_token)
                local text = tostring(c)
                contains(text, c.access_key_id)
                contains(text, c.source)
                for _, m in ipairs(MARKERS) do assert.is_nil(text:find(m, 1, true)) end
                assert.is_nil(tostring(make(case.env, case.cfg)):find(SECRET, 1, true))
            end
        end)
    end)
end)
