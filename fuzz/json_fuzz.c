/* libFuzzer target: core.json_decode (import files are JSON lines), then json_encode of whatever
 * decoded, which must decode to the same values.
 * The properties are props.json in fuzz/props.lua; fuzz_lua.h runs them. */
#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_run("json", data, size);
}
