/* Lua value <-> DynamoDB-JSON (stub; being written). */
#include "core.h"

void l_marshal_open(lua_State *L)
{
    (void)L;
}
