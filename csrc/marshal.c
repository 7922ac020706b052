/* Lua values -> DynamoDB JSON text in one pass (no intermediate tables), plus what the decoder
 * shares: error paths, number text, base64, UTF-8 checks. Whole request bodies are plain JSON
 * except the fields that hold items, keys and expression values, which are written as
 * AttributeValues. Deliberately not here: choosing operations, retries, HTTP. */
#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "marshal.h"

/* ---- shared helpers ------------------------------------------------------------------------ */

int l_marshal_fail(lua_State *L, int status, const struct marshal_path *p, const char *fmt, ...)
{
    const struct marshal_path *steps[MARSHAL_MAX_DEPTH + MARSHAL_MAX_PLAIN_DEPTH + 4];
    int n = 0;
    for (; p != NULL && n < (int)(sizeof steps / sizeof steps[0]); p = p->up)
        steps[n++] = p;
    luaL_Buffer lb;
    luaL_buffinit(L, &lb);
    for (int i = n - 1; i >= 0; i--) {
        if (steps[i]->key != NULL) {
            if (i != n - 1)
                luaL_addchar(&lb, '.');
            luaL_addlstring(&lb, steps[i]->key, steps[i]->klen > 200 ? 200 : steps[i]->klen);
        } else {
            char num[32];
            snprintf(num, sizeof num, "[%lld]", steps[i]->idx);
            luaL_addstring(&lb, num);
        }
    }
    luaL_pushresult(&lb); /* stack: path */
    va_list ap;
    va_start(ap, fmt);
    const char *what = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    const char *path = lua_tostring(L, -2);
    const char *msg = n > 0 ? lua_pushfstring(L, "%s: %s", path, what) : what;
    core_pusherror(L, status, "MarshalError", msg);
    lua_pushvalue(L, n > 0 ? -4 : -3);
    lua_setfield(L, -2, "path");
    return lua_error(L);
}

size_t marshal_fmt_int(char *out, long long v)
{
    char tmp[24];
    size_t n = 0, len = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        out[len++] = '-';
    while (n > 0)
        out[len++] = tmp[--n];
    return len;
}

/* The locale may use ',' as decimal point (snprintf/strtod follow LC_NUMERIC); the wire wants '.'.
 */
static char marshal_decimal_point(void)
{
    const char *dp = localeconv()->decimal_point;
    return dp != NULL && dp[0] != '\0' ? dp[0] : '.';
}

size_t marshal_fmt_double(char *out, double d)
{
    if (d == floor(d) && d > -9.2e18 && d < 9.2e18)
        return marshal_fmt_int(out, (long long)d);
    char tmp[40];
    int len = 0;
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (prec == 17 || strtod(tmp, NULL) == d)
            break;
    }
    char dp = marshal_decimal_point();
    for (int i = 0; i < len; i++)
        out[i] = tmp[i] == dp ? '.' : tmp[i];
    return (size_t)len;
}

/* Splits decimal text into sign, significant digits (no leading/trailing zeros) and the power of
 * ten of the last digit kept: value = sign * digits * 10^exp. Returns -1 on a syntax error. */
struct decimal {
    int neg;
    const char *dig[2]; /* digits live in at most two runs: before and after '.' */
    size_t dlen[2];
    size_t ndig;
    long exp;
};

static int marshal_parse_decimal(const char *s, size_t n, char *digits, size_t cap,
                                 struct decimal *out)
{
    size_t i = 0, nd = 0;
    long exp = 0;
    int seen_digit = 0, seen_dot = 0;
    out->neg = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        out->neg = s[i++] == '-';
    for (; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            seen_digit = 1;
            if (nd == 0 && c == '0') {
                if (seen_dot)
                    exp--;
                continue;
            }
            if (nd >= cap)
                return -2; /* too many significant digits for the caller's buffer */
            digits[nd++] = c;
            if (seen_dot)
                exp--;
        } else if (c == '.' && !seen_dot) {
            seen_dot = 1;
        } else {
            break;
        }
    }
    if (!seen_digit)
        return -1;
    if (i < n) {
        if (s[i] != 'e' && s[i] != 'E')
            return -1;
        i++;
        int eneg = 0;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            eneg = s[i++] == '-';
        if (i >= n)
            return -1;
        long e = 0;
        for (; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            if (e < 100000)
                e = e * 10 + (s[i] - '0');
        }
        exp += eneg ? -e : e;
    }
    while (nd > 0 && digits[nd - 1] == '0') {
        nd--;
        exp++;
    }
    out->ndig = nd;
    out->exp = nd == 0 ? 0 : exp;
    if (nd == 0)
        out->neg = 0;
    return 0;
}

