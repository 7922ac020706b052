/* AWS Signature Version 4 (stub; being written). */
#include "core.h"

void l_sigv4_open(lua_State *L)
{
    (void)L;
}
