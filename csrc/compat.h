/* The only file that knows Lua 5.1/LuaJIT from 5.4: the rest of csrc/ is written against the 5.4
 * API and this header supplies what LuaJIT 2.1 (luajit2) lacks. Caveat kept in mind elsewhere:
 * in 5.1 lua_getfield/lua_rawget/lua_rawgeti return void, so never use their return values. */
#ifndef AUTHHERO_COMPAT_H
#define AUTHHERO_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define COMPAT_LUA51 1

#define lua_rawlen(L, i)       lua_objlen((L), (i))
#define lua_getuservalue(L, i) lua_getfenv((L), (i))
#define lua_setuservalue(L, i) lua_setfenv((L), (i))

/* LuaJIT numbers are doubles: an "integer" is an integral double a double holds exactly. */
#define COMPAT_MAX_EXACT_INT 9007199254740992.0 /* 2^53 */
static inline int compat_isinteger(lua_State *L, int i)
{
    if (lua_type(L, i) != LUA_TNUMBER)
        return 0;
    lua_Number n = lua_tonumber(L, i);
    return n == (lua_Number)(long long)n && n <= COMPAT_MAX_EXACT_INT && n >= -COMPAT_MAX_EXACT_INT;
}
#define lua_isinteger(L, i) compat_isinteger((L), (i))

static inline int compat_absindex(lua_State *L, int i)
{
    return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}
#ifndef lua_absindex
#define lua_absindex(L, i) compat_absindex((L), (i))
#endif

static inline lua_Integer compat_len(lua_State *L, int i) { return (lua_Integer)lua_objlen(L, i); }
#define luaL_len(L, i) compat_len((L), (i))

static inline void compat_rawgetp(lua_State *L, int i, const void *p)
{
    i = lua_absindex(L, i);
    lua_pushlightuserdata(L, (void *)(size_t)p);
    lua_rawget(L, i);
}
#define lua_rawgetp(L, i, p) compat_rawgetp((L), (i), (p))

static inline void compat_rawsetp(lua_State *L, int i, const void *p)
{
    i = lua_absindex(L, i);
    lua_pushlightuserdata(L, (void *)(size_t)p);
    lua_insert(L, -2);
    lua_rawset(L, i);
}
#define lua_rawsetp(L, i, p) compat_rawsetp((L), (i), (p))

#else
#define COMPAT_LUA51 0
#endif

#endif