int l_marshal_push_number(lua_State *L, const char *s, size_t n)
{
    char digits[48], digits2[48];
    struct decimal a, b;
    int r = marshal_parse_decimal(s, n, digits, sizeof digits, &a);
    if (r == -1)
        return -1;
    if (r == -2) { /* more significant digits than any double or integer holds */
        lua_pushlstring(L, s, n);
        return 0;
    }
    if (a.ndig == 0) {
        lua_pushinteger(L, 0);
        return 0;
    }
    /* integral and within range: an integer (LuaJIT: a double that holds it exactly) */
    if (a.exp >= 0 && (long)a.ndig + a.exp <= 19) {
        unsigned long long u = 0;
        int ok = 1;
        for (size_t i = 0; i < a.ndig + (size_t)a.exp; i++) {
            unsigned d = i < a.ndig ? (unsigned)(digits[i] - '0') : 0;
            if (u > (ULLONG_MAX - d) / 10) {
                ok = 0;
                break;
            }
            u = u * 10 + d;
        }
#if COMPAT_DOUBLES
        if (ok && u <= (1ULL << 53)) {
            lua_pushnumber(L, a.neg ? -(double)u : (double)u);
            return 0;
        }
#else
        if (ok && (u <= (unsigned long long)LLONG_MAX ||
                   (a.neg && u == (unsigned long long)LLONG_MAX + 1))) {
            lua_pushinteger(L, a.neg ? (lua_Integer)(0ULL - u) : (lua_Integer)u);
            return 0;
        }
#endif
    }
    /* otherwise a float, if the nearest double's shortest text is the same decimal */
    char tmp[128];
    if (n < sizeof tmp) {
        char dp = marshal_decimal_point();
        for (size_t i = 0; i < n; i++)
            tmp[i] = s[i] == '.' ? dp : s[i];
        tmp[n] = '\0';
        double d = strtod(tmp, NULL);
        if (isfinite(d)) {
            char shortest[40];
            size_t sl = marshal_fmt_double(shortest, d);
            if (marshal_parse_decimal(shortest, sl, digits2, sizeof digits2, &b) == 0 &&
                b.neg == a.neg && b.ndig == a.ndig && b.exp == a.exp &&
                memcmp(digits, digits2, a.ndig) == 0) {
                lua_pushnumber(L, d);
                return 0;
            }
        }
    }
    lua_pushlstring(L, s, n); /* a double cannot hold it: keep the exact text */
    return 0;
}

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void marshal_b64_encode(lua_State *L, struct buf *b, const unsigned char *s, size_t n)
{
    buf_reserve(L, b, (n + 2) / 3 * 4);
    char *o = b->p + b->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        *o++ = b64_chars[v >> 18];
        *o++ = b64_chars[(v >> 12) & 63];
        *o++ = b64_chars[(v >> 6) & 63];
        *o++ = b64_chars[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
        *o++ = b64_chars[v >> 18];
        *o++ = b64_chars[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->p);
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long marshal_b64_decode(unsigned char *out, const char *s, size_t n)
{
    if (n % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
            } else {
                v[j] = b64_value(s[i + j]);
                if (v[j] < 0 || pad > 0)
                    return -1;
            }
        }
        unsigned w =
            (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        out[o++] = (unsigned char)(w >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(w >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)w;
    }
    return (long)o;
}

int marshal_utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    if (c < 0xC2 || c > 0xF4)
        return 0; /* continuation byte, overlong 2-byte lead, or beyond U+10FFFF */
    if (c < 0xE0)
        return end - s >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (end - s < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F))
            return 0; /* overlong, or a UTF-16 surrogate */
        return 3;
    }
    if (end - s < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
        return 0;
    if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return 4;
}

/* ---- encoder --------------------------------------------------------------------------------- */

/* Upvalues of every encoding function. */
#define UV_BUF    lua_upvalueindex(1)
#define UV_ARRAY  lua_upvalueindex(2)
#define UV_SET    lua_upvalueindex(3)
#define UV_BINARY lua_upvalueindex(4)

enum kind { K_MAP, K_LIST, K_SET, K_BINARY };

