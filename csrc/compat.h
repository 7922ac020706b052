/* The only file that knows one Lua from another: the rest of csrc/ is written against the 5.4 API
 * and this header supplies what Lua 5.1, LuaJIT 2.1 (luajit2), 5.2 and 5.3 lack. Caveat kept in
 * mind elsewhere: before 5.3 lua_getfield/lua_rawget/lua_rawgeti return void, so never use their
 * return values.
 *   COMPAT_LUA51    the 5.1 API (PUC 5.1 or LuaJIT): no uservalues, lua_objlen, no lua_absindex
 *   COMPAT_PUC51    PUC Lua 5.1 itself, which also lacks the 5.2 auxiliary functions LuaJIT has
 *   COMPAT_DOUBLES  numbers are doubles only (5.1, LuaJIT, 5.2): an "integer" is an integral double
 *                   a double holds exactly, so integers beyond 2^53 travel as exact strings */
#ifndef AUTHHERO_COMPAT_H
#define AUTHHERO_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 503
#define COMPAT_DOUBLES 1

/* Numbers are doubles: an "integer" is an integral double a double holds exactly. The range is
 * checked first, so the cast to long long is always defined. */
#define COMPAT_MAX_EXACT_INT 9007199254740992.0 /* 2^53 */
static inline int compat_isinteger(lua_State *L, int i)
{
    if (lua_type(L, i) != LUA_TNUMBER)
        return 0;
    lua_Number n = lua_tonumber(L, i);
    return n <= COMPAT_MAX_EXACT_INT && n >= -COMPAT_MAX_EXACT_INT && n == (lua_Number)(long long)n;
}
#define lua_isinteger(L, i) compat_isinteger((L), (i))
#else
#define COMPAT_DOUBLES 0
#endif

#if LUA_VERSION_NUM < 502
#define COMPAT_LUA51 1

#define lua_rawlen(L, i)       lua_objlen((L), (i))
#define lua_getuservalue(L, i) lua_getfenv((L), (i))
#define lua_setuservalue(L, i) lua_setfenv((L), (i))

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

/* LuaJIT 2.1 has the 5.2 auxiliary functions below and defines LUA_OK; PUC Lua 5.1 has neither. */
#ifndef LUA_OK
#define COMPAT_PUC51 1
#define LUA_OK       0

static inline void compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name != NULL; l++) {
        for (int i = 0; i < nup; i++) /* copy the upvalues above the table */
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#define luaL_setfuncs(L, l, nup) compat_setfuncs((L), (l), (nup))

#define luaL_newlibtable(L, l) lua_createtable((L), 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#define luaL_newlib(L, l)      (luaL_newlibtable((L), (l)), luaL_setfuncs((L), (l), 0))

static inline void compat_setmetatable(lua_State *L, const char *tname)
{
    luaL_getmetatable(L, tname);
    lua_setmetatable(L, -2);
}
#define luaL_setmetatable(L, t) compat_setmetatable((L), (t))
#else
#define COMPAT_PUC51 0
#endif

#else
#define COMPAT_LUA51 0
#define COMPAT_PUC51 0
#endif

#endif
