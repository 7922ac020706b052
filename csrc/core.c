/* luaopen_authhero_aws_core: builds the module table, owns the shared pieces (buffers, the error
 * object, the sentinel values null/array/set/binary) and asks each file to register its own
 * functions. Policy (retries, credentials, adapters) lives in Lua, not here. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

#include "core.h"

void buf_grow(lua_State *L, struct buf *b, size_t extra)
{
    size_t need = b->len + extra, cap = b->cap ? b->cap : 256;
    if (need < b->len)
        luaL_error(L, "not enough memory");
    while (cap < need)
        cap = cap * 2 > cap ? cap * 2 : need;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        luaL_error(L, "not enough memory");
    b->p = p;
    b->cap = cap;
}

void buf_trim(struct buf *b, size_t keep)
{
    b->len = 0;
    if (b->cap > keep) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

static int l_buf_gc(lua_State *L)
{
    struct buf *b = luaL_checkudata(L, 1, CORE_BUF_MT);
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    return 0;
}

struct buf *core_newbuf(lua_State *L)
{
    struct buf *b = lua_newuserdata(L, sizeof *b);
    b->p = NULL;
    b->len = b->cap = 0;
    luaL_setmetatable(L, CORE_BUF_MT);
    return b;
}

void core_pusherror(lua_State *L, int status, const char *code, const char *msg)
{
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "retryable");
    luaL_setmetatable(L, CORE_ERROR_MT);
}

int core_raise(lua_State *L, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *msg = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    core_pusherror(L, status, code, msg);
    return lua_error(L);
}

/* "Code (status): message"; errors.lua may replace it on the same metatable. */
static int l_error_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "code");
    lua_getfield(L, 1, "status");
    lua_getfield(L, 1, "message");
    lua_pushfstring(L, "%s (%s): %s", luaL_optstring(L, 2, "Error"), luaL_optstring(L, 3, "0"),
                    luaL_optstring(L, 4, ""));
    return 1;
}

/* core.array([t]) -> t marked as a list (so {} encodes as an empty L, not an empty M). */
static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    else
        luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, CORE_ARRAY_MT);
    return 1;
}

/* core.set(list) -> list marked as a set (SS, NS or BS by its elements; checked when encoded). */
static int l_set(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, CORE_SET_MT);
    return 1;
}

/* core.binary(bytes) -> { data = bytes } marked as binary (B, base64 on the wire). */
static int l_binary(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "data");
    luaL_setmetatable(L, CORE_BINARY_MT);
    return 1;
}

static int l_binary_tostring(lua_State *L)
{
    lua_getfield(L, 1, "data");
    return 1;
}

/* core.now() -> wall-clock seconds since the epoch, with sub-millisecond precision. */
static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* core.sleep(seconds): blocks the thread (plain Lua only; OpenResty code uses ngx.sleep). */
static int l_sleep(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    if (secs <= 0)
        return 0;
    struct timespec ts;
    ts.tv_sec = (time_t)secs;
    ts.tv_nsec = (long)((secs - (lua_Number)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

static int has_mt(lua_State *L, const char *name)
{
    if (!lua_getmetatable(L, 1))
        return 0;
    luaL_getmetatable(L, name);
    int eq = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return eq;
}

static int l_is_array(lua_State *L)
{
    lua_pushboolean(L, has_mt(L, CORE_ARRAY_MT));
    return 1;
}

static int l_is_set(lua_State *L)
{
    lua_pushboolean(L, has_mt(L, CORE_SET_MT));
    return 1;
}

static int l_is_binary(lua_State *L)
{
    lua_pushboolean(L, has_mt(L, CORE_BINARY_MT));
    return 1;
}

/* Deep copy of the value at idx, pushed on the stack. Tables are copied (keys by reference, values
 * recursively) and keep their metatable, so core.array/set/binary marks survive; every other value
 * is itself. A table nested deeper than COPY_MAX_DEPTH (a cycle, or hostile data) raises. */
#define COPY_MAX_DEPTH 200
static void copy_value(lua_State *L, int idx, int depth)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushvalue(L, idx);
        return;
    }
    if (depth > COPY_MAX_DEPTH)
        luaL_error(L, "copy: tables nested deeper than %d (a cycle?)", COPY_MAX_DEPTH);
    luaL_checkstack(L, 6, "copy");
    idx = lua_absindex(L, idx);
    int narr = (int)lua_rawlen(L, idx), n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        n++;
        lua_pop(L, 1);
    }
    lua_createtable(L, narr, n > narr ? n - narr : 0);
    int dst = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* stack: dst, key, value */
        lua_pushvalue(L, -2);
        copy_value(L, -2, depth + 1); /* stack: dst, key, value, key, copy */
        lua_rawset(L, dst);
        lua_pop(L, 1);
    }
    if (lua_getmetatable(L, idx))
        lua_setmetatable(L, dst);
}

static int l_copy(lua_State *L)
{
    luaL_checkany(L, 1);
    copy_value(L, 1, 0);
    return 1;
}

static void new_mt(lua_State *L, const char *name, const char *field)
{
    luaL_newmetatable(L, name);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, field); /* module.<field> = mt */
}

int luaopen_authhero_aws_core(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"array", l_array},   {"set", l_set},
        {"binary", l_binary}, {"is_array", l_is_array},
        {"is_set", l_is_set}, {"is_binary", l_is_binary},
        {"now", l_now},       {"sleep", l_sleep},
        {"copy", l_copy},     {NULL, NULL},
    };
    /* stack: module */
    luaL_newlib(L, funcs);
    lua_pushlightuserdata(L, NULL); /* the same value as cjson.null */
    lua_setfield(L, -2, "null");

    luaL_newmetatable(L, CORE_BUF_MT);
    lua_pushcfunction(L, l_buf_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    new_mt(L, CORE_ERROR_MT, "error_mt");
    lua_pushcfunction(L, l_error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    new_mt(L, CORE_ARRAY_MT, "array_mt");
    lua_pop(L, 1);
    new_mt(L, CORE_SET_MT, "set_mt");
    lua_pop(L, 1);
    new_mt(L, CORE_BINARY_MT, "binary_mt");
    lua_pushcfunction(L, l_binary_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    l_keys_open(L);
    l_sigv4_open(L);
    l_marshal_open(L);
    l_crc32_open(L);
    l_http_open(L);
    l_unicode_open(L);
    l_password_open(L);
    return 1;
}