struct enc {
    lua_State *L;
    struct buf *b;
    int plain; /* 1: JSON only, no field holds AttributeValues (core.json_encode) */
    int nseen;
    const void *seen[MARSHAL_MAX_DEPTH + MARSHAL_MAX_PLAIN_DEPTH + 2];
};

/* 0: copy as is; 1: escape as \uXXXX or a short escape; 2: a UTF-8 lead/continuation byte. */
static const unsigned char enc_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* Writes s as a JSON string literal; raises on invalid UTF-8. */
static void enc_string(struct enc *e, const char *str, size_t n, const struct marshal_path *p)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str, *end = s + n;
    struct buf *b = e->b;
    buf_reserve(e->L, b, n + 2);
    b->p[b->len++] = '"';
    while (s < end) {
        const unsigned char *run = s;
        while (s < end && enc_class[*s] == 0)
            s++;
        if (s > run) {
            memcpy(b->p + b->len, run, (size_t)(s - run));
            b->len += (size_t)(s - run);
        }
        if (s == end)
            break;
        if (enc_class[*s] == 2) {
            int len = marshal_utf8_len(s, end);
            if (len == 0)
                l_marshal_fail(e->L, 400, p, "invalid UTF-8 in string at byte %d",
                               (int)(s - (const unsigned char *)str) + 1);
            memcpy(b->p + b->len, s, (size_t)len);
            b->len += (size_t)len;
            s += len;
            continue;
        }
        buf_reserve(e->L, b, 6 + (size_t)(end - s) + 1);
        char *o = b->p + b->len;
        *o++ = '\\';
        switch (*s) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[*s >> 4];
            *o++ = hex[*s & 15];
        }
        b->len = (size_t)(o - b->p);
        s++;
    }
    buf_reserve(e->L, b, 1);
    b->p[b->len++] = '"';
}

/* Writes the number at idx as decimal text (no quotes); raises on NaN/inf. */
static void enc_number_text(struct enc *e, int idx, const struct marshal_path *p)
{
    char tmp[40];
    size_t n;
    buf_reserve(e->L, e->b, sizeof tmp);
#if !COMPAT_DOUBLES
    if (lua_isinteger(e->L, idx)) {
        n = marshal_fmt_int(tmp, (long long)lua_tointeger(e->L, idx));
    } else
#endif
    {
        double d = (double)lua_tonumber(e->L, idx);
        if (!isfinite(d))
            l_marshal_fail(e->L, 400, p, "number is not finite (NaN or infinity)");
        n = marshal_fmt_double(tmp, d);
    }
    memcpy(e->b->p + e->b->len, tmp, n);
    e->b->len += n;
}

/* Is the metatable at the top of the stack cjson's array_mt (openresty's lua-cjson)? Pops it. */
static int enc_is_cjson_array_mt(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, "cjson");
    int yes = 0;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "array_mt");
        yes = lua_rawequal(L, -1, -4);
        lua_pop(L, 1);
    }
    lua_pop(L, 3);
    return yes;
}

/* Is the lightuserdata at idx cjson.empty_array? */
static int enc_is_cjson_empty_array(lua_State *L, int idx)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, "cjson");
    int yes = 0;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "empty_array");
        yes = lua_rawequal(L, -1, idx);
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return yes;
}

/* Decides how the table at idx (absolute) is written. A table without a marker is a map when its
 * keys are strings (or it is empty) and a list when its keys are exactly 1..n. */
static enum kind enc_kind(struct enc *e, int idx, const struct marshal_path *p)
{
    lua_State *L = e->L;
    if (lua_getmetatable(L, idx)) {
        enum kind k = K_MAP;
        int known = 1;
        if (lua_rawequal(L, -1, UV_ARRAY))
            k = K_LIST;
        else if (lua_rawequal(L, -1, UV_SET))
            k = K_SET;
        else if (lua_rawequal(L, -1, UV_BINARY))
            k = K_BINARY;
        else
            known = 0;
        if (known) {
            lua_pop(L, 1);
            return k;
        }
        if (enc_is_cjson_array_mt(L))
            return K_LIST;
    }
    lua_pushnil(L);
    if (!lua_next(L, idx))
        return K_MAP;
    int t = lua_type(L, -2);
    lua_pop(L, 2);
    if (t == LUA_TSTRING)
        return K_MAP; /* every key is checked while the map is written */
    if (t == LUA_TNUMBER) {
        size_t n = lua_rawlen(L, idx), count = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            count++;
            if (lua_type(L, -1) != LUA_TNUMBER || !lua_isinteger(L, -1) ||
                lua_tonumber(L, -1) < 1 || lua_tonumber(L, -1) > (lua_Number)n) {
                lua_pop(L, 1);
                count = (size_t)-1;
                break;
            }
        }
        if (count == n)
            return K_LIST;
    }
    return (enum kind)l_marshal_fail(L, 400, p,
                                     "table keys must all be strings (a map) or 1..n (a list)");
}

