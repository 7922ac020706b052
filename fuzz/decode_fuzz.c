/* libFuzzer target for the decoder: every input goes through core.decode_reply and
 * core.unmarshal_item inside a protected call. A MarshalError is a fine outcome; a crash, a
 * sanitizer report or a Lua API misuse (lua_checkstack, stack imbalance) is not. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_authhero_aws_core(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *fuzz_state(void)
{
    static lua_State *L = NULL;
    if (L == NULL) {
        L = luaL_newstate();
        luaL_openlibs(L);
        luaL_requiref(L, "authhero.aws.core", luaopen_authhero_aws_core, 0);
        lua_pop(L, 1);
    }
    return L;
}

static void fuzz_call(lua_State *L, const char *fn, const uint8_t *data, size_t size)
{
    int top = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "authhero.aws.core");
    lua_getfield(L, -1, fn);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
        /* what decoded must encode again without crashing (it may still raise) */
        lua_getfield(L, -2, strcmp(fn, "decode_reply") == 0 ? "encode_request" : "marshal_item");
        lua_pushvalue(L, -2);
        lua_pcall(L, 1, 1, 0);
    }
    lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_state();
    fuzz_call(L, "decode_reply", data, size);
    fuzz_call(L, "unmarshal_item", data, size);
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
