-- The Lambda Runtime API loop for a Lua handler (custom runtime, provided.al2023): fetch the next
-- event, call the handler named by _HANDLER ("module.function", e.g. "handler.handler"), post its
-- result or its error, repeat. HTTP goes through authhero-aws's libcurl transport.
-- API: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
local cjson = require "cjson"
local curl = require "authhero.aws.transport.curl"

local API = "http://" .. assert(os.getenv("AWS_LAMBDA_RUNTIME_API"), "AWS_LAMBDA_RUNTIME_API is not set")
    .. "/2018-06-01/runtime"
-- /next blocks until an event arrives: a long timeout, and a timed-out wait is simply repeated
local http = curl.new({ connect_timeout_ms = 2000, timeout_ms = 3600000 })

local function post(path, body, headers)
    local h = { { "content-type", "application/json" } }
    for _, kv in ipairs(headers or {}) do h[#h + 1] = kv end
    return http:request({ method = "POST", url = API .. path, headers = h, body = body })
end

local function error_body(err)
    local msg = type(err) == "table" and err.message and tostring(err) or tostring(err)
    return cjson.encode({ errorMessage = msg, errorType = type(err) == "table" and tostring(err.code or "Error")
        or "Error" })
end

-- the handler, loaded once; a failure here is an init error, reported before any event
local spec = os.getenv("_HANDLER") or "handler.handler"
local modname, fname = spec:match("^(.+)%.([^.]+)$")
local ok, mod = pcall(require, modname or spec)
local handler = ok and type(mod) == "table" and mod[fname]
if type(handler) ~= "function" then
    post("/init/error", error_body(ok and ("no function " .. tostring(fname) .. " in module " .. tostring(modname))
        or mod), { { "lambda-runtime-function-error-type", "Runtime.HandlerNotFound" } })
    os.exit(1)
end

while true do
    local got, res = pcall(http.request, http, { method = "GET", url = API .. "/invocation/next" })
    if got and res.status == 200 then
        local id = res.headers["lambda-runtime-aws-request-id"]
        local context = {
            aws_request_id = id,
            deadline_ms = tonumber(res.headers["lambda-runtime-deadline-ms"]),
            invoked_function_arn = res.headers["lambda-runtime-invoked-function-arn"],
            trace_id = res.headers["lambda-runtime-trace-id"],
            function_name = os.getenv("AWS_LAMBDA_FUNCTION_NAME"),
        }
        local dok, event = pcall(cjson.decode, res.body)
        local hok, result
        if dok then
            hok, result = xpcall(handler, function(e)
                if type(e) == "table" then return e end
                return debug.traceback(tostring(e), 2)
            end, event, context)
        else
            hok, result = false, "the event is not JSON: " .. tostring(event)
        end
        if hok then
            post("/invocation/" .. id .. "/response", cjson.encode(result == nil and cjson.null or result))
        else
            io.stderr:write("handler error: ", tostring(result), "\n") -- goes to CloudWatch Logs
            post("/invocation/" .. id .. "/error", error_body(result),
                { { "lambda-runtime-function-error-type", "Runtime.HandlerError" } })
        end
    elseif got then
        io.stderr:write("runtime API: /invocation/next answered ", tostring(res.status), "\n")
    elseif not (type(res) == "table" and res.reason == "timeout") then
        io.stderr:write("runtime API: ", tostring(res), "\n")
        os.exit(1) -- Lambda restarts the runtime
    end
end