static void enc_enter(struct enc *e, int idx, int depth, int max, const struct marshal_path *p)
{
    const void *t = lua_topointer(e->L, idx);
    if (depth > max)
        l_marshal_fail(e->L, 400, p, "nesting deeper than %d levels", max);
    for (int i = 0; i < e->nseen; i++)
        if (e->seen[i] == t)
            l_marshal_fail(e->L, 400, p, "cycle: a table contains itself");
    if (!lua_checkstack(e->L, 8))
        luaL_error(e->L, "stack overflow");
    e->seen[e->nseen++] = t;
}

/* Writes one value; depth is the value's own level, p names it (p->key for a map's field). */
typedef void (*enc_fn)(struct enc *e, int idx, int depth, const struct marshal_path *p);

static void enc_av(struct enc *e, int idx, int depth, const struct marshal_path *p);

/* Writes the string-keyed table at idx as {"name":<value>,...}; `what` names the keys in errors. */
static inline void enc_map(struct enc *e, int idx, int depth, const struct marshal_path *p,
                           const char *what, enc_fn value)
{
    lua_State *L = e->L;
    int first = 1;
    buf_putc(L, e->b, '{');
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            l_marshal_fail(L, 400, p, "%s is a %s, not a string", what, luaL_typename(L, -2));
        struct marshal_path step = {p, NULL, 0, 0};
        step.key = lua_tolstring(L, -2, &step.klen);
        if (!first)
            buf_putc(L, e->b, ',');
        first = 0;
        enc_string(e, step.key, step.klen, &step);
        buf_putc(L, e->b, ':');
        value(e, lua_gettop(L), depth + 1, &step);
        lua_pop(L, 1);
    }
    buf_putc(L, e->b, '}');
}

/* Writes elements 1..#t of the table at idx as [<value>,...]. */
static inline void enc_list(struct enc *e, int idx, int depth, const struct marshal_path *p,
                            enc_fn value)
{
    lua_State *L = e->L;
    size_t n = lua_rawlen(L, idx);
    buf_putc(L, e->b, '[');
    for (size_t i = 1; i <= n; i++) {
        struct marshal_path step = {p, NULL, 0, (long long)i};
        if (i > 1)
            buf_putc(L, e->b, ',');
        lua_rawgeti(L, idx, (lua_Integer)i);
        value(e, lua_gettop(L), depth + 1, &step);
        lua_pop(L, 1);
    }
    buf_putc(L, e->b, ']');
}

/* Writes the string, number, boolean or null at idx: as an AttributeValue when av, else as plain
 * JSON. Returns 0, writing nothing, when the value is none of these. */
static inline int enc_scalar(struct enc *e, int idx, int av, const struct marshal_path *p)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (av)
            BUF_LIT(L, e->b, "{\"S\":");
        enc_string(e, s, n, p);
        if (av)
            buf_putc(L, e->b, '}');
        return 1;
    }
    case LUA_TNUMBER:
        if (av)
            BUF_LIT(L, e->b, "{\"N\":\"");
        enc_number_text(e, idx, p);
        if (av)
            BUF_LIT(L, e->b, "\"}");
        return 1;
    case LUA_TBOOLEAN:
        if (av)
            BUF_LIT(L, e->b, "{\"BOOL\":");
        if (lua_toboolean(L, idx))
            BUF_LIT(L, e->b, "true");
        else
            BUF_LIT(L, e->b, "false");
        if (av)
            buf_putc(L, e->b, '}');
        return 1;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            if (av)
                BUF_LIT(L, e->b, "{\"NULL\":true}");
            else
                BUF_LIT(L, e->b, "null");
            return 1;
        }
        if (enc_is_cjson_empty_array(L, idx)) {
            if (av)
                BUF_LIT(L, e->b, "{\"L\":[]}");
            else
                BUF_LIT(L, e->b, "[]");
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}

