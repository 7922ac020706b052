/* Password hashes for authhero.aws.password: bcrypt through libxcrypt (crypt_gensalt_rn, crypt_rn)
 * and argon2id through libargon2, salts from the OS. Policy (argument types, option ranges, which
 * hash formats exist, empty passwords) lives in password.lua; this file re-checks only what keeps
 * the C safe (lengths, NUL bytes, the exact bcrypt shape); secrets compare in constant time. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <string.h>

#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core.h"

#define PASSWORD_BCRYPT_MAX  72 /* bytes of the password bcrypt's key schedule reads */
#define PASSWORD_BCRYPT_LEN  60 /* "$2b$10$" + 22 salt + 31 hash characters */
#define PASSWORD_BCRYPT_HEAD 29 /* "$2b$10$" + 22 salt characters: the setting */
#define PASSWORD_SALT        16 /* argon2id salt bytes (RFC 9106 §3.1: 128 bits) */
#define PASSWORD_TAG         32 /* argon2id tag bytes */
#define PASSWORD_ENCODED     256

/* One of bcrypt's 64 characters ("./A-Za-z0-9"). */
static int password_bcrypt_char(unsigned char c)
{
    return c == '.' || c == '/' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9');
}

/* 1 when h is exactly "$2a$"/"$2b$"/"$2y$", a cost 04..31, "$", 53 bcrypt characters. */
static int password_bcrypt_shape(const char *h, size_t n)
{
    if (n != PASSWORD_BCRYPT_LEN || h[0] != '$' || h[1] != '2' || h[3] != '$' || h[6] != '$')
        return 0;
    if (h[2] != 'a' && h[2] != 'b' && h[2] != 'y')
        return 0;
    if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9')
        return 0;
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (cost < 4 || cost > 31)
        return 0;
    for (size_t i = 7; i < n; i++)
        if (!password_bcrypt_char((unsigned char)h[i]))
            return 0;
    return 1;
}

/* bcrypt of the first 72 bytes of pw (what the key schedule reads anyway: bcryptjs and OpenBSD
 * ignore the rest too; libxcrypt would refuse passphrases of 512 bytes and more instead) under
 * setting; writes the 60-character result and its NUL to out. cd is scratch, wiped before return.
 * Returns 0, or -1 with errno set. */
static int password_bcrypt(struct crypt_data *cd, const char *pw, size_t n, const char *setting,
                           char out[PASSWORD_BCRYPT_LEN + 1])
{
    if (n > PASSWORD_BCRYPT_MAX)
        n = PASSWORD_BCRYPT_MAX;
    memset(cd, 0, sizeof *cd);
    memcpy(cd->input, pw, n);
    cd->input[n] = '\0';
    const char *r = crypt_rn(cd->input, setting, cd, (int)sizeof *cd);
    int rc = 0;
    if (r == NULL || strlen(r) != PASSWORD_BCRYPT_LEN || r[0] != '$') {
        rc = -1;
        if (errno == 0)
            errno = EINVAL;
    } else {
        memcpy(out, r, PASSWORD_BCRYPT_LEN + 1);
    }
    OPENSSL_cleanse(cd, sizeof *cd);
    return rc;
}

/* The scratch crypt_rn needs (32 KiB, too big for some stacks) as a userdata, so a raise never
 * leaks it; wiped by password_bcrypt after each use. */
static struct crypt_data *password_scratch(lua_State *L)
{
    return lua_newuserdata(L, sizeof(struct crypt_data));
}

static const char *password_checkpw(lua_State *L, int idx, size_t *n)
{
    const char *pw = luaL_checklstring(L, idx, n);
    luaL_argcheck(L, memchr(pw, '\0', *n) == NULL, idx, "password contains a NUL byte");
    return pw;
}

/* core.password_bcrypt_hash(password, cost) -> "$2b$<cost>$<salt><hash>", a fresh salt from the
 * OS (crypt_gensalt_rn with no random bytes of ours asks getentropy). */
static int l_password_bcrypt_hash(lua_State *L)
{
    size_t n;
    const char *pw = password_checkpw(L, 1, &n);
    lua_Integer cost = luaL_checkinteger(L, 2);
    luaL_argcheck(L, cost >= 4 && cost <= 31, 2, "cost must be 4 to 31");
    struct crypt_data *cd = password_scratch(L);
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    char out[PASSWORD_BCRYPT_LEN + 1];
    errno = 0;
    if (crypt_gensalt_rn("$2b$", (unsigned long)cost, NULL, 0, setting, (int)sizeof setting) ==
        NULL)
        return core_raise(L, 500, "CryptoError", "bcrypt salt: %s", strerror(errno));
    errno = 0;
    if (password_bcrypt(cd, pw, n, setting, out) != 0)
        return core_raise(L, 500, "CryptoError", "bcrypt: %s", strerror(errno));
    lua_pushlstring(L, out, PASSWORD_BCRYPT_LEN);
    return 1;
}

