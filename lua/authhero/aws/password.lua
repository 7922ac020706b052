-- require "authhero.aws.password": password hashes AuthHero can read and that AuthHero wrote.
-- bcrypt (what AuthHero 9.6.1 writes and checks, through bcryptjs) and argon2id, over libxcrypt and
-- libargon2 in the C core. Left out: scrypt, PBKDF2, pepper/secret keys, Unicode normalisation.
--
--   hash(password [, opts]) -> encoded hash string, a fresh salt from the OS each time
--       opts.algorithm = "bcrypt" (default): opts.cost = log2 rounds, 4..31, default 10 (AuthHero's);
--           writes "$2b$<cost>$...", 60 characters, as bcryptjs does.
--       opts.algorithm = "argon2id": opts.iterations (t, 1..1000, default 2), opts.memory (KiB,
--           8*parallelism..4194304, default 19456 = 19 MiB), opts.parallelism (lanes, 1..64,
--           default 1); writes the PHC string "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<tag>"
--           (16-byte salt, 32-byte tag, unpadded base64).
--   verify(password, hash) -> true | false; the algorithm comes from the hash's own prefix.
--
-- Rules, the same for hash and verify:
--   * A password is a non-empty string of bytes with no NUL byte; anything else is a
--     ValidationError (400). For hashes that interoperate with AuthHero pass the UTF-8 the client
--     sent (bcryptjs hashes a JavaScript string's UTF-8; neither side normalises Unicode).
--   * bcrypt reads the first 72 bytes of a password and ignores the rest (bcryptjs and OpenBSD do
--     the same, so hashes interoperate): two passwords that share their first 72 bytes share a
--     bcrypt hash. The limit is in bytes, so it may fall inside a multi-byte character. argon2id
--     reads every byte.
--   * verify reads "$2a$", "$2b$", "$2y$" (bcrypt, computed alike, as bcryptjs and OpenBSD do; so
--     libxcrypt's own "$2a$" countermeasure against the old "$2x$" bug, which changes the hash of
--     rare non-ASCII passwords, is not applied) and "$argon2id$v=19$" (argon2id). Any other or
--     malformed hash, or argon2id parameters outside the ranges above, is a ValidationError, never
--     `false`: a hash this module cannot check is a data problem the caller must see, not a wrong
--     password. Error messages never quote the hash.
--   * Comparison is constant time (OpenSSL's CRYPTO_memcmp for bcrypt, libargon2's own for
--     argon2id). The time a hash takes is its cost, and it blocks the calling thread (an nginx
--     worker included) that long: bcrypt cost 10 is 50 ms of CPU on the 2-core development machine,
--     each step up doubles it; argon2id's defaults 22 ms and 19 MiB.
-- Failures of the libraries themselves (no randomness, no memory) raise a CryptoError (500).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"

local _M = {}

_M.BCRYPT_COST = 10
_M.BCRYPT_MAX_BYTES = 72
-- The first argon2id setting of OWASP's Password Storage Cheat Sheet: 19 MiB per hash in progress
-- (a server hashes several at once), one lane so libargon2 starts no thread inside the server, and
-- 22 ms of CPU here, less than bcrypt cost 10's 50 ms. RFC 9106 §4's second recommendation,
-- { iterations = 3, memory = 65536, parallelism = 4 }, costs 64 MiB, 4 threads and 180 ms of CPU.
_M.ARGON2ID = { iterations = 2, memory = 19456, parallelism = 1 }

local ARGON2ID_LIMITS = {
    iterations = { 1, 1000 },
    memory = { 8, 4194304 }, -- KiB (4 GiB); also at least 8 per lane
    parallelism = { 1, 64 },
}

local function is_int(v)
    return type(v) == "number" and v == math.floor(v) and v > -math.huge and v < math.huge
end

local function check_password(password)
    if type(password) ~= "string" then errors.validation("password must be a string, got %s", type(password)) end
    if password == "" then errors.validation("password must not be empty") end
    if password:find("\0", 1, true) then errors.validation("password must not contain a NUL byte") end
end

local function argon2id_params(opts)
    local p = {}
    for _, k in ipairs({ "iterations", "memory", "parallelism" }) do
        local v = opts[k]
        if v == nil then v = _M.ARGON2ID[k] end
        local lim = ARGON2ID_LIMITS[k]
        if not is_int(v) or v < lim[1] or v > lim[2] then
            errors.validation("argon2id %s must be an integer %d..%d", k, lim[1], lim[2])
        end
        p[k] = v
    end
    if p.memory < 8 * p.parallelism then
        errors.validation("argon2id memory must be at least 8 KiB per lane (%d)", 8 * p.parallelism)
    end
    return p
end

local OPTIONS = {
    bcrypt = { algorithm = true, cost = true },
    argon2id = { algorithm = true, iterations = true, memory = true, parallelism = true },
}

function _M.hash(password, opts)
    check_password(password)
    if opts == nil then opts = {} end
    if type(opts) ~= "table" then errors.validation("options must be a table, got %s", type(opts)) end
    local algorithm = opts.algorithm
    if algorithm == nil then algorithm = "bcrypt" end
    local known = OPTIONS[algorithm]
    if not known then errors.validation("algorithm must be \"bcrypt\" or \"argon2id\", got %s", tostring(algorithm)) end
    for k in pairs(opts) do
        if not known[k] then errors.validation("unknown %s option %s", algorithm, tostring(k)) end
    end
    if algorithm == "bcrypt" then
        local cost = opts.cost
        if cost == nil then cost = _M.BCRYPT_COST end
        if not is_int(cost) or cost < 4 or cost > 31 then errors.validation("bcrypt cost must be an integer 4..31") end
        return core.password_bcrypt_hash(password, cost)
    end
    local p = argon2id_params(opts)
    return core.password_argon2id_hash(password, p.iterations, p.memory, p.parallelism)
end

local ARGON2ID_PHC = "^%$argon2id%$v=19%$m=(%d+),t=(%d+),p=(%d+)%$[%w+/]+%$[%w+/]+$"

function _M.verify(password, hash)
    check_password(password)
    if type(hash) ~= "string" then errors.validation("hash must be a string, got %s", type(hash)) end
    local head = hash:sub(1, 4)
    if head == "$2a$" or head == "$2b$" or head == "$2y$" then
        return core.password_bcrypt_verify(password, hash) -- a malformed one is a ValidationError there
    end
    if hash:sub(1, 10) == "$argon2id$" then
        local m, t, p = hash:match(ARGON2ID_PHC)
        if not m then errors.validation("not an argon2id hash ($argon2id$v=19$m=..,t=..,p=..$salt$tag expected)") end
        argon2id_params({ iterations = tonumber(t), memory = tonumber(m), parallelism = tonumber(p) })
        return core.password_argon2id_verify(password, hash)
    end
    errors.validation("unsupported password hash format (bcrypt $2a$/$2b$/$2y$ and $argon2id$ only)")
end

return _M
