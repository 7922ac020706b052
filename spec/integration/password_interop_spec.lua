-- authhero.aws.password against independent implementations in node, both ways: bcryptjs (the
-- version AuthHero 9.6.1 resolves; AuthHero hashes sign-ups with bcryptjs.hash(password, 10) and
-- checks logins with bcryptjs.compare) and hash-wasm's argon2id. Hashes node made verify here,
-- hashes made here verify in node, and wrong passwords fail on both sides. The npm packages are
-- pinned in spec/password-interop/ and installed by scripts/password-interop-deps.
local password = require "authhero.aws.password"
local cjson = require "cjson"

local ROOT = (debug.getinfo(1, "S").source:match("^@(.*)/spec/integration/[^/]+$")) or "."

local function quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- sh(cmd) -> exit code, output (stdout and stderr)
local function sh(cmd)
    local f = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
    local out = f:read("*a")
    f:close()
    local rc = tonumber(out:match("rc=(%d+)%s*$"))
    return rc, (out:gsub("rc=%d+%s*$", ""))
end

local DEPS

-- node(requests) -> answers (spec/password-interop/interop.mjs, one process per call)
local function node(requests)
    local input = os.tmpname()
    local f = assert(io.open(input, "wb"))
    f:write(cjson.encode(requests))
    f:close()
    local rc, out = sh("node " .. quote(ROOT .. "/spec/password-interop/interop.mjs") .. " " .. quote(DEPS)
        .. " < " .. quote(input))
    os.remove(input)
    assert.equals(0, rc, out)
    local doc = cjson.decode(out:match("[^\n]*\n?$"))
    assert.equals(#requests, #doc.answers)
    return doc.answers, doc
end

-- UTF-8 passwords, as a browser sends them: ASCII, accents and CJK, 4-byte characters (surrogate
-- pairs in JavaScript), quotes, 71 and 72 bytes, 72 bytes that end inside a character, 200 bytes
local PASSWORDS = {
    "correct horse battery staple", "pässwörd ✓ 密码", "🔑🔒 emoji 🔑", "x", [[quote " back\slash ' tab	]],
    ("a"):rep(71), ("a"):rep(72), ("a"):rep(71) .. "é", ("0123456789abcdefghij"):rep(10),
}

-- a different password, still UTF-8, whose first 72 bytes differ too
local function wrong(pw)
    return "Z" .. pw
end

describe("password interop with node", function()
    lazy_setup(function()
        local rc, out = sh(quote(ROOT .. "/scripts/password-interop-deps"))
        assert.equals(0, rc, out)
        DEPS = out:match("([^\n]+)\n?$")
    end)

    it("runs the bcryptjs that AuthHero's own lock file resolves", function()
        local f = assert(io.open(ROOT .. "/spec/conformance/package-lock.json", "rb"))
        local lock = cjson.decode(f:read("*a"))
        f:close()
        local authhero_bcryptjs = lock.packages["node_modules/bcryptjs"].version
        local _, doc = node({ { op = "hash", alg = "bcrypt", password = "x", cost = 4 } })
        assert.equals(authhero_bcryptjs, doc.bcryptjs)
    end)

    it("verifies hashes bcryptjs made (cost 4, and AuthHero's cost 10) and refuses wrong passwords", function()
        local req = {}
        for _, pw in ipairs(PASSWORDS) do req[#req + 1] = { op = "hash", alg = "bcrypt", password = pw, cost = 4 } end
        req[#req + 1] = { op = "hash", alg = "bcrypt", password = PASSWORDS[2], cost = 10 }
        local hashes = node(req)
        for i, h in ipairs(hashes) do
            local pw = req[i].password
            assert.truthy(h:match("^%$2b%$%d%d%$"), h)
            assert.is_true(password.verify(pw, h), pw .. " " .. h)
            assert.is_false(password.verify(wrong(pw), h), pw .. " " .. h)
        end
        assert.equals("10", hashes[#hashes]:sub(5, 6))
    end)

    it("writes hashes bcryptjs verifies ($2b$, and read as $2a$ and $2y$), and bcryptjs refuses wrong passwords", function()
        local req = {}
        for _, pw in ipairs(PASSWORDS) do
            local h = password.hash(pw, { cost = 4 })
            req[#req + 1] = { op = "verify", alg = "bcrypt", password = pw, hash = h, want = true }
            req[#req + 1] = { op = "verify", alg = "bcrypt", password = wrong(pw), hash = h, want = false }
            req[#req + 1] = { op = "verify", alg = "bcrypt", password = pw, hash = "$2a" .. h:sub(4), want = true }
            req[#req + 1] = { op = "verify", alg = "bcrypt", password = pw, hash = "$2y" .. h:sub(4), want = true }
        end
        local h10 = password.hash(PASSWORDS[1]) -- the default: cost 10, as AuthHero writes
        assert.equals("$2b$10$", h10:sub(1, 7))
        req[#req + 1] = { op = "verify", alg = "bcrypt", password = PASSWORDS[1], hash = h10, want = true }
        req[#req + 1] = { op = "verify", alg = "bcrypt", password = wrong(PASSWORDS[1]), hash = h10, want = false }
        local answers = node(req)
        for i, ok in ipairs(answers) do
            assert.equals(req[i].want, ok, req[i].password .. " " .. req[i].hash)
        end
    end)

    it("agrees with bcryptjs past 72 bytes: both ignore the rest, in either direction", function()
        local a72 = ("a"):rep(72)
        local mine = password.hash(a72 .. "one tail", { cost = 4 })
        local theirs = node({
            { op = "hash", alg = "bcrypt", password = a72 .. "their tail", cost = 4 },
            { op = "verify", alg = "bcrypt", password = a72 .. "another tail", hash = mine },
            { op = "verify", alg = "bcrypt", password = ("a"):rep(71), hash = mine },
        })
        assert.is_true(theirs[2])
        assert.is_false(theirs[3])
        assert.is_true(password.verify(a72 .. "one tail", theirs[1]))
        assert.is_true(password.verify(a72, theirs[1]))
        assert.is_false(password.verify(("a"):rep(71), theirs[1]))
    end)

    it("verifies argon2id hashes hash-wasm made and refuses wrong passwords", function()
        local req = {}
        for _, pw in ipairs(PASSWORDS) do
            req[#req + 1] = { op = "hash", alg = "argon2id", password = pw, iterations = 1, memory = 64, parallelism = 1 }
        end
        local d = password.ARGON2ID
        req[#req + 1] = { op = "hash", alg = "argon2id", password = PASSWORDS[2], iterations = d.iterations,
            memory = d.memory, parallelism = d.parallelism }
        req[#req + 1] = { op = "hash", alg = "argon2id", password = PASSWORDS[3], iterations = 3, memory = 256,
            parallelism = 4 }
        for i, h in ipairs(node(req)) do
            local pw = req[i].password
            assert.truthy(h:match("^%$argon2id%$v=19%$m=" .. req[i].memory .. ",t=" .. req[i].iterations), h)
            assert.is_true(password.verify(pw, h), pw .. " " .. h)
            assert.is_false(password.verify(wrong(pw), h), pw .. " " .. h)
        end
    end)

    it("writes argon2id hashes hash-wasm verifies (defaults and other parameters), and it refuses wrong passwords", function()
        local req = {}
        local function add(pw, opts)
            local h = password.hash(pw, opts)
            req[#req + 1] = { op = "verify", alg = "argon2id", password = pw, hash = h, want = true }
            req[#req + 1] = { op = "verify", alg = "argon2id", password = wrong(pw), hash = h, want = false }
        end
        for _, pw in ipairs(PASSWORDS) do add(pw, { algorithm = "argon2id", iterations = 1, memory = 64 }) end
        add(PASSWORDS[2], { algorithm = "argon2id" })
        add(PASSWORDS[3], { algorithm = "argon2id", iterations = 3, memory = 256, parallelism = 4 })
        local answers = node(req)
        for i, ok in ipairs(answers) do
            assert.equals(req[i].want, ok, req[i].password .. " " .. req[i].hash)
        end
    end)
end)
