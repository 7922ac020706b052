/* Shared by the libFuzzer targets in fuzz/: one lua_State per process with the C core loaded and
 * fuzz/props.lua's property table in the registry. A target hands its input (and, for the HTTP
 * target, what the C code made of it) to props[<target>]; the property function raises only when
 * an invariant breaks, and then the harness aborts so libFuzzer keeps the input. A crash, a
 * sanitizer report or a Lua API misuse (stack imbalance) is a failure too. */
#ifndef AUTHHERO_FUZZ_LUA_H
#define AUTHHERO_FUZZ_LUA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#ifndef FUZZ_PROPS
#define FUZZ_PROPS "fuzz/props.lua"
#endif

int luaopen_authhero_aws_core(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_PROPS_KEY "authhero.fuzz.props"

static lua_State *fuzz_state(void)
{
    static lua_State *L = NULL;
    if (L == NULL) {
        L = luaL_newstate();
        luaL_openlibs(L);
        luaL_requiref(L, "authhero.aws.core", luaopen_authhero_aws_core, 0);
        lua_pop(L, 1);
        if (luaL_dofile(L, FUZZ_PROPS) != LUA_OK || !lua_istable(L, -1)) {
            fprintf(stderr, "fuzz: cannot load %s: %s\n", FUZZ_PROPS,
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "(did not return a table)");
            abort();
        }
        lua_setfield(L, LUA_REGISTRYINDEX, FUZZ_PROPS_KEY);
    }
    return L;
}

/* Pushes props[target] (a function). */
static void fuzz_push_prop(lua_State *L, const char *target)
{
    lua_getfield(L, LUA_REGISTRYINDEX, FUZZ_PROPS_KEY);
    lua_getfield(L, -1, target);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        fprintf(stderr, "fuzz: %s has no property '%s'\n", FUZZ_PROPS, target);
        abort();
    }
}

/* Calls the function under nargs arguments on the stack; aborts when it raises. Checks the stack
 * is back where it was. */
static void fuzz_call_prop(lua_State *L, int top, int nargs)
{
    if (lua_pcall(L, nargs, 0, 0) != LUA_OK) {
        fprintf(stderr, "fuzz: property broken: %s\n",
                lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)");
        abort();
    }
    if (lua_gettop(L) != top) {
        fprintf(stderr, "fuzz: stack imbalance (%d, wanted %d)\n", lua_gettop(L), top);
        abort();
    }
}

/* props[target](input) for the targets that are only Lua calls into the core. */
static int fuzz_run(const char *target, const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_state();
    int top = lua_gettop(L);
    fuzz_push_prop(L, target);
    lua_pushlstring(L, (const char *)data, size);
    fuzz_call_prop(L, top, 1);
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}

#endif
