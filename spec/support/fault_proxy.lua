-- spec/support/faultd.py --proxy in front of a DynamoDB endpoint, for the specs that script faults
-- on real requests (exactly_once_spec, client_hooks_spec):
--   local fp = require "support.fault_proxy"
--   local p = fp.start(ddb.endpoint())   -- p.url: the proxy; p.pid
--   p:control({ faults = { ... } })       -- POST /_control (faultd.py's header lists the faults)
--   p:script({ "500", "reset_after" })    -- the next requests get these faults, one each; then none
--   p:stats()                             -- GET /_stats as a table (requests, ...)
--   p:stop()
local cjson = require "cjson"

local M = {}
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local FAULTD = here .. "faultd.py"

local proxy = {}
proxy.__index = proxy

function M.start(target)
    local pipe = assert(io.popen("exec " .. (os.getenv("PYTHON") or "python3") .. " " .. FAULTD .. " --proxy "
        .. target, "r"))
    local line = pipe:read("*l")
    local pid, port = (line or ""):match("^(%d+) (%d+)$")
    assert(pid, "faultd.py --proxy did not start: " .. tostring(line))
    return setmetatable({
        url = "http://127.0.0.1:" .. port,
        pid = pid,
        _pipe = pipe,
        _ctl = require("authhero.aws.transport.curl").new({ timeout_ms = 10000 }),
    }, proxy)
end

-- control(body): POSTs body (a table, as JSON) to the proxy's /_control; asserts a 200.
function proxy.control(self, body)
    local res = self._ctl:request({ method = "POST", url = self.url .. "/_control", body = cjson.encode(body) })
    assert(res.status == 200, "faultd /_control: " .. tostring(res.status))
end

-- script(faults): the next requests through the proxy get these faults, one each; then none.
function proxy.script(self, faults)
    self:control({ faults = faults, rates = {}, reset_stats = true })
end

-- stats() -> the proxy's counters (GET /_stats), numbers where they are numbers.
function proxy.stats(self)
    local res = self._ctl:request({ method = "GET", url = self.url .. "/_stats" })
    local t = {}
    for name, value in res.body:gmatch("(%S+) (%S+)\n") do t[name] = tonumber(value) or value end
    return t
end

function proxy.stop(self)
    if self._ctl then pcall(self._ctl.close, self._ctl) end
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    if self._pipe then self._pipe:close() end
    self._ctl, self._pipe = nil, nil
end

return M
