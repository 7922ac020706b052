/* Key composition: PK/SK/GSI strings such as TENANT#<id> and their inverse. One rule, in one place
 * (adapter contract §2.4): inside every part '%' becomes "%25" and '#' becomes "%23", so a part can
 * never forge a separator. Which parts make which key is the Lua schema's business, not this
 * file's. */
#include "core.h"

/* Appends part, escaped, to b. */
static void keys_escape(lua_State *L, struct buf *b, const char *s, size_t n)
{
    buf_reserve(L, b, n);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%' || c == '#') {
            buf_reserve(L, b, 3 + (n - i));
            b->p[b->len++] = '%';
            b->p[b->len++] = '2';
            b->p[b->len++] = c == '%' ? '5' : '3';
        } else {
            b->p[b->len++] = c;
        }
    }
}

/* Pushes s[0..n) unescaped: only the two sequences keys_escape writes are undone; anything else
 * (e.g. a key written by another tool) is kept as it is. */
static void l_keys_push_unescaped(lua_State *L, struct buf *b, const char *s, size_t n)
{
    b->len = 0;
    buf_reserve(L, b, n);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && s[i + 1] == '2' && (s[i + 2] == '5' || s[i + 2] == '3')) {
            b->p[b->len++] = s[i + 2] == '5' ? '%' : '#';
            i += 2;
        } else {
            b->p[b->len++] = s[i];
        }
    }
    lua_pushlstring(L, b->p, b->len);
}

/* core.key(part, ...) -> "part#part#..." with every part escaped. Parts are strings or numbers. */
static int l_keys_key(lua_State *L)
{
    int n = lua_gettop(L);
    struct buf *b = lua_touserdata(L, lua_upvalueindex(1));
    if (n == 0)
        return luaL_argerror(L, 1, "at least one key part expected");
    b->len = 0;
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_checklstring(L, i, &len);
        if (i > 1)
            buf_putc(L, b, '#');
        keys_escape(L, b, s, len);
    }
    lua_pushlstring(L, b->p, b->len);
    buf_trim(b, 1 << 16);
    return 1;
}

/* core.key_escape(s) -> s escaped as one key part. */
static int l_keys_escape(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct buf *b = lua_touserdata(L, lua_upvalueindex(1));
    b->len = 0;
    keys_escape(L, b, s, len);
    lua_pushlstring(L, b->p, b->len);
    buf_trim(b, 1 << 16);
    return 1;
}

/* core.key_unescape(s) -> the raw part. */
static int l_keys_unescape(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct buf *b = lua_touserdata(L, lua_upvalueindex(1));
    l_keys_push_unescaped(L, b, s, len);
    buf_trim(b, 1 << 16);
    return 1;
}

/* core.key_parts(key) -> { part, part, ... } split on '#' and unescaped: the inverse of core.key.
 */
static int l_keys_parts(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct buf *b = lua_touserdata(L, lua_upvalueindex(1));
    lua_createtable(L, 4, 0);
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '#') {
            l_keys_push_unescaped(L, b, s + start, i - start);
            lua_rawseti(L, -2, ++n);
            start = i + 1;
        }
    }
    buf_trim(b, 1 << 16);
    return 1;
}

void l_keys_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"key", l_keys_key},
        {"key_escape", l_keys_escape},
        {"key_unescape", l_keys_unescape},
        {"key_parts", l_keys_parts},
        {NULL, NULL},
    };
    /* stack: module */
    core_newbuf(L);
    luaL_setfuncs(L, funcs, 1);
}
