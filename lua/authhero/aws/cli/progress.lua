-- Progress reporting on stderr: on a terminal a bar redrawn in place (done/total, rate, ETA); when
-- stderr is a file or a pipe, a plain line every `interval` seconds, so logs stay readable.
-- Knows nothing of what is being counted beyond a label and a unit.
local core = require "authhero.aws.core"

local _M = {}
local mt = { __index = _M }

-- true when stderr is a terminal (`test -t 2` inherits our stderr)
function _M.isatty()
    local ok, how, code = os.execute("test -t 2")
    if type(ok) == "number" then return ok == 0 end -- Lua 5.1 / LuaJIT without 5.2 compat
    return ok == true and how == "exit" and code == 0
end

local function clock(s)
    s = math.floor(s + 0.5)
    local h, m, sec = math.floor(s / 3600), math.floor(s % 3600 / 60), s % 60
    if h > 0 then return string.format("%d:%02d:%02d", h, m, sec) end
    return string.format("%d:%02d", m, sec)
end

local function thousands(n)
    local s = tostring(math.floor(n))
    local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
    return (out:gsub("^,", ""))
end
_M.thousands = thousands

-- new({ label, unit = "records", total = n or nil, tty = bool (default: isatty()), interval = s,
--       quiet = bool, out = file (default io.stderr) })
function _M.new(opts)
    opts = opts or {}
    local tty = opts.tty
    if tty == nil then tty = _M.isatty() end
    local env_interval = tonumber(os.getenv("AUTHHERO_PROGRESS_INTERVAL") or "")
    return setmetatable({
        label = opts.label or "progress",
        unit = opts.unit or "records",
        total = opts.total,
        tty = tty,
        quiet = opts.quiet,
        interval = opts.interval or env_interval or (tty and 0.1 or 5),
        out = opts.out or io.stderr,
        t0 = core.now(),
        last = core.now(),
        done = 0,
        drawn = false,
    }, mt)
end

function _M.rate(self)
    local dt = core.now() - self.t0
    if dt <= 0 then return 0 end
    return self.done / dt
end

function _M.line(self, extra)
    local rate = self:rate()
    local parts = {}
    local total = self.total
    if total and total > 0 then
        local frac = math.min(1, self.done / total)
        local eta = rate > 0 and (total - self.done) / rate or nil
        if self.tty then
            local width = 24
            local fill = math.floor(frac * width + 0.5)
            parts[#parts + 1] = string.format("%s [%s%s] %3d%%", self.label, string.rep("#", fill),
                string.rep("-", width - fill), math.floor(frac * 100))
        else
            parts[#parts + 1] = string.format("%s: %d%%", self.label, math.floor(frac * 100))
        end
        parts[#parts + 1] = string.format("%s/%s %s", thousands(self.done), thousands(total), self.unit)
        parts[#parts + 1] = string.format("%s/s", thousands(rate))
        parts[#parts + 1] = "ETA " .. (eta and clock(math.max(0, eta)) or "?")
    else
        parts[#parts + 1] = string.format("%s: %s %s", self.label, thousands(self.done), self.unit)
        parts[#parts + 1] = string.format("%s/s", thousands(rate))
    end
    if extra and extra ~= "" then parts[#parts + 1] = extra end
    return table.concat(parts, "  ")
end

-- update(done [, extra]): redraws when the interval has passed (always when force is set).
function _M.update(self, done, extra, force)
    self.done = done
    if self.quiet then return end
    local now = core.now()
    if not force and now - self.last < self.interval then return end
    self.last = now
    if self.tty then
        self.out:write("\r", self:line(extra), "\27[K")
        self.drawn = true
    else
        self.out:write(self:line(extra), "\n")
        self.drawn = true
    end
    self.out:flush()
end

-- finish([extra]): the final state on its own line.
function _M.finish(self, done, extra)
    if done then self.done = done end
    if self.quiet then return end
    if self.tty then
        self.out:write("\r", self:line(extra), "\27[K\n")
    elseif self.drawn then
        self.out:write(self:line(extra), "\n")
    end
    self.out:flush()
end

return _M