static void enc_binary_value(struct enc *e, int idx, const struct marshal_path *p)
{
    size_t n;
    lua_getfield(e->L, idx, "data");
    const char *s = lua_tolstring(e->L, -1, &n);
    if (lua_type(e->L, -1) != LUA_TSTRING)
        l_marshal_fail(e->L, 400, p, "binary value has no string 'data'");
    buf_putc(e->L, e->b, '"');
    marshal_b64_encode(e->L, e->b, (const unsigned char *)s, n);
    buf_putc(e->L, e->b, '"');
    lua_pop(e->L, 1);
}

static int enc_is_binary(struct enc *e, int idx)
{
    if (lua_type(e->L, idx) != LUA_TTABLE || !lua_getmetatable(e->L, idx))
        return 0;
    int yes = lua_rawequal(e->L, -1, UV_BINARY);
    lua_pop(e->L, 1);
    return yes;
}

/* SS, NS or BS by the elements, which must all be of one kind. */
static void enc_set(struct enc *e, int idx, const struct marshal_path *p)
{
    lua_State *L = e->L;
    size_t n = lua_rawlen(L, idx);
    if (n == 0)
        l_marshal_fail(L, 400, p, "empty set (DynamoDB has no empty sets)");
    lua_rawgeti(L, idx, 1);
    int t = lua_type(L, -1);
    int bin = enc_is_binary(e, lua_gettop(L));
    lua_pop(L, 1);
    if (t == LUA_TSTRING)
        BUF_LIT(L, e->b, "{\"SS\":[");
    else if (t == LUA_TNUMBER)
        BUF_LIT(L, e->b, "{\"NS\":[");
    else if (bin)
        BUF_LIT(L, e->b, "{\"BS\":[");
    else
        l_marshal_fail(L, 400, p, "set element is a %s (sets hold strings, numbers or binary)",
                       luaL_typename(L, -1));
    for (size_t i = 1; i <= n; i++) {
        struct marshal_path step = {p, NULL, 0, (long long)i};
        lua_rawgeti(L, idx, (lua_Integer)i);
        int ti = lua_type(L, -1);
        if (ti != t || (bin && !enc_is_binary(e, lua_gettop(L))))
            l_marshal_fail(L, 400, &step, "mixed set: elements must all be of one type");
        if (i > 1)
            buf_putc(L, e->b, ',');
        if (t == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            enc_string(e, s, len, &step);
        } else if (t == LUA_TNUMBER) {
            buf_putc(L, e->b, '"');
            enc_number_text(e, lua_gettop(L), &step);
            buf_putc(L, e->b, '"');
        } else {
            enc_binary_value(e, lua_gettop(L), &step);
        }
        lua_pop(L, 1);
    }
    BUF_LIT(L, e->b, "]}");
}

/* Writes the value at idx (absolute) as an AttributeValue. depth: 1 for an item's attribute. */
static void enc_av(struct enc *e, int idx, int depth, const struct marshal_path *p)
{
    lua_State *L = e->L;
    if (enc_scalar(e, idx, 1, p))
        return;
    if (lua_type(L, idx) != LUA_TTABLE)
        l_marshal_fail(L, 400, p, "cannot marshal a %s", luaL_typename(L, idx));
    enc_enter(e, idx, depth, MARSHAL_MAX_DEPTH, p);
    switch (enc_kind(e, idx, p)) {
    case K_MAP:
        BUF_LIT(L, e->b, "{\"M\":");
        enc_map(e, idx, depth, p, "attribute name", enc_av);
        buf_putc(L, e->b, '}');
        break;
    case K_LIST:
        BUF_LIT(L, e->b, "{\"L\":");
        enc_list(e, idx, depth, p, enc_av);
        buf_putc(L, e->b, '}');
        break;
    case K_SET:
        enc_set(e, idx, p);
        break;
    case K_BINARY:
        BUF_LIT(L, e->b, "{\"B\":");
        enc_binary_value(e, idx, p);
        buf_putc(L, e->b, '}');
        break;
    }
    e->nseen--;
}

/* An item, a key or ExpressionAttributeValues: a map of names to AttributeValues (depth unused:
 * an item starts the attribute levels afresh). */
