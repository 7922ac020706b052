-- actions, actionVersions, actionExecutions (contract §7): AuthHero's Actions feature is not stored
-- on DynamoDB; every method AuthHero's adapter interfaces declare raises NotImplemented (501)
-- before any request, as upstream's stubs do. actionExecutions.cleanup is optional in AuthHero and
-- left out: AuthHero's retention job skips a backend without it (TTL-style stores), whereas one
-- that raised would fail the job.
local errors = require "authhero.aws.errors"
local store = require "authhero.aws.store"

local _M = {}

-- adapter name -> what the message calls it, and the methods AuthHero declares
_M.ADAPTERS = {
    actions = { what = "actions", methods = { "create", "get", "update", "remove", "list" } },
    actionVersions = { what = "action versions", methods = { "create", "get", "list", "removeForAction" } },
    actionExecutions = { what = "action executions", methods = { "create", "get" } },
}

-- adapter(name) -> the adapter table whose every method raises 501.
function _M.adapter(name)
    local spec = _M.ADAPTERS[name]
    if not spec then error("unknown unsupported adapter " .. tostring(name), 2) end
    local methods = {}
    for _, m in ipairs(spec.methods) do
        methods[m] = function()
            errors.not_implemented("%s are not implemented in the DynamoDB adapter (%s.%s)", spec.what, name, m)
        end
    end
    return store.adapter(methods)
end

return _M