/* core.password_bcrypt_verify(password, hash) -> boolean. hash must have the bcrypt shape (else
 * a ValidationError). $2a$ and $2y$ are computed as $2b$: for passwords under 256 bytes the three
 * are one algorithm (bcryptjs treats them so), except that libxcrypt's $2a$ adds a countermeasure
 * for the old $2x$ bug that bcryptjs does not have. The 56 characters after the prefix are
 * compared in constant time. */
static int l_password_bcrypt_verify(lua_State *L)
{
    size_t n, hn;
    const char *pw = password_checkpw(L, 1, &n);
    const char *h = luaL_checklstring(L, 2, &hn);
    if (!password_bcrypt_shape(h, hn))
        return core_raise(L, 400, "ValidationError", "not a bcrypt hash");
    struct crypt_data *cd = password_scratch(L);
    char setting[PASSWORD_BCRYPT_HEAD + 1];
    char out[PASSWORD_BCRYPT_LEN + 1];
    memcpy(setting, h, PASSWORD_BCRYPT_HEAD);
    setting[2] = 'b';
    setting[PASSWORD_BCRYPT_HEAD] = '\0';
    errno = 0;
    if (password_bcrypt(cd, pw, n, setting, out) != 0)
        return core_raise(L, 500, "CryptoError", "bcrypt: %s", strerror(errno));
    int same = CRYPTO_memcmp(out + 4, h + 4, PASSWORD_BCRYPT_LEN - 4) == 0;
    OPENSSL_cleanse(out, sizeof out);
    lua_pushboolean(L, same);
    return 1;
}

static uint32_t password_checku32(lua_State *L, int idx, lua_Integer lo, lua_Integer hi)
{
    lua_Integer v = luaL_checkinteger(L, idx);
    if (v < lo || v > hi)
        luaL_argerror(L, idx, lua_pushfstring(L, "out of range %d .. %d", (int)lo, (int)hi));
    return (uint32_t)v;
}

/* core.password_argon2id_hash(password, iterations, memory_kib, parallelism) -> the PHC string
 * "$argon2id$v=19$m=<kib>,t=<iterations>,p=<lanes>$<salt>$<tag>" (unpadded base64), with a
 * 16-byte salt from OpenSSL's RAND_bytes and a 32-byte tag. libargon2 runs one thread per lane.
 * Its error text is static, so raising with it frees nothing. */
static int l_password_argon2id_hash(lua_State *L)
{
    size_t n;
    const char *pw = password_checkpw(L, 1, &n);
    uint32_t t = password_checku32(L, 2, 1, 0x7fffffff);
    uint32_t m = password_checku32(L, 3, 8, 0x7fffffff);
    uint32_t p = password_checku32(L, 4, 1, 0xffffff);
    luaL_argcheck(L, n <= ARGON2_MAX_PWD_LENGTH, 1, "password too long");
    unsigned char salt[PASSWORD_SALT];
    char encoded[PASSWORD_ENCODED];
    if (RAND_bytes(salt, sizeof salt) != 1)
        return core_raise(L, 500, "CryptoError", "RAND_bytes failed");
    int rc = argon2id_hash_encoded(t, m, p, pw, n, salt, sizeof salt, PASSWORD_TAG, encoded,
                                   sizeof encoded);
    OPENSSL_cleanse(salt, sizeof salt);
    if (rc != ARGON2_OK)
        return core_raise(L, rc == ARGON2_MEMORY_ALLOCATION_ERROR ? 500 : 400,
                          rc == ARGON2_MEMORY_ALLOCATION_ERROR ? "CryptoError" : "ValidationError",
                          "argon2id: %s", argon2_error_message(rc));
    lua_pushstring(L, encoded);
    return 1;
}

/* core.password_argon2id_verify(password, encoded) -> boolean: libargon2 decodes the PHC string,
 * recomputes the tag and compares it in constant time. A string it cannot decode (or whose
 * parameters it refuses) is a ValidationError; running out of memory is a CryptoError. */
static int l_password_argon2id_verify(lua_State *L)
{
    size_t n, hn;
    const char *pw = password_checkpw(L, 1, &n);
    const char *h = luaL_checklstring(L, 2, &hn);
    luaL_argcheck(L, n <= ARGON2_MAX_PWD_LENGTH, 1, "password too long");
    if (memchr(h, '\0', hn) != NULL)
        return core_raise(L, 400, "ValidationError", "not an argon2id hash");
    int rc = argon2id_verify(h, pw, n);
    if (rc == ARGON2_OK || rc == ARGON2_VERIFY_MISMATCH) {
        lua_pushboolean(L, rc == ARGON2_OK);
        return 1;
    }
    if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
        return core_raise(L, 500, "CryptoError", "argon2id: %s", argon2_error_message(rc));
    return core_raise(L, 400, "ValidationError", "not an argon2id hash (%s)",
                      argon2_error_message(rc));
}

void l_password_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"password_bcrypt_hash", l_password_bcrypt_hash},
        {"password_bcrypt_verify", l_password_bcrypt_verify},
        {"password_argon2id_hash", l_password_argon2id_hash},
        {"password_argon2id_verify", l_password_argon2id_verify},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
}