static void enc_item(struct enc *e, int idx, int depth, const struct marshal_path *p)
{
    (void)depth;
    if (lua_type(e->L, idx) != LUA_TTABLE)
        l_marshal_fail(e->L, 400, p, "expected a table of attributes, got a %s",
                       luaL_typename(e->L, idx));
    enc_enter(e, idx, 0, MARSHAL_MAX_DEPTH, p);
    if (enc_kind(e, idx, p) != K_MAP)
        l_marshal_fail(e->L, 400, p, "expected a table of attributes (string keys), got a list");
    enc_map(e, idx, 0, p, "attribute name", enc_av);
    e->nseen--;
}

int marshal_field_kind(const char *k, size_t n)
{
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(k, lit, n) == 0)
    switch (n) {
    case 3:
        return IS("Key") ? 1 : 0;
    case 4:
        return IS("Item") ? 1 : IS("Keys") ? 2 : 0;
    case 5:
        return IS("Items") ? 2 : 0;
    case 8: /* a DynamoDB Streams record's images */
        return IS("NewImage") || IS("OldImage") ? 1 : 0;
    case 9:
        return IS("Responses") ? 3 : 0;
    case 10:
        return IS("Attributes") ? 1 : 0;
    case 16:
        return IS("LastEvaluatedKey") ? 1 : 0;
    case 17:
        return IS("ExclusiveStartKey") ? 1 : 0;
    case 25:
        return IS("ExpressionAttributeValues") ? 1 : 0;
    default:
        return 0;
    }
#undef IS
}

static void enc_plain(struct enc *e, int idx, int depth, const struct marshal_path *p);

/* A request field: AttributeValues under the names marshal_field_kind gives, else plain JSON. */
static void enc_plain_field(struct enc *e, int idx, int depth, const struct marshal_path *p)
{
    switch (e->plain ? 0 : marshal_field_kind(p->key, p->klen)) {
    case 1:
        enc_item(e, idx, depth, p);
        return;
    case 2: /* a list of items (Keys in BatchGetItem); a map is one item (a stream record's Keys,
             * as decode_reply reads it back) */
        if (lua_type(e->L, idx) != LUA_TTABLE)
            l_marshal_fail(e->L, 400, p, "expected a list of items, got a %s",
                           luaL_typename(e->L, idx));
        lua_pushnil(e->L);
        if (lua_next(e->L, idx)) {
            int named = lua_type(e->L, -2) == LUA_TSTRING;
            lua_pop(e->L, 2);
            if (named) {
                enc_item(e, idx, depth, p);
                return;
            }
        }
        enc_list(e, idx, depth, p, enc_item);
        return;
    default:
        enc_plain(e, idx, depth, p);
    }
}

/* Plain JSON, switching to AttributeValues under the fields marshal_field_kind names. */
static void enc_plain(struct enc *e, int idx, int depth, const struct marshal_path *p)
{
    lua_State *L = e->L;
    if (enc_scalar(e, idx, 0, p))
        return;
    if (lua_type(L, idx) != LUA_TTABLE)
        l_marshal_fail(L, 400, p, "cannot encode a %s", luaL_typename(L, idx));
    enc_enter(e, idx, depth, MARSHAL_MAX_PLAIN_DEPTH, p);
    switch (enc_kind(e, idx, p)) {
    case K_LIST:
        enc_list(e, idx, depth, p, enc_plain);
        break;
    case K_MAP:
        enc_map(e, idx, depth, p, "field name", enc_plain_field);
        break;
    default:
        l_marshal_fail(L, 400, p, "sets and binary values belong inside items");
    }
    e->nseen--;
}

/* ---- item size as DynamoDB measures it ------------------------------------------------------ */

/* The rules of AWS's "DynamoDB item sizes and formats" (developerguide/CapacityUnitCalculations),
 * applied to each value as enc_av types it, so that the 400 KB limit is checked the way DynamoDB
 * checks it and not by the length of the JSON text (where every '"' costs two bytes):
 *   - an attribute name, and a map key: its UTF-8 bytes;
 *   - S: its UTF-8 bytes; B: its raw bytes (not the base64 text);
 *   - N: "approximately 1 byte per two significant digits, plus 1 byte"; exactly (measured on
 *     DynamoDB Local 1.25, which agrees with the page on everything else here): the digits are
 *     grouped in pairs aligned on the decimal point (base 100), 1 byte per pair from the first
 *     significant digit to the last, plus 1, plus 1 more for a negative number; 0 is 1 byte
 *     (so 12 is 2 bytes, 1.5 and 123 are 3, -1 is 3);
 *   - BOOL and NULL: 1 byte;
 *   - L and M: 3 bytes, plus 1 byte per element, plus the elements (and a map's keys);
 *   - SS, NS, BS: the sum of their elements (no overhead; also what DynamoDB Local measures). */

