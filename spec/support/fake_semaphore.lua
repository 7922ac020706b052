-- A stand-in for ngx.semaphore in unit specs, for coroutines driven by hand: new() -> s;
-- s:wait(timeout) parks the coroutine (coroutine.yield("wait")) until s:post(n) gives it a count.
--   local sem = require("support.fake_semaphore")()   -- cache._semaphore = sem
--   sem.timeouts                 every timeout wait was given, in order
--   sem.timeout_now = true       a wait nobody has posted times out at once (nil, "timeout"),
--                                after calling sem.advance(timeout) when set (a fake clock)
return function()
    local sem = { timeouts = {}, timeout_now = false, advance = nil }
    function sem.new()
        local s = { count = 0 }
        function s.wait(self, timeout)
            sem.timeouts[#sem.timeouts + 1] = timeout
            if self.count == 0 and sem.timeout_now then
                if sem.advance then sem.advance(timeout) end
                return nil, "timeout"
            end
            while self.count == 0 do coroutine.yield("wait") end
            self.count = self.count - 1
            return true
        end
        function s.post(self, n) self.count = self.count + (n or 1) end
        return s
    end
    return sem
end
