/* The materialisation floor for bench/client.lua: what building a decoded Query reply's items as
 * plain Lua tables costs with no JSON at all. floor.new(items) copies a list of plain items (string,
 * number, boolean and core.null values only) into C; f:build() then makes the same tables again:
 * per item lua_createtable(0, n) and, per attribute, the name (a kept Lua string, as the decoder's
 * cache gives it), the value and lua_rawset. A string value the item before or after has too under
 * the same name and is at most 40 bytes long is pushed from a kept string (csrc/unmarshal.c's cache
 * does the same for such strings); any other is made with
 * lua_pushlstring from C bytes, as a decoder must. It returns the list, so its garbage is like the
 * decoder's. f:build(true) pushes every string from a kept one (tables only, no string made).
 *
 * Nothing the decoder could skip is in it: the time is a lower bound for any decoder that returns
 * plain tables through the Lua C API. Built by scripts/bench-client into build/bench/{5.4,jit}/. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM >= 502
#define floor_len lua_rawlen
#else
#define floor_len lua_objlen
#endif

enum kind { K_STRING, K_INT, K_NUMBER, K_TRUE, K_FALSE, K_NULL };

struct attr {
    int name_ref;  /* registry ref of the name string */
    int value_ref; /* registry ref of the value (strings only) */
    enum kind kind;
    int shared;    /* the same string as in a neighbouring item: kept, as the decoder caches it */
    const char *s; /* string bytes (malloc'd copy) */
    size_t n;
    lua_Number num;
};

struct floor {
    int nitems;
    int *nattrs;
    struct attr **attrs;
};

#define FLOOR_MT "bench.floor"

static int f_gc(lua_State *L)
{
    struct floor *f = luaL_checkudata(L, 1, FLOOR_MT);
    for (int i = 0; i < f->nitems; i++) {
        for (int j = 0; j < f->nattrs[i]; j++) {
            luaL_unref(L, LUA_REGISTRYINDEX, f->attrs[i][j].name_ref);
            luaL_unref(L, LUA_REGISTRYINDEX, f->attrs[i][j].value_ref);
            free((void *)(size_t)f->attrs[i][j].s);
        }
        free(f->attrs[i]);
    }
    free(f->attrs);
    free(f->nattrs);
    f->nitems = 0;
    f->attrs = NULL;
    f->nattrs = NULL;
    return 0;
}

/* floor.new(items) -> f */
static int f_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)floor_len(L, 1);
    struct floor *f = lua_newuserdata(L, sizeof *f);
    memset(f, 0, sizeof *f);
    luaL_getmetatable(L, FLOOR_MT);
    lua_setmetatable(L, -2);
    f->attrs = calloc((size_t)n + 1, sizeof *f->attrs);
    f->nattrs = calloc((size_t)n + 1, sizeof *f->nattrs);
    if (!f->attrs || !f->nattrs)
        return luaL_error(L, "out of memory");
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        luaL_checktype(L, -1, LUA_TTABLE);
        int count = 0;
        for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1))
            count++;
        struct attr *a = calloc((size_t)count + 1, sizeof *a);
        if (!a)
            return luaL_error(L, "out of memory");
        f->attrs[i] = a;
        f->nitems = i + 1;
        int j = 0;
        for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1), j++) {
            a[j].value_ref = LUA_NOREF;
            lua_pushvalue(L, -2);
            a[j].name_ref = luaL_ref(L, LUA_REGISTRYINDEX);
            f->nattrs[i] = j + 1;
            switch (lua_type(L, -1)) {
            case LUA_TSTRING: {
                size_t len;
                const char *s = lua_tolstring(L, -1, &len);
                char *copy = malloc(len + 1);
                if (!copy)
                    return luaL_error(L, "out of memory");
                memcpy(copy, s, len + 1);
                a[j].kind = K_STRING;
                a[j].s = copy;
                a[j].n = len;
                lua_pushvalue(L, -1);
                a[j].value_ref = luaL_ref(L, LUA_REGISTRYINDEX);
                break;
            }
            case LUA_TNUMBER:
                a[j].num = lua_tonumber(L, -1);
                a[j].kind = a[j].num == (lua_Number)(long long)a[j].num ? K_INT : K_NUMBER;
                break;
            case LUA_TBOOLEAN:
                a[j].kind = lua_toboolean(L, -1) ? K_TRUE : K_FALSE;
                break;
            case LUA_TLIGHTUSERDATA:
                a[j].kind = K_NULL;
                break;
            default:
                return luaL_error(L, "floor.new: item %d: unsupported value type %s", i + 1,
                                  luaL_typename(L, -1));
            }
        }
        lua_pop(L, 1);
    }
    /* shared: items i and i+1 (or i-1) hold the same bytes under the same name */
    for (int i = 0; i < f->nitems; i++)
        for (int j = 0; j < f->nattrs[i]; j++) {
            struct attr *a = &f->attrs[i][j];
            if (a->kind != K_STRING || a->n > 40) /* the decoder caches up to 40 bytes */
                continue;
            lua_rawgeti(L, LUA_REGISTRYINDEX, a->name_ref);
            const char *name = lua_tostring(L, -1);
            for (int o = i - 1; o <= i + 1 && !a->shared; o += 2) {
                if (o < 0 || o >= f->nitems)
                    continue;
                for (int k = 0; k < f->nattrs[o]; k++) {
                    const struct attr *b = &f->attrs[o][k];
                    lua_rawgeti(L, LUA_REGISTRYINDEX, b->name_ref);
                    int same_name = strcmp(lua_tostring(L, -1), name) == 0;
                    lua_pop(L, 1);
                    if (same_name && b->kind == K_STRING && b->n == a->n &&
                        memcmp(b->s, a->s, a->n) == 0)
                        a->shared = 1;
                }
            }
            lua_pop(L, 1);
        }
    return 1;
}

/* f:build([kept]) -> { item, ... } */
static int f_build(lua_State *L)
{
    struct floor *f = luaL_checkudata(L, 1, FLOOR_MT);
    int kept = lua_toboolean(L, 2);
    lua_createtable(L, f->nitems, 0);
    for (int i = 0; i < f->nitems; i++) {
        const struct attr *a = f->attrs[i];
        int na = f->nattrs[i];
        lua_createtable(L, 0, na);
        for (int j = 0; j < na; j++) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, a[j].name_ref);
            switch (a[j].kind) {
            case K_STRING:
                if (kept || a[j].shared)
                    lua_rawgeti(L, LUA_REGISTRYINDEX, a[j].value_ref);
                else
                    lua_pushlstring(L, a[j].s, a[j].n);
                break;
            case K_INT:
                lua_pushinteger(L, (lua_Integer)a[j].num);
                break;
            case K_NUMBER:
                lua_pushnumber(L, a[j].num);
                break;
            case K_TRUE:
            case K_FALSE:
                lua_pushboolean(L, a[j].kind == K_TRUE);
                break;
            case K_NULL:
                lua_pushlightuserdata(L, NULL);
                break;
            }
            lua_rawset(L, -3);
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

int luaopen_floor(lua_State *L);
int luaopen_floor(lua_State *L)
{
    luaL_newmetatable(L, FLOOR_MT);
    lua_pushcfunction(L, f_gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    lua_pushcfunction(L, f_build);
    lua_setfield(L, -2, "build");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushcfunction(L, f_new);
    lua_setfield(L, -2, "new");
    return 1;
}
