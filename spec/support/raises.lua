-- raises(f, ...) -> the error f(...) raised, asserting that it failed and that what it raised is one
-- of the library's error objects (not a string: a string is a bug, not a condition).
--   local raises = require "support.raises"
local errors = require "authhero.aws.errors"

return function(f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an error")
    assert(errors.is(err), "not an error object: " .. tostring(err))
    return err
end
