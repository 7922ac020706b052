-- password.lua over csrc/password.c: bcrypt (libxcrypt) and argon2id (libargon2). Fixed vectors
-- come from independent implementations: bcryptjs 3.0.3 (AuthHero's own, run once in node) and
-- the argon2 reference implementation's src/test.c; spec/integration/password_interop_spec.lua
-- checks both directions against live bcryptjs and hash-wasm.
local password = require "authhero.aws.password"
local errors = require "authhero.aws.errors"

-- raises(fn, ...) -> the ValidationError fn(...) raised (fails when it returns or raises another)
local function validation_error(fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok, "expected a ValidationError, got a result")
    assert.is_true(errors.is(err, "ValidationError"), tostring(err))
    assert.equals(400, err.status)
    return err
end

-- one character changed at position i (from the end when negative)
local function flip(s, i)
    if i < 0 then i = #s + 1 + i end
    local c = s:sub(i, i) == "a" and "b" or "a"
    return s:sub(1, i - 1) .. c .. s:sub(i + 1)
end

local BCRYPT_SHAPE = "^%$2b%$(%d%d)%$[./A-Za-z0-9]+$"

-- made by bcryptjs 3.0.3's hashSync(password, salt) in node
local BCRYPTJS = {
    { "correct horse battery staple", "$2b$04$7GTSZhBLOpgs6OVKc0vazuimsdicfxMVhWhdWh7gKbvgUa.LWj7Xe" },
    { "pässwörd ✓ 密码", "$2a$05$4PpAxGlajOr72ImlYHtHo.E1VSGVLigIVh7RIlSAjuiIZSLhxso3i" },
    { "U*U", "$2y$04$fMgXeAtp43JcHWLIoYX4nOOxc8j3obd1YMn92OaZ72d1ZFjO9A2uy" },
    { ("a"):rep(71), "$2b$04$PXDzucGkxkwrBG7LW6yKW.LMM6a4uvKTc3oOySJTWlN2BQGEXxAB6" },
    { ("a"):rep(72), "$2b$04$oMN8e7nUX/b281peh2bzpeb.MXjB8JDZX0uXKhvmM1PRId1rUdeLG" },
    { ("0123456789"):rep(8), "$2b$04$drXv2ZVft3KgcFhHk6AQ7ub.551oHMwSjCl9L.jQ8f6vwcl1hfOxG" },
}

-- the argon2 reference implementation's src/test.c (version 0x13, Argon2id, salt "somesalt")
local ARGON2_REF = {
    { "password", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4" },
    { "password", "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc" },
    { "password", "$argon2id$v=19$m=65536,t=1,p=1$c29tZXNhbHQ$9qWtwbpyPd3vm1rB1GThgPzZ3/ydHL92zKL+15XZypg" },
}

describe("password.hash and verify with bcrypt", function()
    it("writes $2b$ at cost 10 by default, 60 characters, and verifies it; a wrong password fails", function()
        local h = password.hash("correct horse battery staple")
        assert.equals(60, #h)
        assert.equals("10", h:match(BCRYPT_SHAPE))
        assert.is_true(password.verify("correct horse battery staple", h))
        assert.is_false(password.verify("correct horse battery stapl", h))
        assert.is_false(password.verify("Correct horse battery staple", h))
    end)

    it("takes its cost from opts.cost and a fresh salt every time", function()
        local a = password.hash("same password", { cost = 4 })
        local b = password.hash("same password", { algorithm = "bcrypt", cost = 4 })
        assert.equals("04", a:match(BCRYPT_SHAPE))
        assert.equals("04", b:match(BCRYPT_SHAPE))
        assert.are_not.equal(a:sub(8, 29), b:sub(8, 29))
        assert.is_true(password.verify("same password", a))
        assert.is_true(password.verify("same password", b))
        assert.equals("05", password.hash("x", { cost = 5 }):match(BCRYPT_SHAPE))
    end)

    it("verifies what bcryptjs wrote ($2a$, $2b$, $2y$; UTF-8; 71, 72, 80 bytes) and no near miss", function()
        for _, v in ipairs(BCRYPTJS) do
            local pw, h = v[1], v[2]
            assert.is_true(password.verify(pw, h), pw)
            assert.is_false(password.verify(flip(pw, 1), h), pw)
            -- one more byte counts below 72 bytes and is ignored from 72 on
            assert.equals(#pw >= 72, password.verify(pw .. "x", h), pw)
            -- the same hash with its last character, or a character of its salt, changed
            assert.is_false(password.verify(pw, flip(h, -1)), h)
            assert.is_false(password.verify(pw, flip(h, 10)), h)
        end
    end)

    it("computes $2a$, $2b$ and $2y$ alike, as bcryptjs does", function()
        local pw, h = BCRYPTJS[1][1], BCRYPTJS[1][2]
        for _, minor in ipairs({ "a", "b", "y" }) do
            assert.is_true(password.verify(pw, "$2" .. minor .. h:sub(4)), minor)
        end
        local mine = password.hash("über", { cost = 4 })
        assert.is_true(password.verify("über", "$2a" .. mine:sub(4)))
        assert.is_true(password.verify("über", "$2y" .. mine:sub(4)))
    end)

    it("computes $2a$ as bcryptjs and OpenBSD do, without libxcrypt's $2a$ countermeasure", function()
        -- libxcrypt's test/ka-table.inc: for these bytes its $2b$ and $2a$ results differ (the $2a$
        -- one carries the countermeasure against the old $2x$ sign-extension bug); bcryptjs has no
        -- such step, so its $2a$ hash is the $2b$ value, and that is what verifies here.
        local pw = "\255\255\163" -- FF FF A3 (Lua 5.1 has no \x escapes)
        assert.is_true(password.verify(pw, "$2b$05$CCCCCCCCCCCCCCCCCCCCC.Qjdj3GXX7D0sFE9jji6wxSTWIhqI3US"))
        assert.is_true(password.verify(pw, "$2a$05$CCCCCCCCCCCCCCCCCCCCC.Qjdj3GXX7D0sFE9jji6wxSTWIhqI3US"))
        assert.is_false(password.verify(pw, "$2a$05$CCCCCCCCCCCCCCCCCCCCC.euRNRfAA6e0fjpTfQPPAMU1PCOf9IHq"))
        local pw2 = "\255\163" .. "34\255\255\255\163" .. "345"
        assert.is_true(password.verify(pw2, "$2b$04$CCCCCCCCCCCCCCCCCCCCC.8jdeg8QqT4CX3ERA9vZPFZAkxZRpxJW"))
        assert.is_true(password.verify(pw2, "$2y$04$abcdefghijklmnopqrstuu9f4sA9SRA0scUKcRyC5kce8dao2.GKe"))
    end)

    it("reads the first 72 bytes only, like bcryptjs, also inside a multi-byte character", function()
        local a72 = ("a"):rep(72)
        local h = password.hash(a72 .. "tail one", { cost = 4 })
        assert.is_true(password.verify(a72, h))
        assert.is_true(password.verify(a72 .. "another tail", h))
        assert.is_false(password.verify(("a"):rep(71), h))
        -- bcryptjs' 80-byte vector: only its first 72 bytes count
        local long, lh = BCRYPTJS[6][1], BCRYPTJS[6][2]
        assert.is_true(password.verify(long:sub(1, 72) .. "anything", lh))
        assert.is_false(password.verify(long:sub(1, 71), lh))
        -- "é" is two bytes (C3 A9); the 72nd byte is its first
        local split = password.hash(("a"):rep(71) .. "é", { cost = 4 })
        assert.is_true(password.verify(("a"):rep(71) .. "\195", split)) -- C3 (Lua 5.1 has no \x escapes)
        assert.is_true(password.verify(("a"):rep(71) .. "è", split)) -- C3 A8: same first byte
        assert.is_false(password.verify(("a"):rep(70) .. "é", split))
        assert.equals(72, password.BCRYPT_MAX_BYTES)
    end)

    it("hashes passwords far past libxcrypt's 512-byte passphrase limit", function()
        local big = ("x"):rep(10000)
        local h = password.hash(big, { cost = 4 })
        assert.is_true(password.verify(big, h))
        assert.is_true(password.verify(("x"):rep(72), h))
    end)
end)

describe("password.hash and verify with argon2id", function()
    it("writes the PHC string with the documented defaults (m=19456, t=2, p=1, 16-byte salt, 32-byte tag)", function()
        local h = password.hash("correct horse battery staple", { algorithm = "argon2id" })
        local salt, tag = h:match("^%$argon2id%$v=19%$m=19456,t=2,p=1%$([%w+/]+)%$([%w+/]+)$")
        assert.equals(22, #salt, h) -- 16 bytes, unpadded base64
        assert.equals(43, #tag, h) -- 32 bytes
        assert.is_true(password.verify("correct horse battery staple", h))
        assert.is_false(password.verify("correct horse battery stapl", h))
        assert.same({ iterations = 2, memory = 19456, parallelism = 1 }, password.ARGON2ID)
    end)

    it("takes iterations, memory and parallelism from opts, with a fresh salt every time", function()
        local opts = { algorithm = "argon2id", iterations = 1, memory = 64, parallelism = 2 }
        local a, b = password.hash("pw", opts), password.hash("pw", opts)
        assert.truthy(a:match("^%$argon2id%$v=19%$m=64,t=1,p=2%$"), a)
        assert.are_not.equal(a, b)
        assert.is_true(password.verify("pw", a))
        assert.is_true(password.verify("pw", b))
        assert.is_false(password.verify("pW", a))
        -- every byte counts: no 72-byte limit here
        local long = ("a"):rep(100)
        local lh = password.hash(long, { algorithm = "argon2id", memory = 64, iterations = 1 })
        assert.is_true(password.verify(long, lh))
        assert.is_false(password.verify(long:sub(1, 99) .. "b", lh))
    end)

    it("verifies the reference implementation's test vectors and rejects other passwords", function()
        for _, v in ipairs(ARGON2_REF) do
            assert.is_true(password.verify(v[1], v[2]), v[2])
            assert.is_false(password.verify("differentpassword", v[2]), v[2])
            assert.is_false(password.verify(v[1], flip(v[2], -2)), v[2])
        end
    end)
end)

describe("password rules", function()
    local bh = BCRYPTJS[1][2]
    local ah = ARGON2_REF[1][2]

    it("refuses an empty password, a NUL byte or a non-string with a ValidationError, in hash and verify", function()
        for _, pw in ipairs({ "", "abc\0def", "\0" }) do
            validation_error(password.hash, pw)
            validation_error(password.hash, pw, { algorithm = "argon2id" })
            validation_error(password.verify, pw, bh)
            validation_error(password.verify, pw, ah)
        end
        for _, pw in ipairs({ 42, true, {} }) do
            validation_error(password.hash, pw)
            validation_error(password.verify, pw, bh)
        end
        validation_error(password.hash, nil)
        validation_error(password.verify, nil, bh)
    end)

    it("never verifies a hash it cannot read: unknown or malformed formats are a ValidationError", function()
        local bad = {
            "", "password", "sha256$0011$aabb", "$1$salt$0123456789012345678901",
            "$5$rounds=5000$salt$hash", "$2x$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e",
            "$2$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3",
            "$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            "$argon2d$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            -- bcrypt: short, long, trailing newline, cost 03 and 32, a character outside the alphabet
            bh:sub(1, 59), bh .. "A", bh .. "\n", "$2b$03" .. bh:sub(7), "$2b$32" .. bh:sub(7),
            bh:sub(1, 40) .. "!" .. bh:sub(42), bh:sub(1, 40) .. "\0" .. bh:sub(42),
            -- argon2id: no version, version 16, missing tag, tag too short, salt too short, padding
            "$argon2id$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            (ah:gsub("v=19", "v=16")), ah:match("^(.*%$)"), ah:match("^(.*%$)") .. "nf6",
            (ah:gsub("c29tZXNhbHQ", "c29t")), ah .. "=", ah .. "\n",
            -- parameters outside the documented ranges (refused before libargon2 allocates anything)
            (ah:gsub("m=256", "m=8388608")), (ah:gsub("t=2", "t=0")), (ah:gsub("t=2", "t=1001")),
            (ah:gsub("p=1", "p=0")), (ah:gsub("p=1", "p=65")), (ah:gsub("m=256", "m=7")),
        }
        for _, h in ipairs(bad) do
            local err = validation_error(password.verify, "password", h)
            if #h > 8 then assert.is_nil(err.message:find(h, 1, true), err.message) end
        end
        for _, h in ipairs({ 42, {}, true }) do validation_error(password.verify, "password", h) end
        validation_error(password.verify, "password", nil)
    end)

    it("refuses unknown algorithms, unknown options and values outside the ranges", function()
        local bad = {
            "not a table", 10, { algorithm = "scrypt" }, { algorithm = "argon2i" }, { algorithm = 1 },
            { rounds = 10 }, { cost = 3 }, { cost = 32 }, { cost = 10.5 }, { cost = "10" },
            { algorithm = "bcrypt", memory = 64 }, { algorithm = "argon2id", cost = 10 },
            { algorithm = "argon2id", iterations = 0 }, { algorithm = "argon2id", iterations = 1001 },
            { algorithm = "argon2id", memory = 7 }, { algorithm = "argon2id", memory = 4194305 },
            { algorithm = "argon2id", parallelism = 0 }, { algorithm = "argon2id", parallelism = 65 },
            { algorithm = "argon2id", parallelism = 4, memory = 31 }, { algorithm = "argon2id", memory = 0 / 0 },
            { algorithm = "argon2id", iterations = math.huge },
        }
        for _, opts in ipairs(bad) do validation_error(password.hash, "pw", opts) end
        -- the edges themselves are accepted
        assert.equals("04", password.hash("pw", { cost = 4 }):match(BCRYPT_SHAPE))
        local edge = password.hash("pw", { algorithm = "argon2id", memory = 32, parallelism = 4, iterations = 1 })
        assert.is_true(password.verify("pw", edge))
    end)
end)