static long floor_half(long v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

/* Size of the number at idx, from the text enc_number_text would write. */
static size_t sz_number(lua_State *L, int idx, const struct marshal_path *p)
{
    char tmp[40];
    size_t n;
#if !COMPAT_DOUBLES
    if (lua_isinteger(L, idx)) {
        n = marshal_fmt_int(tmp, (long long)lua_tointeger(L, idx));
    } else
#endif
    {
        double d = (double)lua_tonumber(L, idx);
        if (!isfinite(d))
            l_marshal_fail(L, 400, p, "number is not finite (NaN or infinity)");
        n = marshal_fmt_double(tmp, d);
    }
    tmp[n] = '\0'; /* the formatters write no terminator; strtol below reads the exponent */
    /* digit k of the mantissa (0-based, '.' skipped) stands for 10^(intlen - 1 - k + exp) */
    long intlen = 0, k = 0, first = -1, last = -1, exp = 0;
    int neg = 0, dot = 0;
    size_t i = 0;
    if (i < n && (tmp[i] == '-' || tmp[i] == '+'))
        neg = tmp[i++] == '-';
    for (; i < n && tmp[i] != 'e' && tmp[i] != 'E'; i++) {
        if (tmp[i] == '.') {
            dot = 1;
            continue;
        }
        if (tmp[i] != '0') {
            if (first < 0)
                first = k;
            last = k;
        }
        if (!dot)
            intlen++;
        k++;
    }
    if (i < n)
        exp = strtol(tmp + i + 1, NULL, 10);
    if (first < 0)
        return 1; /* zero */
    long hi = intlen - 1 - first + exp, lo = intlen - 1 - last + exp;
    return (size_t)(floor_half(hi) - floor_half(lo) + 1) + 1 + (neg ? 1 : 0);
}

/* Size of the value at idx (absolute), typed as enc_av would type it. */
static size_t sz_av(struct enc *e, int idx, int depth, const struct marshal_path *p)
{
    lua_State *L = e->L;
    size_t n = 0;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        lua_tolstring(L, idx, &n);
        return n;
    case LUA_TNUMBER:
        return sz_number(L, idx, p);
    case LUA_TBOOLEAN:
        return 1;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)
            return 1; /* NULL */
        if (enc_is_cjson_empty_array(L, idx))
            return 3; /* an empty L */
        break;
    case LUA_TTABLE:
        break;
    default:
        break;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        l_marshal_fail(L, 400, p, "cannot marshal a %s", luaL_typename(L, idx));
    enc_enter(e, idx, depth, MARSHAL_MAX_DEPTH, p);
    switch (enc_kind(e, idx, p)) {
    case K_MAP:
        n = 3;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                l_marshal_fail(L, 400, p, "attribute name is a %s, not a string",
                               luaL_typename(L, -2));
            struct marshal_path step = {p, NULL, 0, 0};
            step.key = lua_tolstring(L, -2, &step.klen);
            n += step.klen + 1 + sz_av(e, lua_gettop(L), depth + 1, &step);
            lua_pop(L, 1);
        }
        break;
    case K_LIST: {
        size_t len = lua_rawlen(L, idx);
        n = 3;
        for (size_t i = 1; i <= len; i++) {
            struct marshal_path step = {p, NULL, 0, (long long)i};
            lua_rawgeti(L, idx, (lua_Integer)i);
            n += 1 + sz_av(e, lua_gettop(L), depth + 1, &step);
            lua_pop(L, 1);
        }
        break;
    }
    case K_SET: {
        size_t len = lua_rawlen(L, idx);
        if (len == 0)
            l_marshal_fail(L, 400, p, "empty set (DynamoDB has no empty sets)");
        for (size_t i = 1; i <= len; i++) {
            struct marshal_path step = {p, NULL, 0, (long long)i};
            lua_rawgeti(L, idx, (lua_Integer)i);
            int t = lua_type(L, -1);
            if (t == LUA_TTABLE && !enc_is_binary(e, lua_gettop(L)))
                l_marshal_fail(L, 400, &step,
                               "set element is a table (sets hold strings, "
                               "numbers or binary)");
            n += sz_av(e, lua_gettop(L), depth + 1, &step);
            lua_pop(L, 1);
        }
        break;
    }
    case K_BINARY:
        lua_getfield(L, idx, "data");
        if (lua_type(L, -1) != LUA_TSTRING)
            l_marshal_fail(L, 400, p, "binary value has no string 'data'");
        lua_tolstring(L, -1, &n);
        lua_pop(L, 1);
        break;
    }
    e->nseen--;
    return n;
}

