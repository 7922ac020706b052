/* Unicode lower-casing with exactly the result of JavaScript's String.prototype.toLowerCase, which
 * AuthHero applies to emails (contract §2.4). V8 lower-cases through ICU's u_strToLower with the
 * root locale; so does this file: full mappings from SpecialCasing.txt (U+0130 'İ' becomes two
 * code points, "i" + U+0307) and the context-dependent final sigma (U+03A3 becomes U+03C2 at the
 * end of a word). ASCII-only input never reaches ICU. Invalid UTF-8 is a ValidationError (400). */
#include <unicode/uchar.h>
#include <unicode/ustring.h>
#include <unicode/uversion.h>

#include "marshal.h"

/* Index (0-based) of the first byte of s that does not start valid UTF-8, or n when it is all
 * valid. *ascii is set when every byte is below 0x80. */
static size_t utf8_check(const unsigned char *s, size_t n, int *ascii)
{
    size_t i = 0;
    *ascii = 1;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        *ascii = 0;
        int len = marshal_utf8_len(s + i, s + n);
        if (len == 0)
            return i;
        i += (size_t)len;
    }
    return n;
}

/* UTF-8 (valid) -> UTF-16 into out (room for n units: never more units than bytes). */
static int32_t to_utf16(const unsigned char *s, size_t n, UChar *out)
{
    int32_t k = 0;
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c < 0xE0) {
            c = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
            i += 2;
        } else if (c < 0xF0) {
            c = ((c & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
            i += 3;
        } else {
            c = ((c & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
                ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
            i += 4;
        }
        if (c >= 0x10000) {
            out[k++] = (UChar)(0xD7C0 + (c >> 10));
            out[k++] = (UChar)(0xDC00 | (c & 0x3FF));
        } else {
            out[k++] = (UChar)c;
        }
    }
    return k;
}

/* UTF-16 (well formed: it came from valid UTF-8 through ICU) -> UTF-8 into b. */
static void from_utf16(lua_State *L, struct buf *b, const UChar *u, int32_t n)
{
    buf_reserve(L, b, (size_t)n * 3);
    unsigned char *o = (unsigned char *)b->p + b->len;
    for (int32_t i = 0; i < n; i++) {
        uint32_t c = u[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < n && u[i + 1] >= 0xDC00 && u[i + 1] <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (u[i + 1] - 0xDC00u);
            i++;
        }
        if (c < 0x80) {
            *o++ = (unsigned char)c;
        } else if (c < 0x800) {
            *o++ = (unsigned char)(0xC0 | (c >> 6));
            *o++ = (unsigned char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            *o++ = (unsigned char)(0xE0 | (c >> 12));
            *o++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            *o++ = (unsigned char)(0x80 | (c & 0x3F));
        } else {
            *o++ = (unsigned char)(0xF0 | (c >> 18));
            *o++ = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
            *o++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            *o++ = (unsigned char)(0x80 | (c & 0x3F));
        }
    }
    b->len = (size_t)((char *)o - b->p);
}

/* core.lower(s [, name]) -> s lower-cased as JavaScript's toLowerCase does. Raises a
 * ValidationError (400) naming `name` (default "string") when s is not valid UTF-8. */
static int l_lower(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    const char *name = luaL_optstring(L, 2, "string");
    int ascii;
    size_t bad = utf8_check(s, n, &ascii);
    if (bad < n)
        return core_raise(L, 400, "ValidationError", "%s is not valid UTF-8 (byte %d)", name,
                          (int)bad + 1);
    if (ascii) {
        size_t i = 0;
        while (i < n && !(s[i] >= 'A' && s[i] <= 'Z'))
            i++;
        if (i == n) {
            lua_settop(L, 1);
            return 1; /* nothing to change: the same string */
        }
        char small[256];
        char *o = n <= sizeof small ? small : lua_newuserdata(L, n);
        for (i = 0; i < n; i++)
            o[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
        lua_pushlstring(L, o, n);
        return 1;
    }
    if (n > (size_t)INT32_MAX / 3)
        return core_raise(L, 400, "ValidationError", "%s is too long to lower-case", name);
    /* scratch, freed by the GC even when ICU fails and we raise: source units, then the result
     * (full case mappings grow a string at most threefold) */
    int32_t cap = (int32_t)n * 3;
    UChar *src = lua_newuserdata(L, sizeof(UChar) * ((size_t)n + (size_t)cap));
    UChar *dst = src + n;
    int32_t len16 = to_utf16(s, n, src);
    UErrorCode err = U_ZERO_ERROR;
    int32_t out = u_strToLower(dst, cap, src, len16, "", &err);
    if (U_FAILURE(err))
        return core_raise(L, 0, "UnicodeError", "u_strToLower failed: %s", u_errorName(err));
    struct buf *b = core_newbuf(L);
    from_utf16(L, b, dst, out);
    lua_pushlstring(L, b->p, b->len);
    return 1;
}

/* core.unicode_version() -> the Unicode version of the linked ICU, e.g. "15.0". */
static int l_unicode_version(lua_State *L)
{
    UVersionInfo v;
    char text[U_MAX_VERSION_STRING_LENGTH];
    u_getUnicodeVersion(v);
    u_versionToString(v, text);
    lua_pushstring(L, text);
    return 1;
}

/* core.unicode_assigned(cp) -> true when the linked ICU's Unicode assigns code point cp (specs
 * compare with node over the code points both assign). */
static int l_unicode_assigned(lua_State *L)
{
    lua_Integer cp = luaL_checkinteger(L, 1);
    luaL_argcheck(L, cp >= 0 && cp <= 0x10FFFF, 1, "code point out of range");
    lua_pushboolean(L, u_charType((UChar32)cp) != U_UNASSIGNED);
    return 1;
}

void l_unicode_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"lower", l_lower},
        {"unicode_version", l_unicode_version},
        {"unicode_assigned", l_unicode_assigned},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
}