/* core.item_size(item) -> the item's size in bytes as DynamoDB measures it (see above). Raises
 * a MarshalError (400) for what marshal_item would refuse to type (cycles, mixed keys, ...). */
static int l_item_size(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    struct enc e;
    e.L = L;
    e.b = NULL;
    e.plain = 0;
    e.nseen = 0;
    enc_enter(&e, 1, 0, MARSHAL_MAX_DEPTH, NULL);
    if (enc_kind(&e, 1, NULL) != K_MAP)
        l_marshal_fail(L, 400, NULL, "expected a table of attributes (string keys), got a list");
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            l_marshal_fail(L, 400, NULL, "attribute name is a %s, not a string",
                           luaL_typename(L, -2));
        struct marshal_path step = {NULL, NULL, 0, 0};
        step.key = lua_tolstring(L, -2, &step.klen);
        n += step.klen + sz_av(&e, lua_gettop(L), 1, &step);
        lua_pop(L, 1);
    }
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static struct enc enc_begin(lua_State *L)
{
    struct enc e;
    e.L = L;
    e.b = lua_touserdata(L, UV_BUF);
    e.b->len = 0;
    e.plain = 0;
    e.nseen = 0;
    return e;
}

static int enc_finish(struct enc *e)
{
    lua_pushlstring(e->L, e->b->p, e->b->len);
    buf_trim(e->b, 1 << 20);
    return 1;
}

/* core.marshal_item(t) -> '{"name":{"S":"..."},...}' */
static int l_marshal_item(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    struct enc e = enc_begin(L);
    enc_item(&e, 1, 0, NULL);
    return enc_finish(&e);
}

/* core.marshal_value(v) -> one AttributeValue, e.g. '{"N":"1"}' */
static int l_marshal_value(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    struct enc e = enc_begin(L);
    enc_av(&e, 1, 1, NULL);
    return enc_finish(&e);
}

/* core.encode_request(params) -> JSON text of a request body */
static int l_encode_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    struct enc e = enc_begin(L);
    enc_plain(&e, 1, 0, NULL);
    return enc_finish(&e);
}

/* core.json_encode(v) -> plain JSON text (no AttributeValues anywhere; markers honoured) */
static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    struct enc e = enc_begin(L);
    e.plain = 1;
    enc_plain(&e, 1, 0, NULL);
    return enc_finish(&e);
}

/* core.base64_encode(bytes) -> standard base64 with padding */
static int l_base64_encode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    struct buf *b = lua_touserdata(L, UV_BUF);
    b->len = 0;
    marshal_b64_encode(L, b, (const unsigned char *)s, n);
    lua_pushlstring(L, b->p, b->len);
    buf_trim(b, 1 << 20);
    return 1;
}

/* core.base64_decode(text) -> bytes, or nil when text is not valid base64 (a value, not an error:
 * callers decide whether bad input is an error) */
static int l_base64_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    struct buf *b = lua_touserdata(L, UV_BUF);
    b->len = 0;
    buf_reserve(L, b, n / 4 * 3 + 3);
    long len = marshal_b64_decode((unsigned char *)b->p, s, n);
    if (len < 0)
        lua_pushnil(L);
    else
        lua_pushlstring(L, b->p, (size_t)len);
    buf_trim(b, 1 << 20);
    return 1;
}

void l_marshal_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"marshal_item", l_marshal_item},     {"marshal_value", l_marshal_value},
        {"encode_request", l_encode_request}, {"json_encode", l_json_encode},
        {"base64_encode", l_base64_encode},   {"base64_decode", l_base64_decode},
        {"item_size", l_item_size},           {NULL, NULL},
    };
    /* stack: module */
    core_newbuf(L);
    luaL_getmetatable(L, CORE_ARRAY_MT);
    luaL_getmetatable(L, CORE_SET_MT);
    luaL_getmetatable(L, CORE_BINARY_MT);
    luaL_setfuncs(L, funcs, 4);
    l_unmarshal_open(L);
}
